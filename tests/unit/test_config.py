"""Configuration: validation errors name the file and key path, never a value."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ws_artifacts.core.errors import ConfigError
from ws_artifacts.core.loading import load_config, parse_config
from ws_artifacts.core.routing import Router


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ws.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_the_example_from_the_issue_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_A_KEY", "AKIAEXAMPLE")
    monkeypatch.setenv("TEAM_A_SECRET", "s3cr3t-value")
    config = load_config(
        write(
            tmp_path,
            """
            defaults:
              endpoint_url: http://127.0.0.1:9000
              region: us-east-1
            workspaces:
              team-a:
                url: s3://team-a-artifacts
                credentials:
                  access_key_id: ${TEAM_A_KEY}
                  secret_access_key: ${TEAM_A_SECRET}
              "vision-*":
                url: s3://vision-artifacts/{workspace}
            unknown_workspaces: default
            """,
        )
    )
    creds = config.workspaces["team-a"].credentials
    assert creds is not None
    assert creds.secret_access_key is not None
    assert creds.secret_access_key.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(config)
    assert creds.source == "static keys"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "workspaces:\n  team-a: {url: s3://bucket-b, colour: red}\n",
            r"workspaces\.team-a\.colour: unknown key",
        ),
        (
            "workspaces:\n  Team_A: {url: s3://bucket-b}\n",
            r"workspaces\.Team_A: 'Team_A' is not a workspace name",
        ),
        (
            "workspaces:\n  team-a: {url: s3://bucket-b, credentials: {role_arn: nope}}\n",
            r"workspaces\.team-a\.credentials\.role_arn: String should match pattern",
        ),
        (
            "workspaces:\n  team-a: {url: s3://bucket-b, credentials: {access_key_id: k}}\n",
            r"workspaces\.team-a\.credentials: static credentials need both",
        ),
        (
            "workspaces:\n  team-a: {url: s3://bucket-b, storage: {kms_key_id: k}}\n",
            r"workspaces\.team-a\.storage: kms_key_id needs sse: aws:kms",
        ),
        (
            "workspaces:\n  team-a: {url: 's3://bucket-b/{team}'}\n",
            r"workspaces\.team-a\.url: url may only use the placeholder \{workspace\}",
        ),
        (
            "workspaces:\n  team-a: {url: 's3://'}\n",
            r"workspaces\.team-a\.url: an s3:// url needs a bucket name",
        ),
        (
            "workspaces:\n  team-a: {url: 's4://bucket-a'}\n",
            r"workspaces\.team-a\.url: no store provides the scheme 's4://'; use s3://",
        ),
        (
            "workspaces:\n  team-a: {url: 'htps://host/x'}\n",
            r"workspaces\.team-a\.url: no store provides the scheme 'htps://'",
        ),
        (
            "workspaces:\n  team-a: {url: 's3://Bad_Bucket/x'}\n",
            r"workspaces\.team-a\.url: 'Bad_Bucket' is not a valid S3 bucket name \(3 to 63",
        ),
        (
            "workspaces:\n  team-a: {url: 's3://192.168.1.1'}\n",
            r"workspaces\.team-a\.url: '192\.168\.1\.1' is not a valid S3 bucket name",
        ),
        (
            "workspaces:\n  team-a: {url: 'team-a-bucket/prefix'}\n",
            r"workspaces\.team-a\.url: url needs a scheme, e\.g\. s3://bucket/prefix, "
            r"file:///srv/artifacts or gs://bucket$",
        ),
        ("unknown_workspaces: maybe\n", r"unknown_workspaces: Input should be 'default' or 'deny'"),
        (
            "defaults:\n  transfer: {part_size: 1024}\n",
            r"defaults\.transfer\.part_size: Input should be greater than or equal to 5242880",
        ),
        ("- a list\n", r"the top level must be a mapping, got list"),
    ],
    ids=[
        "unknown-key",
        "bad-name",
        "bad-role-arn",
        "half-static-keys",
        "kms-without-sse",
        "bad-placeholder",
        "no-bucket",
        "unknown-scheme",
        "misspelt-scheme",
        "bad-bucket-name",
        "ip-bucket-name",
        "no-scheme",
        "bad-policy",
        "tiny-parts",
        "not-a-mapping",
    ],
)
def test_invalid_files_name_the_file_and_the_key_path(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=rf"^{path}: .*{message}"):
        load_config(path)


def test_secret_values_never_appear_in_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEAKY", "hunter2-secret")
    path = write(
        tmp_path,
        """
        workspaces:
          team-a:
            url: s3://bucket-b
            credentials: {access_key_id: "${LEAKY}", secret_access_key: "${LEAKY}", profile: p}
        """,
    )
    with pytest.raises(ConfigError, match="static keys or a profile, not both") as err:
        load_config(path)
    assert "hunter2" not in str(err.value)


def test_missing_variable_names_it_and_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    path = write(tmp_path, "workspaces:\n  team-a: {url: 's3://${NOT_SET_ANYWHERE}'}\n")
    with pytest.raises(
        ConfigError,
        match=r"workspaces\.team-a\.url: environment variable NOT_SET_ANYWHERE is not set",
    ):
        load_config(path)


def test_variable_default_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUCKET_X", raising=False)
    config = parse_config({"workspaces": {"team-a": {"url": "s3://${BUCKET_X:-fallback}"}}})
    assert config.workspaces["team-a"].url == "s3://fallback"


def test_missing_file_and_bad_yaml_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such file\. Set WS_ARTIFACTS_CONFIG"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(
        ConfigError, match=r"not valid YAML at line 2, column 12: mapping values are not allowed"
    ):
        load_config(write(tmp_path, "workspaces:\n  team-a: b: c\n"))


def test_routes_exact_before_glob_first_glob_wins_and_placeholders() -> None:
    config = parse_config(
        {
            "defaults": {"region": "eu-west-1"},
            "workspaces": {
                "vision-*": {"url": "s3://vision/{workspace}", "region": "us-east-2"},
                "vision-special": {"url": "s3://special"},
                "vis*": {"url": "s3://never"},
            },
        }
    )
    router = Router(config, "s3://root")
    assert router.route_for("vision-special").url == "s3://special"
    glob = router.route_for("vision-x")
    assert (glob.name, glob.url, glob.location, glob.prefix) == (
        "vision-*",
        "s3://vision/vision-x",
        "vision",
        "vision-x",
    )
    assert glob.settings.region == "us-east-2"
    assert router.route_for("vision-special").settings.region == "eu-west-1"
    assert router.route_for("visual").url == "s3://never"
    assert router.route_for("other").is_destination
