"""Direct artifact access (``--default-artifact-root ws-s3://...``, no serving), and a proxied
server whose first artifact request carries a workspace (MLflow then caches an instance that
``for_workspace`` pinned to that workspace)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from mlflow.exceptions import MlflowException

from tests.integration.test_proxied import PLACES, expected_key, header, make_run
from tests.support.s3 import ROUTED_BUCKETS, keys
from tests.support.servers import PROXIED_ARGS, MlflowServer, running_server
from tests.support.workspaces import in_workspace

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("workspace", ["team-a", "vision-x", "other"])
def test_direct_client_with_the_configuration_routes_like_the_server(
    direct: MlflowServer, use_config: Path, s3: Any, tmp_path: Path, workspace: str
) -> None:
    exp, run = make_run(direct, workspace)
    (tmp_path / "m.txt").write_bytes(b"direct")
    with in_workspace(workspace):
        client = direct.client()
        assert client.get_run(run).info.artifact_uri == (
            f"ws-s3://root/workspaces/{workspace}/{exp}/{run}/artifacts"
        )
        client.log_artifact(run, str(tmp_path / "m.txt"), "d")
        assert [f.path for f in client.list_artifacts(run, "d")] == ["d/m.txt"]
        out = client.download_artifacts(run, "d/m.txt", str(tmp_path))
        assert Path(out).read_bytes() == b"direct"
    bucket, prefix = PLACES[workspace]
    assert keys(s3, bucket, f"{prefix}workspaces/{workspace}/{exp}/") == [
        expected_key(workspace, exp, run, "d/m.txt")
    ]


def test_server_reads_what_the_direct_client_wrote(
    direct: MlflowServer, use_config: Path, tmp_path: Path
) -> None:
    _exp, run = make_run(direct, "team-b")
    (tmp_path / "r.txt").write_bytes(b"served")
    with in_workspace("team-b"):
        direct.client().log_artifact(run, str(tmp_path / "r.txt"))
    response = requests.get(
        f"{direct.url}/get-artifact",
        params={"run_id": run, "path": "r.txt"},
        headers=header("team-b"),
        timeout=10,
    )
    assert response.status_code == 200
    assert response.content == b"served"


def test_direct_client_without_the_configuration_is_refused_and_writes_nothing(
    direct: MlflowServer, use_config: Path, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _exp, run = make_run(direct, "team-a")
    monkeypatch.delenv("WS_ARTIFACTS_CONFIG")
    (tmp_path / "m.txt").write_bytes(b"lost?")
    with (
        in_workspace("team-a"),
        pytest.raises(MlflowException, match="WS_ARTIFACTS_CONFIG is not set") as err,
    ):
        direct.client().log_artifact(run, str(tmp_path / "m.txt"))
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "same configuration file the MLflow server uses" in str(err.value)
    for bucket in ROUTED_BUCKETS:
        assert [k for k in keys(s3, bucket) if f"/{run}/" in k] == []


@pytest.fixture(scope="module")
def workspace_first(session_dir: Path, routed_config_file: Path, s3: Any) -> Iterator[MlflowServer]:
    """A fresh proxied server (one worker) whose first artifact request comes from team-a."""
    with running_server(
        session_dir / "workspace-first",
        routed_config_file,
        PROXIED_ARGS,
        workers=1,
        workspaces=("team-a", "team-b", "vision-y"),
    ) as server:
        yield server


def test_first_request_from_one_workspace_does_not_capture_the_others(
    workspace_first: MlflowServer, s3: Any
) -> None:
    order = ["team-a", "team-b", "vision-y", "team-a", "team-b"]
    runs = {ws: make_run(workspace_first, ws) for ws in order}
    for index, workspace in enumerate(order):
        exp, run = runs[workspace]
        url = (
            f"{workspace_first.url}/api/2.0/mlflow-artifacts/artifacts/"
            f"{exp}/{run}/artifacts/f{index}.txt"
        )
        response = requests.put(url, data=workspace.encode(), headers=header(workspace), timeout=30)
        assert response.status_code == 200
    places = {
        "team-a": ("team-a-artifacts", ""),
        "team-b": ("team-b-artifacts", ""),
        "vision-y": ("vision-artifacts", "vision-y/"),
    }
    for workspace, (exp, run) in runs.items():
        bucket, prefix = places[workspace]
        expected = [
            f"{prefix}workspaces/{workspace}/{exp}/{run}/artifacts/f{i}.txt"
            for i, w in enumerate(order)
            if w == workspace
        ]
        assert keys(s3, bucket, f"{prefix}workspaces/{workspace}/{exp}/") == expected
