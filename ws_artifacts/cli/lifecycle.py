"""``ws-artifacts quarantine list``, ``purge``, ``restore`` and ``orphans``: thin click commands
over :mod:`ws_artifacts.lifecycle.quarantine` and :mod:`ws_artifacts.lifecycle.orphans`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from ws_artifacts.cli.common import config_option, destination_option
from ws_artifacts.cli.common import fail as _fail
from ws_artifacts.cli.common import load as _load
from ws_artifacts.cli.common import out as _out
from ws_artifacts.core.config import Config
from ws_artifacts.core.errors import WsArtifactsError
from ws_artifacts.core.targets import Place
from ws_artifacts.lifecycle import quarantine as q
from ws_artifacts.storage.registry import backend_for

__all__ = ["orphans", "purge", "quarantine", "restore"]

_config = config_option
_destination = destination_option
_tracking = click.option("--tracking-uri", help="The MLflow server, e.g. http://127.0.0.1:5000.")
_backend = click.option("--backend-store-uri", help="Or the tracking database, e.g. sqlite:///x.")
_json = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def _setup(config_path: Path | None, destination: str) -> tuple[Config, Any]:
    from ws_artifacts.lifecycle.discovery import router_for

    config, _ = _load(config_path)
    return config, router_for(config, destination)


def _workspace_experiments(
    tracking_uri: str | None, backend_store_uri: str | None
) -> dict[str, set[str]]:
    from ws_artifacts.lifecycle.orphans import workspace_experiments

    uri = tracking_uri or backend_store_uri
    if not uri or (tracking_uri and backend_store_uri):
        _fail("give exactly one of --tracking-uri URL or --backend-store-uri URI.", 2)
    return workspace_experiments(uri or "")


def _entries(router: Any, destination: str, names: set[str]) -> list[q.Entry]:
    from ws_artifacts.lifecycle.discovery import quarantine_bases

    bases = quarantine_bases(router, destination, names)
    q.suspicious.clear()
    entries = sorted(q.list_entries(bases), key=lambda e: (e.workspace, e.stamp))
    for found in dict.fromkeys(q.suspicious):  # on stderr: --json output stays one document
        click.echo(
            f"warning: ignored a suspicious quarantine manifest at {found.uri}: {found.reason}. "
            "It was not written by ws-artifacts as it is; inspect it and remove it by hand.",
            err=True,
        )
    return entries


def _entry_table(title: str, entries: list[q.Entry]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("workspace", "deleted at", "state", "reason", "objects", "bytes", "where"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            escape(e.workspace),
            e.deleted_at,
            e.state,
            escape(e.reason),
            str(e.objects),
            str(e.bytes),
            escape(f"{e.route_url} {e.root}"),
        )
    return table


@click.group()
def quarantine() -> None:
    """Workspaces' artifacts moved out of reach (by deletion, re-creation or orphans)."""


@quarantine.command("list")
@_config
@_destination
@click.option("--workspace", help="Only this workspace.")
@_json
def list_command(
    config_path: Path | None, destination: str, workspace: str | None, as_json: bool
) -> None:
    """List quarantined workspaces: when, why, how much, where."""

    _, router = _setup(config_path, destination)
    entries = [
        e
        for e in _entries(router, destination, {workspace} if workspace else set())
        if not workspace or e.workspace == workspace
    ]
    if as_json:
        click.echo(json.dumps([e.as_dict() for e in entries], indent=2))
        return
    _out.print(_entry_table(f"{len(entries)} quarantine entr(y/ies)", entries))


