"""What every ``ws-artifacts`` command shares: the consoles, the ``--config`` and
``--destination`` options, loading the configuration, and failing with one clear line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.markup import escape

from ws_artifacts.config import CONFIG_ENV_VAR, Config, load_config
from ws_artifacts.errors import WsArtifactsError

__all__ = ["config_option", "destination_option", "err", "fail", "load", "out"]

out = Console(highlight=False, width=160)
err = Console(stderr=True, highlight=False, width=160)

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=CONFIG_ENV_VAR,
    help=f"Configuration file (default: ${CONFIG_ENV_VAR}, else the embedded default).",
)
destination_option = click.option(
    "--destination",
    default=lambda: f"ws-file://{Path('ws-artifacts-data/artifacts').resolve()}",
    show_default="ws-file://<cwd>/ws-artifacts-data/artifacts, as `ws-artifacts server`",
    help="The default destination (the server's --artifacts-destination).",
)


def fail(message: str, code: int) -> NoReturn:
    """Print ``error: message`` on standard error and exit with ``code``."""
    err.print(f"[red]error:[/red] {escape(message)}")
    sys.exit(code)


def load(config_path: Path | None) -> tuple[Config, Path]:
    """The configuration at ``config_path`` (else the server's default) and its path; a bad
    file ends the command with its error and exit code 2."""
    from ws_artifacts.server import default_config_path

    path = config_path or default_config_path()
    try:
        return load_config(path), path
    except WsArtifactsError as error:
        fail(str(error), 2)
