"""Start real servers on loopback for tests and benchmarks: moto's S3, ``mlflow server`` and
``ws-artifacts server`` (and run the ws-artifacts CLI as an operator does).

The benchmarks keep their own process registry and use the command and environment builders
(:func:`moto_command`, :func:`moto_env`, :func:`mlflow_command`, :func:`mlflow_env`). Each
server is its own process, started with an explicit environment (no AWS_* or MLFLOW_* variables
leak in from the caller), and stopped with its whole process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.polling import wait_until
from tests.support.workspaces import WORKSPACES

__all__ = [
    "AUTH_INI",
    "DIRECT_ARGS",
    "MOTO_CREDENTIALS",
    "MOTO_KEY",
    "MOTO_SECRET",
    "PROXIED_ARGS",
    "WS_ARTIFACTS",
    "MlflowServer",
    "Server",
    "clean_env",
    "free_port",
    "mlflow_command",
    "mlflow_env",
    "moto_command",
    "moto_env",
    "run_ws_artifacts",
    "running_server",
    "server_env",
    "start_mlflow",
    "start_moto",
    "start_ws_artifacts",
    "stop_group",
    "wait_http",
]

#: Credentials moto accepts when IAM enforcement is off.
MOTO_KEY = "testing-key"
MOTO_SECRET = "testing-secret"
#: moto's credentials as environment variables.
MOTO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": MOTO_KEY, "AWS_SECRET_ACCESS_KEY": MOTO_SECRET}
#: The ``ws-artifacts`` command of this interpreter's environment.
WS_ARTIFACTS = str(Path(sys.executable).parent / "ws-artifacts")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without AWS_*, MLFLOW_* and WS_ARTIFACTS_* variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "MLFLOW_", "WS_ARTIFACTS_", "_MLFLOW"))
    }
    env.update(extra)
    return env


def stop_group(proc: subprocess.Popen[bytes], sig: int, *, timeout: float) -> None:
    """Send ``sig`` to ``proc``'s process group (started with ``start_new_session``), wait up
    to ``timeout`` seconds, then SIGKILL the group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@dataclass
class Server:
    """A started server process."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        """Stop the process group (uvicorn workers included)."""
        stop_group(self.proc, signal.SIGTERM, timeout=15)

    def log_text(self) -> str:
        """What the process printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_logged(
        self,
        text: str,
        *,
        times: int = 1,
        poke: Callable[[], object] | None = None,
        timeout: float = 60,
    ) -> None:
        """Wait until ``text`` is in the log ``times`` times (e.g. once per worker); ``poke``
        (a request) is made between looks, for what a worker only does on a request."""

        def logged() -> bool:
            if self.log_text().count(text) >= times:
                return True
            if poke is not None:
                poke()
            return False

        wait_until(
            logged,
            timeout=timeout,
            message=lambda: f"{text!r} not logged {times} time(s):\n{self.log_text()}",
            every=0.1,
        )


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    """Wait until ``url`` answers (any HTTP status), or fail with the process's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited ({proc.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback only
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s:\n{log.read_text()}")


def _spawn(cmd: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(
        cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
    )


def moto_command(port: int) -> list[str]:
    """The command line of moto's S3 server on 127.0.0.1:``port``."""
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def moto_env(**extra: str) -> dict[str, str]:
    """moto's environment: the caller's without AWS_*/MLFLOW_*/WS_ARTIFACTS_*, us-east-1."""
    return clean_env(AWS_DEFAULT_REGION="us-east-1", **extra)


