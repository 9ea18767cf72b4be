"""The early quota look at a proxied upload: its ``Content-Length``, judged against the
workspace's quota before a byte of its body is read, and handed to the quota for the request's
duration (:func:`ws_artifacts.serving.quota.declare_length`), so a stream that cannot fit is
refused with its real size.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["DeclaredLength"]

_logger = logging.getLogger(__name__)

#: The proxied upload endpoints (``PUT``), whose Content-Length is the file's size.
_UPLOAD_PATHS = (
    "/api/2.0/mlflow-artifacts/artifacts/",
    "/ajax-api/2.0/mlflow-artifacts/artifacts/",
)


class DeclaredLength:
    """ASGI middleware: a proxied upload's ``Content-Length``, handed to the quota
    (:func:`ws_artifacts.serving.quota.declare_length`) for the request's duration."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        length = _declared_length(scope)
        if length is None:
            await self.app(scope, receive, send)
            return
        from ws_artifacts.serving import quota

        refusal = await asyncio.to_thread(_refuse_declared, scope, length)  # may list
        if refusal is not None:  # answered before a byte of the body is read
            body = refusal.serialize_as_json().encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
            status = refusal.get_http_status_code()
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        token = quota.declare_length(length)
        try:
            await self.app(scope, receive, send)
        finally:
            quota.undeclare_length(token)


def _refuse_declared(scope: dict[str, Any], length: int) -> Any:
    """The quota's refusal of this upload, judged from its Content-Length (MLflow 3.10 reads
    the whole body before the repository sees it); None: let it through."""
    from ws_artifacts._mlflow.server_app import proxied_repository
    from ws_artifacts.core.paths import DEFAULT_WORKSPACE, WORKSPACES_SEGMENT
    from ws_artifacts.serving.repository import WorkspaceArtifactRepository

    headers = dict(scope.get("headers", ()))
    workspace = headers.get(b"x-mlflow-workspace", b"").decode("latin-1").strip()
    path = str(scope.get("path", ""))
    for prefix in _UPLOAD_PATHS:
        path = path.removeprefix(prefix)
    if not workspace or workspace == DEFAULT_WORKSPACE:
        return None  # MLflow decides these paths; the upload itself is judged as it arrives
    own = f"{WORKSPACES_SEGMENT}/{workspace}/"
    if path.startswith(f"{WORKSPACES_SEGMENT}/"):  # already scoped (MLflow 3.10's client)
        if not path.startswith(own):
            return None  # another workspace's path: MLflow refuses it
        path = path.removeprefix(own)
    try:
        repo = proxied_repository()
    except Exception:  # never fail an upload for the early look
        _logger.debug("no proxied repository for the early quota check", exc_info=True)
        return None
    if not isinstance(repo, WorkspaceArtifactRepository):
        return None
    pinned = repo.for_workspace(workspace)
    return pinned.refuse_declared_upload(own + path, length)


def _declared_length(scope: dict[str, Any]) -> int | None:
    if scope.get("type") != "http" or scope.get("method") != "PUT":
        return None
    path = str(scope.get("path", ""))
    if not any(path.startswith(p) for p in _UPLOAD_PATHS):
        return None
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None
