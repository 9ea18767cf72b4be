"""Run ``mlflow server`` as a child and say, in one line, when every worker accepts requests.

uvicorn prints ``Uvicorn running on ...`` as soon as its supervisor binds the socket, long
before the workers have imported MLflow; a client that probes ``/server-info`` then (MLflow's
client waits 3 s) can time out. So ``ws-artifacts server`` does not exec ``mlflow server`` but
supervises it:

* it gives the server a fresh directory in ``WS_ARTIFACTS_READY_DIR``; the ``ws-artifacts``
  app in every worker writes a file named after its process id there once its application
  startup has completed and its event loop serves the listening socket
  (:func:`ws_artifacts.serving.server.create_app`);
* when files from as many workers as ``--workers`` asked for are there and ``/health``
  answers, it prints ``ws-artifacts: ready on http://HOST:PORT (N workers)``, once;
* it forwards SIGINT, SIGTERM and SIGHUP to the server and exits with the server's status
  (128 + N when the server died of signal N).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType

__all__ = ["READY_DIR_ENV", "mark_ready", "port_problem", "run", "wait_until_ready"]

#: Where each worker of the child server marks itself ready (set by :func:`run`, read by
#: :mod:`ws_artifacts.serving.server` in every worker).
READY_DIR_ENV = "WS_ARTIFACTS_READY_DIR"

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_POLL_SECONDS = 0.05


def mark_ready(directory: str) -> None:
    """Record that this worker process accepts requests (atomically: write, then rename)."""
    final = Path(directory) / str(os.getpid())
    tmp = final.with_name(f".{final.name}.tmp")
    with contextlib.suppress(OSError):  # the launcher may be gone; never fail a worker for it
        tmp.write_text(f"{time.time():.6f}\n")
        tmp.rename(final)


def wait_until_ready(
    directory: Path,
    workers: int,
    health_url: str,
    alive: Callable[[], bool],
) -> bool:
    """Wait until ``workers`` workers have marked themselves ready and ``health_url`` answers.

    Returns:
        True when ready; False when ``alive()`` turned False first (the server exited).
    """
    while alive():
        ready = [p for p in directory.iterdir() if p.name.isdigit()] if directory.is_dir() else []
        if len(ready) >= workers and _answers(health_url):
            return True
        time.sleep(_POLL_SECONDS)
    return False


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):  # noqa: S310 - the server we started
            return True
    except urllib.error.HTTPError:
        return True  # an answer all the same (an auth app may guard /health)
    except OSError:
        return False


def port_problem(host: str, port: int) -> str | None:
    """Why ``mlflow server`` could not listen on ``host``:``port`` (None: it can), found by
    binding it as uvicorn does (``SO_REUSEADDR``), at once, before anything is started."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as err:
        return f"cannot resolve --host {host} ({err}); give an address, e.g. --host 127.0.0.1"
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return (
                    f"cannot listen on {host}:{port} ({err.strerror}): another server is using "
                    f"port {port}. Stop it (`ss -ltnp 'sport = :{port}'` shows which), or start "
                    f"on another port: `ws-artifacts server --port {port + 1}`"
                )
            if err.errno in (errno.EACCES, errno.EPERM):
                return (
                    f"cannot listen on {host}:{port} ({err.strerror}): ports below 1024 need "
                    f"privileges; start on another port: `ws-artifacts server --port 5000`"
                )
            return (
                f"cannot listen on {host}:{port} ({err.strerror}): is {host} an address of "
                "this machine? Give one, e.g. `ws-artifacts server --host 127.0.0.1`"
            )
    return None


def run(argv: list[str], env: dict[str, str], *, url: str, workers: int) -> int:
    """Start the server, print the ready line when it is, and return its exit status."""
    directory = Path(tempfile.mkdtemp(prefix="ws-artifacts-ready-"))
    try:
        env = {**env, READY_DIR_ENV: str(directory), **_metrics_env(argv, env, directory)}
        proc = subprocess.Popen(argv, env=env)
        previous = {sig: signal.signal(sig, _forward(proc)) for sig in _FORWARDED}
        try:
            ready = wait_until_ready(
                directory, workers, f"{url}/health", lambda: proc.poll() is None
            )
            if ready:
                print(f"ws-artifacts: ready on {url} ({_workers(workers)})", flush=True)
            code = proc.wait()
            if not ready:
                print(
                    f"ws-artifacts: the server stopped before it was ready (status {code}); "
                    "its messages are above. Fix what they name and run `ws-artifacts server` "
                    "again.",
                    file=sys.stderr,
                    flush=True,
                )
                code = code or 1  # never report a server that never served as a success
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return 128 - code if code < 0 else code


def _metrics_env(argv: list[str], env: dict[str, str], directory: Path) -> dict[str, str]:
    """A fresh prometheus_client multiprocess directory for the workers' metrics (so that
    ``/metrics`` adds up every worker), unless one is set or MLflow's own exporter is asked
    for (``--expose-prometheus DIR``: the workers then write into DIR and MLflow's ``/metrics``
    shows ours too)."""
    from ws_artifacts.serving.metrics import MULTIPROC_ENVS

    if any(env.get(name) for name in (*MULTIPROC_ENVS, "MLFLOW_EXPOSE_PROMETHEUS")):
        return {}
    if any(a == "--expose-prometheus" or a.startswith("--expose-prometheus=") for a in argv):
        return {}
    metrics = directory / "metrics"
    metrics.mkdir()
    return {MULTIPROC_ENVS[0]: str(metrics)}


def _workers(count: int) -> str:
    return f"{count} worker" if count == 1 else f"{count} workers"


def _forward(proc: subprocess.Popen[bytes]) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, _frame: FrameType | None) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)

    return handler
