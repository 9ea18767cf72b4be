"""The command line: options, machine information, and the run over one or both stores."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from . import __doc__ as package_doc
from .driver import Run
from .plan import REPO
from .processes import Processes, _raise_on_signal
from .report import report
from .session import Context, run_all
from .workloads import child_main


def parse_args(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=(package_doc or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small workloads, 1 repetition")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks/results/latest.json")
    parser.add_argument(
        "--store",
        choices=("seaweedfs", "moto", "both"),
        default="seaweedfs",
        help="the S3 server; both = the whole run on SeaweedFS, then again on moto (whose "
        "figures go to the JSON under other_stores, not into the README)",
    )
    parser.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    parser.add_argument(
        "--workers", type=int, help="uvicorn workers per server (default 4, as mlflow; quick 1)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        metavar="SECONDS",
        help="first wait up to this long for the load average to drop below the CPU count",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    opts.reps = opts.reps or (1 if opts.quick else 3)
    # Quick mode runs one worker per server: each worker spends ~9 s of CPU importing MLflow,
    # and two servers of two workers alone take ~35 s to answer on 2 cores.
    opts.workers = opts.workers or (1 if opts.quick else 4)
    return opts


def machine_info(ctx: Context, launchers: dict[str, str]) -> dict[str, Any]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "absent"

    git = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "mlflow": version("mlflow"),
        "boto3": version("boto3"),
        "ws_artifacts": version("ws-artifacts"),
        "git": git,
        "store": ctx.store.kind if ctx.store else None,
        "store_version": ctx.store.version if ctx.store else None,
        "store_note": ctx.store.note if ctx.store else None,
        "workers": ctx.opts.workers,
        "reps": ctx.opts.reps,
        "quick": ctx.opts.quick,
        "launchers": launchers,
        "servers_ready_s": ctx.servers_ready_s,
    }


def run_on_store(opts: Any, kind: str, console: Any, started: float) -> dict[str, Any]:
    """The whole run on one store; its JSON document. KeyboardInterrupt once all is stopped."""
    run_opts = argparse.Namespace(**{**vars(opts), "store": kind})
    workdir = Path(tempfile.mkdtemp(prefix="ws-bench-"))
    ctx = Context(run_opts, workdir, lambda m: console.log(m, highlight=False))
    procs, result = Processes(), Run()
    launchers = run_all(procs, ctx, result)
    doc = {"machine": machine_info(ctx, launchers), **report(ctx, result, console, started)}
    if ctx.store and ctx.store.kind == "moto":
        console.print(
            "[bold yellow]moto is a functional stand-in: it reads a whole object for every "
            "ranged GET, so its large and concurrent figures are not S3 behaviour.[/]"
        )
    return doc


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.child:
        return child_main(opts.child)
    from rich.console import Console

    console = Console(width=max(170, Console().width), record=True)
    started = time.monotonic()
    # Ctrl-C even when started in the background (where SIGINT is inherited as ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_on_signal)
    signal.signal(signal.SIGHUP, _raise_on_signal)
    stores = ["seaweedfs", "moto"] if opts.store == "both" else [opts.store]
    docs: dict[str, dict[str, Any]] = {}
    for kind in stores:
        if len(stores) > 1:
            console.rule(f"store: {kind}")
        try:
            docs[kind] = run_on_store(opts, kind, console, started)
        except KeyboardInterrupt as err:
            console.print(
                f"[bold red]interrupted ({str(err) or 'Ctrl-C'}); every started process stopped[/]"
            )
            return 130
    doc = docs[stores[0]]
    if len(stores) > 1:
        doc["other_stores"] = {kind: docs[kind] for kind in stores[1:]}
    opts.json.parent.mkdir(parents=True, exist_ok=True)
    opts.json.write_text(json.dumps(doc, indent=2, default=str))
    total = time.monotonic() - started
    console.print(f"wrote {opts.json} (and the printed output to .txt) in {total:.0f} s")
    console.save_text(str(opts.json.with_suffix(".txt")))
    return 0
