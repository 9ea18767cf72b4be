"""Aggregation and the printed report: medians per (workload, op, path), the tables, and the
JSON document written to ``benchmarks/results/``."""

from __future__ import annotations

import statistics
import time
from typing import Any

from .driver import Run
from .plan import FULL, MIB, OPS, PATHS, QUICK
from .routing import routing_sanity
from .session import Context
from .targets import speed, targets


def summarize(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(workload, op, path) -> median seconds over repetitions, max peaks, errors."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["workload"], row["op"], row["path"]), []).append(row)
    out = {}
    for key, items in groups.items():
        ok = [r for r in items if not r["error"]]
        servers = [r["server"] for r in ok if r["server"]]
        out[key] = {
            "seconds": statistics.median(r["seconds"] for r in ok) if ok else None,
            "all_seconds": [r["seconds"] for r in items],
            "bytes": items[0]["bytes"],
            "errors": [r["error"] for r in items if r["error"]],
            "client_growth_mb": max((r["client_growth_mb"] for r in ok), default=None),
            "server_growth_mb": max((s["growth_mb"] for s in servers), default=None),
            "server_max_peak_mb": max((s["max_peak_mb"] for s in servers), default=None),
        }
    return out


def _cell(entry: dict[str, Any] | None, op: str) -> str:
    if not entry or entry["seconds"] is None:
        return "[red]ERR[/]" if entry else "-"
    text = f"{entry['seconds']:.3f} s"
    if op != "list" and entry["bytes"]:
        text += f"\n{entry['bytes'] / MIB / entry['seconds']:.1f} MB/s"
    return text


def _ratio(value: float | None, good: float = 1.0) -> str:
    if value is None:
        return "-"
    colour = "green" if value >= good else "red"
    return f"[{colour}]{value:.2f}x[/]"


def timing_table(summary: dict[Any, Any], workloads: list[str]) -> Any:
    from rich.table import Table

    table = Table(
        title="Median seconds (and MB/s); ratios are speed ratios, >1 = ours faster",
        show_lines=True,
    )
    table.add_column("workload / op", no_wrap=True)
    for path in PATHS:
        table.add_column(path.replace("-", "\n"), justify="right", no_wrap=True)
    for label in ("direct", "proxied"):
        table.add_column(f"ours/stock\n{label}", justify="right", no_wrap=True)
    for label in ("direct", "proxied"):
        table.add_column(f"ours {label}\n/raw-8", justify="right", no_wrap=True)
    for wl in workloads:
        for op in (*OPS, "download-presigned"):
            if not any((wl, op, p) in summary for p in PATHS):
                continue
            cells = [_cell(summary.get((wl, op, p)), op) for p in PATHS]
            ratios = [
                _ratio(speed(summary, (wl, op, "ours-direct"), (wl, op, "stock-direct"))),
                _ratio(speed(summary, (wl, op, "ours-proxied"), (wl, op, "stock-proxied"))),
                _ratio(speed(summary, (wl, op, "ours-direct"), (wl, op, "raw-8")), 1 / 1.3),
                _ratio(speed(summary, (wl, op, "ours-proxied"), (wl, op, "raw-8")), 1 / 1.3),
            ]
            table.add_row(f"{wl} {op}", *cells, *ratios)
    return table


def memory_table(summary: dict[Any, Any], workloads: list[str]) -> Any:
    from rich.table import Table

    table = Table(
        title="Peak RSS per operation (MB, max over repetitions): growth of the client, "
        "growth of the server's process group, peak of its busiest worker"
    )
    for col in ("workload / op", "path", "client +", "server +", "busiest worker"):
        table.add_column(col, justify="right" if col != "path" else "left", no_wrap=True)
    fmt = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
    for wl in workloads:
        for op in ("upload", "download", "download-presigned"):
            for path in PATHS:
                e = summary.get((wl, op, path))
                if e is None or PATHS[path] is None:
                    continue
                table.add_row(
                    f"{wl} {op}",
                    path,
                    fmt(e["client_growth_mb"]),
                    fmt(e["server_growth_mb"]),
                    fmt(e["server_max_peak_mb"]),
                )
    return table


def extras_table(result: Run) -> Any:
    from rich.table import Table

    table = Table(title="Latency probe (ms, one keep-alive session) and routing decision")
    for col in ("measure", "stock", "ours", "stock/ours"):
        table.add_column(col, justify="right" if col != "measure" else "left")
    for name in ("list", "get_4k", "put_4k"):
        stock = result.latency.get("stock-proxied", {}).get(name, {})
        ours = result.latency.get("ours-proxied", {}).get(name, {})
        for stat in ("median_ms", "p90_ms"):
            s, o = stock.get(stat), ours.get(stat)
            table.add_row(
                f"proxied {name} {stat}",
                f"{s:.2f}" if s else "-",
                f"{o:.2f}" if o else "-",
                _ratio(s / o if s and o else None, 2.0),
            )
    r = result.routing
    for count in (10, 10_000):
        if f"ns_{count}" in r:
            table.add_row(
                f"_resolve, {count} workspaces (ns/call median)", "", f"{r[f'ns_{count}']:.0f}", ""
            )
            table.add_row(
                f"load config, {count} workspaces (ms)", "", f"{r[f'load_{count}_ms']:.1f}", ""
            )
    return table


def report(ctx: Context, result: Run, console: Any, started: float) -> dict[str, Any]:
    """Print the tables and targets; return the JSON document."""
    summary = summarize(result.rows)
    workloads = [w[0] for w in (QUICK if ctx.opts.quick else FULL)["workloads"]] + ["1x1GiB"]
    console.print(timing_table(summary, workloads))
    console.print(memory_table(summary, workloads))
    console.print(extras_table(result))
    checks = targets(summary, result, workloads[0])
    for name, passed, detail in checks:
        tag = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: "[yellow]SKIP[/]"}[passed]
        console.print(f"{tag} {name}: {detail}")
    console.print(routing_sanity(result.buckets))
    if ctx.opts.quick:
        console.print(
            "[yellow]quick mode is a smoke test: single small samples, one worker per server, "
            "server-less paths measured while the servers start. Run without --quick for "
            "figures.[/]"
        )
    if ctx.store and ctx.store.note:
        console.print(f"[bold red]!!! {ctx.store.note} !!![/]")
    return {
        "summary": [{"workload": k[0], "op": k[1], "path": k[2], **v} for k, v in summary.items()],
        "targets": [{"target": n, "passed": p, "detail": d} for n, p, d in checks],
        "rows": result.rows,
        "warnings": result.warnings,
        "routing": result.routing,
        "latency": result.latency,
        "objects_per_bucket": result.buckets,
        "load": result.load,
        "elapsed_s": time.monotonic() - started,
    }
