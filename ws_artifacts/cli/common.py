"""What every ``ws-artifacts`` command shares: the consoles, the ``--config`` and
``--destination`` options, loading the configuration, and failing with one clear line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape

from ws_artifacts.core.config import Config
from ws_artifacts.core.errors import WsArtifactsError
from ws_artifacts.core.loading import CONFIG_ENV_VAR, load_config

__all__ = [
    "DESTINATION_ENV",
    "config_option",
    "default_destination",
    "destination_option",
    "err",
    "fail",
    "load",
    "out",
]


def _width() -> int:
    """The terminal's width, at least 160 columns (also when not a terminal): wide terminals
    get wide tables; URL columns wrap rather than being cut."""
    import shutil

    return max(160, shutil.get_terminal_size((160, 24)).columns)


out = Console(highlight=False, width=_width())
err = Console(stderr=True, highlight=False, width=_width())

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=CONFIG_ENV_VAR,
    is_eager=True,  # read before --destination, which may come from the file
    help=f"Configuration file (default: ${CONFIG_ENV_VAR}, else the embedded default).",
)
#: Where the server keeps artifacts, for every command (a flag wins; the file's
#: ``destination`` loses).
DESTINATION_ENV = "WS_ARTIFACTS_DESTINATION"


def default_destination() -> str:
    """What ``ws-artifacts server`` uses with no configuration at all (``./run server``)."""
    return f"ws-file://{Path('ws-artifacts-data/artifacts').resolve()}"


def _destination(ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    """--destination, else $WS_ARTIFACTS_DESTINATION (click), else the configuration's
    ``destination``, else (no configuration file at all) the embedded server's default."""
    if value:
        return value
    from ws_artifacts.serving.server import default_config_path

    config, path = load(ctx.params.get("config_path"))
    if config.destination:
        return config.destination
    if path == default_config_path():
        embedded = default_destination()
        local = Path(embedded.removeprefix("ws-file://"))
        if not local.is_dir():
            fail(
                f"No configuration file and no destination given, and {local} (where "
                "`./run server` keeps artifacts when started from this directory) does not "
                f"exist. Pass --destination, set {DESTINATION_ENV}, or give the server's "
                f"configuration file (--config or {CONFIG_ENV_VAR}) with a `destination:`.",
                2,
            )
        err.print(
            f"note: no configuration file and no destination given: using {embedded} "
            "(the embedded server's default, from the current directory)"
        )
        return embedded
    fail(
        f"{path} does not say where the server keeps its artifacts. Add "
        "`destination: ws-s3://bucket[/prefix]` (the server's --artifacts-destination) to "
        f"it, or set {DESTINATION_ENV}, or pass --destination.",
        2,
    )


def destination_option(function: Any) -> Any:
    """``--destination`` (its value resolved as :func:`_destination` says)."""
    return click.option(
        "--destination",
        envvar=DESTINATION_ENV,
        callback=_destination,
        help=f"Where the server keeps artifacts (its --artifacts-destination). Default: "
        f"${DESTINATION_ENV}, else `destination:` in the configuration; without any "
        "configuration file, ws-file://<cwd>/ws-artifacts-data/artifacts as `ws-artifacts "
        "server`.",
    )(function)


def fail(message: str, code: int) -> NoReturn:
    """Print ``error: message`` on standard error and exit with ``code``."""
    err.print(f"[red]error:[/red] {escape(message)}")
    sys.exit(code)


def load(config_path: Path | None) -> tuple[Config, Path]:
    """The configuration at ``config_path`` (else the server's default) and its path; a bad
    file ends the command with its error and exit code 2."""
    from ws_artifacts.serving.server import default_config_path

    path = config_path or default_config_path()
    try:
        return load_config(path), path
    except WsArtifactsError as error:
        fail(str(error), 2)
