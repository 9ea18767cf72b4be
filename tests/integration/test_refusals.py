"""Refusals reach MLflow's own client on the first try, with their message, and ``/metrics``
counts per workspace: through ``ws-artifacts server`` with two workers on the moto server.

MLflow's client retries HTTP 408, 429 and 5xx for minutes (re-sending a whole upload each
time); MLflow answers RESOURCE_EXHAUSTED with 429 and INVALID_STATE with 500, so ws-artifacts
answers its quota refusals with 413 and a RESTRICT deletion's refusal with 409, keeping MLflow's
error code in the body.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests
from mlflow.exceptions import MlflowException

from tests.integration.usage_world import MIB, pending_uploads, usage_config, write
from tests.support.s3 import keys
from tests.support.servers import MOTO_KEY, MOTO_SECRET, MlflowServer, Server, start_mlflow
from tests.support.workspaces import in_workspace, unique

pytestmark = pytest.mark.integration
BUCKET = "quota-artifacts"
QUOTA = 12 * MIB  # the qm-* routes' quota
WS_ARTIFACTS = [str(Path(sys.executable).parent / "ws-artifacts"), "server"]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, moto: Server, s3: Any
) -> Iterator[MlflowServer]:
    from tests.integration.usage_world import make_buckets

    make_buckets(s3)
    work = tmp_path_factory.mktemp("refusals")
    config = work / "refusals.yaml"
    config.write_text(usage_config(moto.url, work / "files"))
    command = [
        *WS_ARTIFACTS,
        "--config",
        str(config),
        "--artifacts-destination",
        "ws-s3://root",
        "--data-dir",
        str(work / "data"),
        "--audit",
        str(work / "audit.jsonl"),
    ]
    env = {
        "AWS_ACCESS_KEY_ID": MOTO_KEY,
        "AWS_SECRET_ACCESS_KEY": MOTO_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    started = start_mlflow(work, command=command, args=[], env=env, workers=2)
    try:
        yield MlflowServer(started, config)
    finally:
        started.stop()


@pytest.fixture
def tracking(server: MlflowServer) -> Iterator[MlflowServer]:
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(server.url)
    try:
        yield server
    finally:
        mlflow.set_tracking_uri(previous)


def refusal_lines(server: MlflowServer, workspace: str) -> list[str]:
    return [
        line
        for line in server.server.log_text().splitlines()
        if "ws_artifacts.serving.refusals" in line and f"workspace {workspace} " in line
    ]


def audit_lines(server: MlflowServer, workspace: str) -> list[dict[str, Any]]:
    path = server.config.parent / "audit.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [line for line in lines if line["workspace"] == workspace]


def test_over_quota_log_artifact_fails_at_once_with_its_message(
    tracking: MlflowServer, s3: Any, tmp_path: Path
) -> None:
    ws = unique("qm")
    tracking.client().create_workspace(ws)
    big = write(tmp_path, "weights.bin", 20 * MIB)
    with in_workspace(ws):
        mlflow.set_experiment("refusals")
        with mlflow.start_run():
            started = time.monotonic()
            with pytest.raises(Exception, match="RESOURCE_EXHAUSTED") as err:
                mlflow.log_artifact(big)
            elapsed = time.monotonic() - started
    assert elapsed < 5, f"the refusal took {elapsed:.1f} s (retried?)"
    text = str(err.value)
    assert "413" in text
    assert (
        f"Upload of {20 * MIB} bytes refused: workspace '{ws}' would hold {20 * MIB} bytes "
        f"(quota {QUOTA} bytes) at s3://{BUCKET}/{ws}/workspaces/{ws}; it holds 0 bytes in 0 "
        f"objects now. Delete runs or artifacts of workspace '{ws}' (then run 'mlflow gc'), or "
        "raise workspaces.qm-*.quota in the ws-artifacts configuration."
    ) in text
    assert keys(s3, BUCKET, ws) == []
    assert pending_uploads(s3, BUCKET, ws) == []
    lines = refusal_lines(tracking, ws)
    assert len(lines) == 1, lines
    assert f"refused write for workspace {ws} (RESOURCE_EXHAUSTED): Upload of" in lines[0]
    audited = [(a["operation"], a["outcome"], a["error_code"]) for a in audit_lines(tracking, ws)]
    assert audited == [("write", "error", "RESOURCE_EXHAUSTED")]


def own_run(ws: str) -> str:
    """``<experiment>/<run>`` of a run of ``ws``'s own (writes under an experiment of another
    workspace are refused: ws_artifacts.serving.experiments)."""
    with in_workspace(ws):
        mlflow.set_experiment("refusals")
        with mlflow.start_run() as run:
            return f"{run.info.experiment_id}/{run.info.run_id}"


def test_declared_size_is_refused_before_the_body_is_sent(tracking: MlflowServer) -> None:
    """Headers only, with a Content-Length that cannot fit: the answer comes without a byte
    of the body (a server that read the body first would wait for it)."""
    ws = unique("qm")
    tracking.client().create_workspace(ws)
    run = own_run(ws)
    host, port = tracking.url.removeprefix("http://").split(":")
    head = (
        f"PUT /api/2.0/mlflow-artifacts/artifacts/{run}/artifacts/huge.bin HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nX-MLFLOW-WORKSPACE: {ws}\r\n"
        f"Content-Length: {QUOTA + 1}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large", answer[:300]
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error_code"] == "RESOURCE_EXHAUSTED"
    assert body["message"].startswith(
        f"Upload of {QUOTA + 1} bytes refused: workspace '{ws}' would hold {QUOTA + 1} bytes"
    )


def test_restrict_deletion_of_a_workspace_with_experiments_fails_at_once(
    tracking: MlflowServer,
) -> None:
    ws = unique("qm")
    client = tracking.client()
    client.create_workspace(ws)
    with in_workspace(ws):
        client.create_experiment("keeps-it-busy")
    started = time.monotonic()
    with pytest.raises(MlflowException, match="still contains 1 resource") as err:
        client.delete_workspace(ws)  # RESTRICT, the default mode
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"the refusal took {elapsed:.1f} s (retried?)"
    assert err.value.error_code == "INVALID_STATE"
    assert err.value.message == (  # MLflow's client puts the code in front
        f"INVALID_STATE: Cannot delete workspace '{ws}': table 'experiments' still contains 1 "
        "resource(s). Remove or reassign them before deleting the workspace."
    )
    assert ws in [w.name for w in client.list_workspaces()]
    raw = requests.delete(f"{tracking.url}/api/3.0/mlflow/workspaces/{ws}", timeout=30)
    assert raw.status_code == 409
    assert raw.json()["error_code"] == "INVALID_STATE"
    lines = refusal_lines(tracking, ws)
    assert len(lines) == 2, lines  # the client's call and the raw one: one line each
    assert all(f"refused delete_workspace for workspace {ws} (INVALID_STATE)" in x for x in lines)
    audited = [(a["operation"], a["outcome"], a["error_code"]) for a in audit_lines(tracking, ws)]
    assert audited == [("delete_workspace", "error", "INVALID_STATE")] * 2


# -- /metrics -------------------------------------------------------------------------------
def scrape(server: MlflowServer) -> dict[str, float]:
    answer = requests.get(f"{server.url}/metrics", timeout=30)
    assert answer.status_code == 200
    samples = {}
    for line in answer.text.splitlines():
        match = re.fullmatch(r"(ws_artifacts_\w+\{[^}]*\}) (\S+)", line)
        if match:
            samples[match.group(1)] = float(match.group(2))
    return samples


def sample(name: str, **labels: str) -> str:
    inside = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return f"{name}{{{inside}}}"


def test_metrics_count_per_workspace_across_workers(tracking: MlflowServer, tmp_path: Path) -> None:
    ws, other = unique("qm"), unique("qm")
    for name in (ws, other):
        tracking.client().create_workspace(name)
    requests_ok = sample(
        "ws_artifacts_requests_total", operation="write", outcome="ok", workspace=ws
    )
    written = sample("ws_artifacts_bytes_total", operation="write", workspace=ws)
    refused = sample(
        "ws_artifacts_refusals_total", code="RESOURCE_EXHAUSTED", operation="write", workspace=ws
    )
    before = scrape(tracking)
    assert requests_ok not in before
    assert written not in before
    url = f"{tracking.url}/api/2.0/mlflow-artifacts/artifacts/{own_run(ws)}/artifacts"
    head = {"X-MLFLOW-WORKSPACE": ws}
    for index in range(6):  # new connections: both workers answer some
        put = requests.put(f"{url}/f{index}", data=b"m" * 1000, headers=head, timeout=30)
        assert put.status_code == 200
    over = requests.put(f"{url}/over", data=b"m" * (QUOTA + 1), headers=head, timeout=30)
    assert over.status_code == 413
    after = scrape(tracking)
    assert after[requests_ok] == 6
    assert after[written] == 6000
    assert after[refused] == 1
    assert after[sample("ws_artifacts_quota_limit_bytes", workspace=ws)] == QUOTA
    assert 1000 <= after[sample("ws_artifacts_quota_used_bytes", workspace=ws)] <= 6000
    assert not any(f'workspace="{other}"' in key for key in after)
