"""A hostile client against the quota's direct-to-S3 paths, through one real ``mlflow server``
with two workers (proxied multipart uploads and presigned upload URLs), its S3 traffic through
a fault proxy in front of a moto server. Each attack stored more than the quota, or reached
another workspace's upload, before ws_artifacts.serving.bounds existed.

moto enforces no presigned URL's expiry, signed length or POST policy (checked: a URL signed
with ``Content-Length: 10`` stored 1000 bytes, an expired URL still stored, a POST with a
``content-length-range`` of 0-10 stored 1000 bytes), so what is asserted here is what the
server itself does: refusals, holds, and objects removed after the fact.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from tests.support.config import ConfigFile
from tests.support.faults import FaultProxy, Request, is_complete, is_list_parts
from tests.support.s3 import keys
from tests.support.servers import MlflowServer, Server, running_server
from tests.support.workspaces import in_workspace, unique
from ws_artifacts.serving.bounds import RECHECK_SECONDS

pytestmark = pytest.mark.integration

BUCKET = "quota-attacks"
QUOTA = 64 * 1024
MIB = 1024 * 1024
ARGS = [
    "--enable-workspaces",
    "--serve-artifacts",
    "--artifacts-destination",
    "ws-s3://root",
    "--default-artifact-root",
    "ws-s3://root",
]


@pytest.fixture(scope="module")
def proxy(moto: Server) -> Iterator[FaultProxy]:
    with FaultProxy(moto.url) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, proxy: FaultProxy, s3: Any
) -> Iterator[MlflowServer]:
    s3.create_bucket(Bucket=BUCKET)
    work = tmp_path_factory.mktemp("quota-attacks")
    config = ConfigFile(proxy.url).route(
        "qa-*",
        f"s3://{BUCKET}/{{workspace}}",
        quota={"max_bytes": QUOTA, "remeasure_seconds": 3600},
    )
    path = config.write(work / "quota-attacks.yaml")
    with running_server(work, path, ARGS, workers=2, workspaces=()) as server:
        yield server


#: ``<experiment>/<run>`` of a run of each workspace's own: writes under an experiment of
#: another workspace are refused (ws_artifacts.serving.experiments), whatever the quota says.
_runs: dict[str, str] = {}


def _workspace(server: MlflowServer) -> str:
    ws = unique("qa")
    client = server.client()
    client.create_workspace(ws)
    with in_workspace(ws):
        experiment = client.create_experiment(unique("qa-exp"))
        run = client.create_run(experiment).info.run_id
    _runs[ws] = f"{experiment}/{run}"
    return ws


def _mpu(server: MlflowServer, ws: str, step: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(
        f"{server.url}/api/2.0/mlflow-artifacts/mpu/{step}/{_runs[ws]}/artifacts",
        json=body,
        headers={"X-MLFLOW-WORKSPACE": ws},
        timeout=120,
    )


def _key(ws: str, name: str) -> str:
    return f"{ws}/workspaces/{ws}/{_runs[ws]}/artifacts/{name}"


def _pending(s3: Any, ws: str) -> list[str]:
    listed = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=f"{ws}/")
    return sorted(u["UploadId"] for u in listed.get("Uploads", []))


def _etag(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'  # noqa: S324 - S3's ETag of a part


def _poll(condition: Callable[[], bool], timeout: float = 90) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


# -- limits on every request --------------------------------------------------------------------
@pytest.mark.parametrize("num_parts", [0, -1, 10_001], ids=["zero", "negative", "too-many"])
def test_num_parts_out_of_range_is_refused(server: MlflowServer, s3: Any, num_parts: int) -> None:
    ws = _workspace(server)
    answer = _mpu(server, ws, "create", {"path": "f.bin", "num_parts": num_parts})
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert answer.json()["message"] == (
        f"num_parts must be between 1 and 10000 (got {num_parts}) for a multipart upload to "
        f"s3://{BUCKET}/{_key(ws, 'f.bin')} in workspace '{ws}'; split the file into at most "
        "10000 parts of at least 5 MiB (S3's limits)."
    )
    assert _pending(s3, ws) == []


def _run(server: MlflowServer, ws: str) -> str:
    with in_workspace(ws):
        client = server.client()
        experiment = client.create_experiment(unique("exp"))
        return str(client.create_run(experiment).info.run_id)


def _presign(server: MlflowServer, ws: str, run: str, path: str, **extra: Any) -> Any:
    return requests.post(
        f"{server.url}/api/2.0/mlflow/artifacts/presigned-upload-url",
        json={"run_id": run, "path": path, **extra},
        headers={"X-MLFLOW-WORKSPACE": ws},
        timeout=60,
    )


@pytest.mark.mlflow_min("3.17")  # the presigned-upload-url endpoint
@pytest.mark.parametrize("expiration", [-1, 0, 3601, 10**10], ids=["-1", "0", "3601", "1e10"])
def test_presigned_upload_expiration_out_of_range_is_refused(
    server: MlflowServer, expiration: int
) -> None:
    ws = _workspace(server)
    run = _run(server, ws)
    answer = _presign(server, ws, run, "m.bin", expiration=expiration)
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert answer.json()["message"].startswith(
        f"expiration must be between 1 and 3600 seconds (got {expiration}) for a presigned URL"
    )
    assert f"in workspace '{ws}'" in answer.json()["message"]


# -- presigned PUT URLs -------------------------------------------------------------------------
@pytest.mark.mlflow_min("3.17")  # the presigned-upload-url endpoint
def test_presigned_urls_hold_the_headroom_and_oversized_objects_are_removed(
    server: MlflowServer, s3: Any
) -> None:
    """Three URLs, 1 MiB through each, in a 64 KiB workspace: each worker grants one URL the
    whole headroom and refuses the others while it is held; what a URL stored beyond its grant
    is deleted (here at the URL's expiry, 2 s, plus the recheck delay); then the headroom is
    free again and an honest URL stores what fits."""
    ws = _workspace(server)
    run = _run(server, ws)
    answers = [_presign(server, ws, run, f"big-{i}.bin", expiration=2) for i in range(6)]
    granted = [a.json() for a in answers if a.status_code == 200]
    refused = [a.json() for a in answers if a.status_code != 200]
    assert 1 <= len(granted) <= 2  # one per worker: the documented (W - 1) x headroom
    assert {r["error_code"] for r in refused} == {"RESOURCE_EXHAUSTED"}
    for r in refused:
        assert "are held for presigned upload URLs" in r["message"]
        assert f"would hold {QUOTA + 1} bytes (quota {QUOTA} bytes)" in r["message"]
    for url in granted:
        put = requests.put(
            url["presigned_url"], data=b"B" * MIB, headers=url.get("headers", {}), timeout=60
        )
        assert put.status_code == 200
    prefix = f"{ws}/workspaces/{ws}/"
    assert len(keys(s3, BUCKET, prefix)) == len(granted)
    assert _poll(lambda: keys(s3, BUCKET, prefix) == [])
    # The holds were given back: honest uploads through new URLs are kept and counted (the
    # second URL is granted what the first left, once the first's object is seen).
    for name in ("s1.bin", "s2.bin"):
        answers: list[requests.Response] = []
        # (polled: a worker gives its holds back just after it removes the objects)
        assert _poll(functools.partial(_granted, answers, server, ws, run, name), timeout=30)
        url = answers[-1]
        put = requests.put(
            url.json()["presigned_url"],
            data=b"s" * 1000,
            headers=url.json().get("headers", {}),
            timeout=60,
        )
        assert put.status_code == 200
    time.sleep(2 + RECHECK_SECONDS + 1)  # past the documented last look at both URLs
    _presign(server, ws, run, "probe.bin", expiration=1)  # a look by whichever worker answers
    assert [k.rsplit("/", 1)[-1] for k in keys(s3, BUCKET, prefix)] == ["s1.bin", "s2.bin"]


def _granted(
    answers: list[requests.Response], server: MlflowServer, ws: str, run: str, name: str
) -> bool:
    answers.append(_presign(server, ws, run, name, expiration=2))
    return answers[-1].status_code == 200


# -- multipart uploads --------------------------------------------------------------------------
def _create(server: MlflowServer, ws: str, name: str, num_parts: int = 1) -> requests.Response:
    return _mpu(server, ws, "create", {"path": name, "num_parts": num_parts})


def test_pending_parts_beyond_the_quota_are_counted_and_aborted(
    server: MlflowServer, s3: Any
) -> None:
    """6 MiB put into one part of a pending upload of a 64 KiB workspace: the next multipart
    request is refused by a worker that counts the pending parts, and the worker that started
    the upload aborts it (it could never complete) at its next request for the workspace."""
    ws = _workspace(server)
    created = _create(server, ws, "hoard.bin")
    assert created.status_code == 200
    hoard = created.json()["upload_id"]
    put = requests.put(created.json()["credentials"][0]["url"], data=b"h" * 6 * MIB, timeout=60)
    assert put.status_code == 200
    answers = []
    for _ in range(40):
        answer = _create(server, ws, "next.bin")
        answers.append(answer.status_code)
        if hoard not in _pending(s3, ws):
            break
    assert hoard not in _pending(s3, ws)  # aborted: its 6 MiB are gone
    assert set(answers) <= {200, 413}
    for status in answers[:-1]:
        assert status == 413  # counted by the other worker while it was pending
    assert keys(s3, BUCKET, f"{ws}/") == []


def test_completion_admits_the_parts_the_client_names_as_listed(
    server: MlflowServer, s3: Any, proxy: FaultProxy
) -> None:
    """The client names the ETag of a 1 MiB part and uploads that part only after the server
    has listed the parts (1 KiB then): refused, nothing assembled; naming it again once it is
    listed is refused by the quota and the upload aborted."""
    ws = _workspace(server)
    created = _create(server, ws, "race.bin").json()
    part_url = created["credentials"][0]["url"]
    assert requests.put(part_url, data=b"s" * 1024, timeout=60).status_code == 200
    big = b"B" * MIB

    def reupload(_request: Request) -> None:
        assert requests.put(part_url, data=big, timeout=60).status_code == 200

    upload_id = created["upload_id"]
    proxy.after_once(lambda r: is_list_parts(r) and r.query["uploadId"] == [upload_id], reupload)
    parts = [{"part_number": 1, "etag": _etag(big)}]
    body = {"path": "race.bin", "upload_id": created["upload_id"], "parts": parts}
    done = _mpu(server, ws, "complete", body)
    assert done.status_code == 400
    assert done.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert done.json()["message"].startswith(
        f"Part 1 of multipart upload '{created['upload_id']}' of s3://{BUCKET}/"
        f"{_key(ws, 'race.bin')} (workspace '{ws}') was not uploaded with ETag"
    )
    assert keys(s3, BUCKET, f"{ws}/") == []
    again = _mpu(server, ws, "complete", body)
    assert again.status_code == 413
    assert f"would hold {MIB} bytes (quota {QUOTA} bytes)" in again.json()["message"]
    assert keys(s3, BUCKET, f"{ws}/") == []
    assert _pending(s3, ws) == []


def test_an_upload_id_of_another_workspace_is_not_completed_or_aborted(
    server: MlflowServer, s3: Any
) -> None:
    victim, attacker = _workspace(server), _workspace(server)
    created = _create(server, victim, "v.bin").json()
    upload_id = created["upload_id"]
    put = requests.put(created["credentials"][0]["url"], data=b"v" * 100, timeout=60)
    parts = [{"part_number": 1, "etag": put.headers["ETag"]}]
    for step, extra in (("complete", {"parts": parts}), ("abort", {})):
        body = {"path": "v.bin", "upload_id": upload_id, **extra}
        answer = _mpu(server, attacker, step, body)
        assert answer.status_code == 404, step
        assert answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert answer.json()["message"] == (
            f"No pending multipart upload '{upload_id}' of s3://{BUCKET}/{_key(attacker, 'v.bin')}"
            f" for workspace '{attacker}' (bucket {BUCKET}): it was completed or aborted "
            "already, or belongs to another file. Start a new upload of this file."
        )
    assert _pending(s3, victim) == [upload_id]  # the victim's upload is untouched
    assert keys(s3, BUCKET, f"{attacker}/") == []
    done = _mpu(
        server, victim, "complete", {"path": "v.bin", "upload_id": upload_id, "parts": parts}
    )
    assert done.status_code == 200
    assert keys(s3, BUCKET, f"{victim}/") == [_key(victim, "v.bin")]


def test_a_part_replaced_after_the_listing_is_measured_after_completion(
    server: MlflowServer, s3: Any, proxy: FaultProxy
) -> None:
    """The client names the small part's ETag and replaces the part with 1 MiB after the
    server listed it. S3 (and moto) then refuse the completion (InvalidPart); a store that
    assembles by part number would build 1 MiB, simulated here by the proxy handing the store
    the new part's ETag: the server measures the object after completion, refuses, and
    removes it."""
    ws = _workspace(server)
    created = _create(server, ws, "swap.bin").json()
    upload_id, part_url = created["upload_id"], created["credentials"][0]["url"]
    small = requests.put(part_url, data=b"s" * 1024, timeout=60).headers["ETag"]
    big = b"B" * MIB

    def reupload(_request: Request) -> None:
        assert requests.put(part_url, data=big, timeout=60).status_code == 200

    def ours(request: Request) -> bool:
        return request.query.get("uploadId") == [upload_id]

    proxy.after_once(lambda r: is_list_parts(r) and ours(r), reupload)
    proxy.rewrite_once(
        lambda r: is_complete(r) and ours(r),
        lambda body: body.replace(small.strip('"').encode(), _etag(big).strip('"').encode()),
    )
    parts = [{"part_number": 1, "etag": small}]
    body = {"path": "swap.bin", "upload_id": upload_id, "parts": parts}
    done = _mpu(server, ws, "complete", body)
    assert done.status_code == 413, done.text
    assert f"would hold {MIB} bytes (quota {QUOTA} bytes)" in done.json()["message"]
    assert keys(s3, BUCKET, f"{ws}/") == []
    assert _pending(s3, ws) == []
