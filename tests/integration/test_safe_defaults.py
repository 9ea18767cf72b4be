"""``ws-artifacts server`` as a new user starts it: safe by default, ready when it says so.

One real ``ws-artifacts server --workers 2`` (guard on by default) over the session's moto
server answers for: the ready line, the guard's refusal of empty and relative trace locations
(REST and OTLP), a directory GET through the proxy, ``mpu/create`` on the directory itself,
invisible and slash look-alike characters, and the exact codes of cross-workspace requests.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests
from packaging.version import Version

from tests.security.test_guard import _otlp
from tests.security.world import http_json, raw_request
from tests.support.s3 import keys
from tests.support.servers import MOTO_KEY, MOTO_SECRET, MlflowServer, Server, clean_env, free_port
from tests.support.workspaces import in_workspace, unique

pytestmark = pytest.mark.integration

WS_ARTIFACTS = str(Path(sys.executable).parent / "ws-artifacts")
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
READY = re.compile(r"^ws-artifacts: ready on (\S+) \((\d+) workers?\)$", re.MULTILINE)


def _start(work: Path, config: Path) -> tuple[Server, float]:
    """Start the launcher; return it and how long after the ready line /server-info answered."""
    port = free_port()
    log = work / "server.log"
    argv = [WS_ARTIFACTS, "server", "--config", str(config), "--data-dir", str(work / "data")]
    argv += ["--artifacts-destination", "ws-s3://root", "--port", str(port), "--workers", "2"]
    env = clean_env(
        AWS_ACCESS_KEY_ID=MOTO_KEY,
        AWS_SECRET_ACCESS_KEY=MOTO_SECRET,
        AWS_DEFAULT_REGION="us-east-1",
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=work, start_new_session=True
        )
    server = Server(url=f"http://127.0.0.1:{port}", proc=proc, log=log)
    deadline = time.monotonic() + 600
    try:
        while not READY.search(server.log_text()):
            assert proc.poll() is None, server.log_text()
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.02)
        seen = time.monotonic()
        # What MLflow's client does first, with its own 3 s timeout, on a new connection.
        response = requests.get(f"{server.url}/api/3.0/mlflow/server-info", timeout=3)
        assert response.status_code == 200, response.text
        return server, time.monotonic() - seen
    except BaseException:
        server.stop()
        raise


@pytest.fixture(scope="module")
def launched(
    tmp_path_factory: pytest.TempPathFactory, routed_config_file: Path, s3: Any
) -> Iterator[tuple[MlflowServer, float]]:
    server, answered_after = _start(tmp_path_factory.mktemp("launched"), routed_config_file)
    wrapped = MlflowServer(server, routed_config_file)
    for name in ("team-a", "team-b"):
        wrapped.client().create_workspace(name)
    yield wrapped, answered_after
    server.stop()


@pytest.fixture(scope="module")
def server(launched: tuple[MlflowServer, float]) -> MlflowServer:
    return launched[0]


@pytest.fixture(scope="module")
def runs(server: MlflowServer) -> dict[str, tuple[str, str]]:
    out = {}
    for workspace in ("team-a", "team-b"):
        with in_workspace(workspace):
            client = server.client()
            exp = client.create_experiment(unique("safe"))
            out[workspace] = (exp, client.create_run(exp).info.run_id)
    return out


def _run_path(runs: dict[str, tuple[str, str]], workspace: str) -> str:
    exp, run = runs[workspace]
    return f"workspaces/{workspace}/{exp}/{run}/artifacts"


def _error(body: bytes) -> tuple[str, str]:
    data = json.loads(body)
    return data["error_code"], data["message"]


# -- start-up -------------------------------------------------------------------------------
def test_one_ready_line_once_every_worker_accepts(launched: tuple[MlflowServer, float]) -> None:
    server, answered_after = launched
    lines = READY.findall(server.server.log_text())
    assert lines == [(server.url, "2")]
    # _start's /server-info probe, sent as soon as the line appeared, was answered within
    # MLflow's client timeout (3 s per read); how long it took is a benchmark figure, not a test.
    assert answered_after > 0
    # The line comes after both workers completed their start-up, never before.
    log = server.server.log_text()
    ready_at = log.index("ws-artifacts: ready on")
    assert log.count("Application startup complete", 0, ready_at) == 2, log


# -- the guard is on unless --no-guard ------------------------------------------------------
def test_the_guard_is_on_by_default(server: MlflowServer) -> None:
    name = unique("safe-model")
    assert (
        http_json(
            server, "POST", "/api/2.0/mlflow/registered-models/create", "team-a", {"name": name}
        )[0]
        == 200
    )
    payload = {"name": name, "source": "s3://team-b-artifacts/workspaces/team-b/x"}
    status, body = http_json(
        server, "POST", "/api/2.0/mlflow/model-versions/create", "team-a", payload
    )
    assert status == 403, body
    code, message = _error(body)
    assert code == "PERMISSION_DENIED"
    assert "Refused to set the model version source" in message


def _trace(server: MlflowServer, experiment: str) -> str:
    trace_id = f"tr-{uuid.uuid4().hex}"
    body = {
        "trace": {
            "trace_info": {
                "trace_id": trace_id,
                "trace_location": {
                    "type": "MLFLOW_EXPERIMENT",
                    "mlflow_experiment": {"experiment_id": experiment},
                },
                "request_time": "2026-01-01T00:00:00Z",
                "state": "OK",
            }
        }
    }
    status, answer = http_json(server, "POST", "/api/3.0/mlflow/traces", "team-a", body)
    assert status == 200, answer
    return trace_id


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("mlflow.artifactLocation", "", "an empty location is read by MLflow as the server's"),
        ("mlflow.trace.archiveLocation", "", "an empty location"),
        ("mlflow.artifactLocation", "traces", "a relative path is read by MLflow against"),
        ("mlflow.artifactLocation", "./workspaces/team-a/x", "a relative path"),
    ],
    ids=["empty-artifact-location", "empty-archive-location", "relative", "relative-dot"],
)
def test_empty_or_relative_trace_locations_are_refused(
    server: MlflowServer, runs: dict[str, tuple[str, str]], key: str, value: str, match: str
) -> None:
    trace_id = _trace(server, runs["team-a"][0])
    before = _tags(server, trace_id)
    route = f"/api/3.0/mlflow/traces/{trace_id}/tags"
    status, body = http_json(server, "PATCH", route, "team-a", {"key": key, "value": value})
    assert status == 403, body
    code, message = _error(body)
    assert (code, match in message) == ("PERMISSION_DENIED", True), message
    assert _tags(server, trace_id) == before  # nothing stored


def _tags(server: MlflowServer, trace_id: str) -> dict[str, str]:
    status, body = http_json(server, "GET", f"/api/3.0/mlflow/traces/{trace_id}", "team-a", None)
    assert status == 200, body
    return dict(json.loads(body)["trace"]["trace_info"].get("tags", {}))


@pytest.mark.parametrize("value", ["", "traces"], ids=["empty", "relative"])
def test_empty_or_relative_otlp_trace_locations_are_refused(
    server: MlflowServer, runs: dict[str, tuple[str, str]], value: str
) -> None:
    trace_id = uuid.uuid4().bytes
    body = _otlp(trace_id, {"mlflow.traceTag.mlflow.artifactLocation": value})
    headers = {
        "Content-Type": "application/x-protobuf",
        "x-mlflow-experiment-id": runs["team-a"][0],
    }
    status, answer = raw_request(server, "POST", "/v1/traces", "team-a", body, headers)
    assert status == 403, answer
    code, message = _error(answer)
    assert code == "PERMISSION_DENIED"
    assert "trace tag mlflow.artifactLocation (OTLP)" in message
    status, _ = http_json(
        server, "GET", f"/api/3.0/mlflow/traces/tr-{trace_id.hex()}", "team-a", None
    )
    assert status == 404


# -- the proxy ------------------------------------------------------------------------------
def test_a_directory_get_through_the_proxy_is_refused_without_copying(
    server: MlflowServer, runs: dict[str, tuple[str, str]], tmp_path: Path
) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.txt").write_bytes(b"a")
    (src / "sub" / "b.txt").write_bytes(b"b")
    with in_workspace("team-a"):
        server.client().log_artifacts(runs["team-a"][1], str(src))
    for path in (f"{_run_path(runs, 'team-a')}/sub", _run_path(runs, "team-a")):
        status, body = raw_request(server, "GET", f"{ARTIFACTS}/{path}", "team-a")
        assert status == 400, body
        code, message = _error(body)
        assert code == "INVALID_PARAMETER_VALUE"
        assert message.startswith(f"Artifact path refers to a directory, not a file: '{path}'")
    file_status, data = raw_request(
        server, "GET", f"{ARTIFACTS}/{_run_path(runs, 'team-a')}/sub/a.txt", "team-a"
    )
    assert (file_status, data) == (200, b"a")
    assert "IsADirectoryError" not in server.server.log_text()


@pytest.mark.mlflow_differs
def test_mpu_create_on_the_directory_itself_is_refused(
    server: MlflowServer, runs: dict[str, tuple[str, str]], s3: Any
) -> None:
    """Refused by the repository (3.17), or already by MLflow's path check (3.18)."""
    route = f"/api/2.0/mlflow-artifacts/mpu/create/{_run_path(runs, 'team-a')}"
    status, body = http_json(server, "POST", route, "team-a", {"path": "/", "num_parts": 1})
    assert status == 400, body
    code, message = _error(body)
    assert code == "INVALID_PARAMETER_VALUE"
    if Version(mlflow.__version__) >= Version("3.18"):
        assert message.startswith("Invalid path"), message
    else:
        assert message.startswith("File name '/' names no file (it would write to the directory")
    pending = s3.list_multipart_uploads(Bucket="team-a-artifacts").get("Uploads", [])
    assert [u["Key"] for u in pending if u["Key"].startswith(_run_path(runs, "team-a"))] == []


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("model\u200b.txt", "U+200B (ZERO WIDTH SPACE)"),
        ("\ufeffmodel.txt", "U+FEFF (ZERO WIDTH NO-BREAK SPACE)"),
        ("a\u2060b.txt", "U+2060 (WORD JOINER)"),
        ("workspaces\u2215team-b.txt", "U+2215 (DIVISION SLASH)"),
        ("x\u2044y.txt", "U+2044 (FRACTION SLASH)"),
        ("x\u29f8y.txt", "U+29F8 (BIG SOLIDUS)"),
    ],
    ids=[
        "zero-width-space",
        "bom",
        "word-joiner",
        "division-slash",
        "fraction-slash",
        "big-solidus",
    ],
)
def test_invisible_and_slash_lookalike_characters_are_refused(
    server: MlflowServer, runs: dict[str, tuple[str, str]], s3: Any, name: str, shown: str
) -> None:
    run_path = _run_path(runs, "team-a")
    wire = urllib.parse.quote(f"{run_path}/{name}")
    status, body = raw_request(server, "PUT", f"{ARTIFACTS}/{wire}", "team-a", b"planted")
    assert status == 400, body
    code, message = _error(body)
    assert code == "INVALID_PARAMETER_VALUE"
    assert shown in message, message
    assert [k for k in keys(s3, "team-a-artifacts", run_path) if "planted" in k or name in k] == []