@click.command()
@_config
@_destination
@click.option("--older-than", required=True, help="Retention, e.g. 30d, 12h, 2w.")
@click.option("--workspace", help="Only this workspace.")
@click.option("--dry-run/--yes", "dry_run", default=True, help="Show (default) or delete.")
@_json
def purge(
    config_path: Path | None,
    destination: str,
    older_than: str,
    workspace: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Delete quarantined artifacts older than --older-than (a dry run unless --yes)."""

    _, router = _setup(config_path, destination)
    try:
        age = q.parse_age(older_than)
    except WsArtifactsError as err:
        _fail(str(err), 2)
        return
    cutoff = dt.datetime.now(dt.UTC) - age
    entries = [
        e
        for e in _entries(router, destination, {workspace} if workspace else set())
        if (not workspace or e.workspace == workspace)
        and e.state == "quarantined"
        and q.deleted_at(e) < cutoff
    ]
    deleted = 0
    if not dry_run:
        with Progress(console=_out, transient=True, disable=as_json) as progress:
            task = progress.add_task("purging", total=len(entries))
            dest = destination.removeprefix("ws-")
            for e in entries:
                place = q.owner_place(e, q.places_of(router, dest, e.workspace))
                store = backend_for(place.route if place else router.destination)
                deleted += q.purge(e, store)
                progress.advance(task)
    summary = {"dry_run": dry_run, "older_than": older_than, "entries": len(entries)}
    summary["objects_deleted"] = deleted
    if as_json:
        click.echo(json.dumps({**summary, "purged": [e.as_dict() for e in entries]}, indent=2))
        return
    verb = "would purge" if dry_run else "purged"
    _out.print(_entry_table(f"{verb} {len(entries)} entr(y/ies) older than {older_than}", entries))
    if dry_run:
        _out.print("dry run: nothing deleted; run again with --yes to delete.")
    else:
        _out.print(f"deleted {deleted} object(s).")


@click.command()
@_config
@_destination
@_tracking
@_backend
@click.option("--deleted-at", help="Which entry (its 'deleted at' time); default: the latest.")
@_json
@click.argument("workspace")
def restore(
    config_path: Path | None,
    destination: str,
    tracking_uri: str | None,
    backend_store_uri: str | None,
    deleted_at: str | None,
    as_json: bool,
    workspace: str,
) -> None:
    """Move WORKSPACE's quarantined artifacts back (it must exist, its place must be empty)."""

    _, router = _setup(config_path, destination)
    existing = _workspace_experiments(tracking_uri, backend_store_uri)
    if workspace not in existing:
        _fail(
            f"workspace '{workspace}' does not exist; create it first "
            "(its place is emptied on creation, then restore).",
            1,
        )
    entries = [
        e
        for e in _entries(router, destination, {workspace})
        if e.workspace == workspace
        and (deleted_at is None or deleted_at in (e.deleted_at, e.stamp))
    ]
    if not entries:
        which = f" deleted at {deleted_at}" if deleted_at else ""
        _fail(f"no quarantine entry of workspace '{workspace}'{which}; see `quarantine list`.", 1)
    # One deletion quarantines each of the workspace's places (current and previous) with one
    # time; restore all of the chosen deletion's entries, each into the place it came from.
    chosen = [e for e in entries if e.deleted_at == entries[-1].deleted_at]
    restored: list[tuple[q.Entry, Place, int]] = []
    try:
        places = q.places_of(router, destination.removeprefix("ws-"), workspace)
        for entry in chosen:
            place = q.owner_place(entry, places) or places[0]
            restored.append((entry, place, q.restore(entry, place)))
    except WsArtifactsError as err:
        _fail(str(err), 1)
        return
    if as_json:
        payload = {
            "restored": [e.as_dict() for e, _, _ in restored],
            "objects": sum(n for _, _, n in restored),
        }
        click.echo(json.dumps(payload, indent=2))
        return
    for _entry, place, count in restored:
        _out.print(f"restored {count} object(s) of '{escape(workspace)}' to {escape(place.uri)}")


@click.command()
@_config
@_destination
@_tracking
@_backend
@click.option("--quarantine", "move", is_flag=True, help="Move the orphans to quarantine.")
@click.option("--yes", is_flag=True, help="With --quarantine: act (else a dry run).")
@click.option(
    "--include-moved",
    is_flag=True,
    help="With --quarantine: also take objects of ids that are experiments of another "
    "workspace (held back by default: migrate --moved-from copies those).",
)
@click.option(
    "--skill-min-age",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    help="Seconds a skill upload must be old before it can be an orphan (MLflow writes a "
    "version's content before its row: a younger upload may be a registration in progress).",
)
@_json
def orphans(
    config_path: Path | None,
    destination: str,
    tracking_uri: str | None,
    backend_store_uri: str | None,
    move: bool,
    yes: bool,
    include_moved: bool,
    skill_min_age: float,
    as_json: bool,
) -> None:
    """List objects whose workspace or experiment no longer exists (and quarantine them)."""
    from ws_artifacts.lifecycle.orphans import scan_orphans

    _, router = _setup(config_path, destination)
    experiments = _workspace_experiments(tracking_uri, backend_store_uri)
    scan = scan_orphans(
        router,
        destination,
        tracking_uri or backend_store_uri or "",
        experiments,
        quarantine=move and yes,
        include_moved=include_moved,
        skill_min_age=skill_min_age,
    )
    if as_json:
        click.echo(json.dumps(scan.as_dict(dry_run=move and not yes), indent=2))
        return
    _out.print(_orphan_table(scan))
    if move and not yes:
        _out.print("dry run: nothing moved; run again with --quarantine --yes to move them.")
    elif scan.quarantined:
        _out.print(f"moved {sum(o.objects for o in scan.movable)} object(s) to quarantine.")
    if scan.kept:
        _out.print(
            f"kept {sum(o.objects for o in scan.kept)} object(s) of content ws-artifacts does "
            "not know (unknown, kept): never quarantined by orphans; remove it by hand if unwanted."
        )
    if scan.held:
        _out.print(
            f"held back {sum(o.objects for o in scan.held)} object(s) whose experiment id is now "
            "another workspace's: migrate them (see each reason); if the id was only reused, "
            "add --include-moved to quarantine them."
        )


def _orphan_table(scan: Any) -> Table:
    found, kept = scan.found, scan.kept
    title = f"{len(found) - len(kept)} orphaned location(s), {len(kept)} unknown kept"
    table = Table(title=title, title_justify="left")
    for column in ("workspace", "kind", "child", "reason", "objects", "bytes", "where"):
        table.add_column(column)
    for o in found:
        table.add_row(
            escape(o.workspace),
            escape(o.kind),
            escape(o.child),
            escape(o.reason),
            str(o.objects),
            str(o.bytes),
            escape(o.uri),
        )
    return table
