"""Shared fixtures: one moto S3 server and one proxied MLflow server per session.

Tests never reset moto (the MLflow server's experiments point into its buckets); each test uses
its own experiment, so the keys it asserts on are its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from tests.support.config import routed
from tests.support.s3 import ROUTED_BUCKETS, admin_client
from tests.support.servers import (
    DIRECT_ARGS,
    PROXIED_ARGS,
    MlflowServer,
    Server,
    running_server,
    server_env,
    start_moto,
)

#: Test directories whose every test talks to real processes (marked ``integration``).
INTEGRATION_DIRS = ("integration",)


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("session")


@pytest.fixture(scope="session")
def moto(session_dir: Path) -> Iterator[Server]:
    server = start_moto(session_dir / "moto")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3(moto: Server) -> Any:
    """An admin boto3 client on the moto server; the routed buckets exist."""
    client = admin_client(moto.url)
    for bucket in ROUTED_BUCKETS:
        client.create_bucket(Bucket=bucket)
    return client


@pytest.fixture(scope="session")
def routed_config_file(session_dir: Path, moto: Server) -> Path:
    path = session_dir / "ws-artifacts.yaml"
    return routed(moto.url).write(path)


@pytest.fixture
def use_config(monkeypatch: pytest.MonkeyPatch, routed_config_file: Path, s3: Any) -> Path:
    """This process reads the session's routed configuration, with moto credentials."""
    for name, value in server_env(routed_config_file).items():
        monkeypatch.setenv(name, value)
    return routed_config_file


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
    """A real PostgreSQL server on loopback (Debian's binaries; see tests/support/postgres.py)."""
    from tests.support.postgres import start_postgres

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


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration ``integration`` (before ``-m`` selects), and
    deselect tests marked ``mlflow_min("X.Y")`` when the installed MLflow is older.

    They are not skipped: the MLflow versions ``./run tests`` covers include one new enough for
    each of them, and a deselected test is not reported as a pass.
    """
    from importlib.metadata import version

    tests_dir = Path(__file__).parent
    for item in items:
        parts = (
            item.path.relative_to(tests_dir).parts if item.path.is_relative_to(tests_dir) else ()
        )
        if parts and parts[0] in INTEGRATION_DIRS:
            item.add_marker(pytest.mark.integration)
    installed = Version(version("mlflow"))
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("mlflow_min")
        too_old = marker is not None and installed < Version(str(marker.args[0]))
        (drop if too_old else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
