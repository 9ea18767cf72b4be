"""A live configuration edit through a real server started from `server --dry-run`'s line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from tests.integration.test_server_command import log_one
from tests.support.servers import Server, clean_env, free_port, wait_http
from ws_artifacts.cli.main import main

pytestmark = pytest.mark.integration

ROUTES = """
    workspaces:
      team-a: {{url: "file://{root}/team-a-store"}}
      team-b: {{url: "file://{root}/team-b-store"}}
"""


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path, Path]]:
    """The command `ws-artifacts server --dry-run` prints, run in a shell whose environment
    has no WS_ARTIFACTS_* variable: what a user who copies the line gets."""
    root = tmp_path_factory.mktemp("reload")
    config = root / "routes.yaml"
    config.write_text(textwrap.dedent(ROUTES.format(root=root)))
    port = free_port()
    printed = CliRunner().invoke(
        main,
        [
            *("server", "--config", str(config), "--data-dir", str(root / "data")),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--dry-run"),
        ],
        env={"WS_ARTIFACTS_CONFIG": None},
    )
    assert printed.exit_code == 0, printed.output
    line = printed.output.strip().splitlines()[-1]
    assert line.startswith(f"WS_ARTIFACTS_CONFIG={config.resolve()} ")
    log = root / "server.log"
    env = clean_env(
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", PATH=str(Path(sys.executable).parent)
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S602 - the printed shell line is what is under test
            line, shell=True, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(url=f"http://127.0.0.1:{port}", proc=proc, log=log)
    try:
        wait_http(server.url + "/health", proc, log, timeout=120)
        yield server, config, root
    finally:
        server.stop()


def log_model(server: Server, workspace: str, tmp: Path) -> tuple[str, str]:
    """A run in ``workspace`` with ``model.txt`` logged (and read back) through the server."""
    return log_one(server, workspace, "model.txt", workspace.encode(), tmp)


def wait_for_log(server: Server, text: str, timeout: float = 30) -> None:
    """Make requests (each lets the worker look at the file) until ``text`` is in the log."""

    def poke() -> None:
        requests.get(
            f"{server.url}/api/2.0/mlflow-artifacts/artifacts",
            headers={"X-MLFLOW-WORKSPACE": "team-a"},
            timeout=10,
        )

    server.wait_logged(text, poke=poke, timeout=timeout)


def test_the_dry_run_line_starts_a_server_with_the_configuration(
    served: tuple[Server, Path, Path], tmp_path: Path
) -> None:
    server, _, root = served
    exp, run = log_model(server, "team-a", tmp_path)
    assert files_under(root / "team-a-store") == [
        f"workspaces/team-a/{exp}/{run}/artifacts/model.txt"
    ]


def test_a_bad_edit_is_logged_once_and_the_last_good_routes_keep_serving(
    served: tuple[Server, Path, Path], tmp_path: Path
) -> None:
    server, config, root = served
    good = config.read_text()
    log_model(server, "team-b", tmp_path)  # the worker has the configuration loaded
    config.write_text(good.replace("team-a: {", "team-a: {colour: red, "))
    refused = (
        "ws-artifacts configuration not reloaded, the last good one keeps serving: "
        f"{config.resolve()}: workspaces.team-a.colour: unknown key"
    )
    wait_for_log(server, refused)
    before = set(files_under(root / "team-a-store"))
    exp, run = log_model(server, "team-a", tmp_path)
    response = requests.get(
        f"{server.url}/api/2.0/mlflow-artifacts/artifacts",
        params={"path": f"workspaces/team-a/{exp}/{run}/artifacts"},
        headers={"X-MLFLOW-WORKSPACE": "team-a"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["files"] == [
        {"path": "model.txt", "is_dir": False, "file_size": len(b"team-a")}
    ]
    assert set(files_under(root / "team-a-store")) - before == {
        f"workspaces/team-a/{exp}/{run}/artifacts/model.txt"
    }
    assert server.log_text().count(refused) == 1  # one worker, one change: one line
    assert str(config) not in response.text


def test_a_reload_that_drops_a_route_warns_and_sends_new_writes_to_the_destination(
    served: tuple[Server, Path, Path], tmp_path: Path
) -> None:
    server, config, root = served
    config.write_text(
        textwrap.dedent(ROUTES.format(root=root)).replace(
            f'  team-b: {{url: "file://{root}/team-b-store"}}\n', ""
        )
    )
    dropped = (
        f"{config.resolve()}: route 'team-b' was removed; new writes of workspace(s) 'team-b' "
        "now go to the default destination (the server's --artifacts-destination). Artifacts "
        f"already written stay at file://{root}/team-b-store."
    )
    wait_for_log(server, dropped)
    assert server.log_text().count(dropped) == 1
    exp, run = log_model(server, "team-b", tmp_path)
    assert f"workspaces/team-b/{exp}/{run}/artifacts/model.txt" in files_under(
        root / "data" / "artifacts"
    )
    assert f"workspaces/team-b/{exp}/{run}/artifacts/model.txt" not in files_under(
        root / "team-b-store"
    )
