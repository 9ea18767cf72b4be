"""``mlflow server``: its ASGI app and ``--app-name`` entry points, its command line, and the
proxied artifact repository its handlers build and cache in each worker."""

from __future__ import annotations

from typing import Any

from ws_artifacts._mlflow.environment import ARTIFACTS_DESTINATION_ENV_VAR

__all__ = [
    "bootstrap_server_app",
    "build_proxied_repository",
    "default_server_app",
    "find_server_app",
    "proxied_repository",
    "server_usage_error",
]


def default_server_app() -> Any:
    """MLflow's own ASGI app (what ``mlflow server`` runs under uvicorn)."""
    from mlflow.server.fastapi_app import app

    return app


def find_server_app(name: str) -> str:
    """The ``module:attr`` of the ``mlflow.app`` entry point called ``name``."""
    from mlflow.server import _find_app

    target: str = _find_app(name)
    return target


def server_usage_error(args: list[str]) -> str | None:
    """Why ``mlflow server`` would refuse ``args`` (the arguments after ``server``), found by
    its own click command parsing them without running; None when it would take them."""
    import click
    from mlflow.cli import server

    try:
        server.make_context("mlflow server", list(args))
    except click.ClickException as err:
        return str(err.format_message())
    return None


def bootstrap_server_app(name: str) -> None:
    """Do what ``mlflow server --app-name NAME`` does before starting workers (3.17: create the
    basic-auth admin user once, instead of in every worker)."""
    import mlflow.server

    bootstrap = getattr(mlflow.server, "_bootstrap_basic_auth", None)
    if name == "basic-auth" and bootstrap is not None:
        bootstrap()


def proxied_repository() -> Any:
    """The proxied artifact repository MLflow cached in this worker (None: no artifacts
    served)."""
    import importlib
    import os

    if not os.environ.get(ARTIFACTS_DESTINATION_ENV_VAR):
        return None
    handlers: Any = importlib.import_module("mlflow.server.handlers")
    build = getattr(handlers, "_get_artifact_repo_mlflow_artifacts", None)
    return build() if build is not None else None


def build_proxied_repository() -> None:
    """Build the proxied artifact repository the way MLflow's handlers do, so that MLflow caches
    it in this worker now rather than while answering the first client's ``/server-info``
    (which builds it on first use). Does nothing when the worker serves no artifacts."""
    import os

    if not os.environ.get(ARTIFACTS_DESTINATION_ENV_VAR):
        return
    import importlib

    handlers: Any = importlib.import_module("mlflow.server.handlers")
    build = getattr(handlers, "_get_artifact_repo_mlflow_artifacts", None)
    if build is not None:
        build()
