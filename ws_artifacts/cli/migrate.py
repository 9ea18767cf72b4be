"""The ``ws-artifacts migrate`` command (registered by cli.py): progress, a plan, a summary."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ws_artifacts.cli.common import config_option, err, fail, out
from ws_artifacts.cli.common import load as _load
from ws_artifacts.core.errors import WsArtifactsError

__all__ = ["migrate"]

_out, _err = out, err


@click.command()
@config_option
@click.option(
    "--destination",
    default=None,
    envvar="WS_ARTIFACTS_DESTINATION",
    help="The server's --artifacts-destination (ws-s3://bucket[/prefix]); needed "
    "with --moved-from. Default: $WS_ARTIFACTS_DESTINATION, else `destination:` in the "
    "configuration.",
)
@click.option(
    "--all",
    "all_workspaces",
    is_flag=True,
    help="Every workspace whose route has previous places (a glob route: the workspaces "
    "found in its previous places).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan; copy, write and delete nothing.")
@click.option(
    "--delete-source",
    is_flag=True,
    help="Delete, in the old places, exactly the objects verified at the new one.",
)
@click.option(
    "--moved-from", help="Experiments moved out of this workspace by `mlflow db move-resources`..."
)
@click.option("--to", "moved_to", help="...into this one (with --moved-from).")
@click.option(
    "--backend-store-uri",
    help="The tracking database: with --moved-from, and for workspaces whose own "
    "default_artifact_root routes them (their previous roots are read there).",
)
@click.option(
    "--moved-at",
    help="When `mlflow db move-resources` ran (ISO 8601, e.g. 2026-12-03T17:00:00Z; with "
    "--moved-from): objects the old workspace wrote after it are refused and listed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.argument("workspaces", nargs=-1)
def migrate(
    config_path: Path | None,
    destination: str | None,
    all_workspaces: bool,
    dry_run: bool,
    delete_source: bool,
    moved_from: str | None,
    moved_to: str | None,
    backend_store_uri: str | None,
    moved_at: str | None,
    as_json: bool,
    workspaces: tuple[str, ...],
) -> None:
    """Copy WORKSPACE's artifacts from its route's previous places to the current one.

    With --moved-from X --to Y --backend-store-uri URI: copy the artifacts of experiments that
    `mlflow db move-resources` moved from X to Y into Y's place, then repoint their runs,
    logged models and traces in one transaction. Objects are verified (size and checksum);
    a second run copies nothing. Start with --dry-run.
    """
    config, _path = _load(config_path)
    destination = destination or config.destination
    moving = moved_from is not None or moved_to is not None
    when = _checked_options(
        destination, backend_store_uri, moved_from, moved_to, moved_at, workspaces, all_workspaces
    )
    request = _Request(
        router=_router(config, destination, backend_store_uri, moving),
        destination=destination or _NO_DESTINATION,
        workspaces=workspaces,
        everything=all_workspaces,
        dry_run=dry_run,
        delete_source=delete_source,
        moved_from=moved_from,
        moved_to=moved_to,
        store_uri=backend_store_uri or "",
        moved_at=when,
    )
    try:
        with _Progress(as_json) as (on_listed, advance):
            run = _moved if moving else _workspaces
            payload, results = run(request, on_listed, advance)
    except WsArtifactsError as err:
        _fail(str(err), 1)
        return
    failed = sum(r.count("failed") for r in results)
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, **payload}, indent=2))
    else:
        _summary(results, dry_run)
        if moving:
            _database_summary(payload, dry_run, moved_at)
    sys.exit(1 if failed else 0)


_NO_DESTINATION = "ws-file:///nonexistent-default-destination"


@dataclass(frozen=True)
class _Request:
    """What ``migrate`` was asked to do, its options checked."""

    router: Any
    destination: str
    workspaces: tuple[str, ...]
    everything: bool
    dry_run: bool
    delete_source: bool
    moved_from: str | None
    moved_to: str | None
    store_uri: str
    moved_at: Any


def _checked_options(
    destination: str | None,
    backend_store_uri: str | None,
    moved_from: str | None,
    moved_to: str | None,
    moved_at: str | None,
    workspaces: tuple[str, ...],
    all_workspaces: bool,
) -> Any:
    """Exit 2 on options that do not go together; the --moved-at time (or None)."""
    moving = moved_from is not None or moved_to is not None
    if moving and (not moved_from or not moved_to or not backend_store_uri or not destination):
        _fail(
            "--moved-from needs --to, --backend-store-uri and the server's destination "
            "(--destination, WS_ARTIFACTS_DESTINATION or `destination:` in the configuration)."
        )
    when = _moment(moved_at) if moved_at else None
    if when is not None and not moving:
        _fail("--moved-at goes with --moved-from.")
    if moving and (workspaces or all_workspaces):
        _fail("give WORKSPACE... (or --all) or --moved-from, not both.")
    if not moving and not workspaces and not all_workspaces:
        _fail("name the workspaces to migrate, or give --all (or --moved-from X --to Y).")
    return when


def _router(
    config: Any, destination: str | None, backend_store_uri: str | None, moving: bool
) -> Any:
    """The router of the server's configuration (with the workspaces' own roots, read from the
    database, unless moving); exit 1 when the roots cannot be read."""
    from ws_artifacts.core.routing import Router

    try:
        roots = _roots(config, backend_store_uri) if not moving else None
    except WsArtifactsError as err:
        _fail(str(err), 1)
        return None
    dest = destination or _NO_DESTINATION
    return Router(config, dest.removeprefix("ws-"), roots)


def _database_summary(payload: dict[str, Any], dry_run: bool, moved_at: str | None) -> None:
    counts = payload["locations"]
    verb = "would rewrite" if dry_run else "rewrote"
    _out.print(
        f"database: {verb} {sum(counts.values())} location(s) {counts} in one "
        f"transaction; experiments {', '.join(payload['experiments']) or '-'}"
    )
    _refused(payload["refused_newer_than_move"], moved_at)


def _roots(config: Any, backend_store_uri: str | None) -> Any:
    """The workspaces' own roots from the database (None without locations or a database)."""
    from ws_artifacts.lifecycle.roots import database_roots

    if not config.locations or not backend_store_uri:
        return None
    return database_roots(backend_store_uri)


