"""The guard for MLflow 3.18's skill registry: a skill version's ``source`` may not name a
storage place outside the caller's workspace.

The skill registry is a FastAPI router (``<prefix>/api/3.0/mlflow/skills``, and its
``/ajax-api`` twin), so Flask's ``before_request`` hook never sees it: this ASGI middleware reads
the JSON body of a version registration (``.../[@<org>/]<name>/versions``, and
``.../bulk-register``), checks every source that names storage with the same policy as every
other location, and replays the body to MLflow. Sources that name no storage (git, OCI, public
ZIP URLs: the client fetches them with its own credentials) are left to MLflow, as are uploads
(multipart bodies: the server chooses their place, in the caller's workspace).
"""

from __future__ import annotations

import json
import logging
import os
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["SkillSourceGuard", "storage_sources"]

_logger = logging.getLogger(__name__)

_PREFIXES = ("/api/3.0/mlflow/skills", "/ajax-api/3.0/mlflow/skills")
#: Schemes that name storage (an ``mlflow-artifacts``/``runs``/``models`` URI, a store, a file):
#: checked by the policy. ``ws-<scheme>`` too.
_STORAGE_SCHEMES = frozenset(
    {
        "mlflow-artifacts",
        "runs",
        "models",
        "s3",
        "s3a",
        "s3n",
        "gs",
        "gcs",
        "wasb",
        "wasbs",
        "abfs",
        "abfss",
        "adl",
        "hdfs",
        "viewfs",
        "dbfs",
        "oss",
        "file",
        "memory",
        "sftp",
        "ftp",
    }
)
_FIELD = "skill version source"

Asgi = Callable[
    [dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


def is_registration(path: str, prefix: str) -> bool:
    """Whether ``path`` registers skill versions (one, or in bulk)."""
    for base in _PREFIXES:
        head = f"{prefix}{base}/"
        if path.startswith(head):
            rest = path[len(head) :].rstrip("/")
            return rest == "bulk-register" or rest.endswith("/versions")
    return False


def storage_sources(body: Any) -> list[str]:
    """The sources of a registration body (single or bulk) that name storage."""
    entries = body.get("skills") if isinstance(body, dict) else None
    candidates = [body] if not isinstance(entries, list) else entries
    found: list[str] = []
    for entry in candidates:
        source = entry.get("source") if isinstance(entry, dict) else None
        if isinstance(source, str) and _names_storage(source):
            found.append(source)
    return found


def _names_storage(source: str) -> bool:
    scheme = urllib.parse.urlsplit(source.strip()).scheme.lower()
    return scheme in _STORAGE_SCHEMES or (scheme.startswith("ws-") and len(scheme) > 3)


class SkillSourceGuard:
    """ASGI middleware: refuses a skill version registration whose source names a storage place
    outside the caller's workspace (HTTP 403, ``PERMISSION_DENIED``). Installed innermost, so
    authentication and the workspace have been handled when it runs."""

    def __init__(self, app: Asgi) -> None:
        self.app = app
        self.prefix = os.environ.get("_MLFLOW_STATIC_PREFIX", "").rstrip("/")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            scope.get("type") != "http"
            or scope.get("method") != "POST"
            or not is_registration(scope.get("path", ""), self.prefix)
            or _content_type(scope) != "application/json"
        ):
            await self.app(scope, receive, send)
            return
        from ws_artifacts.serving.guard.asgi import checked_body

        await checked_body(self.app, scope, receive, send, _check)


def _content_type(scope: dict[str, Any]) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == b"content-type":
            return str(value.decode("latin-1").split(";")[0].strip().lower())
    return ""


async def _check(body: bytes) -> tuple[int, bytes] | None:
    import anyio

    from ws_artifacts.serving.guard._server import check_all, refusal_of

    try:
        sources = storage_sources(json.loads(body or b"{}"))
    except ValueError:
        return None  # not JSON: MLflow answers 400 for it
    if not sources:
        return None

    def run() -> None:
        check_all([(_FIELD, source, None) for source in sources])

    try:
        await anyio.to_thread.run_sync(run)  # runs:/ look-ups block; the context is copied
    except Exception as err:  # LocationRefused, or MLflow's own refusal
        status_and_body = refusal_of(err)
        if status_and_body is None:
            raise
        _logger.info("guard refused a skill version registration: %s", err)
        return status_and_body
    return None
