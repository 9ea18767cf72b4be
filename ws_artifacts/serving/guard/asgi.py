"""The guard's ASGI side: :class:`OtlpGuard` on MLflow's native OTLP route (and on every
request that names the quarantine area), and :func:`checked_body`, which reads a request's whole
body, checks it and replays it to the app (also used by :mod:`.skills`). What a body sets is read
by :mod:`._server`, the guard's one door to MLflow's parsers.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from ws_artifacts.serving.guard._server import (
    QUARANTINE_REFUSAL,
    check_all,
    location_tags,
    names_quarantine,
    otlp_traces_path,
    refusal_error,
    refusal_of,
)
from ws_artifacts.serving.guard.policy import LocationRefused

__all__ = ["OtlpGuard", "checked_body"]

_logger = logging.getLogger(__name__)
_BAD_OTLP = "Invalid OpenTelemetry format"  # MLflow's answer to a body it cannot parse


Asgi = Callable[
    [dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class OtlpGuard:
    """ASGI middleware for MLflow's native OTLP route (``POST <prefix>/v1/traces``): the body
    is read once, checked, and replayed to the route. It also refuses any request that names
    the quarantine area (the FastAPI-native artifact routes included). Installed innermost, so
    authentication and the workspace have been handled when it runs."""

    def __init__(self, app: Asgi) -> None:
        self.app = app
        prefix = os.environ.get("_MLFLOW_STATIC_PREFIX", "").rstrip("/")
        self.path = f"{prefix}{otlp_traces_path()}"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and names_quarantine(
            scope.get("path", ""), scope.get("query_string", b"").decode("latin-1")
        ):
            error = refusal_error(LocationRefused(QUARANTINE_REFUSAL))
            await _send_json(send, error.get_http_status_code(), error.serialize_as_json().encode())
            return
        if (
            scope.get("type") != "http"
            or scope.get("method") != "POST"
            or (scope.get("path", "").rstrip("/") != self.path)
        ):
            await self.app(scope, receive, send)
            return
        await checked_body(self.app, scope, receive, send, lambda body: _check_otlp(scope, body))


async def checked_body(
    app: Any,
    scope: dict[str, Any],
    receive: Any,
    send: Any,
    check: Callable[[bytes], Awaitable[tuple[int, bytes] | None]],
) -> None:
    """Read a request's whole body, answer ``check``'s refusal (status, JSON) if it has one,
    else hand the request on to ``app`` with the body replayed."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if message.get("type") != "http.request" or not message.get("more_body"):
            break
    body = b"".join(chunks)
    refusal = await check(body)
    if refusal is not None:
        await _send_json(send, *refusal)
        return
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    await app(scope, replay, send)


async def _check_otlp(scope: dict[str, Any], body: bytes) -> tuple[int, bytes] | None:
    import anyio

    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}

    def run() -> None:
        checks = location_tags(
            body, headers.get("content-type", ""), headers.get("content-encoding", "")
        )
        check_all(checks)

    try:
        await anyio.to_thread.run_sync(run)  # store look-ups block; context is copied
    except Exception as err:  # noqa: BLE001 - a refusal, or unparseable (MLflow answers 400)
        if isinstance(err, LocationRefused):
            _logger.debug("guard refused an OTLP export: %s", err)
        refused = refusal_of(err)  # the policy's refusal or MLflow's own
        if refused is not None:
            return refused
        payload = {
            "error_code": "INVALID_PARAMETER_VALUE",
            "message": _BAD_OTLP,
        }
        return 400, json.dumps(payload).encode()
    return None


async def _send_json(send: Any, status: int, body: bytes) -> None:
    """Answer the request with a JSON body (an MLflow-style error)."""
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