def start_moto(workdir: Path, *, no_auth_actions: int | None = None) -> Server:
    """Start ``moto_server`` on 127.0.0.1; with ``no_auth_actions``, IAM is enforced after
    that many unauthenticated requests (moto's INITIAL_NO_AUTH_ACTION_COUNT)."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    env = moto_env()
    if no_auth_actions is not None:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(no_auth_actions)
    log = workdir / f"moto-{port}.log"
    proc = _spawn(moto_command(port), env, log, workdir)
    server = Server(url=f"http://127.0.0.1:{port}", proc=proc, log=log)
    with _stopped_on_failure(server):
        wait_http(server.url + "/moto-api/", proc, log)
    return server


def mlflow_command(
    command: list[str] | None, *, backend_store_uri: str, port: int, workers: int
) -> list[str]:
    """``command`` (default ``python -m mlflow server``) on 127.0.0.1:``port`` with its
    tracking store and uvicorn workers; the caller appends the artifact options."""
    return [
        *(command or [sys.executable, "-m", "mlflow", "server"]),
        "--backend-store-uri",
        backend_store_uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def mlflow_env(env: dict[str, str]) -> dict[str, str]:
    """A server's environment: the caller's without AWS_*/MLFLOW_*/WS_ARTIFACTS_*, plus ``env``.

    MLflow's job runner (and its huey consumers) is off: ~7 extra processes per server that
    artifact tests and benchmarks need none of.
    """
    return clean_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", **env)


def start_mlflow(
    workdir: Path,
    *,
    args: list[str],
    env: dict[str, str],
    workers: int = 2,
    command: list[str] | None = None,
    backend_store_uri: str | None = None,
    startup_timeout: float = 120,
) -> Server:
    """Start ``mlflow server --enable-workspaces`` on SQLite in ``workdir``.

    Args:
        workdir: Where the database and the log go.
        args: Artifact options, e.g. ``["--serve-artifacts", "--artifacts-destination", ...]``.
        env: Extra environment (WS_ARTIFACTS_CONFIG, AWS credentials...).
        workers: uvicorn workers.
        command: Another launcher instead of ``python -m mlflow server`` (e.g. ws-artifacts).
        backend_store_uri: Another tracking store (e.g. ``postgresql://...``) instead of SQLite.
        startup_timeout: Seconds to wait for ``/health`` (longer for basic-auth's bootstrap).
    """
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "mlflow.db"
    store = backend_store_uri or f"sqlite:///{db}"
    cmd = [*mlflow_command(command, backend_store_uri=store, port=port, workers=workers), *args]
    log = workdir / f"mlflow-{port}.log"
    proc = _spawn(cmd, mlflow_env(env), log, workdir)
    server = Server(url=f"http://127.0.0.1:{port}", proc=proc, log=log)
    with _stopped_on_failure(server):
        wait_http(server.url + "/health", proc, log, timeout=startup_timeout)
        # Clients probe /server-info first; it is also the request that builds each worker's
        # cached artifact repository. Call it as a client would, on every worker.
        for _ in range(2 * workers):
            info = server.url + "/api/3.0/mlflow/server-info"
            try:
                with urllib.request.urlopen(info, timeout=120):  # noqa: S310 - loopback only
                    pass
            except urllib.error.HTTPError:
                pass  # an answer all the same (MLflow 3.10's basic-auth guards this route)
    return server


def start_ws_artifacts(
    workdir: Path,
    config: Path,
    destination: str,
    *,
    options: tuple[str, ...] = (),
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    startup_timeout: float = 600,
) -> Server:
    """``ws-artifacts server --config CONFIG OPTIONS`` with 2 workers on moto, proxied to
    ``destination`` (``args``: more server options; ``env``: default moto's credentials)."""
    return start_mlflow(
        workdir,
        command=[WS_ARTIFACTS, "server", "--config", str(config), *options],
        args=["--artifacts-destination", destination, *args],
        env=MOTO_CREDENTIALS if env is None else env,
        workers=2,
        startup_timeout=startup_timeout,
    )


def run_ws_artifacts(
    config: Path, *args: str, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    """``ws-artifacts ARGS`` as an operator runs it: ``config`` and moto's credentials are all
    of its environment that is not the caller's."""
    env = clean_env(
        WS_ARTIFACTS_CONFIG=str(config),
        AWS_DEFAULT_REGION="us-east-1",
        COLUMNS=str(columns),
        **MOTO_CREDENTIALS,
    )
    return subprocess.run(
        [WS_ARTIFACTS, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,  # a shared 2-core machine can be very slow
        check=False,
    )


@contextlib.contextmanager
def _stopped_on_failure(server: Server) -> Iterator[None]:
    """Stop the process if starting it fails (time-out, Ctrl-C), then re-raise."""
    try:
        yield
    except BaseException:
        server.stop()
        raise


#: MLflow's basic-auth configuration (``mlflow server --app-name basic-auth``), to format with
#: ``db`` (its user database) and ``password`` (the admin's).
AUTH_INI = """
[mlflow]
default_permission = READ
database_uri = sqlite:///{db}
admin_username = admin
admin_password = {password}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
"""


def server_env(config: Path) -> dict[str, str]:
    """The environment of a server reading ``config`` with moto's credentials."""
    return {
        "WS_ARTIFACTS_CONFIG": str(config),
        "AWS_ACCESS_KEY_ID": MOTO_KEY,
        "AWS_SECRET_ACCESS_KEY": MOTO_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }


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
    env: dict[str, str] | None = None,
    startup_timeout: float = 120,
) -> Iterator[MlflowServer]:
    """A workspace-enabled ``mlflow server`` on the moto server, its workspaces created
    (``env``: its environment instead of :func:`server_env`)."""
    server = start_mlflow(
        workdir,
        args=args,
        env=server_env(config) if env is None else env,
        workers=workers,
        startup_timeout=startup_timeout,
    )
    try:
        wrapped = MlflowServer(server, config)
        client = wrapped.client()
        for name in workspaces:
            client.create_workspace(name)
        yield wrapped
    finally:
        server.stop()
