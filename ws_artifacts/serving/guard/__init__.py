"""An optional API guard for the MLflow server: refuse, before anything is stored, a location
that points outside the caller's workspace.

MLflow stores some locations straight from requests and later reads them with the server's
credentials: a model version's ``source``, the trace tags ``mlflow.artifactLocation`` and
``mlflow.trace.archiveLocation`` (REST v2 and v3, start/end trace, and OTLP root-span
attributes ``mlflow.traceTag.<tag>``), a workspace's ``default_artifact_root`` and trace archival
location, an experiment's ``artifact_location``, and (3.18) a skill version's ``source`` when it
names storage (:mod:`ws_artifacts.serving.guard.skills`). The guard checks each against the caller's
workspace with :class:`~ws_artifacts.serving.guard.policy.LocationPolicy` and answers HTTP 403
``PERMISSION_DENIED`` (an MLflow-style JSON error) when it points elsewhere.

Turn it on with one of the ``mlflow.app`` entry points::

    mlflow server --enable-workspaces ... --app-name ws-guard
    mlflow server --enable-workspaces ... --app-name ws-guard-basic-auth   # with basic-auth

or, for an app you build yourself, call :func:`install` last, after any other app factory
(basic-auth registers its authentication first, so the guard runs after it)::

    app = ws_artifacts.serving.guard.install(app)

Nothing happens at import.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["create_app", "create_basic_auth_app", "install"]

_FLASK_FLAG = "ws_artifacts_guard"
_logger = logging.getLogger(__name__)


def install(app: Any) -> Any:
    """Install the guard on MLflow's server app and return the app.

    Args:
        app: MLflow's Flask app (gunicorn, waitress) or the FastAPI app that mounts it
            (uvicorn; MLflow's own or the one basic-auth's ``create_app`` returns). Call this
            after every other factory has run and before the app serves a request.

    Returns:
        ``app`` itself, with a Flask ``before_request`` hook on the (mounted) Flask app, and,
        for a FastAPI app, an innermost ASGI middleware for the native OTLP route.

    Raises:
        TypeError: ``app`` is neither.
    """
    from flask import Flask

    if isinstance(app, Flask):
        _install_flask(app)
        return app
    if not hasattr(app, "user_middleware"):
        raise TypeError(
            f"ws_artifacts.serving.guard.install() takes MLflow's Flask or FastAPI app, not "
            f"{type(app).__name__}."
        )
    _install_flask(_mounted_flask(app))
    if not getattr(app.state, _FLASK_FLAG, False):
        if getattr(app, "middleware_stack", None) is not None:
            raise RuntimeError("Install the ws-artifacts guard before the app serves requests.")
        from starlette.middleware import Middleware

        from ws_artifacts.serving.guard.asgi import OtlpGuard
        from ws_artifacts.serving.guard.skills import SkillSourceGuard

        app.user_middleware.append(Middleware(OtlpGuard))  # innermost: after auth, workspace
        app.user_middleware.append(Middleware(SkillSourceGuard))
        setattr(app.state, _FLASK_FLAG, True)
    return app


def create_app() -> Any:
    """The ``ws-guard`` app: MLflow's own server app with the guard."""
    from ws_artifacts.serving.guard import _server

    return install(_server.mlflow_server_app())


def create_basic_auth_app() -> Any:
    """The ``ws-guard-basic-auth`` app: MLflow's basic-auth app with the guard after it.

    ``mlflow server`` creates basic-auth's admin user before starting workers only for
    ``--app-name basic-auth``; with this app each worker does it on start (as MLflow does for
    any app that calls basic-auth's factory itself).
    """
    from ws_artifacts.serving.guard import _server

    return install(_server.basic_auth_app())


def _install_flask(app: Any) -> None:
    if app.extensions.get(_FLASK_FLAG):
        return
    from ws_artifacts.serving.guard._server import EXTRACTORS, flask_guard

    app.before_request(flask_guard)  # runs after MLflow's workspace and basic-auth hooks
    app.extensions[_FLASK_FLAG] = True
    missing = sorted(set(EXTRACTORS) - set(app.view_functions))
    if missing and app.view_functions.get("_create_model_version") is not None:
        _logger.warning(
            "ws-artifacts guard: this MLflow has no endpoint %s; requests to it are not checked",
            ", ".join(missing),
        )


def _mounted_flask(app: Any) -> Any:
    from flask import Flask

    for route in getattr(app, "routes", []):
        inner = getattr(getattr(route, "app", None), "app", None)
        if isinstance(inner, Flask):
            return inner
    from ws_artifacts.serving.guard import _server

    return _server.mlflow_flask_app()
