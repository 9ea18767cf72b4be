"""What ``ws-artifacts usage`` prints: a rich table (with progress), JSON or Prometheus text."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ws_artifacts.core.config import Config
from ws_artifacts.lifecycle.usage import discover, measure
from ws_artifacts.lifecycle.usage_report import Row, experiment_names, tracking_workspaces

__all__ = ["human", "run_usage"]


def human(size: int) -> str:
    """``1.5 GiB``-style sizes for the table (JSON keeps exact bytes)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def run_usage(
    config: Config,
    destination: str,
    workspaces: Sequence[str],
    *,
    by_experiment: bool,
    by_kind: bool = False,
    tracking_uri: str | None,
    parallel: int,
    output: Literal["table", "json", "prometheus"],
    out: Console,
    err: Console,
    roots: Any = None,
) -> list[Row]:
    """Discover, measure (showing progress on stderr for tables) and print."""
    known = tracking_workspaces(tracking_uri) if tracking_uri else []
    places = discover(
        config, destination, workspaces, known=() if workspaces else known, roots=roots
    )
    options: dict[str, Any] = {"by_experiment": by_experiment, "by_kind": by_kind}
    if output == "table":
        rows = _measure_showing_progress(places, err, parallel=parallel, **options)
    else:
        rows = measure(places, parallel=parallel, **options)
    names: dict[str, dict[str, str]] = {}
    if tracking_uri and by_experiment:
        names = experiment_names(tracking_uri, rows, known)
    if output == "json":
        click.echo(json.dumps(_as_json(rows, names), indent=2))
    elif output == "prometheus":
        from ws_artifacts.lifecycle.usage_metrics import prometheus_text

        click.echo(prometheus_text(rows), nl=False)
    else:
        _print_table(rows, names, out)
    return rows


def _measure_showing_progress(places: Sequence[Any], err: Console, **options: Any) -> list[Row]:
    """:func:`measure`, with a spinner on ``err`` counting objects and listings."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(f"listing {len(places)} place(s)", total=None)

        def show(objects: int, done: int, total: int) -> None:
            bar.update(task, description=f"{objects} objects, {done}/{total} listings")

        return measure(places, progress=show, **options)


def _as_json(rows: Sequence[Row], names: dict[str, dict[str, str]]) -> dict[str, object]:
    total_bytes = sum(r.total.bytes for r in rows)
    at_destination = sum(r.total.bytes for r in rows if r.place.route.is_destination)
    return {
        "workspaces": [r.as_dict(names.get(r.place.workspace)) for r in rows],
        "total": {"objects": sum(r.total.objects for r in rows), "bytes": total_bytes},
        "default_destination": {
            "objects": sum(r.total.objects for r in rows if r.place.route.is_destination),
            "bytes": at_destination,
            "share": round(at_destination / total_bytes, 4) if total_bytes else 0.0,
        },
    }


def _print_table(rows: Sequence[Row], names: dict[str, dict[str, str]], out: Console) -> None:
    table = Table(title="artifact usage, largest first", title_justify="left")
    for column in ("workspace", "what", "route", "url", "objects", "bytes", "size", "quota"):
        table.add_column(column, justify="right" if column in ("objects", "bytes") else "left")
    for row in rows:
        quota = row.place.route.settings.quota
        limits = []
        if quota is not None and quota.max_bytes is not None:
            limits.append(f"{100 * row.total.bytes / max(quota.max_bytes, 1):.0f}% of bytes")
        if quota is not None and quota.max_objects is not None:
            limits.append(f"{100 * row.total.objects / max(quota.max_objects, 1):.0f}% of objects")
        table.add_row(
            escape(row.place.workspace),
            "(all)",
            escape(row.place.route.name),
            escape(row.place.uri),
            str(row.total.objects),
            str(row.total.bytes),
            human(row.total.bytes),
            ", ".join(limits) or "-",
        )
        for exp, used in sorted(row.experiments.items(), key=lambda kv: -kv[1].bytes):
            name = names.get(row.place.workspace, {}).get(exp)
            label = f"{exp} ({name})" if name else exp or "(none)"
            table.add_row(
                "", escape(label), "", "", str(used.objects), str(used.bytes), human(used.bytes), ""
            )
        for kind, used in sorted(row.kinds.items(), key=lambda kv: -kv[1].bytes):
            label = f"({kind})"
            table.add_row(
                "", escape(label), "", "", str(used.objects), str(used.bytes), human(used.bytes), ""
            )
    out.print(table)
    total = sum(r.total.bytes for r in rows)
    dest = sum(r.total.bytes for r in rows if r.place.route.is_destination)
    share = f"{100 * dest / total:.1f}%" if total else "0%"
    out.print(
        f"{len(rows)} place(s), {sum(r.total.objects for r in rows)} objects, {total} bytes "
        f"({human(total)}); default destination's share: {share}"
    )
