"""``ws-artifacts server`` fails fast and honestly: a busy port and a mistyped flag are refused
before MLflow starts, with the fix named; a server that stops before it was ready is never a
success."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ws_artifacts.cli.main import main
from ws_artifacts.serving import launcher

WS_ARTIFACTS = str(Path(sys.executable).parent / "ws-artifacts")


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def never_started(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    monkeypatch.setattr(launcher, "run", lambda *a, **k: calls.append(a) or 0)
    return calls


def test_port_problem_names_the_port_and_the_fix(busy_port: int) -> None:
    problem = launcher.port_problem("127.0.0.1", busy_port)
    assert problem == (
        f"cannot listen on 127.0.0.1:{busy_port} (Address already in use): another server is "
        f"using port {busy_port}. Stop it (`ss -ltnp 'sport = :{busy_port}'` shows which), or "
        f"start on another port: `ws-artifacts server --port {busy_port + 1}`"
    )


def test_a_free_port_has_no_problem() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert launcher.port_problem("127.0.0.1", port) is None


def test_an_unresolvable_host_is_named() -> None:
    problem = launcher.port_problem("no-such-host.invalid", 5000)
    assert problem is not None
    assert problem.startswith("cannot resolve --host no-such-host.invalid")


def test_busy_port_fails_within_3_seconds_with_a_non_zero_status(
    busy_port: int, tmp_path: Path
) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [WS_ARTIFACTS, "server", "--port", str(busy_port), "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1
    assert elapsed < 3, f"took {elapsed:.1f} s"
    assert f"another server is using port {busy_port}" in done.stderr.replace("\n", " ")
    assert "ws-artifacts server --port" in done.stderr.replace("\n", " ")
    assert done.stdout == ""  # no route table, nothing started
    assert not (tmp_path / "d").exists()


def test_mistyped_flag_is_refused_before_mlflow_starts(
    never_started: list[Any], tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        main, ["server", "--port", "0", "--data-dir", str(tmp_path), "--prot", "5001"]
    )
    assert result.exit_code == 2
    assert never_started == []
    text = " ".join(result.stderr.split())
    assert "error: ws-artifacts server: No such option '--prot'." in text
    assert "'--port'" in text  # click's suggestion
    assert "see `ws-artifacts server --help` and `mlflow server --help`" in text
    assert "python -m mlflow" not in text


def test_a_bad_value_for_an_mlflow_flag_is_refused_too(never_started: list[Any]) -> None:
    result = CliRunner().invoke(main, ["server", "--port", "0", "--gunicorn-opts"])
    assert result.exit_code == 2
    assert never_started == []
    assert "Option '--gunicorn-opts' requires an argument." in " ".join(result.stderr.split())


def test_mlflow_flags_it_knows_still_pass(never_started: list[Any], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["server", "--port", "0", "--data-dir", str(tmp_path), "--gunicorn-opts", "--timeout 60"],
    )
    assert result.exit_code == 0, result.output
    assert len(never_started) == 1
    assert "--gunicorn-opts" in never_started[0][0]


def test_a_server_that_stops_before_it_is_ready_is_a_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit status 0 before any worker was ready (what uvicorn's supervisor did when its port
    was taken) is reported as a failure, with a line that says so."""
    argv = [sys.executable, "-c", "print('bind failed')"]
    code = launcher.run(argv, {}, url="http://127.0.0.1:9", workers=1)
    assert code == 1
    assert "ws-artifacts: the server stopped before it was ready (status 0)" in (
        capsys.readouterr().err
    )


def test_a_failing_server_keeps_its_status(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "raise SystemExit(3)"]
    assert launcher.run(argv, {}, url="http://127.0.0.1:9", workers=1) == 3


# -- what a restart changed ------------------------------------------------------------------
def _start(config: Path, data: Path, *extra: str) -> Any:
    return CliRunner().invoke(
        main, ["server", "--config", str(config), "--data-dir", str(data), "--port", "0", *extra]
    )


