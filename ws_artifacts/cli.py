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
from ws_artifacts.cli_common import config_option, destination_option, err, fail, load, out
from ws_artifacts.config import Config
from ws_artifacts.errors import WsArtifactsError

__all__ = ["main"]

_out, _err, _fail, _load = out, err, fail, load
_config_option, _destination_option = config_option, destination_option


@click.group()
@click.version_option(__version__, prog_name="ws-artifacts")
def main() -> None:
    """Per-workspace artifact routing for a shared MLflow server."""


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@_config_option
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("ws-artifacts-data"),
    show_default=True,
    help="Where the default SQLite database and artifact directory live.",
)
@click.option("--backend-store-uri", help="Tracking store (default: SQLite in --data-dir).")
@click.option(
    "--artifacts-destination",
    help="Default destination, ws-s3://bucket[/prefix] or ws-file:///dir "
    "(default: ws-file://<data-dir>/artifacts).",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=4, show_default=True, type=int)
@click.option("--app-name", help="Another mlflow.app to wrap, e.g. basic-auth.")
@click.option(
    "--guard/--no-guard",
    default=True,
    show_default=True,
    help="Refuse requests that point locations into other workspaces (see docs/security.md "
    "for what --no-guard gives up).",
)
@click.option(
    "--nodelay/--no-nodelay",
    default=True,
    show_default=True,
    help="Turn Nagle's algorithm off on connections (avoids ~40 ms stalls).",
)
@click.option(
    "--audit",
    metavar="PATH",
    help="Write one JSON line per artifact operation to PATH ('-': standard output); "
    "default: $WS_ARTIFACTS_AUDIT, else off. See docs/audit.md.",
)
@click.option(
    "--workspace-provider/--no-workspace-provider",
    default=True,
    show_default=True,
    help="Quarantine a workspace's artifacts when it is deleted (docs/lifecycle.md).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan and the command; do not start.")
@click.pass_context
def server(ctx: click.Context, /, config_path: Path | None, data_dir: Path, **options: Any) -> None:
    """Start `mlflow server` with workspaces on and artifacts routed per workspace.

    Options it does not know go to `mlflow server` unchanged.
    """
    from ws_artifacts import server as srv

    config, path = _load(config_path)
    dry_run = options.pop("dry_run")
    plan = srv.plan_command(
        config_path=path.resolve(),
        data_dir=data_dir,
        inner_app=options.pop("app_name"),
        extra=tuple(ctx.args),
        **options,
    )
    if not plan.destination.startswith("ws-"):
        _fail(
            "--artifacts-destination must be a ws-* URI (ws-s3://bucket[/prefix], ws-file:///dir).",
            2,
        )
    if plan.destination.startswith("ws-file://"):
        Path(plan.destination.removeprefix("ws-file://")).mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    _print_plan(plan, config)
    if dry_run:
        from ws_artifacts._redact import hide_password

        command = plan.shell_command()
        shown = hide_password(command)
        click.echo(shown)
        if shown != command:
            _err.print(
                "note: the database password is shown masked; pass the URI in "
                "MLFLOW_BACKEND_STORE_URI (or a .pgpass / PGPASSWORD) rather than on a "
                "command line"
            )
        return
    inner = plan.env.get(srv.INNER_APP_ENV)
    if inner:
        from ws_artifacts._mlflow import bootstrap_server_app

        bootstrap_server_app(inner)
    sys.stdout.flush()
    from ws_artifacts.launcher import run

    sys.exit(run(plan.argv, plan.env, url=plan.url, workers=options["workers"]))


def _print_plan(plan: Any, config: Config) -> None:
    from ws_artifacts.checks import check_routes
    from ws_artifacts.routing import DESTINATION

    _out.print(
        f"ws-artifacts {__version__}: MLflow server with workspaces at [bold]{plan.url}[/bold]"
    )
    from ws_artifacts._redact import hide_password

    _out.print(f"  tracking store : {hide_password(plan.backend_store_uri)}")
    _out.print(f"  destination    : {plan.destination}")
    _out.print(f"  configuration  : {plan.config_path}")
    _out.print(f"  audit trail    : {plan.env.get('WS_ARTIFACTS_AUDIT') or 'off'}")
    table = Table(title="workspace routes", title_justify="left")
    for column in ("workspaces", "goes to", "backend", "credentials"):
        table.add_column(column)
    for report in check_routes(config, plan.destination, probe=False):
        if report.entry == DESTINATION:
            continue  # the "(any other)" row below
        table.add_row(
            escape(report.entry),
            escape(report.url + "/workspaces/<name>/..."),
            report.backend,
            escape(report.credentials),
        )
    fallback = (
        "refused (unknown_workspaces: deny)"
        if config.unknown_workspaces == "deny"
        else f"{plan.destination}/workspaces/<name>/..."
    )
    table.add_row("(any other)", escape(fallback), "", "defaults")
    _out.print(table)


@main.command()
@_config_option
@_destination_option
@click.option("--probe", is_flag=True, help="Write, read and delete a marker in every route.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def check(config_path: Path | None, destination: str, probe: bool, as_json: bool) -> None:
    """Validate the configuration and resolve (optionally probe) every route."""
    from ws_artifacts.checks import check_routes

    config, path = _load(config_path)
    reports = check_routes(config, destination, probe=probe)
    failed = [r for r in reports if r.ok is False]
    if as_json:
        payload = {"config": str(path), "ok": not failed, "routes": [r.as_dict() for r in reports]}
        click.echo(json.dumps(payload, indent=2))
    else:
        table = Table(title=f"{path}: {len(reports)} route(s)", title_justify="left")
        columns = ("entry", "example", "url", "backend", "credentials", "storage", "probe")
        for column in (*columns, "left in previous"):
            table.add_column(column)
        for r in reports:
            status = (
                "-"
                if r.ok is None
                else ("[green]ok[/green]" if r.ok else f"[red]{escape(r.error or '')}[/red]")
            )
            table.add_row(
                *(
                    escape(v)
                    for v in (r.entry, r.workspace, r.url, r.backend, r.credentials, r.storage)
                ),
                status,
                _left(r),
            )
        _out.print(table)
        _out.print(
            "[green]configuration OK[/green]"
            if not failed
            else f"[red]{len(failed)} route(s) failed[/red]"
        )
    sys.exit(1 if failed else 0)


def _left(report: Any) -> str:
    """The 'left in previous' cell: objects still in previous places (counted by --probe)."""
    if not report.previous:
        return "-"
    if report.left_in_previous is None:
        return f"{report.previous} place(s); --probe counts"
    return str(report.left_in_previous)


@main.command()
@_config_option
@_destination_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("workspace")
@click.argument("path", required=False)
def route(
    config_path: Path | None, destination: str, as_json: bool, workspace: str, path: str | None
) -> None:
    """Show where WORKSPACE's artifacts (or PATH, relative to the workspace) go."""
    from ws_artifacts.checks import describe_route

    config, _ = _load(config_path)
    try:
        info = describe_route(config, destination, workspace, path)
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
    from ws_artifacts import lifecycle_cli
    from ws_artifacts.migrate_cli import migrate

    for command in (
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
@click.argument("workspaces", nargs=-1)
def usage(
    config_path: Path | None,
    destination: str,
    by: str,
    tracking_uri: str | None,
    parallel: int,
    as_json: bool,
    prometheus: bool,
    workspaces: tuple[str, ...],
) -> None:
    """Objects and bytes per workspace and route (and experiment), largest first."""
    from ws_artifacts.cli_usage import run_usage

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
        )
    except WsArtifactsError as error:
        _fail(str(error), 1)
