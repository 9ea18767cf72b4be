"""One run on one store: its context and its order (store and servers together, repetitions,
latency probe), and stopping every process afterwards."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .driver import Run, drive_child
from .latency import latency_probe
from .plan import BUCKETS, FULL, QUICK, WORKSPACES
from .processes import Processes
from .routing import check_routing
from .servers import MlflowServer, servers_ready, spawn_servers, write_config
from .stores import Store, create_buckets, launch_moto, launch_seaweedfs
from .workloads import make_data


@dataclass
class Context:
    opts: Any
    workdir: Path
    say: Callable[[str], None]
    store: Store | None = None
    servers: dict[str, MlflowServer] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    servers_ready_s: float | None = None


def start_store_and_servers(procs: Processes, ctx: Any) -> None:
    """The requested store with its buckets, and the servers, started together (the servers
    are not waited for: see :func:`servers_ready`). SeaweedFS falls back to moto, loudly."""
    note = ""
    kinds = ["seaweedfs", "moto"] if ctx.opts.store == "seaweedfs" else ["moto"]
    for kind in kinds:
        try:
            if kind == "seaweedfs":
                store, ready = launch_seaweedfs(procs, ctx.workdir)
            else:
                store, ready = launch_moto(procs, ctx.workdir, note=note)
            ctx.opts.config = write_config(ctx.workdir / "ws-artifacts.yaml", store.url)
            ctx.servers = spawn_servers(procs, ctx.workdir, store, ctx.opts)
            ready()
            create_buckets(store.url, list(BUCKETS.values()))
            ctx.store = store
            return
        except Exception as err:
            if kind == kinds[-1]:
                raise
            procs.stop_all()
            for name in ["seaweedfs", *ctx.servers]:  # the servers start again, on fresh files
                shutil.rmtree(ctx.workdir / name, ignore_errors=True)
            note = f"SeaweedFS unavailable ({type(err).__name__}: {str(err)[:300]}); USING MOTO"
            ctx.say(f"[bold red]!!! {note}. moto's large/concurrent numbers are NOT S3's. !!![/]")


def measure_all(procs: Processes, ctx: Context, result: Run) -> None:
    """Data, servers, repetitions, latency probe."""
    opts, workdir = ctx.opts, ctx.workdir
    if opts.wait_idle:
        wait_idle(opts.wait_idle, ctx.say)
    note_load(ctx, result, "start")
    result.workers = opts.workers
    start_store_and_servers(procs, ctx)
    assert ctx.store is not None
    ctx.say(f"store: {ctx.store.kind} {ctx.store.version} at {ctx.store.url}; servers starting")
    workloads = (QUICK if opts.quick else FULL)["workloads"]
    data = make_data(workdir / "data", workloads, huge=not opts.quick)
    if not opts.quick:
        servers_ready(ctx)  # no server start competing with the first repetition
    for rep in range(opts.reps):
        note_load(ctx, result, f"rep {rep}")
        spec = {
            "rep": rep,
            "workspace": WORKSPACES[rep % 2],
            "workloads": workloads,
            "data": data,
            "store": ctx.store.url,
            "servers": {n: s.url for n, s in ctx.servers.items()},
            "scratch": str(workdir / "scratch"),
            "huge": data.get("1x1GiB") if rep == 0 else None,
            "routing": (20_000 if opts.quick else 100_000) if rep == opts.reps - 1 else 0,
        }
        Path(spec["scratch"]).mkdir(exist_ok=True)
        drive_child(procs, spec, ctx, result)
    note_load(ctx, result, "latency probe")
    servers_ready(ctx)
    ctx.say("latency probe")
    probes, warm = (30, 5) if opts.quick else (200, 20)
    for name in ("stock-proxied", "ours-proxied"):
        result.latency[name] = latency_probe(ctx.servers[name].url, probes, warm)
    result.latency["requests"] = probes
    note_load(ctx, result, "end")


def note_load(ctx: Context, result: Run, when: str) -> None:
    """Record the load average; say loudly when other work competes for the CPUs."""
    load = os.getloadavg()
    result.load.append({"when": when, "loadavg": load})
    if load[0] > len(os.sched_getaffinity(0)):
        ctx.say(
            f"[bold yellow]load average {load[0]:.1f} > {len(os.sched_getaffinity(0))} CPUs "
            f"at {when}: other processes compete, numbers are noisy[/]"
        )


def wait_idle(limit_s: float, say: Callable[[str], None]) -> None:
    """Wait (up to ``limit_s``) until the 1-minute load average drops below the CPU count."""
    cpus = len(os.sched_getaffinity(0))
    deadline = time.monotonic() + limit_s
    while os.getloadavg()[0] >= cpus and time.monotonic() < deadline:
        say(f"waiting for load average {os.getloadavg()[0]:.1f} to drop below {cpus}")
        time.sleep(15)


def run_all(procs: Processes, ctx: Context, result: Run) -> dict[str, str]:
    """Measure everything; always stop every process. Returns the launcher of each server.

    The work directory (server logs, data) is kept after an error, for the logs."""
    outcome = "error"
    try:
        measure_all(procs, ctx, result)
        result.buckets = check_routing(ctx.store)  # type: ignore[arg-type]
        outcome = "ok"
    except KeyboardInterrupt:
        outcome = "interrupted"
        raise
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop cleanup
        stopping = time.monotonic()
        procs.stop_all()
        ctx.say(f"every process stopped in {time.monotonic() - stopping:.1f} s")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if ctx.opts.keep or outcome == "error":
            ctx.say(f"work directory and logs kept: {ctx.workdir}")
        else:
            shutil.rmtree(ctx.workdir, ignore_errors=True)
    return {s.name: s.launcher for s in ctx.servers.values()}