# -- cross-workspace requests: what each path answers (docs/security.md) --------------------
def test_a_proxied_path_naming_another_workspace_gets_mlflows_400(
    server: MlflowServer, runs: dict[str, tuple[str, str]]
) -> None:
    path = f"{_run_path(runs, 'team-b')}/x.txt"
    for method in ("GET", "PUT", "DELETE"):
        status, body = raw_request(server, method, f"{ARTIFACTS}/{path}", "team-a", b"x")
        assert status == 400, (method, body)
        assert _error(body) == (
            "INVALID_PARAMETER_VALUE",
            "Artifact path targets workspace 'team-b' but the workspace specified in the "
            "request is 'team-a'.",
        )


def test_the_repository_refuses_another_workspace_with_403(
    use_config: Path, runs: dict[str, tuple[str, str]], tmp_path: Path
) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository("ws-s3://root")
    with (
        in_workspace("team-a"),
        pytest.raises(
            MlflowException, match="belongs to workspace 'team-b', but the request"
        ) as err,
    ):
        repo.download_artifacts(f"{_run_path(runs, 'team-b')}/x.txt", str(tmp_path))
    assert (err.value.error_code, err.value.get_http_status_code()) == ("PERMISSION_DENIED", 403)


# -- last: the launcher forwards SIGTERM and exits with the server --------------------------
def test_sigterm_to_the_launcher_stops_the_server(server: MlflowServer) -> None:
    proc = server.server.proc
    proc.send_signal(signal.SIGTERM)  # the launcher only, not its process group
    assert proc.wait(timeout=60) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/health", timeout=3)
