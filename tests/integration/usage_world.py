"""The configuration and helpers the usage and quota tests share (routes of their own)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.config import ConfigFile
from tests.support.servers import server_env

BUCKETS = ("usage-artifacts", "quota-artifacts")
MIB = 1024 * 1024


def usage_config(endpoint: str, fs_root: Path, *, remeasure: float = 3600) -> str:
    """Routes for usage counts (uc-*), byte quotas (qb-*), object quotas (qo-*), multipart-sized
    quotas (qm-*) and fsspec routes (uf-* on local files, um-* in memory)."""

    def quota(**limit: Any) -> dict[str, Any]:
        return {**limit, "remeasure_seconds": remeasure}

    config = ConfigFile(endpoint).route("uc-*", "s3://usage-artifacts/{workspace}")
    config.route("qb-*", "s3://quota-artifacts/{workspace}", quota=quota(max_bytes=1000))
    config.route("qo-*", "s3://quota-artifacts/{workspace}", quota=quota(max_objects=4))
    config.route("qm-*", "s3://quota-artifacts/{workspace}", quota=quota(max_bytes="12MiB"))
    config.route("uf-*", f"file://{fs_root}/{{workspace}}", quota=quota(max_bytes=1000))
    config.route("um-*", "memory://usage-mem/{workspace}")
    return config.text()


def write_world(directory: Path, endpoint: str, s3: Any) -> Path:
    """The buckets, and ``usage_config`` written in ``directory`` (its fsspec files there)."""
    make_buckets(s3)
    path = directory / "usage.yaml"
    path.write_text(usage_config(endpoint, directory / "files"))
    return path


def make_buckets(s3: Any) -> None:
    for bucket in BUCKETS:
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)


def use(monkeypatch: pytest.MonkeyPatch, config: Path) -> None:
    """This process reads ``config`` with moto credentials."""
    for name, value in server_env(config).items():
        monkeypatch.setenv(name, value)
    for name in ("_MLFLOW_SERVER_ARTIFACT_DESTINATION", "_MLFLOW_SERVER_ARTIFACT_ROOT"):
        monkeypatch.delenv(name, raising=False)


def write(tmp: Path, name: str, size: int, fill: bytes = b"x") -> str:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((fill * size)[:size])
    return os.fspath(path)


def pending_uploads(s3: Any, bucket: str, prefix: str) -> list[str]:
    listed = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return [u["Key"] for u in listed.get("Uploads", [])]
