"""The audit trail: one JSON line per artifact operation, off unless asked for.

Turn it on with ``WS_ARTIFACTS_AUDIT=/var/log/ws-artifacts/audit.jsonl`` (or ``-`` for
standard output), or ``ws-artifacts server --audit PATH``. Each line says when (UTC), which
workspace, what operation on which path and location, how many bytes where known, the outcome
(``ok``, or ``error`` and MLflow's error code), the request id, the authenticated user and the
remote address. Never a secret: no query strings, no headers but the request id, no
credentials, no error messages.

Two halves:

* :class:`~ws_artifacts.serving.request_info.AuditMiddleware`, installed by the
  ``ws-artifacts`` server app, keeps the request's id (``X-Request-ID`` when the client sent
  a sane one, else a new one, echoed in the response), remote address and authentication
  hints in a ContextVar;
* the repository marks each operation with :func:`audited` and tells :func:`note` what it
  resolved. The line is written when the operation ends, with one ``write()`` on a descriptor
  opened with ``O_APPEND``, so lines of many processes never interleave.

Nothing happens at import.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import functools
import inspect
import json
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar, cast

from ws_artifacts.core.errors import ConfigError, WsArtifactsError
from ws_artifacts.serving.request_info import RequestInfo, current_request, printable

__all__ = [
    "AUDIT_ENV",
    "audited",
    "counted",
    "counted_chunks",
    "current_operation",
    "enabled",
    "note",
    "open_sink",
    "refusal",
]

_logger = logging.getLogger(__name__)

#: Where the audit lines go: a file path, or ``-`` for standard output. Unset or empty: off.
AUDIT_ENV = "WS_ARTIFACTS_AUDIT"
_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass
class _Pending:
    operation: str
    started: float
    workspace: str | None = None
    path: str | None = None
    location: str | None = None
    route_source: str | None = None
    size: int | None = None
    counters: list[Any] = field(default_factory=list)


_pending: contextvars.ContextVar[_Pending | None] = contextvars.ContextVar(
    "ws_artifacts_audit_pending", default=None
)


# -- the sink -------------------------------------------------------------------------------
class _Sink:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._where: str | None = None
        self._fd = -1
        self._failed = False

    def fd(self, where: str) -> int:
        if where == self._where and self._fd >= 0:
            return self._fd
        with self._lock:
            if where != self._where or self._fd < 0:
                self._fd, self._where, self._failed = _open(where), where, False
        return self._fd

    def write(self, where: str, line: bytes) -> None:
        try:
            os.write(self.fd(where), line)
        except (OSError, ConfigError) as err:
            if not self._failed:  # once per sink, not once per operation
                self._failed = True
                _logger.error("cannot write the audit trail to %s: %s", where, err)


def _open(where: str) -> int:
    if where == "-":
        return 1
    try:
        parent = os.path.dirname(os.path.abspath(where))
        os.makedirs(parent, exist_ok=True)
        return os.open(where, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError as err:
        raise ConfigError(
            f"{AUDIT_ENV}={where}: cannot open the audit file ({err.strerror}). Give a path the "
            "server's user may create and append to, or '-' for standard output."
        ) from err


_sink = _Sink()


def where() -> str:
    """The configured destination (empty: off)."""
    return os.environ.get(AUDIT_ENV, "").strip()


def enabled() -> bool:
    """Whether the audit trail is on in this process."""
    return bool(where())


def open_sink() -> None:
    """Open the destination now (at server start), so a bad path fails at once.

    Raises:
        ConfigError: The file cannot be created or appended to.
    """
    if enabled():
        _sink.fd(where())


# -- the repository's side ------------------------------------------------------------------
def audited(operation: str) -> Callable[[_F], _F]:
    """Write one line when the decorated repository method ends (sync or async).

    Nested audited calls (a trace read that reads a file) make one line, the outer one's.
    """

    def decorate(method: _F) -> _F:
        if inspect.iscoroutinefunction(method):

            @functools.wraps(method)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if not _recording() or _pending.get() is not None:
                    return await method(*args, **kwargs)
                with _operation(operation):
                    return await method(*args, **kwargs)

            return cast(_F, async_wrapper)

        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not _recording() or _pending.get() is not None:
                return method(*args, **kwargs)
            with _operation(operation):
                return method(*args, **kwargs)

        return cast(_F, wrapper)

    return decorate


@contextlib.contextmanager
def _operation(operation: str) -> Iterator[None]:
    """Follow one operation: its line is finished when the block ends, however it ends."""
    token = _pending.set(_Pending(operation, time.monotonic()))
    try:
        yield
    except BaseException as err:
        _finish(token, err)
        raise
    _finish(token, None)


def note(
    target: Any = None,
    *,
    workspace: str | None = None,
    base: str | None = None,
    path: str | None = None,
    size: int | None = None,
    files: Iterable[str] = (),
) -> None:
    """Tell the current operation's line what is known: the requested path (``base`` +
    ``path``) and caller's workspace before resolving, the resolved target after, the size.
    The first target noted is the operation's; ``files`` are local files whose sizes count.
    A no-op when auditing is off."""
    pending = _pending.get()
    if pending is None:
        return
    if workspace is not None and pending.workspace is None:
        pending.workspace = workspace
    if (base is not None or path is not None) and pending.path is None:
        pending.path = "/".join(p.strip("/") for p in (base or "", path or "") if p)
    if target is not None and pending.location is None:
        pending.location = str(target.uri)
        pending.workspace = str(target.workspace)
        pending.route_source = str(target.route.source)
    if size is not None:
        pending.size = (pending.size or 0) + size
    for name in files:  # sizes of local files, looked at only when auditing
        pending.size = (pending.size or 0) + os.path.getsize(name)


class _CountingReader:
    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.count += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def counted(stream: BinaryIO) -> BinaryIO:
    """``stream``, counting the bytes read into the current line (itself when off)."""
    pending = _pending.get()
    if pending is None:
        return stream
    reader = _CountingReader(stream)
    pending.counters.append(reader)
    return cast(BinaryIO, reader)


def counted_chunks(chunks: AsyncIterable[bytes]) -> AsyncIterable[bytes]:
    """``chunks``, counting their bytes into the current line (themselves when off)."""
    pending = _pending.get()
    if pending is None:
        return chunks
    counter = _CountingReader.__new__(_CountingReader)
    counter.count = 0
    pending.counters.append(counter)

    async def counting() -> AsyncIterator[bytes]:
        async for chunk in chunks:
            counter.count += len(chunk)
            yield chunk

    return counting()


def _recording() -> bool:
    """Whether operations are followed: for the audit trail or the server's metrics."""
    from ws_artifacts.serving import metrics as serving_metrics

    return enabled() or serving_metrics.on()


