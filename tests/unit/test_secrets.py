"""Secrets stay secret: configuration models, errors, descriptions and log records."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ws_artifacts.core import redact as _redact
from ws_artifacts.core.config import secret_values
from ws_artifacts.core.errors import ConfigError
from ws_artifacts.core.loading import load_config, parse_config
from ws_artifacts.core.settings import Credentials
from ws_artifacts.storage.clients import describe_credentials

SECRETS = {
    "TEAM_KEY": "AKIATEAMKEY0000001",
    "TEAM_SECRET": "TeamSecret/Value+0123456789abcdef",
    "TEAM_TOKEN": "FQoGZXIvYXdzTeamSessionToken0123456789",
    "EXTERNAL": "external-id-secret-42",
    "AZURE_KEY": "azure-account-key-secret==",
}


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return SECRETS


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ws.yaml"
    path.write_text(textwrap.dedent(text))
    return path


FULL = """
    defaults:
      credentials:
        access_key_id: ${TEAM_KEY}
        secret_access_key: ${TEAM_SECRET}
        session_token: ${TEAM_TOKEN}
    workspaces:
      team-a:
        url: s3://bucket-a
        credentials:
          access_key_id: ${TEAM_KEY}
          secret_access_key: ${TEAM_SECRET}
          role_arn: arn:aws:iam::123456789012:role/team-a
          external_id: ${EXTERNAL}
          restrict_to_route: true
      team-z:
        url: abfs://container
        storage_options: {account_name: acct, account_key: "${AZURE_KEY}"}
