"""What the ``ws-artifacts`` app (:func:`ws_artifacts.serving.server.create_app`) installs in
MLflow's server app: the per-workspace counts and ``/metrics`` with the early quota look at an
upload's Content-Length (innermost, behind the server's authentication), the audit trail's
request middleware (outermost), and the mark that tells ``ws-artifacts server`` the worker is
ready.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

__all__ = ["ReadyReporter", "install_audit", "install_serving", "report_ready"]

_logger = logging.getLogger(__name__)


def install_serving(app: Any) -> None:
    """Count per workspace (``/metrics``, docs/metrics.md) and judge an upload's declared size
    against its quota before its body is read."""
    from ws_artifacts.serving import metrics as serving_metrics

    serving_metrics.start()
    if not hasattr(app, "user_middleware"):
        return
    from starlette.middleware import Middleware

    from ws_artifacts.serving.declared_length import DeclaredLength

    # Innermost, as the guard's: after MLflow's authentication and workspace middleware, so an
    # anonymous caller neither scrapes /metrics nor learns a workspace's quota from a refusal.
    app.user_middleware.append(Middleware(DeclaredLength))
    if not os.environ.get(serving_metrics.MLFLOW_EXPORTER_ENV):  # else MLflow's /metrics
        app.user_middleware.append(Middleware(serving_metrics.MetricsEndpoint))


def install_audit(app: Any, inner: str) -> None:
    """Open the audit file (a bad path fails the start) and put the request middleware
    outermost, so every request has an id before any other app sees it."""
    from ws_artifacts.serving import audit

    if not audit.enabled():
        return
    audit.open_sink()
    if not hasattr(app, "user_middleware"):
        _logger.warning(
            "ws-artifacts audit: %s is not an ASGI app; lines carry no request id, user or "
            "remote address",
            type(app).__name__,
        )
        return
    from starlette.middleware import Middleware

    from ws_artifacts.serving.request_info import BASIC_AUTH_APPS, AuditMiddleware

    app.user_middleware.insert(
        0,
        Middleware(AuditMiddleware, trust_basic_header=inner in BASIC_AUTH_APPS),
    )


def report_ready(app: Any, directory: str) -> None:
    """Mark this worker ready for ``ws-artifacts server`` once it accepts requests: under
    uvicorn, when its application startup has completed; a WSGI app (gunicorn) right away."""
    from ws_artifacts.serving.launcher import mark_ready

    if not hasattr(app, "add_middleware"):
        mark_ready(directory)
        return
    app.add_middleware(ReadyReporter, directory=directory)


class ReadyReporter:
    """ASGI middleware: after ``lifespan.startup.complete``, mark the worker ready.

    uvicorn starts serving the listening socket right after startup completes, in the same
    coroutine and without waiting on anything (``loop.create_server(sock=...)``); the mark is
    written from a task that first lets the event loop run that far.
    """

    _YIELDS = 3

    def __init__(self, app: Any, directory: str) -> None:
        self.app = app
        self.directory = directory
        self._task: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_then_mark(message: dict[str, Any]) -> None:
            await send(message)
            if message.get("type") == "lifespan.startup.complete":
                self._task = asyncio.get_running_loop().create_task(self._mark())

        await self.app(scope, receive, send_then_mark)

    async def _mark(self) -> None:
        from ws_artifacts.serving.launcher import mark_ready

        for _ in range(self._YIELDS):
            await asyncio.sleep(0)
        await asyncio.to_thread(mark_ready, self.directory)
