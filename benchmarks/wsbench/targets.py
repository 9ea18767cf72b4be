"""The performance targets: each a (name, passed or None when not measured, detail)."""

from __future__ import annotations

from typing import Any

from .driver import Run
from .plan import OPS, WARM_UP


def speed(
    summary: dict[Any, Any], key: tuple[str, str, str], base: tuple[str, str, str]
) -> float | None:
    """How many times faster ``key`` is than ``base`` (base seconds / key seconds)."""
    a, b = summary.get(key, {}).get("seconds"), summary.get(base, {}).get("seconds")
    return b / a if a and b else None


def targets(summary: dict[Any, Any], result: Run, small: str) -> list[tuple[str, bool | None, str]]:
    """(target, passed or None when not measured, detail)."""
    out: list[tuple[str, bool | None, str]] = []
    pairs = [(w, o) for (w, o, p) in summary if p == "ours-proxied" and o in OPS and w != WARM_UP]
    ratios = {k: speed(summary, (*k, "ours-proxied"), (*k, "stock-proxied")) for k in pairs}
    worst = min(ratios.items(), key=lambda kv: kv[1] or 0, default=(None, None))
    detail = ", ".join(f"{wl} {op} {r:.2f}x" for (wl, op), r in sorted(ratios.items()) if r)
    out.append(
        (
            "ours proxied >= stock proxied on every workload/op",
            None if worst[1] is None else all((r or 0) >= 1 for r in ratios.values()),
            f"worst {worst[0]} {worst[1] or 0:.2f}x; {detail}",
        )
    )
    up = (small, "upload")
    vs_stock = speed(summary, (*up, "ours-direct"), (*up, "stock-direct"))
    vs_raw = speed(summary, (*up, "ours-direct"), (*up, "raw-8"))
    out.append(
        (
            f"ours direct upload {small} >= 3x stock direct",
            None if vs_stock is None else vs_stock >= 3,
            f"{vs_stock or 0:.2f}x",
        )
    )
    out.append(
        (
            f"ours direct upload {small} within 1.3x of raw boto3 8 threads",
            None if vs_raw is None else 1 / vs_raw <= 1.3,
            f"ours takes {1 / vs_raw if vs_raw else 0:.2f}x raw-8's time",
        )
    )
    out += _routing_targets(result.routing)
    out += _memory_target(summary)
    out += _latency_targets(result.latency, result.workers)
    return out


def _routing_targets(r: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    if "ns_10" not in r:
        return [("routing decision < 20 us", None, "not measured")]
    worst = max(r["ns_10"], r["ns_10000"])
    return [
        (
            "routing decision < 20 us median",
            worst < 20_000,
            f"{r['ns_10']:.0f} ns (10 ws), {r['ns_10000']:.0f} ns (10 000 ws)",
        ),
        (
            "routing with 10 000 workspaces within 1.5x of 10",
            r["ns_10000"] <= 1.5 * r["ns_10"],
            f"{r['ns_10000'] / r['ns_10']:.2f}x",
        ),
    ]


def _memory_target(summary: dict[Any, Any]) -> list[tuple[str, bool | None, str]]:
    entry = summary.get(("1x1GiB", "upload", "ours-proxied"))
    if not entry or entry["server_growth_mb"] is None:
        return [("server peak RSS in 1 GiB proxied upload < 300 MB", None, "full mode only")]
    stock = summary.get(("1x1GiB", "upload", "stock-proxied"), {})
    return [
        (
            "server peak RSS in 1 GiB proxied upload < 300 MB (busiest process, absolute)",
            entry["server_max_peak_mb"] < 300,
            f"ours {entry['server_max_peak_mb']:.0f} MB, of which the upload grew the server "
            f"by {entry['server_growth_mb']:.0f} MB; stock "
            f"{stock.get('server_max_peak_mb') or 0:.0f} MB, grew "
            f"{stock.get('server_growth_mb') or 0:.0f} MB",
        )
    ]


def _latency_targets(lat: dict[str, Any], workers: int) -> list[tuple[str, bool | None, str]]:
    out: list[tuple[str, bool | None, str]] = []
    for name in ("list", "get_4k"):
        title = f"proxied {name} latency >= 2x better than stock (same workers)"
        if workers < 2:
            # One uvicorn worker binds its own socket with TCP_NODELAY: no stall to remove.
            out.append((title, None, "needs several workers per server (the full run has 4)"))
            continue
        s = lat.get("stock-proxied", {}).get(name, {}).get("median_ms")
        o = lat.get("ours-proxied", {}).get(name, {}).get("median_ms")
        ratio = s / o if s and o else None
        out.append(
            (
                title,
                None if ratio is None else ratio >= 2,
                f"stock {s or 0:.1f} ms / ours {o or 0:.1f} ms = {ratio or 0:.2f}x",
            )
        )
    return out
