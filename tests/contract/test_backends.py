"""The repository contract, run for every backend: S3 (boto3) and s3fs against the session's
moto server, the local file system, and fsspec's memory file system."""

from __future__ import annotations

import dataclasses
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import fsspec
import pytest
import yaml

from tests.contract.base import RUN, RepositoryContract, Rig
from tests.contract.storage import (
    KeyContract,
    StorageContract,
    WithDirectTransfers,
    WithoutDirectTransfers,
)
from tests.support.s3 import keys
from tests.support.servers import MOTO_KEY, MOTO_SECRET, Server
from tests.support.workspaces import in_workspace, unique
from ws_artifacts.storage.base import Capability

MIB = 1024 * 1024
SMALL_PARTS = {"multipart_threshold": 5 * MIB, "part_size": 5 * MIB}


class Spools(list[Any]):
    """Every temporary file made while installed, and the most open at once."""

    most_open = 0


@pytest.fixture
def spools(monkeypatch: pytest.MonkeyPatch) -> Spools:
    made = Spools()
    real = tempfile.TemporaryFile

    def tracked(*args: Any, **kwargs: Any) -> Any:
        made.append(real(*args, **kwargs))
        made.most_open = max(made.most_open, sum(not f.closed for f in made))
        return made[-1]

    monkeypatch.setattr(tempfile, "TemporaryFile", tracked)
    return made


def _use(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_data: dict[str, Any]) -> None:
    config = tmp_path / "ws-artifacts.yaml"
    config.write_text(yaml.safe_dump(config_data))
    monkeypatch.setenv("WS_ARTIFACTS_CONFIG", str(config))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", MOTO_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", MOTO_SECRET)


def _s3_rig(s3: Any, prefix: str) -> Rig:
    def stored() -> list[str]:
        return [k.removeprefix(prefix + "/") for k in keys(s3, "team-a-artifacts", prefix + "/")]

    def elsewhere() -> list[str]:
        return keys(s3, "team-b-artifacts", prefix) + keys(s3, "root", prefix)

    def pending() -> list[str]:
        uploads = s3.list_multipart_uploads(Bucket="team-a-artifacts", Prefix=prefix)
        return [u["Key"] for u in uploads.get("Uploads", [])]

    return Rig(f"ws-s3://root/{prefix}", stored, elsewhere, pending)


class TestS3Contract(RepositoryContract, StorageContract, KeyContract, WithDirectTransfers):
    @pytest.fixture
    def rig(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, moto: Server, s3: Any) -> Rig:
        prefix = unique("contract")
        _use(
            monkeypatch,
            tmp_path,
            {
                "defaults": {
                    "endpoint_url": moto.url,
                    "region": "us-east-1",
                    "transfer": {**SMALL_PARTS, "max_concurrency": 4},
                },
                "workspaces": {
                    "team-a": {"url": f"s3://team-a-artifacts/{prefix}"},
                    "team-b": {"url": f"s3://team-b-artifacts/{prefix}"},
                },
            },
        )
        return dataclasses.replace(_s3_rig(s3, prefix), capabilities=frozenset(Capability))

    @pytest.mark.parametrize(
        ("size", "etag_parts"),
        [(2 * MIB - 1, None), (2 * MIB, None), (5 * MIB, 1), (5 * MIB + 1, 2), (21 * MIB, 5)],
        # a stream of exactly one part is only known to end after it: a one-part upload
        ids=["memory", "spooled-one-put", "exactly-one-part", "two-parts", "five-parts"],
    )
    def test_streams_are_spooled_part_by_part_and_the_spools_released(
        self, rig: Rig, s3: Any, spools: Spools, size: int, etag_parts: int | None
    ) -> None:
        """A stream over 2 MiB goes through temporary files, one 5 MiB part each, never more
        than parts_in_flight (4) + 1 at once, every one closed (so deleted) at the end."""
        data = os.urandom(size)
        with in_workspace("team-a"):
            self.repo(rig).log_artifact_from_stream(io.BytesIO(data), "s.bin", "st")
        key = f"{rig.destination.removeprefix('ws-s3://root/')}/{RUN}/st/s.bin"
        head = s3.head_object(Bucket="team-a-artifacts", Key=key)
        got = s3.get_object(Bucket="team-a-artifacts", Key=key)["Body"].read()
        assert got == data
        etag = head["ETag"].strip('"')
        assert (int(etag.split("-")[1]) if "-" in etag else None) == etag_parts
        # one spool per part; a stream of whole parts also opens one that stays empty
        expected = 0 if size < 2 * MIB else size // (5 * MIB) + 1
        assert len(spools) == expected
        assert all(f.closed for f in spools)
        assert spools.most_open <= 5
        assert rig.pending_uploads() == []

    def test_a_stream_that_fails_midway_releases_its_spools_and_stores_nothing(
        self, rig: Rig, spools: Spools
    ) -> None:
        class Cut(io.RawIOBase):
            sent = 0

            def readinto(self, buffer: Any) -> int:
                if self.sent >= 12 * MIB:
                    raise ConnectionResetError("client went away")
                n = min(len(buffer), 64 * 1024)
                buffer[:n] = b"x" * n
                self.sent += n
                return n

        with in_workspace("team-a"), pytest.raises(ConnectionResetError, match="went away"):
            self.repo(rig).log_artifact_from_stream(Cut(), "cut.bin", "st")
        assert len(spools) == 3  # parts 1 and 2 went up; part 3 was being read
        assert all(f.closed for f in spools)
        assert rig.stored() == []
        assert rig.pending_uploads() == []