"""


def test_secrets_come_from_variables_and_stay_secret_types(
    tmp_path: Path, secret_env: dict[str, str]
) -> None:
    config = load_config(write(tmp_path, FULL))
    creds = config.workspaces["team-a"].credentials
    assert creds is not None
    assert creds.external_id is not None
    assert creds.external_id.get_secret_value() == SECRETS["EXTERNAL"]
    assert type(creds.secret_access_key).__name__ == "SecretStr"
    assert sorted(secret_values(config)) == sorted(
        [
            SECRETS["TEAM_KEY"],
            SECRETS["TEAM_SECRET"],
            SECRETS["TEAM_TOKEN"],
            SECRETS["TEAM_KEY"],
            SECRETS["TEAM_SECRET"],
            SECRETS["EXTERNAL"],
            SECRETS["AZURE_KEY"],
        ]
    )
    shown = [
        repr(config),
        str(config),
        config.model_dump_json(),
        repr(config.model_dump()),
        *(describe_credentials(s) for s in (config.defaults, *config.workspaces.values())),
        repr(config.workspaces["team-z"].public_storage_options()),
    ]
    for text in shown:
        for value in SECRETS.values():
            assert value not in text


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        (
            '{access_key_id: "${EMPTY}", secret_access_key: s}',
            r"workspaces\.team-a\.credentials: access_key_id is empty \(did a \$\{VAR\} expand to "
            r"nothing\?\); give a value or leave the key out",
        ),
        (
            '{access_key_id: k, secret_access_key: "  "}',
            r"workspaces\.team-a\.credentials: secret_access_key is empty",
        ),
        (
            '{role_arn: "arn:aws:iam::1:role/r", external_id: ""}',
            r"workspaces\.team-a\.credentials: external_id is empty",
        ),
    ],
    ids=["empty-variable", "blank", "empty-external-id"],
)
def test_empty_secrets_are_refused(
    monkeypatch: pytest.MonkeyPatch, credentials: str, message: str
) -> None:
    # boto3 treats an empty key as "no key" and would quietly use the server's own credentials.
    monkeypatch.setenv("EMPTY", "")
    import yaml

    data = yaml.safe_load(
        f"workspaces:\n  team-a: {{url: s3://bucket-a, credentials: {credentials}}}\n"
    )
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


@pytest.mark.parametrize(
    "credentials",
    [
        '{access_key_id: "${TEAM_KEY}", secret_access_key: "${TEAM_SECRET}", profile: p}',
        '{access_key_id: "${TEAM_KEY}"}',
        '{session_token: "${TEAM_TOKEN}"}',
        '{access_key_id: "${TEAM_KEY}", secret_access_key: "${TEAM_SECRET}", '
        "access_key_id_file: /x}",
        '{external_id: "${EXTERNAL}", session_name: ab}',
        '{role_arn: "${TEAM_SECRET}"}',
        '{role_arn: "arn:aws:iam::1:role/r", duration_seconds: 5, external_id: "${EXTERNAL}"}',
        '{access_key_id: "${TEAM_KEY}", secret_access_key: "${TEAM_SECRET}", colour: '
        '"${TEAM_TOKEN}"}',
        '{access_key_id: ["${TEAM_KEY}"], secret_access_key: {"${TEAM_SECRET}": 1}}',
    ],
    ids=[
        "keys-and-profile",
        "key-only",
        "token-only",
        "literal-and-file",
        "external-without-role",
        "secret-as-arn",
        "bad-duration",
        "unknown-key",
        "wrong-types",
    ],
)
def test_config_errors_never_show_a_value(
    tmp_path: Path, secret_env: dict[str, str], credentials: str
) -> None:
    path = write(
        tmp_path, f"workspaces:\n  team-a: {{url: s3://bucket-a, credentials: {credentials}}}\n"
    )
    with pytest.raises(ConfigError, match=r"ws\.yaml: workspaces\.team-a\.credentials") as caught:
        load_config(path)
    for value in SECRETS.values():
        assert value not in str(caught.value)
        assert value not in repr(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_missing_variable_names_only_the_variable(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "workspaces:\n  team-a: {url: s3://bucket-a, credentials: "
        "{access_key_id: k, secret_access_key: '${NOT_SET_ANYWHERE}'}}\n",
    )
    with pytest.raises(
        ConfigError,
        match=r"workspaces\.team-a\.credentials\.secret_access_key: environment variable "
        r"NOT_SET_ANYWHERE is not set; set it or write \$\{NOT_SET_ANYWHERE:-default\}\.",
    ):
        load_config(path)


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        (
            "{tags: {" + ", ".join(f"t{i}: v" for i in range(10)) + "}}",
            r"at most 9 tags besides mlflow-workspace \(S3 allows 10 per object\)",
        ),
        (
            "{tags: {mlflow-workspace: x}}",
            r"tag mlflow-workspace is set by ws-artifacts \(or set tag_workspace: false\)",
        ),
        (
            "{tags: {'aws:owner': x}}",
            r"tag keys are 1 to 128 characters and may not start with aws:",
        ),
        ("{tags: {k: " + "v" * 257 + "}}", r"tag values are at most 256 characters"),
        ("{kms_key_id: k}", r"kms_key_id needs sse: aws:kms"),
        ("{sse: aws:kms2}", r"storage\.sse: Input should be 'AES256' or 'aws:kms'"),
        ("{expected_bucket_owner: '12'}", r"storage\.expected_bucket_owner: String should match"),
    ],
    ids=[
        "too-many-tags",
        "reserved-tag",
        "aws-prefix",
        "long-value",
        "kms-without-sse",
        "bad-sse",
        "bad-owner",
    ],
)
def test_storage_policy_validation(storage: str, message: str) -> None:
    import yaml

    data = yaml.safe_load(f"workspaces:\n  team-a: {{url: s3://bucket-a, storage: {storage}}}\n")
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_ten_tags_are_fine_without_the_workspace_tag() -> None:
    tags = {f"t{i}": "v" for i in range(10)}
    config = parse_config(
        {
            "workspaces": {
                "team-a": {
                    "url": "s3://bucket-a",
                    "storage": {"tags": tags, "tag_workspace": False},
                }
            }
        }
    )
    storage = config.workspaces["team-a"].storage
    assert storage is not None
    assert storage.tags == tags


# -- log records ------------------------------------------------------------------------------
def test_known_secrets_and_aws_credential_fields_are_masked_in_library_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    creds = Credentials(
        access_key_id="AKIAREMEMBERED00001", secret_access_key="Remembered/Secret+1"
    )
    parse_config({"defaults": {"credentials": creds.model_dump(mode="python")}})
    caplog.set_level(logging.DEBUG)
    token = "IQoJb3JpZ2luX2VjEXAMPLEsessionTOKEN/abc+def=="
    lines = {
        # botocore.endpoint: the prepared request with its signed headers.
        "botocore.endpoint": (
            "Sending http request: <AWSPreparedRequest stream_output=False, method=PUT, "
            "url=http://127.0.0.1:1/b/k, headers={'X-Amz-Security-Token': b'%s', "
            "'Authorization': b'AWS4-HMAC-SHA256 Credential=ASIAISSUEDKEY0000001/20260101/"
            "us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=abcdef0123'}>"
        ),
        # botocore.auth: the canonical request (the token is a signed header).
        "botocore.auth": "CanonicalRequest:\nPUT\n/b/k\n\nhost:1\nx-amz-security-token:%s\n",
        # botocore.parsers: an STS answer.
        "botocore.parsers": (
            "Response body:\nb'<AssumeRoleResult><Credentials><AccessKeyId>ASIAISSUEDKEY0000001"
            "</AccessKeyId><SecretAccessKey>Issued/Secret+Key</SecretAccessKey><SessionToken>%s"
            "</SessionToken></Credentials></AssumeRoleResult>'"
        ),
        # urllib3: a presigned URL's request line.
        "urllib3.connectionpool": (
            'http://127.0.0.1:1 "PUT /b/k?partNumber=1&X-Amz-Credential=ASIAISSUEDKEY0000001%%2F'
            "20260101%%2Fus-east-1%%2Fs3%%2Faws4_request&X-Amz-Security-Token=%s&X-Amz-Signature="
            'deadbeef HTTP/1.1" 200 0'
        ),
        # botocore.endpoint: request parameters (ExternalId) and a remembered static secret.
        "botocore.hooks": "params: {'ExternalId': 'ext-id-value', 'Key': 'Remembered/Secret+1 %s'}",
    }
    for name, template in lines.items():
        logging.getLogger(name).debug(template, token)
    logging.getLogger("ws_artifacts.storage.clients").debug("client for AKIAREMEMBERED00001")
    text = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    for secret in (
        token,
        "ASIAISSUEDKEY0000001",
        "Issued/Secret+Key",
        "ext-id-value",
        "Remembered/Secret+1",
        "AKIAREMEMBERED00001",
        "deadbeef",
    ):
        assert secret not in text
    assert text.count(_redact.MASK) >= 10
    assert "Credential=**********/20260101/us-east-1/s3/aws4_request" in caplog.text
    assert "<AccessKeyId>**********</AccessKeyId>" in caplog.text


def test_other_loggers_are_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    _redact.install()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("another.library").debug("Credential=%s", "AKIANOTOURS")
    assert caplog.records[-1].getMessage() == "Credential=AKIANOTOURS"
    assert caplog.records[-1].args == ("AKIANOTOURS",)


def test_exception_tracebacks_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    _redact.install()
    _redact.remember("TracebackSecret-0001")
    caplog.set_level(logging.DEBUG)
    try:
        raise RuntimeError("failed with TracebackSecret-0001")
    except RuntimeError:
        logging.getLogger("botocore.credentials").warning("refresh failed", exc_info=True)
    assert "TracebackSecret-0001" not in caplog.text
    assert "failed with **********" in caplog.text


def test_short_values_are_not_remembered() -> None:
    _redact.remember("abc")
    assert _redact.redact("abc abcd") == "abc abcd"


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {"msg": record.msg, "args": record.args}


def test_records_without_secrets_keep_lazy_arguments(caplog: pytest.LogCaptureFixture) -> None:
    _redact.install()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("botocore.hooks").debug("Event %s: calling handler %s", "a", "b")
    assert _record_fields(caplog.records[-1]) == {
        "msg": "Event %s: calling handler %s",
        "args": ("a", "b"),
    }


# -- the ws-artifacts command -----------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["route", "--json", "team-a", "3/run/artifacts/m.pkl"],
        ["route", "team-a"],
        ["check", "--json"],
        ["check"],
        ["check", "--json", "--probe"],
    ],
    ids=["route-json", "route", "check-json", "check", "check-probe"],
)
def test_command_output_never_shows_a_secret(
    tmp_path: Path, secret_env: dict[str, str], args: list[str]
) -> None:
    from click.testing import CliRunner

    from ws_artifacts.cli.main import main

    # An endpoint that refuses connections: the probe fails fast and prints its error.
    config = write(
        tmp_path,
        FULL.replace(
            "defaults:\n",
            "defaults:\n      endpoint_url: http://127.0.0.1:9\n"
            "      max_attempts: 1\n      region: us-east-1\n",
        ),
    )
    result = CliRunner().invoke(
        main, [args[0], "--config", str(config), "--destination", "ws-s3://root", *args[1:]]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    if args[0] == "route":
        assert "assume role arn:aws:iam::123456789012:role/team-a" in result.output
    if "--probe" in args:
        assert "EndpointConnectionError" in result.output
    for value in SECRETS.values():
        assert value not in result.output
