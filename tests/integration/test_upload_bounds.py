"""ws_artifacts.serving.bounds in this process against a moto S3 server (one "worker", so the bounds
are exact): presigned URLs holding the headroom, the open-upload limit, completion of exactly
the named parts."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from mlflow.entities.multipart_upload import MultipartUploadPart
from mlflow.exceptions import MlflowException

from tests.integration.test_quota import BUCKET, prefix, repo
from tests.integration.usage_world import pending_uploads, use, write_world
from tests.support.s3 import keys
from tests.support.servers import Server
from tests.support.workspaces import in_workspace, unique
from ws_artifacts.serving import bounds

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, moto: Server, s3: Any) -> Path:
    return write_world(tmp_path_factory.mktemp("bounds"), moto.url, s3)


@pytest.fixture
def config(world: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    use(monkeypatch, world)
    return world


def _put(response: Any, size: int) -> None:
    answer = requests.put(
        response.presigned_url, data=b"p" * size, headers=response.headers, timeout=60
    )
    assert answer.status_code == 200


def test_a_presigned_url_holds_the_headroom_until_its_object_is_seen(config: Path, s3: Any) -> None:
    """Quota 1000 bytes: the first URL holds all 1000; a second is refused until the first
    object (400 bytes) is seen, then granted the 600 left; 700 bytes through it are removed at
    the next look; after both URLs expire the 400 bytes stay counted, and an object that fits
    its grant is kept and held at its size."""
    ws = unique("qb")
    with in_workspace(ws):
        target = repo(ws)
        first = target.create_presigned_upload_url("a.bin", expiration=2)
        with pytest.raises(MlflowException, match=r"would hold 1001 bytes") as err:
            target.create_presigned_upload_url("b.bin", expiration=2)
        assert err.value.error_code == "RESOURCE_EXHAUSTED"
        assert (
            "and 1000 bytes in 1 objects are held for presigned upload URLs and pending "
            "multipart uploads (given back when they are used or expire)" in err.value.message
        )
        _put(first, 400)
        second = target.create_presigned_upload_url("b.bin", expiration=2)
        _put(second, 700)  # beyond its 600-byte grant
        with pytest.raises(MlflowException, match=r"would hold 1001 bytes"):
            target.create_presigned_upload_url("c.bin", expiration=2)  # the look removes b
        assert keys(s3, BUCKET, prefix(ws)) == [prefix(ws) + "a.bin"]
        deadline = time.monotonic() + 2 + bounds.RECHECK_SECONDS + 30
        while time.monotonic() < deadline:  # the expiry checks give back the holds
            try:
                third = target.create_presigned_upload_url("c.bin", expiration=60)
                break
            except MlflowException:
                time.sleep(0.2)
        else:
            pytest.fail("the holds were not given back after the URLs expired")
        _put(third, 600)  # exactly what is left: a.bin's 400 bytes stayed counted
        with pytest.raises(MlflowException) as err:  # the look keeps c.bin, held at its size
            target.create_presigned_upload_url("d.bin", expiration=60)
        assert (
            "would hold 1001 bytes (quota 1000 bytes) at s3://quota-artifacts/"
            f"{ws}/workspaces/{ws}; it holds 400 bytes in 1 objects now, and 600 bytes in 1 "
            "objects are held for presigned upload URLs" in err.value.message
        )
    assert keys(s3, BUCKET, prefix(ws)) == [prefix(ws) + n for n in ("a.bin", "c.bin")]


def test_open_uploads_per_workspace_are_limited(config: Path, s3: Any) -> None:
    ws = unique("qm")
    with in_workspace(ws):
        target = repo(ws)
        created = [target.create_multipart_upload(f"f{i}", num_parts=1) for i in range(16)]
        with pytest.raises(MlflowException) as err:
            target.create_multipart_upload("f16", num_parts=1)
        assert err.value.error_code == "INVALID_PARAMETER_VALUE"
        assert err.value.message == (
            f"Workspace '{ws}' has 16 multipart uploads outstanding at "
            f"s3://{BUCKET}/{prefix(ws)}f16 on this server worker, the most it allows (16); "
            "use or finish them first, or wait until they expire."
        )
        target.abort_multipart_upload("f0", created[0].upload_id)
        target.create_multipart_upload("f16", num_parts=1)
        for i, upload in enumerate(created[1:], start=1):
            target.abort_multipart_upload(f"f{i}", upload.upload_id)
    assert pending_uploads(s3, BUCKET, prefix(ws)) == [prefix(ws) + "f16"]


def test_completion_counts_only_the_named_parts(config: Path, s3: Any) -> None:
    """Two parts uploaded (5 MiB and 3 MiB), one named: the object and the count are 5 MiB,
    so 7 MiB more still fit the 12 MiB quota exactly."""
    mib = 1024 * 1024
    ws = unique("qm")
    with in_workspace(ws):
        target = repo(ws)
        created = target.create_multipart_upload("two.bin", num_parts=2)
        etags = []
        for credential, size in zip(created.credentials, [5 * mib, 3 * mib], strict=True):
            put = requests.put(credential.url, data=b"p" * size, timeout=60)
            etags.append(put.headers["ETag"])
        target.complete_multipart_upload(
            "two.bin", created.upload_id, [MultipartUploadPart(1, etags[0])]
        )
        target.log_artifact_from_stream(io.BytesIO(b"r" * 7 * mib), "rest.bin")
        with pytest.raises(MlflowException, match=rf"would hold {12 * mib + 1} bytes"):
            target.log_artifact_from_stream(io.BytesIO(b"!"), "one.bin")
    assert s3.head_object(Bucket=BUCKET, Key=prefix(ws) + "two.bin")["ContentLength"] == 5 * mib


def test_outstanding_presigned_urls_per_workspace_are_limited(config: Path, s3: Any) -> None:
    """Sixteen URLs whose objects were seen (each hold shrunk to its 10 bytes) are the most a
    worker keeps outstanding for a workspace; the seventeenth is refused, naming the limit."""
    ws = unique("qb")
    with in_workspace(ws):
        target = repo(ws)
        for i in range(bounds.MAX_HELD_URLS):
            _put(target.create_presigned_upload_url(f"u{i}.bin", expiration=600), 10)
        with pytest.raises(MlflowException) as err:
            target.create_presigned_upload_url("u16.bin", expiration=600)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    assert err.value.message == (
        f"Workspace '{ws}' has 16 presigned upload URLs outstanding at "
        f"s3://{BUCKET}/{prefix(ws)}u16.bin on this server worker, the most it allows (16); use "
        "or finish them first, or wait until they expire."
    )
    assert len(keys(s3, BUCKET, prefix(ws))) == 16
