"""The ``ws-artifacts`` command: thin click commands over library functions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from ws_artifacts import __version__
from ws_artifacts.cli.common import config_option, destination_option, err, fail, load, out
from ws_artifacts.core.config import Config
from ws_artifacts.core.errors import WsArtifactsError

__all__ = ["main"]

_out, _err, _fail, _load = out, err, fail, load
_config_option, _destination_option = config_option, destination_option


def _roots_option(command: Any) -> Any:
    return click.option(
        "--backend-store-uri",
        help="The tracking database, where workspaces' own default_artifact_roots are read "
        "(workspaces routed by an approved storage location).",
    )(command)


def _roots(config: Config, backend_store_uri: str | None) -> Any:
    """The workspaces' own roots from the database (None without locations or a database)."""
    from ws_artifacts.lifecycle.roots import database_roots

    if not config.locations or not backend_store_uri:
        return None
    return database_roots(backend_store_uri)


@click.group()
@click.version_option(__version__, prog_name="ws-artifacts")
def main() -> None:
    """Per-workspace artifact routing for a shared MLflow server."""


@main.command()
@_config_option
@_destination_option
@click.option("--probe", is_flag=True, help="Write, read and delete a marker in every route.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_roots_option
def check(
    config_path: Path | None,
    destination: str,
    probe: bool,
    as_json: bool,
    backend_store_uri: str | None,
) -> None:
    """Validate the configuration and resolve (optionally probe) every route."""
    from ws_artifacts.lifecycle.checks import check_routes

    config, path = _load(config_path)
    reports = check_routes(
        config, destination, probe=probe, roots=_roots(config, backend_store_uri)
    )
    failed = [r for r in reports if r.ok is False]
    if as_json:
        payload = {"config": str(path), "ok": not failed, "routes": [r.as_dict() for r in reports]}
        click.echo(json.dumps(payload, indent=2))
    else:
        _out.print(_check_table(path, reports))
        _out.print(
            "[green]configuration OK[/green]"
            if not failed
            else f"[red]{len(failed)} route(s) failed[/red]"
        )
    sys.exit(1 if failed else 0)


def _check_table(path: Path, reports: list[Any]) -> Table:
    table = Table(title=f"{path}: {len(reports)} route(s)", title_justify="left")
    columns = ("entry", "source", "example", "url", "backend", "credentials", "storage", "quota")
    for column in (*columns, "probe", "left in previous"):
        table.add_column(column, overflow="fold")  # URLs wrap, never cut
    for r in reports:
        status = (
            "-"
            if r.ok is None
            else ("[green]ok[/green]" if r.ok else f"[red]{escape(r.error or '')}[/red]")
        )
        cells = (r.entry, r.source, r.workspace, r.url, r.backend, r.credentials, r.storage)
        table.add_row(*(escape(v) for v in (*cells, r.quota)), status, _left(r))
    return table


def _left(report: Any) -> str:
    """The 'left in previous' cell: objects still in previous places (counted by --probe)."""
    if not report.previous:
        return "-"
    if report.left_in_previous is None and report.ok is False:
        return f"{report.previous} place(s); not counted (the probe failed)"
    if report.left_in_previous is None:
        return f"{report.previous} place(s); --probe counts"
    return str(report.left_in_previous)


@main.command()
@_config_option
@_destination_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_roots_option
@click.argument("workspace")
@click.argument("path", required=False)
def route(
    config_path: Path | None,
    destination: str,
    as_json: bool,
    backend_store_uri: str | None,
    workspace: str,
    path: str | None,
) -> None:
    """Show where WORKSPACE's artifacts (or PATH, relative to the workspace) go, and where
    the route came from (file, workspace setting, glob, default)."""
    from ws_artifacts.lifecycle.checks import describe_route

    config, _ = _load(config_path)
    try:
        roots = _roots(config, backend_store_uri)
        info = describe_route(config, destination, workspace, path, roots)
    except WsArtifactsError as err:
        _fail(str(err), 1)
        return
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        _out.print(f"{key:12}: {escape(str(value))}")


@main.group()
def config() -> None:
    """Configuration file helpers."""


@config.command()
def schema() -> None:
    """Print the configuration file's JSON schema."""
    click.echo(json.dumps(Config.model_json_schema(), indent=2))


def _register() -> None:
    """The lifecycle commands, each defined in its own module."""
    from ws_artifacts.cli import lifecycle as lifecycle_cli
    from ws_artifacts.cli.migrate import migrate
    from ws_artifacts.cli.server import server

    for command in (
        server,
        migrate,
        lifecycle_cli.quarantine,
        lifecycle_cli.purge,
        lifecycle_cli.restore,
        lifecycle_cli.orphans,
    ):
        main.add_command(command)


_register()


@main.command()
@_config_option
@_destination_option
@click.option(
    "--by",
    type=click.Choice(["workspace", "experiment", "kind"]),
    default="workspace",
    show_default=True,
    help="Also give each experiment's share, or each kind's (experiments, skills, unknown).",
)
@click.option("--tracking-uri", help="A tracking server: its workspaces and experiment names.")
@click.option("--parallel", default=16, show_default=True, type=click.IntRange(1, 128))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--prometheus", is_flag=True, help="Print Prometheus gauges (text format).")
@_roots_option
@click.argument("workspaces", nargs=-1)
def usage(
    config_path: Path | None,
    destination: str,
    by: str,
    tracking_uri: str | None,
    parallel: int,
    as_json: bool,
    prometheus: bool,
    backend_store_uri: str | None,
    workspaces: tuple[str, ...],
) -> None:
    """Objects and bytes per workspace and route (and experiment), largest first."""
    from ws_artifacts.cli.usage import run_usage

    config, _ = _load(config_path)
    try:
        run_usage(
            config,
            destination,
            workspaces,
            by_experiment=by == "experiment",
            by_kind=by == "kind",
            tracking_uri=tracking_uri,
            parallel=parallel,
            output="json" if as_json else "prometheus" if prometheus else "table",
            out=_out,
            err=_err,
            roots=_roots(config, backend_store_uri),
        )
    except WsArtifactsError as error:
        _fail(str(error), 1)
