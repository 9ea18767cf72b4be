"""Quotas: every upload path refused at the exact boundary with RESOURCE_EXHAUSTED (HTTP 413,
which MLflow's client does not retry),
nothing partial left behind, reads, lists and deletes unaffected; in this process against a
moto S3 server, then through real ``mlflow server`` processes (1 worker for exact boundaries,
2 workers for the documented overshoot bound)."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from mlflow.entities.multipart_upload import MultipartUploadPart
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from tests.integration.usage_world import (
    MIB,
    pending_uploads,
    usage_config,
    use,
    write,
    write_world,
)
from tests.support.s3 import keys
from tests.support.servers import PROXIED_ARGS, MlflowServer, Server, running_server
from tests.support.workspaces import in_workspace, unique

pytestmark = pytest.mark.integration
BUCKET = "quota-artifacts"
REMEASURE = 2  # seconds, the 2-worker server's re-measure interval (short: the test waits it out)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, moto: Server, s3: Any) -> Path:
    return write_world(tmp_path_factory.mktemp("quota"), moto.url, s3)


@pytest.fixture
def config(world: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    use(monkeypatch, world)
    return world


def repo(workspace: str) -> Any:
    return get_artifact_repository(f"ws-s3://root/workspaces/{workspace}/1/r1/artifacts")


def prefix(workspace: str) -> str:
    return f"{workspace}/workspaces/{workspace}/1/r1/artifacts/"


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 256 * 1024):
        yield data[start : start + 256 * 1024]


def _upload(kind: str, tmp: Path) -> Callable[[Any, str, int], None]:
    def upload(target: Any, name: str, size: int) -> None:
        data = b"u" * size
        if kind == "log_artifact":
            target.log_artifact(write(tmp, name, size))
        elif kind == "log_artifacts":
            folder = tmp / unique("dir")
            write(folder, name, size)
            target.log_artifacts(str(folder))
        elif kind == "stream":
            target.log_artifact_from_stream(io.BytesIO(data), name)
        else:
            asyncio.run(target.log_artifact_from_async_stream(_chunks(data), name))

    return upload


KINDS = ["log_artifact", "log_artifacts", "stream", "async_stream"]


def refused(err: pytest.ExceptionInfo[MlflowException], workspace: str) -> None:
    assert err.value.error_code == "RESOURCE_EXHAUSTED"
    assert err.value.get_http_status_code() == 413  # not retried by the client
    assert f"workspace '{workspace}'" in err.value.message
    assert "raise workspaces.qb-*.quota" in err.value.message or "qo-*" in err.value.message


@pytest.mark.parametrize("kind", KINDS, ids=KINDS)
def test_byte_quota_boundary(config: Path, s3: Any, tmp_path: Path, kind: str) -> None:
    ws = unique("qb")
    upload = _upload(kind, tmp_path)
    with in_workspace(ws):
        target = repo(ws)
        upload(target, "a", 600)
        upload(target, "b", 399)  # 999 bytes: one under the quota of 1000
        with pytest.raises(MlflowException, match=r"would hold 1001 bytes \(quota 1000 bytes\)"):
            upload(target, "c", 2)
        upload(target, "d", 1)  # exactly 1000: the quota is the most it may hold
        with pytest.raises(MlflowException, match=r"it holds 1000 bytes in 3 objects now") as err:
            upload(target, "e", 1)
        refused(err, ws)
        assert keys(s3, BUCKET, prefix(ws)) == [prefix(ws) + n for n in ("a", "b", "d")]
        assert pending_uploads(s3, BUCKET, ws) == []
        # Reads, lists and deletes keep working at the quota.
        assert [(f.path, f.file_size) for f in target.list_artifacts()] == [
            ("a", 600),
            ("b", 399),
            ("d", 1),
        ]
        out = target.download_artifacts("b", str(tmp_path))
        assert Path(out).read_bytes() == b"u" * 399 or Path(out).read_bytes() == b"x" * 399
        target.delete_artifacts("d")
        upload(target, "f", 1)  # the delete made room again
        assert keys(s3, BUCKET, prefix(ws)) == [prefix(ws) + n for n in ("a", "b", "f")]


@pytest.mark.parametrize("kind", KINDS, ids=KINDS)
def test_object_quota_boundary(config: Path, s3: Any, tmp_path: Path, kind: str) -> None:
    ws = unique("qo")
    upload = _upload(kind, tmp_path)
    with in_workspace(ws):
        target = repo(ws)
        for name in "abcd":
            upload(target, name, 10)
        with pytest.raises(MlflowException, match=r"would hold 5 objects \(quota 4 objects\)"):
            upload(target, "e", 0)
    assert keys(s3, BUCKET, prefix(ws)) == [prefix(ws) + n for n in "abcd"]


@pytest.mark.parametrize("kind", ["stream", "async_stream"], ids=["stream", "async_stream"])
def test_stream_crossing_the_quota_midway_leaves_nothing(
    config: Path, s3: Any, tmp_path: Path, kind: str
) -> None:
    ws = unique("qm")
    upload = _upload(kind, tmp_path)
    with in_workspace(ws):
        target = repo(ws)
        # 20 MiB against 12 MiB: the first 8 MiB part is already up when the quota is crossed.
        with pytest.raises(MlflowException, match=r"would hold \d+ bytes \(quota 12582912 bytes"):
            upload(target, "too-big.bin", 20 * MIB)
        assert keys(s3, BUCKET, ws) == []
        assert pending_uploads(s3, BUCKET, ws) == []
        upload(target, "fits.bin", 12 * MIB)  # what the refused upload counted was given back
    assert keys(s3, BUCKET, ws) == [prefix(ws) + "fits.bin"]


def _put_parts(response: Any, sizes: list[int]) -> list[MultipartUploadPart]:
    parts = []
    for credential, size in zip(response.credentials, sizes, strict=True):
        put = requests.put(credential.url, data=b"p" * size, timeout=60)
        assert put.status_code == 200
        parts.append(MultipartUploadPart(credential.part_number, put.headers["ETag"]))
    return parts


def test_multipart_create_and_complete(config: Path, s3: Any, tmp_path: Path) -> None:
    ws = unique("qm")
    with in_workspace(ws):
        target = repo(ws)
        with pytest.raises(MlflowException, match=r"would hold 15728640 bytes"):
            target.create_multipart_upload("huge.bin", num_parts=4)  # >= 3 x 5 MiB
        assert pending_uploads(s3, BUCKET, ws) == []
        created = target.create_multipart_upload("over.bin", num_parts=3)
        parts = _put_parts(created, [5 * MIB, 5 * MIB, 3 * MIB])
        with pytest.raises(MlflowException, match=r"would hold 13631488 bytes"):
            target.complete_multipart_upload("over.bin", created.upload_id, parts)
        assert pending_uploads(s3, BUCKET, ws) == []  # aborted: no parts left behind
        assert keys(s3, BUCKET, ws) == []
        created = target.create_multipart_upload("ok.bin", num_parts=2)
        parts = _put_parts(created, [5 * MIB, 1 * MIB])
        target.complete_multipart_upload("ok.bin", created.upload_id, parts)
    assert keys(s3, BUCKET, ws) == [prefix(ws) + "ok.bin"]


def test_multipart_at_the_exact_boundary(config: Path, s3: Any) -> None:
    """Quota 12 MiB: parts of exactly 12 MiB complete; then a one-part upload may start (its
    part could be empty) but one more byte is refused at completion, and 12 MiB + 1 byte in
    one upload is refused the same way; each refused upload is aborted."""
    quota = 12 * MIB
    full, over = unique("qm"), unique("qm")
    with in_workspace(full):
        target = repo(full)
        created = target.create_multipart_upload("exact.bin", num_parts=3)
        parts = _put_parts(created, [5 * MIB, 5 * MIB, 2 * MIB])
        target.complete_multipart_upload("exact.bin", created.upload_id, parts)
        created = target.create_multipart_upload("one-more.bin", num_parts=1)
        parts = _put_parts(created, [1])
        with pytest.raises(MlflowException, match=rf"would hold {quota + 1} bytes"):
            target.complete_multipart_upload("one-more.bin", created.upload_id, parts)
    assert pending_uploads(s3, BUCKET, full) == []
    assert keys(s3, BUCKET, full) == [prefix(full) + "exact.bin"]
    assert s3.head_object(Bucket=BUCKET, Key=prefix(full) + "exact.bin")["ContentLength"] == quota
    with in_workspace(over):
        target = repo(over)
        created = target.create_multipart_upload("over.bin", num_parts=3)
        parts = _put_parts(created, [5 * MIB, 5 * MIB, 2 * MIB + 1])
        with pytest.raises(MlflowException, match=rf"would hold {quota + 1} bytes"):
            target.complete_multipart_upload("over.bin", created.upload_id, parts)
    assert pending_uploads(s3, BUCKET, over) == []
    assert keys(s3, BUCKET, over) == []


def test_fsspec_route_quota(config: Path, tmp_path: Path) -> None:
    ws = unique("uf")
    with in_workspace(ws):
        target = repo(ws)
        target.log_artifact(write(tmp_path, "a", 1000))
        with pytest.raises(MlflowException, match=r"would hold 1001 bytes \(quota 1000 bytes\)"):
            target.log_artifact_from_stream(io.BytesIO(b"1"), "b")
        assert [f.path for f in target.list_artifacts()] == ["a"]


# -- through real servers -------------------------------------------------------------------
@pytest.fixture(scope="module")
def one_worker(tmp_path_factory: pytest.TempPathFactory, world: Path) -> Iterator[MlflowServer]:
    work = tmp_path_factory.mktemp("quota-server-1")
    with running_server(work, world, PROXIED_ARGS, workers=1, workspaces=()) as server:
        yield server


def _url(server: MlflowServer, name: str) -> str:
    return f"{server.url}/api/2.0/mlflow-artifacts/artifacts/1/r1/artifacts/{name}"


def _put(server: MlflowServer, ws: str, name: str, size: int) -> requests.Response:
    return requests.put(
        _url(server, name), data=b"s" * size, headers={"X-MLFLOW-WORKSPACE": ws}, timeout=30
    )


def test_server_refuses_with_413_at_the_boundary(one_worker: MlflowServer, s3: Any) -> None:
    ws = unique("qb")
    one_worker.client().create_workspace(ws)
    head = {"X-MLFLOW-WORKSPACE": ws}
    assert _put(one_worker, ws, "a", 600).status_code == 200
    assert _put(one_worker, ws, "b", 399).status_code == 200
    over = _put(one_worker, ws, "c", 2)
    assert over.status_code == 413
    assert over.json()["error_code"] == "RESOURCE_EXHAUSTED"
    assert over.json()["message"] == (
        f"Upload refused: workspace '{ws}' would hold 1001 bytes (quota 1000 bytes) at "
        f"s3://{BUCKET}/{ws}/workspaces/{ws}; it holds 999 bytes in 2 objects now. Delete runs "
        f"or artifacts of workspace '{ws}' (then run 'mlflow gc'), or raise "
        "workspaces.qb-*.quota in the ws-artifacts configuration."
    )
    assert _put(one_worker, ws, "d", 1).status_code == 200
    assert _put(one_worker, ws, "e", 1).status_code == 413
    assert keys(s3, BUCKET, prefix(ws)) == [prefix(ws) + n for n in ("a", "b", "d")]
    read = requests.get(_url(one_worker, "b"), headers=head, timeout=30)
    assert (read.status_code, read.content) == (200, b"s" * 399)
    listed = requests.get(
        f"{one_worker.url}/api/2.0/mlflow-artifacts/artifacts",
        params={"path": "1/r1/artifacts"},
        headers=head,
        timeout=30,
    )
    assert [f["path"] for f in listed.json()["files"]] == ["a", "b", "d"]
    assert requests.delete(_url(one_worker, "d"), headers=head, timeout=30).status_code == 200
    assert _put(one_worker, ws, "f", 1).status_code == 200


def test_server_refuses_multipart_create_and_complete(one_worker: MlflowServer, s3: Any) -> None:
    ws = unique("qm")
    one_worker.client().create_workspace(ws)
    head = {"X-MLFLOW-WORKSPACE": ws}
    base = f"{one_worker.url}/api/2.0/mlflow-artifacts/mpu"
    body = {"path": "big.bin", "num_parts": 4}
    create = requests.post(f"{base}/create/1/r1/artifacts", json=body, headers=head, timeout=30)
    assert create.status_code == 413
    assert create.json()["error_code"] == "RESOURCE_EXHAUSTED"
    body["num_parts"] = 3
    create = requests.post(f"{base}/create/1/r1/artifacts", json=body, headers=head, timeout=30)
    assert create.status_code == 200
    upload_id = create.json()["upload_id"]
    parts = []
    for credential, size in zip(
        create.json()["credentials"], [5 * MIB, 5 * MIB, 3 * MIB], strict=True
    ):
        put = requests.put(credential["url"], data=b"p" * size, timeout=60)
        parts.append({"part_number": credential["part_number"], "etag": put.headers["ETag"]})
    done = requests.post(
        f"{base}/complete/1/r1/artifacts",
        json={"path": "big.bin", "upload_id": upload_id, "parts": parts},
        headers=head,
        timeout=30,
    )
    assert done.status_code == 413
    assert "would hold 13631488 bytes (quota 12582912 bytes)" in done.json()["message"]
    assert pending_uploads(s3, BUCKET, ws) == []
    assert keys(s3, BUCKET, ws) == []


@pytest.fixture(scope="module")
def two_workers(
    tmp_path_factory: pytest.TempPathFactory, moto: Server, world: Path
) -> Iterator[MlflowServer]:
    work = tmp_path_factory.mktemp("quota-server-2")
    config = work / "quota-2.yaml"
    config.write_text(usage_config(moto.url, work / "files", remeasure=REMEASURE))
    with running_server(work, config, PROXIED_ARGS, workers=2, workspaces=()) as server:
        yield server


def test_two_workers_overshoot_by_at_most_one_headroom(two_workers: MlflowServer, s3: Any) -> None:
    """Documented bound: each of W workers may admit up to the headroom it saw at its last
    listing, so the workspace ends at most (W - 1) x headroom over, and no further after
    remeasure_seconds. Here W = 2, quota 4 objects, workspace empty: at most 8 objects."""
    ws = unique("qo")
    two_workers.client().create_workspace(ws)
    answers = [_put(two_workers, ws, f"f{i}", 1).status_code for i in range(20)]  # new connections
    # (Had a worker listed again meanwhile, it would only have admitted less: the bound holds.)
    accepted = answers.count(200)
    assert answers.count(413) == 20 - accepted
    assert 4 <= accepted <= 8
    assert len(keys(s3, BUCKET, prefix(ws))) == accepted
    time.sleep(REMEASURE + 0.5)  # past remeasure_seconds: every worker lists again
    assert {_put(two_workers, ws, f"g{i}", 1).status_code for i in range(10)} == {413}
    assert len(keys(s3, BUCKET, prefix(ws))) == accepted


def test_usage_cli_names_experiments_and_finds_workspaces_from_the_tracking_server(
    one_worker: MlflowServer, world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from click.testing import CliRunner

    from ws_artifacts.cli.main import main

    ws = unique("uc")
    client = one_worker.client()
    client.create_workspace(ws)
    with in_workspace(ws):
        exp = one_worker.client().create_experiment("weights-of-uc")
    url = f"{one_worker.url}/api/2.0/mlflow-artifacts/artifacts/{exp}/r1/artifacts/w.bin"
    head = {"X-MLFLOW-WORKSPACE": ws}
    assert requests.put(url, data=b"w" * 321, headers=head, timeout=30).status_code == 200
    use(monkeypatch, world)
    args = ["usage", "--config", str(world), "--destination", "ws-s3://root", "--json"]
    result = CliRunner().invoke(
        main, [*args, "--by", "experiment", "--tracking-uri", one_worker.url]
    )
    assert result.exit_code == 0, result.output
    rows = {r["workspace"]: r for r in json.loads(result.output)["workspaces"]}
    assert rows[ws]["route"] == "uc-*"
    assert (rows[ws]["objects"], rows[ws]["bytes"]) == (1, 321)
    assert rows[ws]["experiments"] == [
        {"experiment_id": exp, "name": "weights-of-uc", "objects": 1, "bytes": 321}
    ]
