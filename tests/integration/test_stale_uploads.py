"""Multipart uploads a killed server left behind are aborted when the same key is written again.

Against the session's moto server, through MLflow's own door (``get_artifact_repository``).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.entities.multipart_upload import MultipartUploadPart
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from tests.support.servers import MOTO_KEY, MOTO_SECRET, Server
from tests.support.workspaces import in_workspace, unique

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
RUN = "workspaces/team-a/7/run1/artifacts"
BUCKET = "team-a-artifacts"


@pytest.fixture
def prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, moto: Server, s3: Any) -> str:
    """team-a routed to its own prefix of team-a-artifacts, with 5 MiB parts."""
    prefix = unique("stale")
    config = tmp_path / "ws-artifacts.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "defaults": {
                    "endpoint_url": moto.url,
                    "region": "us-east-1",
                    "transfer": {"multipart_threshold": 5 * MIB, "part_size": 5 * MIB},
                },
                "workspaces": {"team-a": {"url": f"s3://{BUCKET}/{prefix}"}},
            }
        )
    )
    monkeypatch.setenv("WS_ARTIFACTS_CONFIG", str(config))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", MOTO_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", MOTO_SECRET)
    return prefix


def _pending(s3: Any, prefix: str) -> list[tuple[str, str]]:
    uploads = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", [])
    return sorted((u["Key"], u["UploadId"]) for u in uploads)


def _abandon(s3: Any, key: str) -> str:
    """An upload with one part and no completion: what a killed server leaves."""
    upload_id = str(s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"])
    s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x" * MIB)
    return upload_id


def _repo() -> Any:
    return get_artifact_repository(f"ws-s3://root/{RUN}")


@pytest.fixture
def key(prefix: str) -> str:
    return f"{prefix}/{RUN}/model.bin"


@pytest.fixture
def neighbours(s3: Any, key: str) -> Iterator[list[tuple[str, str]]]:
    """Abandoned uploads of other keys that share K's prefix: never touched."""
    others = [(k, _abandon(s3, k)) for k in (key + ".bak", key + "/child")]
    yield sorted(others)
    for k, upload_id in others:
        s3.abort_multipart_upload(Bucket=BUCKET, Key=k, UploadId=upload_id)


def test_a_multipart_write_aborts_older_uploads_of_exactly_its_key(
    s3: Any, prefix: str, key: str, neighbours: list[tuple[str, str]], tmp_path: Path
) -> None:
    _abandon(s3, key)
    _abandon(s3, key)
    data = os.urandom(11 * MIB)  # three parts
    (tmp_path / "model.bin").write_bytes(data)
    with in_workspace("team-a"):
        _repo().log_artifact(str(tmp_path / "model.bin"))
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data
    assert _pending(s3, prefix) == neighbours


def test_a_streamed_write_aborts_older_uploads_of_its_key(
    s3: Any, prefix: str, key: str, neighbours: list[tuple[str, str]]
) -> None:
    _abandon(s3, key)
    data = os.urandom(6 * MIB)
    with in_workspace("team-a"):
        _repo().log_artifact_from_stream(io.BytesIO(data), "model.bin")
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data
    assert _pending(s3, prefix) == neighbours


def test_a_proxied_completion_aborts_older_uploads_but_not_newer_ones(
    s3: Any, prefix: str, key: str, neighbours: list[tuple[str, str]]
) -> None:
    older = _abandon(s3, key)
    with in_workspace("team-a"):
        repo = _repo()
        created = repo.create_multipart_upload("model.bin", num_parts=1)
        newer = _abandon(s3, key)  # began after ours: a concurrent writer, left alone
        etag = s3.upload_part(
            Bucket=BUCKET, Key=key, UploadId=created.upload_id, PartNumber=1, Body=b"whole"
        )["ETag"]
        repo.complete_multipart_upload(
            "model.bin", created.upload_id, [MultipartUploadPart(part_number=1, etag=etag)]
        )
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"whole"
    assert older not in [u for _, u in _pending(s3, prefix)]
    assert _pending(s3, prefix) == sorted([*neighbours, (key, newer)])
    s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=newer)


def test_a_listing_that_fails_does_not_fail_the_write(
    s3: Any, prefix: str, key: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without s3:ListBucketMultipartUploads the write succeeds; the stale upload is left to
    the bucket's lifecycle rule, and the log says so."""
    from botocore.exceptions import ClientError

    from ws_artifacts.storage.registry import backend_for

    stale = _abandon(s3, key)
    data = os.urandom(6 * MIB)
    (tmp_path / "model.bin").write_bytes(data)

    def denied(**_: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "AccessDenied", "Message": "no"}}, "ListMultipartUploads"
        )

    with in_workspace("team-a"):
        repo = _repo()
        target = repo._resolve("model.bin", "write")
        client = backend_for(target.route).client(target)  # type: ignore[attr-defined]
        client.meta.events.register("before-call.s3.ListMultipartUploads", denied)
        try:
            with caplog.at_level("INFO", logger="ws_artifacts.storage.s3.backend"):
                repo.log_artifact(str(tmp_path / "model.bin"))
        finally:
            client.meta.events.unregister("before-call.s3.ListMultipartUploads", denied)
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data
    assert _pending(s3, prefix) == [(key, stale)]
    assert "cannot list pending uploads for workspace=team-a bucket=team-a-artifacts" in (
        caplog.text
    )
    assert "(AccessDenied); stale uploads are left to the bucket's lifecycle rule" in caplog.text
    s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=stale)
