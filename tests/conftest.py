"""Shared fixtures: one moto S3 server and one proxied MLflow server per session.

Tests never reset moto (the MLflow server's experiments point into its buckets); each test uses
its own experiment, so the keys it asserts on are its own.
"""

from __future__ import annotations

import contextlib
import itertools
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from packaging.version import Version

from tests.servers import MOTO_KEY, MOTO_SECRET, Server, start_mlflow, start_moto

ROUTED_BUCKETS = ("root", "team-a-artifacts", "team-b-artifacts", "vision-artifacts")
WORKSPACES = ("team-a", "team-b", "vision-x", "vision-y", "other")
_counter = itertools.count()


def unique(prefix: str) -> str:
    """A name no other test in this session uses."""
    return f"{prefix}-{next(_counter)}"


def routed_config(endpoint: str, **extra: str) -> str:
    """The configuration every integration test server uses."""
    text = f"""
        defaults:
          endpoint_url: {endpoint}
          region: us-east-1
          addressing_style: path
        workspaces:
          team-a:
            url: s3://team-a-artifacts
          team-b:
            url: s3://team-b-artifacts
          "vision-*":
            url: s3://vision-artifacts/{{workspace}}
        unknown_workspaces: {extra.get("unknown", "default")}
    """
    return textwrap.dedent(text)


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("session")


@pytest.fixture(scope="session")
def moto(session_dir: Path) -> Iterator[Server]:
    server = start_moto(session_dir / "moto")
    yield server
    server.stop()


def admin_client(endpoint: str, config: Any = None) -> Any:
    """A boto3 S3 client with moto's admin credentials (``config``: a botocore Config)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key=MOTO_SECRET,
        region_name="us-east-1",
        config=config,
    )


@pytest.fixture(scope="session")
def s3(moto: Server) -> Any:
    """An admin boto3 client on the moto server; the routed buckets exist."""
    client = admin_client(moto.url)
    for bucket in ROUTED_BUCKETS:
        client.create_bucket(Bucket=bucket)
    return client


def keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    """Every key in ``bucket`` under ``prefix``, sorted."""
    out: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.extend(obj["Key"] for obj in page.get("Contents", []))
    return sorted(out)


@pytest.fixture(scope="session")
def routed_config_file(session_dir: Path, moto: Server) -> Path:
    path = session_dir / "ws-artifacts.yaml"
    path.write_text(routed_config(moto.url))
    return path


@pytest.fixture
def use_config(monkeypatch: pytest.MonkeyPatch, routed_config_file: Path, s3: Any) -> Path:
    """This process reads the session's routed configuration, with moto credentials."""
    monkeypatch.setenv("WS_ARTIFACTS_CONFIG", str(routed_config_file))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", MOTO_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", MOTO_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return routed_config_file


@contextlib.contextmanager
def in_workspace(name: str | None) -> Iterator[None]:
    """Run the block as a client of workspace ``name`` (restores the previous one after)."""
    from mlflow.utils.workspace_context import WorkspaceContext

    with WorkspaceContext(name):
        yield


@dataclass
class MlflowServer:
    """A running MLflow server and what it was started with."""

    server: Server
    config: Path

    @property
    def url(self) -> str:
        return self.server.url

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.url)


def _server_env(config: Path) -> dict[str, str]:
    return {
        "WS_ARTIFACTS_CONFIG": str(config),
        "AWS_ACCESS_KEY_ID": MOTO_KEY,
        "AWS_SECRET_ACCESS_KEY": MOTO_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }


PROXIED_ARGS = [
    "--enable-workspaces",
    "--serve-artifacts",
    "--artifacts-destination",
    "ws-s3://root",
]
DIRECT_ARGS = [
    "--enable-workspaces",
    "--no-serve-artifacts",
    "--default-artifact-root",
    "ws-s3://root",
]


@contextlib.contextmanager
def running_server(
    workdir: Path,
    config: Path,
    args: list[str],
    *,
    workers: int = 2,
    workspaces: tuple[str, ...] = WORKSPACES,
) -> Iterator[MlflowServer]:
    """A workspace-enabled ``mlflow server`` on the moto server, its workspaces created."""
    server = start_mlflow(workdir, args=args, env=_server_env(config), workers=workers)
    try:
        wrapped = MlflowServer(server, config)
        client = wrapped.client()
        for name in workspaces:
            client.create_workspace(name)
        yield wrapped
    finally:
        server.stop()


@pytest.fixture(scope="session")
def proxied(session_dir: Path, routed_config_file: Path, s3: Any) -> Iterator[MlflowServer]:
    """``mlflow server --serve-artifacts --artifacts-destination ws-s3://root --workers 2``."""
    with running_server(session_dir / "proxied", routed_config_file, PROXIED_ARGS) as server:
        yield server


@pytest.fixture(scope="session")
def direct(session_dir: Path, routed_config_file: Path, s3: Any) -> Iterator[MlflowServer]:
    """``mlflow server --no-serve-artifacts --default-artifact-root ws-s3://root``."""
    with running_server(session_dir / "direct", routed_config_file, DIRECT_ARGS) as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL server on loopback (Debian's binaries; see tests/postgres.py)."""
    from tests.postgres import start_postgres

    server = start_postgres()
    yield server
    server.stop()


def pytest_configure(config: pytest.Config) -> None:
    """In an overlaid environment (``mlflow`` newer than the ``mlflow-tracing`` it was resolved
    with, see docs/compatibility.md), ignore MLflow's import-time version-mismatch warning, and
    only that one. Where every MLflow package has the same version it stays an error."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        tracing = version("mlflow-tracing")
    except PackageNotFoundError:
        return
    if tracing != version("mlflow"):
        config.addinivalue_line(
            "filterwarnings",
            "ignore:Versions of mlflow .* and child packages mlflow-tracing .* are different"
            ":UserWarning",
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect tests marked ``mlflow_min("X.Y")`` when the installed MLflow is older.

    They are not skipped: the MLflow versions ``./run tests`` covers include one new enough for
    each of them, and a deselected test is not reported as a pass.
    """
    from importlib.metadata import version

    installed = Version(version("mlflow"))
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("mlflow_min")
        too_old = marker is not None and installed < Version(str(marker.args[0]))
        (drop if too_old else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
