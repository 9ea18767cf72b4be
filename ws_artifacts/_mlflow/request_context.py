"""The current request as MLflow keeps it: its workspace and its authenticated user."""

from __future__ import annotations

from mlflow.utils.workspace_context import get_request_workspace

__all__ = ["active_workspace", "authenticated_user"]


def active_workspace() -> str | None:
    """The workspace of the current request (server) or of ``mlflow.set_workspace`` (client).

    Read it in the thread that received the request: MLflow keeps it in a ContextVar that
    worker threads do not see.
    """
    workspace: str | None = get_request_workspace()
    return workspace


def authenticated_user() -> str | None:
    """The user MLflow's basic-auth authenticated for this Flask request (3.11+ keeps it in
    ``flask.g.mlflow_authenticated_user``); None outside a Flask request or without it."""
    try:
        from flask import g, has_app_context
    except ImportError:
        return None
    if not has_app_context():
        return None
    user = getattr(g, "mlflow_authenticated_user", None)
    return user if isinstance(user, str) and user else None
