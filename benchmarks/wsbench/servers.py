"""MLflow servers: stock ``mlflow server`` and ``ws-artifacts server``, on SQLite by default.

Other benchmark scripts start a ws-artifacts server and wait for it in one call::

    from benchmarks.wsbench.servers import start_server, write_config

    server = start_server(
        procs, "ours", workdir,
        ["--enable-workspaces", "--serve-artifacts", "--artifacts-destination", "ws-s3://root"],
        {"WS_ARTIFACTS_CONFIG": str(config), "AWS_ACCESS_KEY_ID": "k", ...},
        config=config, workers=2, ws_artifacts=True,
    )
    server.url  # http://127.0.0.1:<port>
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.config import ConfigFile
from tests.support.servers import free_port, mlflow_command, mlflow_env, wait_http

from .plan import BUCKETS, S3_ENV, WORKSPACES
from .processes import Processes
from .stores import Store


def write_config(path: Path, endpoint: str) -> Path:
    """The ws-artifacts configuration: bench-a and bench-b each in their own bucket."""
    config = ConfigFile(endpoint).route("bench-a", f"s3://{BUCKETS['bench-a']}")
    return config.route("bench-b", f"s3://{BUCKETS['bench-b']}").write(path)


@functools.cache
def ws_cli() -> tuple[list[str] | None, str]:
    """``ws-artifacts server`` when that CLI works here (command prefix, its --help text)."""
    exe = Path(sys.executable).parent / "ws-artifacts"
    if not exe.exists():
        return None, ""
    try:
        out = subprocess.run(
            [str(exe), "server", "--help"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None, ""
    if out.returncode != 0 or "--config" not in out.stdout:
        return None, ""
    return [str(exe), "server"], out.stdout


def server_command(config: Path, args: list[str], ws_artifacts: bool) -> tuple[list[str], str]:
    """The launcher: the ONE place that decides how a server is started.

    Returns the command without the common options (backend store, host, port, workers) and a
    label for the report. A ws-artifacts server uses ``ws-artifacts server --config`` when that
    CLI works (falling back to ``mlflow server``); that CLI always adds --enable-workspaces and
    --serve-artifacts itself, so it gets only the options its --help lists.
    """
    if ws_artifacts:
        prefix, help_text = ws_cli()
        if prefix is not None:
            kept = _options_in_help(args, help_text)
            return [*prefix, "--config", str(config), *kept], "ws-artifacts server"
    return [sys.executable, "-m", "mlflow", "server", *args], "mlflow server"


def _options_in_help(args: list[str], help_text: str) -> list[str]:
    kept: list[str] = []
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            needs = arg in ("--artifacts-destination", "--default-artifact-root")
            if needs or arg in help_text:
                kept.append(arg)
                if i + 1 < len(args) and not args[i + 1].startswith("--"):
                    kept.append(args[i + 1])
    return kept


@dataclass
class MlflowServer:
    name: str
    url: str
    pgid: int
    launcher: str
    log: Path
    proc: Any = None


def spawn_mlflow(
    procs: Processes,
    name: str,
    workdir: Path,
    args: list[str],
    env: dict[str, str],
    *,
    config: Path,
    workers: int,
    ws_artifacts: bool,
    backend_store_uri: str | None = None,
) -> MlflowServer:
    """Start one server in ``workdir/name`` (not waiting for it).

    Args:
        procs: the process registry that will stop it.
        name: the server's name (its directory, log and process label).
        workdir: the parent of the server's directory.
        args: server options besides backend store, host, port and workers.
        env: extra environment (the rest is the caller's without AWS_*/MLFLOW_*/WS_ARTIFACTS_*).
        config: the ws-artifacts configuration file (used by ``ws-artifacts server``).
        workers: uvicorn workers.
        ws_artifacts: start it through ``ws-artifacts server`` when that CLI works.
        backend_store_uri: the tracking store; default a SQLite file in the server's directory.
    """
    command, label = server_command(config, args, ws_artifacts)
    port = free_port()
    sdir = workdir / name
    sdir.mkdir(parents=True, exist_ok=True)
    store = backend_store_uri or f"sqlite:///{sdir / 'mlflow.db'}"
    cmd = mlflow_command(command, backend_store_uri=store, port=port, workers=workers)
    # The job runner is off for every server alike (see mlflow_env).
    log = sdir / "server.log"
    proc = procs.spawn(name, cmd, mlflow_env(env), log)
    return MlflowServer(name, f"http://127.0.0.1:{port}", proc.pid, label, log, proc)


def start_server(
    procs: Processes,
    name: str,
    workdir: Path,
    args: list[str],
    env: dict[str, str],
    *,
    config: Path,
    workers: int = 1,
    ws_artifacts: bool = True,
    backend_store_uri: str | None = None,
    workspaces: tuple[str, ...] = (),
    timeout: float = 300,
) -> MlflowServer:
    """:func:`spawn_mlflow`, then wait until ``/health`` answers and create ``workspaces``."""
    server = spawn_mlflow(
        procs,
        name,
        workdir,
        args,
        env,
        config=config,
        workers=workers,
        ws_artifacts=ws_artifacts,
        backend_store_uri=backend_store_uri,
    )
    wait_http(server.url + "/health", server.proc, server.log, timeout=timeout)
    for workspace in workspaces:
        rest(server.url, None, "POST", "/api/3.0/mlflow/workspaces", name=workspace)
    return server


def spawn_servers(
    procs: Processes, workdir: Path, store: Store, opts: Any
) -> dict[str, MlflowServer]:
    """The two proxied servers, started together and not waited for."""
    stock_env = {**S3_ENV, "MLFLOW_S3_ENDPOINT_URL": store.url}
    ours_env = {**S3_ENV, "WS_ARTIFACTS_CONFIG": str(opts.config)}
    ws, proxied = "--enable-workspaces", "--serve-artifacts"
    plans = {
        "stock-proxied": ([ws, proxied, "--artifacts-destination", "s3://stock-bucket"], stock_env),
        "ours-proxied": ([ws, proxied, "--artifacts-destination", "ws-s3://ours-root"], ours_env),
    }
    return {
        n: spawn_mlflow(
            procs,
            n,
            workdir,
            a,
            e,
            config=opts.config,
            workers=opts.workers,
            ws_artifacts=n == "ours-proxied",
        )
        for n, (a, e) in plans.items()
    }


def servers_ready(ctx: Any) -> None:
    """Wait until every server answers and has the benchmark's workspaces (once)."""
    if ctx.servers_ready_s is not None:
        return
    for server in ctx.servers.values():
        wait_http(server.url + "/health", server.proc, server.log, timeout=300)
        for name in WORKSPACES:
            rest(server.url, None, "POST", "/api/3.0/mlflow/workspaces", name=name)
    ctx.servers_ready_s = time.monotonic() - ctx.started
    ctx.say(
        f"servers ready after {ctx.servers_ready_s:.0f} s: "
        + ", ".join(f"{s.name} ({s.launcher}) {s.url}" for s in ctx.servers.values())
    )


def rest(url: str, workspace: str | None, method: str, endpoint: str, **body: Any) -> Any:
    """One MLflow REST call (JSON in, JSON out) in ``workspace``."""
    import requests

    headers = {"X-MLFLOW-WORKSPACE": workspace} if workspace else {}
    resp = requests.request(method, url + endpoint, json=body, headers=headers, timeout=60)
    if resp.status_code >= 400:
        raise RuntimeError(f"{method} {endpoint}: HTTP {resp.status_code} {resp.text[:300]}")
    return resp.json() if resp.content else {}
