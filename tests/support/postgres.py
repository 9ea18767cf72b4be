"""A real PostgreSQL server on loopback for tests and benchmarks.

The binaries are Debian's (``/usr/lib/postgresql/<version>/bin``, installed by ``./run`` when
missing) or any ``initdb``/``postgres`` on PATH. The cluster lives in its own temporary
directory; its unix socket too. PostgreSQL refuses to run as root, so under root the cluster
belongs to the ``postgres`` user (Debian's package creates it) and both programs run through
``runuser``. Authentication is ``trust`` on 127.0.0.1 only: the server is a test fixture.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import free_port, stop_group

__all__ = ["Postgres", "find_bin_dir", "start_postgres"]

SUPERUSER = "mlflow"


def find_bin_dir() -> Path:
    """The directory holding ``initdb`` and ``postgres`` (newest Debian version first)."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("postgres"):
        return Path(on_path).parent
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL's initdb was not found: install Debian's package "
            "(apt-get install -y postgresql; ./run tests does it when missing)."
        )
    return Path(found[-1]).parent


@dataclass
class Postgres:
    """A running PostgreSQL cluster."""

    port: int
    root: Path
    proc: subprocess.Popen[bytes]

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def uri(self, database: str) -> str:
        """The SQLAlchemy URI MLflow takes (SQLAlchemy 2.1 picks psycopg 3 for it)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create ``name`` and return its URI."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        return self.uri(name)

    def query(self, database: str, sql: str) -> list[tuple[object, ...]]:
        """Run one query and return its rows."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname=database
        ) as conn:
            return list(conn.execute(sql.encode()).fetchall())

    def stop(self) -> None:
        """Fast shutdown (SIGINT: clients are disconnected), then remove the cluster."""
        stop_group(self.proc, signal.SIGINT, timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


def _as_owner(cmd: list[str]) -> tuple[list[str], int | None]:
    """``cmd`` run as the cluster's owner: ``postgres`` under root, else ourselves."""
    if os.geteuid() != 0:
        return cmd, None
    try:
        uid = pwd.getpwnam("postgres").pw_uid
    except KeyError as err:
        raise RuntimeError(
            "Running as root, PostgreSQL needs a non-root user: create one named "
            "'postgres' (Debian's postgresql package does)."
        ) from err
    return ["runuser", "-u", "postgres", "--", *cmd], uid


def start_postgres(timeout: float = 60) -> Postgres:
    """initdb a new cluster in a temporary directory and start it on a free loopback port."""
    bin_dir = find_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="ws-artifacts-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    _initdb(bin_dir, root, data, sockets)
    port = free_port()
    cmd, _ = _as_owner(
        [
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(sockets),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",  # a throw-away test cluster
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ]
    )
    log = (root / "postgres.log").open("wb")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True
    )
    server = Postgres(port=port, root=root, proc=proc)
    _wait_ready(server, timeout)
    return server


def _initdb(bin_dir: Path, root: Path, data: Path, sockets: Path) -> None:
    """A new cluster in ``data``, owned by whoever will run it (removed again on failure)."""
    _, uid = _as_owner([])
    if uid is not None:
        for path in (root, sockets):
            os.chown(path, uid, -1)
    initdb, _ = _as_owner(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8"]
    )
    result = subprocess.run(initdb, capture_output=True, check=False, cwd=root)
    if result.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({result.returncode}):\n{result.stderr.decode()}")


def _wait_ready(server: Postgres, timeout: float) -> None:
    """Until ``server`` answers a query; stopped (and its cluster removed) if it never does."""
    proc = server.proc
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            text = server.log.read_text(errors="replace")
            server.stop()
            raise RuntimeError(f"postgres exited ({proc.returncode}):\n{text}")
        try:
            server.query("postgres", "SELECT 1")
            return
        except Exception:  # not accepting connections yet: retry until the deadline
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.2)