def current_operation() -> str | None:
    """The artifact operation under way in this context (None outside one, or when neither
    the audit trail nor the metrics follow operations)."""
    pending = _pending.get()
    return pending.operation if pending is not None else None


def refusal(operation: str, workspace: str | None, error_code: str) -> None:
    """One line for a refusal outside an artifact operation (the guard, a workspace
    deletion); inside one, the operation's own line says it."""
    if not enabled() or _pending.get() is not None:
        return
    pending = _Pending(operation, time.monotonic(), workspace=workspace)
    _sink.write(where(), _line(pending, _Refused(error_code)))


class _Refused(Exception):
    def __init__(self, error_code: str) -> None:
        super().__init__(error_code)
        self.error_code = error_code


def _finish(token: contextvars.Token[_Pending | None], err: BaseException | None) -> None:
    pending = _pending.get()
    _pending.reset(token)
    if pending is None:
        return
    from ws_artifacts.serving import metrics as serving_metrics

    if serving_metrics.on():
        size = pending.size
        if pending.counters:
            size = (size or 0) + sum(c.count for c in pending.counters)
        serving_metrics.observe(pending.workspace, pending.operation, size, err is not None)
    if not enabled():
        return
    try:
        line = _line(pending, err)
    except Exception:  # the audit never breaks the operation it describes
        _logger.exception("could not build an audit line")
        return
    _sink.write(where(), line)


def _line(pending: _Pending, err: BaseException | None) -> bytes:
    request = current_request()
    size = pending.size
    if pending.counters:
        size = (size or 0) + sum(c.count for c in pending.counters)
    record: dict[str, Any] = {
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds"),
        "workspace": pending.workspace,
        "operation": pending.operation,
        "path": printable(pending.path) if pending.path else pending.path,
        "location": pending.location,
        "route_source": pending.route_source,
        "bytes": size,
        "outcome": "ok" if err is None else "error",
        "error_code": None if err is None else _error_code(err),
        "duration_ms": round((time.monotonic() - pending.started) * 1000, 3),
        "request_id": request.request_id if request else None,
        "user": printable(_user(request)),
        "remote": printable(request.remote) if request else None,
        "forwarded_for": printable(request.forwarded_for) if request else None,
        "pid": os.getpid(),
    }
    return (json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n").encode()


def _error_code(err: BaseException) -> str:
    if isinstance(err, WsArtifactsError):
        return err.mlflow_code
    code = getattr(err, "error_code", None)  # MlflowException
    if isinstance(code, str) and code:
        return code
    return f"INTERNAL_ERROR:{type(err).__name__}"


def _user(request: RequestInfo | None) -> str | None:
    """The authenticated user: an auth app's request state, else basic-auth's Flask global,
    else the Authorization header's user when a basic-auth app checked it."""
    if request is not None:
        state = request.scope.get("state")
        username = state.get("username") if isinstance(state, dict) else None
        if isinstance(username, str) and username:
            return username
    if "flask" in sys.modules:  # a server; a client has no Flask request to look at
        from ws_artifacts._mlflow import request_context

        flask_user = request_context.authenticated_user()
        if flask_user:
            return flask_user
    return request.basic_user if request else None