def test_a_restart_names_routes_and_the_destination_that_moved(
    never_started: list[Any], tmp_path: Path
) -> None:
    config, data = tmp_path / "routes.yaml", tmp_path / "data"
    config.write_text(
        "workspaces:\n"
        "  team-a: {url: s3://bucket-a}\n"
        "  team-b: {url: s3://bucket-b}\n"
        '  "vision-*": {url: "s3://vision/{workspace}"}\n'
        f"destination: ws-file://{tmp_path}/dest-1\n"
    )
    first = _start(config, data)
    assert first.exit_code == 0, first.output
    assert "warning" not in first.stderr
    record = data / "ws-artifacts-last-start.json"
    assert record.is_file()  # beside the database, outside every artifact place
    again = _start(config, data)
    assert again.exit_code == 0
    assert "warning" not in again.stderr  # nothing moved
    config.write_text(
        "workspaces:\n"
        "  team-a: {url: s3://bucket-a2}\n"
        '  "vision-*": {url: "s3://vision/{workspace}"}\n'
        f"destination: ws-file://{tmp_path}/dest-2\n"
    )
    moved = _start(config, data)
    assert moved.exit_code == 0
    assert len(never_started) == 3  # warned, not refused
    text = " ".join(moved.stderr.split())
    assert (
        "warning: since the last start, route 'team-a' moved from s3://bucket-a to "
        "s3://bucket-a2; new writes go to s3://bucket-a2. Artifacts already written stay at "
        's3://bucket-a. To read them, add `previous: ["s3://bucket-a"]` to workspaces.team-a; '
        "then `ws-artifacts migrate team-a` copies them to s3://bucket-a2."
    ) in text
    assert (
        "warning: since the last start, route 'team-b' was removed; new writes of "
        "workspace(s) 'team-b' now go to the default destination"
    ) in text
    assert (
        f"warning: since the last start, the destination moved from ws-file://{tmp_path}/dest-1"
        f" to ws-file://{tmp_path}/dest-2"
    ) in text
    assert "vision" not in text
    assert "warning" not in _start(config, data).stderr  # said once: this start is recorded


def test_a_restart_names_a_route_added_for_workspaces_that_wrote_elsewhere_before(
    never_started: list[Any], tmp_path: Path
) -> None:
    """The README's walkthrough: team-b wrote to the destination, then gets a route."""
    config, data = tmp_path / "routes.yaml", tmp_path / "data"
    config.write_text("workspaces: {}\ndestination: ws-s3://shared-root\n")
    assert _start(config, data).exit_code == 0
    config.write_text(
        "workspaces:\n  team-b: {url: s3://bucket-b}\ndestination: ws-s3://shared-root\n"
    )
    added = _start(config, data)
    assert added.exit_code == 0
    assert " ".join(added.stderr.split()) == (
        "warning: since the last start, route 'team-b' was added; new writes of workspace(s) "
        "'team-b' now go to s3://bucket-b. Artifacts already written stay where they went "
        "before: the default destination (the server's --artifacts-destination). To read them, "
        'add `previous: ["s3://shared-root"]` to workspaces.team-b; then `ws-artifacts migrate '
        "team-b` copies them to s3://bucket-b."
    )


def test_a_hand_edited_record_is_not_compared_and_the_server_starts(
    never_started: list[Any], tmp_path: Path
) -> None:
    config, data = tmp_path / "routes.yaml", tmp_path / "data"
    config.write_text("workspaces: {}\ndestination: ws-s3://shared-root\n")
    data.mkdir()
    (data / "ws-artifacts-last-start.json").write_text('{"routes": {"team-b": 5}}')
    started = _start(config, data)
    assert started.exit_code == 0, started.output
    assert "Traceback" not in started.output


def test_a_dry_run_neither_warns_nor_records(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = CliRunner().invoke(main, ["server", "--data-dir", str(data), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert not (data / "ws-artifacts-last-start.json").exists()