class TestS3fsContract(RepositoryContract, StorageContract, KeyContract, WithoutDirectTransfers):
    @pytest.fixture
    def rig(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, moto: Server, s3: Any) -> Rig:
        prefix = unique("s3fs")
        _use(
            monkeypatch,
            tmp_path,
            {
                "defaults": {
                    "endpoint_url": moto.url,
                    "region": "us-east-1",
                    "credentials": {"access_key_id": MOTO_KEY, "secret_access_key": MOTO_SECRET},
                },
                "workspaces": {
                    "team-a": {"url": f"s3://team-a-artifacts/{prefix}", "backend": "fsspec"},
                    "team-b": {"url": f"s3://team-b-artifacts/{prefix}", "backend": "fsspec"},
                },
            },
        )
        fsspec.filesystem("s3").clear_instance_cache()
        return _s3_rig(s3, prefix)


def _tree(root: Path) -> list[str]:
    if not root.exists():
        return []
    return sorted(
        os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
        for d, _, files in os.walk(root)
        for f in files
    )


class TestLocalFileContract(
    RepositoryContract, StorageContract, KeyContract, WithoutDirectTransfers
):
    @pytest.fixture
    def rig(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Rig:
        stores = tmp_path / "stores"
        _use(
            monkeypatch,
            tmp_path,
            {
                "workspaces": {
                    "team-a": {"url": f"file://{stores}/team-a"},
                    "team-b": {"url": f"file://{stores}/team-b"},
                }
            },
        )
        return Rig(
            f"ws-file://{stores}/destination",
            lambda: _tree(stores / "team-a"),
            lambda: _tree(stores / "team-b") + _tree(stores / "destination"),
        )


class TestMemoryContract(RepositoryContract, StorageContract, KeyContract, WithoutDirectTransfers):
    @pytest.fixture
    def rig(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Rig:
        name = unique("mem")
        _use(
            monkeypatch,
            tmp_path,
            {
                "workspaces": {
                    "team-a": {"url": f"memory://{name}/team-a"},
                    "team-b": {"url": f"memory://{name}/team-b"},
                }
            },
        )
        fs = fsspec.filesystem("memory")

        def files(root: str) -> list[str]:
            if not fs.exists(root):
                return []
            return sorted(p.removeprefix(root + "/") for p in fs.find(root))

        return Rig(
            f"ws-memory://{name}/destination",
            lambda: files(f"/{name}/team-a"),
            lambda: files(f"/{name}/team-b") + files(f"/{name}/destination"),
        )


def test_s3fs_route_reads_static_keys_from_files_and_refuses_roles(tmp_path: Path) -> None:
    from ws_artifacts.core.errors import CredentialsError
    from ws_artifacts.core.loading import parse_config
    from ws_artifacts.core.routing import Router
    from ws_artifacts.storage.fs.backend import FsspecBackend

    (tmp_path / "key").write_text("file-key\n")
    (tmp_path / "secret").write_text("file-secret\n")
    files = {
        "access_key_id_file": str(tmp_path / "key"),
        "secret_access_key_file": str(tmp_path / "secret"),
    }
    role = {"role_arn": "arn:aws:iam::123456789012:role/r"}
    config = parse_config(
        {
            "workspaces": {
                "team-a": {"url": "s3://bucket-a", "backend": "fsspec", "credentials": files},
                "team-b": {"url": "s3://bucket-b", "backend": "fsspec", "credentials": role},
            }
        }
    )
    router = Router(config, "s3://root")
    backend = FsspecBackend(router.route_for("team-a"))
    assert (backend.fs.key, backend.fs.secret) == ("file-key", "file-secret")
    with pytest.raises(CredentialsError, match="backend: fsspec with role_arn"):
        FsspecBackend(router.route_for("team-b"))
