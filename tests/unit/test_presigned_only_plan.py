"""``ws-artifacts server --artifacts-presigned-only``: the plan it runs, and a fast, clear refusal
on an MLflow without presigned-only serving (the server itself: tests/integration)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.config import ConfigFile
from ws_artifacts._mlflow import environment
from ws_artifacts.cli.main import main
from ws_artifacts.core.errors import ConfigError
from ws_artifacts.serving.server import PRESIGNED_ONLY_ENV, PRESIGNED_ONLY_OPTION, plan_command


@pytest.fixture
def config(tmp_path: Path) -> Path:
    config = ConfigFile().route("team-a", "s3://team-a-artifacts")
    config.route("vision-*", f"file://{tmp_path}/vision/{{workspace}}")
    return config.write(tmp_path / "ws.yaml")


def _dry_run(config: Path, tmp_path: Path, *extra: str) -> tuple[int, str]:
    args = ["server", "--config", str(config), "--data-dir", str(tmp_path / "data")]
    result = CliRunner().invoke(
        main, [*args, "--artifacts-destination", "ws-s3://root", *extra, "--dry-run"]
    )
    return result.exit_code, result.output


def _plan(tmp_path: Path, *, presigned_only: bool) -> list[str]:
    plan = plan_command(
        config_path=tmp_path / "ws.yaml",
        data_dir=tmp_path,
        backend_store_uri=None,
        artifacts_destination="ws-s3://root",
        host="127.0.0.1",
        port=5000,
        workers=2,
        inner_app=None,
        guard=True,
        nodelay=True,
        presigned_only=presigned_only,
    )
    return plan.argv


@pytest.mark.parametrize(
    ("how", "env"),
    [("option", None), ("variable", "true"), ("variable-as-one", "1")],
    ids=["option", "variable", "variable-as-one"],
)
def test_presigned_only_starts_mlflow_in_that_mode(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, env: str | None
) -> None:
    monkeypatch.setattr(environment, "HAS_PRESIGNED_ONLY", True)
    if env is not None:
        monkeypatch.setenv(PRESIGNED_ONLY_ENV, env)
    else:
        monkeypatch.delenv(PRESIGNED_ONLY_ENV, raising=False)
    extra = [PRESIGNED_ONLY_OPTION] if how == "option" else []
    code, output = _dry_run(config, tmp_path, *extra)
    assert code == 0, output
    command = shlex.split(output.strip().splitlines()[-1])
    assert command.count(PRESIGNED_ONLY_OPTION) == 1
    said = " ".join(output.split())  # the console wraps long lines
    assert "presigned-only : on" in said
    # The file route cannot presign: the operator is told before the first client is.
    assert "warning: vision-* goes to file://" in said
    assert "has no presigned URLs: its uploads and downloads will be refused" in said
    assert "warning: team-a" not in said


def test_without_presigned_only_the_option_is_not_passed(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PRESIGNED_ONLY_ENV, "false")
    code, output = _dry_run(config, tmp_path)
    assert code == 0, output
    assert PRESIGNED_ONLY_OPTION not in output
    assert "presigned-only" not in output
    assert PRESIGNED_ONLY_OPTION not in _plan(tmp_path, presigned_only=False)


@pytest.mark.parametrize(
    ("how", "env"), [("option", None), ("variable", "true")], ids=["option", "variable"]
)
def test_an_older_mlflow_refuses_presigned_only_at_once(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, env: str | None
) -> None:
    """MLflow < 3.18 would ignore the variable and carry every byte: refuse before starting."""
    monkeypatch.setattr(environment, "HAS_PRESIGNED_ONLY", False)
    monkeypatch.setattr(environment, "MLFLOW_VERSION", "3.17.2")
    if env is not None:
        monkeypatch.setenv(PRESIGNED_ONLY_ENV, env)
    extra = [PRESIGNED_ONLY_OPTION] if how == "option" else []
    code, output = _dry_run(config, tmp_path, *extra)
    assert code == 2, output
    assert "needs MLflow 3.18 or newer; this is MLflow 3.17.2" in " ".join(output.split())
    assert "mlflow server" not in output
    with pytest.raises(ConfigError, match=r"Upgrade MLflow .*or start without"):
        _plan(tmp_path, presigned_only=True)


def test_the_repository_reads_the_mode_mlflow_gives_its_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(PRESIGNED_ONLY_ENV, raising=False)
    assert environment.presigned_only() is False
    monkeypatch.setenv(PRESIGNED_ONLY_ENV, "true")
    assert environment.presigned_only() is environment.HAS_PRESIGNED_ONLY
