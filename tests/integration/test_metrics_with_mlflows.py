"""``/metrics`` composed with MLflow's own ``--expose-prometheus``: one endpoint, MLflow's
exporter answering it, carrying MLflow's metrics and ws-artifacts' per-workspace counters from
every worker (through ``ws-artifacts server`` with two workers).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.servers import Server, start_mlflow

pytestmark = pytest.mark.integration
WS_ARTIFACTS = [str(Path(sys.executable).parent / "ws-artifacts"), "server"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("expose-prometheus")
    command = [
        *WS_ARTIFACTS,
        "--artifacts-destination",
        f"ws-file://{work / 'artifacts'}",
        "--data-dir",
        str(work / "data"),
        "--expose-prometheus",
        str(work / "prometheus"),
    ]
    started = start_mlflow(work, command=command, args=[], env={}, workers=2)
    try:
        yield started
    finally:
        started.stop()


def test_mlflows_exporter_serves_ours_too_summed_over_workers(server: Server) -> None:
    import mlflow

    mlflow.MlflowClient(tracking_uri=server.url).create_workspace("team-p")
    for index in range(6):  # new connections: both workers answer some
        put = requests.put(
            f"{server.url}/api/2.0/mlflow-artifacts/artifacts/notes/n{index}.txt",
            data=b"hello",
            headers={"X-MLFLOW-WORKSPACE": "team-p"},
            timeout=30,
        )
        assert put.status_code == 200, put.text
    text = requests.get(f"{server.url}/metrics", timeout=30).text
    assert re.search(r"^mlflow_exporter_info\{.*\} 1\.0$", text, re.M), text[:500]
    ours = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ws_artifacts_") and 'workspace="team-p"' in line
    }
    assert ours == {
        'ws_artifacts_requests_total{operation="write",outcome="ok",workspace="team-p"}': 6.0,
        'ws_artifacts_bytes_total{operation="write",workspace="team-p"}': 30.0,
    }