def _workspaces(
    request: _Request, on_listed: Any, advance: Any
) -> tuple[dict[str, Any], list[Any]]:
    from ws_artifacts.lifecycle.migrate import migrate_workspace, workspaces_with_previous

    router = request.router
    every = workspaces_with_previous(router) if request.everything else []
    chosen = list(dict.fromkeys([*request.workspaces, *every]))
    results = []
    for name in chosen:
        results += migrate_workspace(
            router,
            name,
            dry_run=request.dry_run,
            delete_source=request.delete_source,
            on_listed=on_listed,
            progress=advance,
        )
    return {"places": [r.as_dict() for r in results]}, results


def _moved(request: _Request, on_listed: Any, advance: Any) -> tuple[dict[str, Any], list[Any]]:
    from ws_artifacts.lifecycle.moves import migrate_moved

    result = migrate_moved(
        request.router,
        request.destination,
        request.store_uri,
        request.moved_from or "",
        request.moved_to or "",
        dry_run=request.dry_run,
        delete_source=request.delete_source,
        on_listed=on_listed,
        progress=advance,
        moved_at=request.moved_at,
    )
    return result.as_dict(), result.places


def _moment(text: str) -> Any:
    import datetime as dt

    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        _fail(
            f"--moved-at {text!r} is not an ISO 8601 time with a zone; e.g. 2026-12-03T17:00:00Z."
        )
    return moment


def _refused(refused: list[str], moved_at: str | None) -> None:
    if moved_at is None:
        _out.print(
            "note: without --moved-at, objects the old workspace wrote after the move cannot be "
            "told apart; give the time `mlflow db move-resources` ran."
        )
        return
    for uri in refused:
        _out.print(
            f"[red]refused[/red] (written after the move at {escape(moved_at)}): {escape(uri)}"
        )


class _Progress:
    """A rich progress bar (bytes) on stderr, or nothing with --json."""

    def __init__(self, quiet: bool) -> None:
        self._bar = (
            None
            if quiet
            else Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TextColumn("{task.fields[objects]} objects"),
                TimeRemainingColumn(),
                console=_err,
            )
        )
        self._task: Any = None
        self._objects = 0

    def __enter__(self) -> tuple[Any, Any]:
        if self._bar is not None:
            self._bar.start()
        return self._listed, self._advance

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def _listed(self, count: int, size: int) -> None:
        if self._bar is None:
            return
        if self._task is None:
            self._task = self._bar.add_task("migrate", total=0, objects=0)
        task = self._bar.tasks[self._task]
        self._bar.update(self._task, total=(task.total or 0) + size)

    def _advance(self, outcome: Any) -> None:
        if self._bar is None or self._task is None:
            return
        self._objects += 1
        self._bar.update(self._task, advance=outcome.size, objects=self._objects)


def _summary(results: list[Any], dry_run: bool) -> None:
    title = "migrate plan (dry run: nothing changed)" if dry_run else "migrate summary"
    table = Table(title=title, title_justify="left")
    columns = (
        "workspace",
        "from",
        "to",
        "mode",
        "objects",
        "to copy" if dry_run else "copied",
        "present",
        "shadowed",
        *(("to compare",) if dry_run else ()),
        "failed",
        "bytes",
        "deleted",
    )
    for column in columns:
        table.add_column(column, justify="right" if column not in columns[:4] else "left")
    for r in results:
        moved = r.count("planned") if dry_run else r.count("copied")
        size = r.size("planned") if dry_run else r.size("copied")
        table.add_row(
            escape(r.workspace),
            escape(r.source),
            escape(r.target),
            r.mode,
            str(len(r.outcomes)),
            str(moved),
            str(r.count("present")),
            str(r.count("shadowed")),
            *((str(r.count("compare")),) if dry_run else ()),
            str(r.count("failed")),
            _bytes(size),
            str(r.deleted),
        )
    _out.print(table)
    for r in results:
        for o in r.outcomes:
            if o.error:
                _out.print(f"[red]failed[/red] {escape(o.name)}: {escape(o.error)}")
    if not results:
        _out.print("nothing to migrate: no previous places")


def _bytes(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)


def _fail(message: str, code: int = 2) -> None:
    fail(message, code)
