"""Proxied artifact serving through a real ``mlflow server --workers 2`` and a moto S3 server."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests
from packaging.version import Version

from tests.support.s3 import ROUTED_BUCKETS, keys
from tests.support.servers import MlflowServer
from tests.support.workspaces import in_workspace, unique

pytestmark = pytest.mark.integration

# workspace -> (bucket, key prefix before "workspaces/")
PLACES = {
    "team-a": ("team-a-artifacts", ""),
    "team-b": ("team-b-artifacts", ""),
    "vision-x": ("vision-artifacts", "vision-x/"),
    "other": ("root", ""),  # no route: the default destination
    "default": ("root", ""),
}


def expected_key(workspace: str, exp: str, run: str, name: str) -> str:
    return f"{PLACES[workspace][1]}workspaces/{workspace}/{exp}/{run}/artifacts/{name}"


def make_run(server: MlflowServer, workspace: str) -> tuple[str, str]:
    with in_workspace(workspace):
        client = server.client()
        exp = client.create_experiment(unique(workspace))
        return exp, client.create_run(exp).info.run_id


def log_files(
    server: MlflowServer, workspace: str, run: str, files: dict[str, bytes], tmp: Path
) -> None:
    src = tmp / unique("src")
    for name, data in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    with in_workspace(workspace):
        server.client().log_artifacts(run, str(src))


def header(workspace: str) -> dict[str, str]:
    return {"X-MLFLOW-WORKSPACE": workspace}


@pytest.mark.mlflow_differs
def test_server_info_answers_before_any_artifact_request(proxied: MlflowServer) -> None:
    response = requests.get(f"{proxied.url}/api/3.0/mlflow/server-info", timeout=10)
    assert response.status_code == 200
    info = response.json()
    assert info["workspaces_enabled"] is True
    from mlflow.store.artifact import artifact_repo

    if Version(mlflow.__version__) >= Version("3.18"):
        # 3.18 advertises them only when the server opts in (MLFLOW_ENABLE_PROXY_MULTIPART_*).
        assert info["multipart_uploads_enabled"] is False
        assert info["multipart_downloads_enabled"] is False
    elif hasattr(artifact_repo, "MultipartDownloadMixin"):  # MLflow >= 3.11 advertises these
        assert info["multipart_uploads_enabled"] is True
        assert info["multipart_downloads_enabled"] is True
    else:  # 3.10 advertises no capabilities
        assert "multipart_uploads_enabled" not in info
        assert "multipart_downloads_enabled" not in info


@pytest.mark.parametrize("workspace", ["team-a", "team-b", "vision-x", "other", "default"])
def test_each_workspace_lands_in_its_own_bucket(
    proxied: MlflowServer, s3: Any, tmp_path: Path, workspace: str
) -> None:
    exp, run = make_run(proxied, workspace)
    files = {"model.pkl": b"weights", "sub/conf.yaml": b"a: 1"}
    log_files(proxied, workspace, run, files, tmp_path)

    bucket, prefix = PLACES[workspace]
    run_prefix = f"{prefix}workspaces/{workspace}/{exp}/{run}/"
    assert keys(s3, bucket, run_prefix) == [
        expected_key(workspace, exp, run, "model.pkl"),
        expected_key(workspace, exp, run, "sub/conf.yaml"),
    ]
    for other_bucket in set(ROUTED_BUCKETS) - {bucket}:
        assert [k for k in keys(s3, other_bucket) if f"/{exp}/{run}/" in k] == []
    tags = s3.get_object_tagging(Bucket=bucket, Key=expected_key(workspace, exp, run, "model.pkl"))
    assert tags["TagSet"] == [{"Key": "mlflow-workspace", "Value": workspace}]


def test_list_and_download_per_workspace(proxied: MlflowServer, tmp_path: Path) -> None:
    runs = {}
    for workspace in ("team-a", "vision-x", "other"):
        _exp, run = make_run(proxied, workspace)
        files = {"a.txt": workspace.encode(), "d/b.bin": bytes(range(256)) * 64}
        log_files(proxied, workspace, run, files, tmp_path)
        runs[workspace] = run
    for workspace, run in runs.items():
        with in_workspace(workspace):
            client = proxied.client()
            listed = [(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(run)]
            assert listed == [("a.txt", False, len(workspace)), ("d", True, None)]
            assert [f.path for f in client.list_artifacts(run, "d")] == ["d/b.bin"]
            out = Path(client.download_artifacts(run, "", str(tmp_path / unique("dl"))))
            assert (out / "a.txt").read_bytes() == workspace.encode()
            assert (out / "d" / "b.bin").read_bytes() == bytes(range(256)) * 64


def test_many_alternating_requests_route_every_file(proxied: MlflowServer, s3: Any) -> None:
    order = ["team-a", "team-b", "vision-x", "other"] * 6
    runs = {ws: make_run(proxied, ws) for ws in set(order)}

    def put(job: tuple[int, str]) -> int:
        index, workspace = job
        exp, run = runs[workspace]
        url = f"{proxied.url}/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/f{index}.txt"
        body = f"{workspace}-{index}".encode()
        return requests.put(url, data=body, headers=header(workspace), timeout=30).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(put, enumerate(order))) == {200}

    for workspace, (exp, run) in runs.items():
        bucket, prefix = PLACES[workspace]
        mine = [i for i, w in enumerate(order) if w == workspace]
        expected = sorted(expected_key(workspace, exp, run, f"f{i}.txt") for i in mine)
        assert keys(s3, bucket, f"{prefix}workspaces/{workspace}/{exp}/{run}/") == expected
        for i in mine:
            body = s3.get_object(Bucket=bucket, Key=expected_key(workspace, exp, run, f"f{i}.txt"))
            assert body["Body"].read() == f"{workspace}-{i}".encode()


def test_delete_removes_the_objects(proxied: MlflowServer, s3: Any, tmp_path: Path) -> None:
    exp, run = make_run(proxied, "team-b")
    log_files(proxied, "team-b", run, {"keep.txt": b"k", "gone/x.txt": b"x"}, tmp_path)
    url = f"{proxied.url}/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/gone"
    assert requests.delete(url, headers=header("team-b"), timeout=10).status_code == 200
    assert keys(s3, "team-b-artifacts", f"workspaces/team-b/{exp}/{run}/") == [
        expected_key("team-b", exp, run, "keep.txt")
    ]


def test_path_naming_another_workspace_is_refused(
    proxied: MlflowServer, s3: Any, tmp_path: Path
) -> None:
    exp, run = make_run(proxied, "team-b")
    log_files(proxied, "team-b", run, {"secret.txt": b"team-b-secret"}, tmp_path)
    base = (
        f"{proxied.url}/api/2.0/mlflow-artifacts/artifacts/workspaces/team-b/{exp}/{run}/artifacts"
    )
    read = requests.get(f"{base}/secret.txt", headers=header("team-a"), timeout=10)
    assert read.status_code == 400
    assert b"team-b-secret" not in read.content
    write = requests.put(f"{base}/planted.txt", data=b"x", headers=header("team-a"), timeout=10)
    assert write.status_code == 400
    assert keys(s3, "team-b-artifacts", f"workspaces/team-b/{exp}/{run}/") == [
        expected_key("team-b", exp, run, "secret.txt")
    ]


def test_forged_model_version_source_is_refused(proxied: MlflowServer, tmp_path: Path) -> None:
    exp, run = make_run(proxied, "team-b")
    log_files(proxied, "team-b", run, {"model.pkl": b"team-b-weights"}, tmp_path)
    name = unique("stolen")
    with in_workspace("team-a"):
        client = proxied.client()
        client.create_registered_model(name)
        source = f"ws-s3://root/workspaces/team-b/{exp}/{run}/artifacts"
        version = client.create_model_version(name, source=source)
    response = requests.get(
        f"{proxied.url}/model-versions/get-artifact",
        params={"name": name, "version": version.version, "path": "model.pkl"},
        headers=header("team-a"),
        timeout=10,
    )
    assert response.status_code == 403
    assert b"team-b-weights" not in response.content
    assert "belongs to workspace 'team-b'" in response.json()["message"]


@pytest.mark.mlflow_differs
@pytest.mark.parametrize(
    "form",
    [
        "ws-s3://root/workspaces/team-b/{exp}/traces/{tid}/artifacts",
        "mlflow-artifacts:/workspaces/team-b/{exp}/traces/{tid}/artifacts",
    ],
    ids=["ws-s3-uri", "mlflow-artifacts-uri"],
)
def test_forged_trace_artifact_location_is_refused(
    proxied: MlflowServer, s3: Any, form: str
) -> None:
    from mlflow.entities import TraceInfo, TraceLocation, TraceState

    victim_exp, _ = make_run(proxied, "team-b")
    victim_trace = f"tr-{uuid.uuid4().hex}"
    victim_key = f"workspaces/team-b/{victim_exp}/traces/{victim_trace}/artifacts/traces.json"
    s3.put_object(Bucket="team-b-artifacts", Key=victim_key, Body=b'{"spans": ["team-b-secret"]}')

    attacker_exp, _ = make_run(proxied, "team-a")
    trace_id = f"tr-{uuid.uuid4().hex}"
    with in_workspace("team-a"):
        client = proxied.client()
        info = TraceInfo(
            trace_id=trace_id,
            trace_location=TraceLocation.from_experiment_id(attacker_exp),
            request_time=int(time.time() * 1000),
            state=TraceState.OK,
        )
        client._tracking_client.store.start_trace(info)
    # The Python client refuses this tag; the REST API does not (MLflow 3.17), or refuses it
    # too (3.18: the tag is immutable); either way the read below yields no byte of team-b.
    forged = requests.patch(
        f"{proxied.url}/api/2.0/mlflow/traces/{trace_id}/tags",
        json={
            "key": "mlflow.artifactLocation",
            "value": form.format(exp=victim_exp, tid=victim_trace),
        },
        headers=header("team-a"),
        timeout=10,
    )
    response = requests.get(
        f"{proxied.url}/ajax-api/2.0/mlflow/get-trace-artifact",
        params={"request_id": trace_id},
        headers=header("team-a"),
        timeout=10,
    )
    assert b"team-b-secret" not in response.content
    if Version(mlflow.__version__) >= Version("3.18"):
        assert (forged.status_code, forged.json()["message"]) == (
            400,
            "Tag 'mlflow.artifactLocation' is immutable and cannot be set on a trace.",
        )
        assert response.status_code == 404  # the trace's own location holds nothing
        return
    assert forged.status_code == 200
    assert response.status_code == 403
    assert "belongs to workspace 'team-b'" in response.json()["message"]
