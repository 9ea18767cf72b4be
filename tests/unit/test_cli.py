"""The ws-artifacts command (CliRunner; the server itself is tested in integration)."""

from __future__ import annotations

import itertools
import json
import shlex
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from ws_artifacts.cli.main import main


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "ws.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            defaults:
              region: us-east-1
            workspaces:
              team-a:
                url: s3://team-a-artifacts
                credentials: {{profile: team-a, role_arn: "arn:aws:iam::123456789012:role/a"}}
                storage: {{sse: "aws:kms", kms_key_id: alias/team-a}}
              "vision-*":
                url: file://{tmp_path}/vision/{{workspace}}
            unknown_workspaces: deny
            destination: ws-file://{tmp_path}/said-once
            """
        )
    )
    return path


def test_route_shows_location_and_credential_source(config: Path) -> None:
    result = CliRunner().invoke(
        main, ["route", "--config", str(config), "--json", "team-a", "3/run/artifacts/m.pkl"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "workspace": "team-a",
        "entry": "team-a",
        "source": "file",
        "location": "s3://team-a-artifacts/workspaces/team-a/3/run/artifacts/m.pkl",
        "backend": "s3",
        "credentials": (
            "assume role arn:aws:iam::123456789012:role/a (session 3600 s) from profile 'team-a'"
        ),
        "storage": "sse=aws:kms key=alias/team-a; tags: mlflow-workspace",
    }


def test_route_of_a_denied_workspace_fails_with_the_fix(config: Path) -> None:
    result = CliRunner().invoke(main, ["route", "--config", str(config), "stranger"])
    assert result.exit_code == 1
    assert "Workspace 'stranger' has no route" in result.output
    assert "Add a 'workspaces' entry" in result.output


def test_check_resolves_patterns_through_an_example(config: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    routes = {r["entry"]: r for r in json.loads(result.output)["routes"]}
    assert routes["vision-*"]["workspace"] == "vision-example"
    assert routes["vision-*"]["url"] == f"file://{tmp_path}/vision/vision-example"
    assert routes["team-a"]["ok"] is None  # not probed


def test_check_probe_writes_reads_and_removes_a_marker(config: Path, tmp_path: Path) -> None:
    text = (
        config.read_text()
        .replace("  team-a:\n", "  team-x:\n")
        .replace("url: s3://team-a-artifacts", f"url: file://{tmp_path}/x")
    )
    config.write_text(text)
    (tmp_path / "dest").mkdir()
    result = CliRunner().invoke(
        main,
        [
            *("check", "--config", str(config), "--probe", "--json"),
            *("--destination", f"ws-file://{tmp_path}/dest"),
        ],
    )
    assert result.exit_code == 0, result.output
    routes = json.loads(result.output)["routes"]
    assert [(r["entry"], r["ok"]) for r in routes] == [
        ("team-x", True),
        ("vision-*", True),
        ("(default destination)", True),
    ]
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".yaml"]
    assert leftovers == []


def test_check_shows_and_probes_the_default_destination(config: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the destination should be")
    args = ["check", "--config", str(config), "--destination", f"ws-file://{blocked}"]
    listed = CliRunner().invoke(main, [*args, "--json"])
    assert listed.exit_code == 0, listed.output
    row = json.loads(listed.output)["routes"][-1]
    assert (row["entry"], row["workspace"], row["url"], row["ok"]) == (
        "(default destination)",
        "default",
        f"file://{blocked}",
        None,
    )
    probed = CliRunner().invoke(main, [*args, "--probe", "--json"])
    assert probed.exit_code == 1
    row = json.loads(probed.output)["routes"][-1]
    assert row["ok"] is False
    assert row["error"].startswith(
        f"upload failed for workspace 'default' at file:///{str(blocked).lstrip('/')}/workspaces/"
        "default/.ws-artifacts-probe-"
    )
    assert blocked.read_text() == "a file where the destination should be"


def test_check_fails_on_an_invalid_file_with_the_key_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("workspaces:\n  team-a: {url: s3://bucket-b, colour: red}\n")
    result = CliRunner().invoke(main, ["check", "--config", str(bad)])
    assert result.exit_code == 2
    assert "workspaces.team-a.colour: unknown key" in result.output


def test_config_schema_is_json_schema_of_the_file() -> None:
    result = CliRunner().invoke(main, ["config", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert set(schema["properties"]) == {
        "defaults",
        "locations",
        "workspaces",
        "unknown_workspaces",
        "destination",
    }
    assert schema["additionalProperties"] is False


def test_server_dry_run_plans_mlflow_with_workspaces(config: Path, tmp_path: Path) -> None:
    config.write_text(config.read_text().replace("destination:", "# destination:"))
    result = CliRunner().invoke(
        main,
        [
            "server",
            "--config",
            str(config),
            "--data-dir",
            str(tmp_path / "data"),
            "--port",
            "5999",
            "--workers",
            "3",
            "--dry-run",
            "--gunicorn-opts",
            "--timeout 60",
        ],
    )
    assert result.exit_code == 0, result.output
    words = shlex.split(result.output.strip().splitlines()[-1])
    settings = dict(w.split("=", 1) for w in itertools.takewhile(lambda w: "=" in w, words))
    command = words[len(settings) :]
    # Copied elsewhere, the line keeps the configuration and the app's settings.
    assert settings == {
        "WS_ARTIFACTS_CONFIG": str(config.resolve()),
        "WS_ARTIFACTS_GUARD": "1",  # safe by default: --no-guard turns it off
        "WS_ARTIFACTS_NODELAY": "1",
    }
    assert command[1:4] == ["-m", "mlflow", "server"]
    for flag, value in [
        ("--backend-store-uri", f"sqlite:///{tmp_path}/data/mlflow.db"),
        ("--artifacts-destination", f"ws-file://{tmp_path}/data/artifacts"),
        ("--port", "5999"),
        ("--workers", "3"),
        ("--app-name", "ws-artifacts"),
    ]:
        assert command[command.index(flag) + 1] == value
    assert "--enable-workspaces" in command
    assert "--serve-artifacts" in command
    assert "--gunicorn-opts" in command  # unknown options pass through
    assert "http://127.0.0.1:5999" in result.output
    assert "refused (unknown_workspaces: deny)" in result.output


def test_server_refuses_a_destination_that_is_not_ws(config: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "server",
            "--config",
            str(config),
            "--artifacts-destination",
            "s3://plain",
            "--data-dir",
            str(tmp_path),
            "--dry-run",
        ],
    )
    assert result.exit_code == 2
    assert "--artifacts-destination must be a ws-* URI" in result.output


def test_server_plan_never_prints_a_database_password(config: Path, tmp_path: Path) -> None:
    uri = "postgresql://mlflow:s3cr3t-pw@db.internal:5432/mlflow"
    args = ["--config", str(config), "--data-dir", str(tmp_path), "--backend-store-uri", uri]
    result = CliRunner().invoke(main, ["server", *args, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "s3cr3t-pw" not in result.output
    masked = "postgresql://mlflow:**********@db.internal:5432/mlflow"
    assert f"tracking store : {masked}" in result.output
    words = shlex.split(result.stdout.strip().splitlines()[-1])
    assert words[words.index("--backend-store-uri") + 1] == masked
    assert words[words.index("--workspace-store-uri") + 1] == f"ws+{masked}"
    assert "the database password is shown masked" in result.stderr


# -- the destination, said once ------------------------------------------------------------
def _default_row(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["check", *args, "--json"])
    if result.exit_code not in (0, 1):
        return result.exit_code, result.output
    return result.exit_code, json.loads(result.stdout)["routes"][-1]["url"]


def test_destination_precedence_is_flag_then_env_then_file(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["--config", str(config)]
    assert _default_row(args) == (0, f"file://{tmp_path}/said-once")
    monkeypatch.setenv("WS_ARTIFACTS_DESTINATION", f"ws-file://{tmp_path}/from-env")
    assert _default_row(args) == (0, f"file://{tmp_path}/from-env")
    flag = ["--destination", f"ws-file://{tmp_path}/from-flag"]
    assert _default_row([*args, *flag]) == (0, f"file://{tmp_path}/from-flag")
    assert _default_row([*flag, *args]) == (0, f"file://{tmp_path}/from-flag")  # any order


def test_a_command_without_a_destination_says_how_to_set_it(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WS_ARTIFACTS_DESTINATION", raising=False)
    config.write_text(config.read_text().replace("destination:", "# destination:"))
    for command in (
        ["check"],
        ["route", "team-a"],
        ["usage"],
        ["orphans"],
        ["quarantine", "list"],
        ["purge", "--older-than", "30d"],
        ["restore", "team-a"],
    ):
        result = CliRunner().invoke(main, [*command, "--config", str(config)])
        assert result.exit_code == 2, (command, result.output)
        text = " ".join(result.output.split())
        assert text == (
            f"error: {config} does not say where the server keeps its artifacts. Add "
            "`destination: ws-s3://bucket[/prefix]` (the server's --artifacts-destination) to "
            "it, or set WS_ARTIFACTS_DESTINATION, or pass --destination."
        ), command


def test_without_any_configuration_the_embedded_servers_destination_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("WS_ARTIFACTS_DESTINATION", "WS_ARTIFACTS_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ws-artifacts-data" / "artifacts").mkdir(parents=True)  # ./run server's
    assert _default_row([]) == (0, f"file://{tmp_path}/ws-artifacts-data/artifacts")
    result = CliRunner().invoke(main, ["check"])
    assert " ".join(result.stderr.split()) == (
        f"note: no configuration file and no destination given: using ws-file://{tmp_path}/"
        "ws-artifacts-data/artifacts (the embedded server's default, from the current directory)"
    )


def test_without_any_configuration_or_local_data_a_command_says_how_to_name_the_destination(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It does not guess: ./ws-artifacts-data is only the embedded server's, when it exists."""
    for name in ("WS_ARTIFACTS_DESTINATION", "WS_ARTIFACTS_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["usage"])
    assert result.exit_code == 2
    assert " ".join(result.output.split()) == (
        f"error: No configuration file and no destination given, and {tmp_path}/ws-artifacts-"
        "data/artifacts (where `./run server` keeps artifacts when started from this "
        "directory) does not exist. Pass --destination, set WS_ARTIFACTS_DESTINATION, or give "
        "the server's configuration file (--config or WS_ARTIFACTS_CONFIG) with a "
        "`destination:`."
    )
    assert not (tmp_path / "ws-artifacts-data").exists()


def test_a_destination_in_the_file_must_be_a_ws_uri(config: Path) -> None:
    config.write_text(config.read_text().replace("destination: ws-file://", "destination: s3://"))
    result = CliRunner().invoke(main, ["check", "--config", str(config)])
    assert result.exit_code == 2
    assert "destination: must be a ws-* URI" in " ".join(result.output.split())


def test_the_server_takes_the_destination_from_the_file(config: Path, tmp_path: Path) -> None:
    args = ["server", "--config", str(config), "--data-dir", str(tmp_path / "d"), "--dry-run"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    words = shlex.split(result.stdout.strip().splitlines()[-1])
    assert words[words.index("--artifacts-destination") + 1] == f"ws-file://{tmp_path}/said-once"


# -- what the tables show ------------------------------------------------------------------
def _table_rows(text: str) -> dict[str, list[str]]:
    """A rich table's rows by first cell, each cell's wrapped lines joined, spaces removed."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        if not line.startswith("│"):
            continue
        cells = ["".join(c.split()) for c in line.strip().strip("│").split("│")]
        if cells[0] or not rows:
            rows.append(cells)
        else:
            rows[-1] = [a + b for a, b in zip(rows[-1], cells, strict=True)]
    return {row[0]: row[1:] for row in rows}


def test_startup_table_shows_a_globs_url_as_written_and_the_fallbacks_backend(
    config: Path, tmp_path: Path
) -> None:
    text = config.read_text().replace("unknown_workspaces: deny", "unknown_workspaces: default")
    config.write_text(text.replace("storage: {", "quota: {max_bytes: 1000}\n    storage: {"))
    args = ["server", "--config", str(config), "--data-dir", str(tmp_path / "d"), "--dry-run"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = _table_rows(result.stdout)
    assert rows["vision-*"][0] == f"file://{tmp_path}/vision/<name>/workspaces/<name>/..."
    assert "vision-example" not in result.stdout
    assert rows["team-a"][0] == "s3://team-a-artifacts/workspaces/team-a/..."
    assert rows["team-a"][3] == "1000bytesperworkspace"
    assert rows["(anyother)"] == [
        f"ws-file://{tmp_path}/said-once/workspaces/<name>/...",
        "fsspec",
        "defaultchain",
        "-",
    ]


def test_check_shows_quotas(config: Path) -> None:
    text = config.read_text().replace(
        "storage: {", "quota: {max_bytes: 1000, max_objects: 5}\n    storage: {"
    )
    config.write_text(text)
    result = CliRunner().invoke(main, ["check", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    quotas = {r["entry"]: r["quota"] for r in json.loads(result.output)["routes"]}
    assert quotas == {
        "team-a": "1000 bytes and 5 objects per workspace",
        "vision-*": "-",
        "(default destination)": "-",
    }


def test_a_failed_probe_does_not_offer_to_count(config: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a directory")
    text = config.read_text().replace(
        "url: file://" + str(tmp_path) + "/vision/{workspace}",
        f'url: file://{blocked}/{{workspace}}\n    previous: ["file://{tmp_path}/old/{{workspace}}"]',
    )
    config.write_text(text)
    result = CliRunner().invoke(main, ["check", "--config", str(config), "--probe"])
    assert result.exit_code == 1
    assert _table_rows(result.output)["vision-*"][-1] == "1place(s);notcounted(theprobefailed)"
