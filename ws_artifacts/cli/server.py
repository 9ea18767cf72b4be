"""The ``ws-artifacts server`` command (registered by :mod:`ws_artifacts.cli.main`): the plan,
the routes it will serve, then ``mlflow server`` through the launcher."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from ws_artifacts import __version__
from ws_artifacts.cli.common import config_option, err, fail, load, out
from ws_artifacts.core.config import Config
from ws_artifacts.core.errors import WsArtifactsError

__all__ = ["server"]

_out, _err, _fail, _load = out, err, fail, load
_config_option = config_option


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
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
    envvar="WS_ARTIFACTS_DESTINATION",
    help="Default destination, ws-s3://bucket[/prefix] or ws-file:///dir (default: "
    "$WS_ARTIFACTS_DESTINATION, else `destination:` in the configuration, else "
    "ws-file://<data-dir>/artifacts).",
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
@click.option(
    "--artifacts-presigned-only",
    "presigned_only",
    is_flag=True,
    envvar="MLFLOW_ARTIFACTS_PRESIGNED_ONLY",
    help="MLflow 3.18+: clients move every artifact byte to and from each workspace's own "
    "bucket through presigned URLs; the server carries none (docs/presigned-only.md).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan and the command; do not start.")
@click.pass_context
def server(ctx: click.Context, /, config_path: Path | None, data_dir: Path, **options: Any) -> None:
    """Start `mlflow server` with workspaces on and artifacts routed per workspace.

    Options it does not know go to `mlflow server` unchanged.
    """
    from ws_artifacts.serving import server as srv
    from ws_artifacts.serving.launcher import run

    dry_run = options.pop("dry_run")
    if not dry_run:  # first: a busy port is said at once, not when MLflow fails to bind
        from ws_artifacts.serving.launcher import port_problem

        problem = port_problem(options["host"], options["port"])
        if problem:
            _fail(problem, 1)
    config, path = _load(config_path)
    plan = _server_plan(ctx, config, path, data_dir, options)
    if plan.destination.startswith("ws-file://"):
        Path(plan.destination.removeprefix("ws-file://")).mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    _print_plan(plan, config)
    if dry_run:
        _print_command(plan)
        return
    _say_what_changed(data_dir, config, plan.destination)
    srv.bootstrap_inner_app(plan)
    sys.stdout.flush()
    sys.exit(run(plan.argv, plan.env, url=plan.url, workers=options["workers"]))


def _server_plan(
    ctx: click.Context, config: Config, path: Path, data_dir: Path, options: dict[str, Any]
) -> Any:
    """The ``mlflow server`` command to run, or exit 2 on what it (or MLflow) would refuse."""
    from ws_artifacts.serving import server as srv

    options["artifacts_destination"] = options["artifacts_destination"] or config.destination
    try:
        plan = srv.plan_command(
            config_path=path.resolve(),
            data_dir=data_dir,
            inner_app=options.pop("app_name"),
            extra=tuple(ctx.args),
            **options,
        )
    except WsArtifactsError as error:
        _fail(str(error), 2)
    if not plan.destination.startswith("ws-"):
        _fail(
            "--artifacts-destination must be a ws-* URI (ws-s3://bucket[/prefix], ws-file:///dir).",
            2,
        )
    problem = srv.mlflow_usage_error(plan) if ctx.args else None
    if problem:
        _fail(
            f"ws-artifacts server: {problem} Options that `ws-artifacts server` does not "
            "know go to `mlflow server`: see `ws-artifacts server --help` and "
            "`mlflow server --help`.",
            2,
        )
    return plan


def _print_command(plan: Any) -> None:
    """The command a dry run shows, its database password masked."""
    from ws_artifacts.core.redact import hide_password

    command = plan.shell_command()
    shown = hide_password(command)
    click.echo(shown)
    if shown != command:
        _err.print(
            "note: the database password is shown masked; pass the URI in "
            "MLFLOW_BACKEND_STORE_URI (or a .pgpass / PGPASSWORD) rather than on a "
            "command line"
        )


def _say_what_changed(data_dir: Path, config: Config, destination: str) -> None:
    """Warn about routes and the destination that moved since the last start (as a live
    reload does), then record this start (docs/configuration.md, "Restarts")."""
    from ws_artifacts.serving import last_start

    current = last_start.record(config, destination)
    previous = last_start.read_record(data_dir)
    if previous is not None:
        for message in last_start.changes_since(previous, config, destination):
            _err.print(f"[yellow]warning:[/yellow] {escape(message)}")
    if previous != current:
        last_start.write_record(data_dir, current)


def _print_plan(plan: Any, config: Config) -> None:
    from ws_artifacts.core.targets import DESTINATION
    from ws_artifacts.lifecycle.checks import check_routes

    _out.print(
        f"ws-artifacts {__version__}: MLflow server with workspaces at [bold]{plan.url}[/bold]"
    )
    from ws_artifacts.core.redact import hide_password

    _out.print(f"  tracking store : {hide_password(plan.backend_store_uri)}")
    _out.print(f"  destination    : {plan.destination}")
    _out.print(f"  configuration  : {plan.config_path}")
    _out.print(f"  audit trail    : {plan.env.get('WS_ARTIFACTS_AUDIT') or 'off'}")
    table = Table(title="workspace routes", title_justify="left")
    for column in ("workspaces", "goes to", "backend", "credentials", "quota"):
        table.add_column(column, overflow="fold")  # never cut a URL
    fallback: Any = None
    for report in check_routes(config, plan.destination, probe=False):
        if report.entry == DESTINATION:
            fallback = report  # the "(any other)" row, last
            continue
        table.add_row(
            escape(report.entry),
            escape(_goes_to(config, report)),
            report.backend,
            escape(report.credentials),
            escape(report.quota),
        )
    if config.unknown_workspaces == "deny":
        table.add_row("(any other)", "refused (unknown_workspaces: deny)", "-", "-", "-")
    elif fallback is not None:
        table.add_row(
            "(any other)",
            escape(f"{plan.destination}/workspaces/<name>/..."),
            fallback.backend,
            escape(fallback.credentials),
            escape(fallback.quota),
        )
    _out.print(table)
    from ws_artifacts.serving.server import PRESIGNED_ONLY_ENV

    if plan.env.get(PRESIGNED_ONLY_ENV) == "true":
        _print_presigned_only(config, plan.destination)


def _print_presigned_only(config: Config, destination: str) -> None:
    """Say that the server carries no bytes, and which routes will refuse every transfer."""
    from ws_artifacts.lifecycle.checks import check_routes

    _out.print("  presigned-only : on (clients move bytes to and from storage themselves)")
    for report in check_routes(config, destination, probe=False):
        if report.backend != "s3":
            _err.print(
                f"[yellow]warning:[/yellow] {escape(report.entry)} goes to "
                f"{escape(report.url)} ({report.backend}), which has no presigned URLs: its "
                "uploads and downloads will be refused; route it to S3 or run without "
                "--artifacts-presigned-only."
            )


def _goes_to(config: Config, report: Any) -> str:
    """Where an entry's workspaces go: an exact name's own place; a glob's URL as written
    (``{workspace}`` shown as ``<name>``), not its example's."""
    if report.entry == report.workspace:
        return f"{report.url}/workspaces/{report.entry}/..."
    template = config.workspaces[report.entry].url.replace("{workspace}", "<name>")
    return f"{template.rstrip('/')}/workspaces/<name>/..."
