"""The parent's side of a repetition: one client subprocess, with the server's peak RSS reset
and read around each of its operations."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.servers import clean_env

from .measure import read_peaks, reset_peaks
from .plan import RUN_PY, S3_ENV
from .processes import Processes, group_pids
from .servers import servers_ready
from .stores import Store


@dataclass
class Run:
    """Everything measured."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    routing: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    buckets: dict[str, int] = field(default_factory=dict)
    load: list[dict[str, Any]] = field(default_factory=list)
    workers: int = 0


def client_env(store: Store, config: Path) -> dict[str, str]:
    return clean_env(
        **S3_ENV,
        MLFLOW_S3_ENDPOINT_URL=store.url,
        WS_ARTIFACTS_CONFIG=str(config),
        MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD="false",
        MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD="false",
        PYTHONWARNINGS="ignore",
    )


def drive_child(procs: Processes, spec: dict[str, Any], ctx: Any, result: Run) -> None:
    """Run one client subprocess; reset and read server peaks around each of its operations."""
    spec_file = ctx.workdir / f"client-r{spec['rep']}.json"
    spec_file.write_text(json.dumps(spec))
    log = ctx.workdir / f"client-r{spec['rep']}.log"
    cmd = [sys.executable, str(RUN_PY), "--child", str(spec_file)]
    proc = procs.spawn(
        "client",
        cmd,
        client_env(ctx.store, ctx.opts.config),
        log,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    before: dict[int, int] = {}
    pids: list[int] = []
    for line in proc.stdout:
        kind, _, payload = line.partition(" ")
        msg = json.loads(payload)
        if kind == "BEGIN":
            server = ctx.servers.get(msg["server"]) if msg["server"] else None
            pids = group_pids(server.pgid) if server else []
            before = reset_peaks(pids)
            proc.stdin.write("GO\n")
            proc.stdin.flush()
        elif kind == "END":
            msg["server"] = read_peaks(before, pids, server.pgid) if server else None
            result.rows.append(msg)
            ctx.say(_progress(msg))
        elif kind == "NEED":
            servers_ready(ctx)
            proc.stdin.write("GO\n")
            proc.stdin.flush()
        elif kind == "WARN":
            result.warnings.append(msg)
            ctx.say(f"[yellow]warning: {msg}[/]")
        elif kind == "ROUTING":
            result.routing = msg
            ctx.say("routing microbenchmark done")
    if proc.wait() != 0:
        raise RuntimeError(f"client r{spec['rep']} failed:\n{log.read_text()[-3000:]}")


def _progress(row: dict[str, Any]) -> str:
    err = f" [red]ERR {row['error']}[/]" if row["error"] else ""
    srv = f" server+{row['server']['growth_mb']:.0f}MB" if row["server"] else ""
    return (
        f"r{row['rep']} {row['workload']:>10} {row['op']:<18} {row['path']:<14} "
        f"{row['seconds']:8.3f}s client+{row['client_growth_mb']:.0f}MB{srv}{err}"
    )
