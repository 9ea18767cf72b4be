"""What the audit lines say about the request behind an operation: its id, remote address and
authenticated user, kept by :class:`AuditMiddleware` (installed outermost by the
``ws-artifacts`` server app when the audit trail is on) in a ContextVar for the request's
duration; and :func:`printable`, which strips what a client's header could smuggle into a line.
"""

from __future__ import annotations

import contextvars
import re
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = ["BASIC_AUTH_APPS", "AuditMiddleware", "RequestInfo", "current_request", "printable"]

#: The apps whose Authorization header user is the authenticated user (they refuse otherwise).
BASIC_AUTH_APPS = frozenset({"basic-auth", "ws-guard-basic-auth"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
# What a terminal, ``jq -r`` or a log viewer could act on or show as another text: controls (C0
# with ESC, DEL, C1), line and paragraph separators, bidirectional and other invisible format
# characters (Cf). Stripped from every value a client's header puts into a line.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


@dataclass
class RequestInfo:
    """What the middleware learnt about the current request."""

    request_id: str
    remote: str | None
    forwarded_for: str | None
    scope: dict[str, Any]
    basic_user: str | None  # only set when a basic-auth app checked that header


_request: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar(
    "ws_artifacts_audit_request", default=None
)


def current_request() -> RequestInfo | None:
    """What the middleware learnt about the request under way (None outside one)."""
    return _request.get()


def printable(text: str | None) -> str | None:
    """``text`` without control, separator and invisible format characters (None stays None;
    nothing left is None too): header values reach the line as the client sent them."""
    if text is None:
        return None
    kept = "".join(ch for ch in text if unicodedata.category(ch) not in _UNSAFE_CATEGORIES)
    return kept or None


class AuditMiddleware:
    """ASGI middleware: the request's id, remote address and user hints, for the audit lines.

    Args:
        app: The ASGI app it wraps.
        trust_basic_header: The server runs a basic-auth app, which refuses requests whose
            Authorization header does not authenticate, so that header's user is the
            authenticated one.
    """

    def __init__(self, app: Any, trust_basic_header: bool = False) -> None:
        self.app = app
        self.trust_basic_header = trust_basic_header

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        given = headers.get(b"x-request-id", b"").decode("latin-1").strip()
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        client = scope.get("client")
        forwarded = headers.get(b"x-forwarded-for", b"").decode("latin-1").split(",")[0].strip()
        info = RequestInfo(
            request_id=request_id,
            remote=str(client[0]) if client else None,
            forwarded_for=(printable(forwarded) or "")[:64] or None,
            scope=scope,
            basic_user=_basic_user(headers.get(b"authorization"))
            if self.trust_basic_header
            else None,
        )
        scope.setdefault("state", {})
        token = _request.set(info)

        async def send_with_id(message: dict[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                message = dict(message)
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _request.reset(token)


def _basic_user(header: bytes | None) -> str | None:
    import base64
    import binascii

    if not header:
        return None
    scheme, _, value = header.decode("latin-1").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user = decoded.partition(":")[0]  # the password is dropped here and never kept
    return user or None
