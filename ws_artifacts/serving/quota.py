"""Quotas: refuse an upload that would take a workspace beyond its route's ``quota``.

Each server worker process keeps a ledger per workspace place (route and
``<prefix>/workspaces/<ws>``): measured by listing on first need
(:mod:`ws_artifacts.lifecycle.usage`),
kept current from this worker's own uploads (counted when admitted) and deletes (the next
upload measures again), and measured again after ``quota.remeasure_seconds``.

An upload is admitted when the workspace would hold at most ``max_bytes`` bytes and at most
``max_objects`` objects afterwards (reaching the quota exactly is allowed; one byte more is
not). Refusals raise :class:`~ws_artifacts.core.errors.QuotaExceededError` (MLflow:
RESOURCE_EXHAUSTED, answered with HTTP 413, which MLflow's client does not retry). Reads, lists
and deletes are never checked.

How far several workers can overshoot: a worker sees other workers' (and other servers')
writes only at its next listing. So each of W workers may admit up to the headroom it saw at
its last listing: the workspace can end at most (W - 1) x that headroom beyond its quota,
and no further once every worker has listed again (at most ``remeasure_seconds`` later).
A worker's own concurrent uploads never overshoot: admission and counting are one locked step.

What clients store straight into S3 (presigned PUT URLs, multipart parts) is *held* in the
worker's ledger (:func:`hold`, :func:`release`, :func:`convert`) until it is seen; holds count
against the quota like stored bytes. :mod:`ws_artifacts.serving.bounds` decides what to hold and
when to
look; docs/security.md ("Quota bounds per upload path") gives the bound of every upload path.
"""

from __future__ import annotations

import contextvars
import posixpath
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ws_artifacts.core.errors import QuotaExceededError
from ws_artifacts.core.paths import WORKSPACES_SEGMENT
from ws_artifacts.core.settings import Quota
from ws_artifacts.core.targets import DESTINATION, Target

__all__ = [
    "admit",
    "admit_files",
    "check_declared",
    "convert",
    "declare_length",
    "forget",
    "headroom",
    "hold",
    "limited",
    "metered",
    "release",
    "undeclare_length",
]


@dataclass
class _Ledger:
    """One workspace place as this worker knows it."""

    objects: int
    bytes: int
    measured: float
    lock: threading.Lock = field(default_factory=threading.Lock)


_ledgers: dict[tuple[str, str], _Ledger] = {}
# What this worker has let clients store without seeing it yet, per place: hold id (a presigned
# URL's key, a multipart upload's id) -> (bytes, objects). Kept apart from the ledgers, which a
# re-measure replaces; see ws_artifacts.serving.bounds.
_holds: dict[tuple[str, str], dict[str, tuple[int, int]]] = {}


#: The size the client declared for the upload being received (its Content-Length), set by
#: the server app (:func:`declare_length`): a stream that cannot fit is refused, with its real
#: size, before its body is read.
_declared: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "ws_artifacts_declared_length", default=None
)
_measuring: dict[tuple[str, str], threading.Lock] = {}
_guard = threading.Lock()


def _quota(target: Target) -> Quota | None:
    """The quota that applies to ``target``; None also for the default workspace's legacy
    paths, which have no ``workspaces/<ws>`` place to count."""
    quota = target.route.settings.quota
    if quota is None:
        return None
    scope = target.scope
    if posixpath.basename(scope) != target.workspace:
        return None
    if posixpath.basename(posixpath.dirname(scope)) != WORKSPACES_SEGMENT:
        return None
    return quota


def _ledger(target: Target, quota: Quota) -> _Ledger:
    key = (target.route.url, target.scope)
    ledger = _ledgers.get(key)
    if ledger is not None and time.monotonic() - ledger.measured < quota.remeasure_seconds:
        return ledger
    with _guard:
        lock = _measuring.setdefault(key, threading.Lock())
    with lock:  # one listing per place at a time; the others wait for its result
        ledger = _ledgers.get(key)
        if ledger is None or time.monotonic() - ledger.measured >= quota.remeasure_seconds:
            from ws_artifacts.lifecycle.usage import measure_scope

            usage = measure_scope(target.place())
            ledger = _Ledger(usage.objects, usage.bytes, time.monotonic())
            _ledgers[key] = ledger
            _report(target, quota, ledger)
    return ledger


def _held(target: Target) -> tuple[int, int]:
    """Bytes and objects held for ``target``'s place (see :func:`hold`)."""
    held = _holds.get((target.route.url, target.scope))
    if not held:
        return 0, 0
    values = list(held.values())
    return sum(b for b, _ in values), sum(o for _, o in values)


def _report(target: Target, quota: Quota, ledger: _Ledger) -> None:
    """The ledger as the server's metrics show it (a no-op outside a server worker)."""
    from ws_artifacts.serving import metrics as serving_metrics

    serving_metrics.quota_use(
        target.workspace, ledger.bytes, ledger.objects, quota.max_bytes, quota.max_objects
    )


def _refusal(target: Target, quota: Quota, ledger: _Ledger, size: int, objects: int) -> str:
    """The reason to refuse (empty: admit). Called with the ledger's lock held."""
    held_bytes, held_objects = _held(target)
    size, objects = size + held_bytes, objects + held_objects
    over = []
    if quota.max_bytes is not None and ledger.bytes + size > quota.max_bytes:
        over.append(f"{ledger.bytes + size} bytes (quota {quota.max_bytes} bytes)")
    if quota.max_objects is not None and ledger.objects + objects > quota.max_objects:
        over.append(f"{ledger.objects + objects} objects (quota {quota.max_objects} objects)")
    if not over:
        return ""
    held = (
        f", and {held_bytes} bytes in {held_objects} objects are held for presigned upload URLs "
        "and pending multipart uploads (given back when they are used or expire)"
        if held_bytes or held_objects
        else ""
    )
    where = (
        "defaults.quota"
        if target.route.name == DESTINATION
        else (f"workspaces.{target.route.name}.quota")
    )
    return (
        f"Upload refused: workspace '{target.workspace}' would hold {' and '.join(over)} at "
        f"{Target(target.route, target.scope, target.workspace, target.scope).uri}; it holds "
        f"{ledger.bytes} bytes in {ledger.objects} objects now{held}. Delete runs or artifacts of "
        f"workspace '{target.workspace}' (then run 'mlflow gc'), or raise {where} in the "
        "ws-artifacts configuration."
    )


def admit(target: Target, size: int, objects: int = 1) -> None:
    """Admit an upload of ``objects`` objects and ``size`` bytes to ``target``'s workspace,
    counting it, or refuse it.

    Raises:
        QuotaExceededError: It would take the workspace beyond its quota.
    """
    reason = _locked_refusal(target, size, objects, count=True)
    if reason:
        raise QuotaExceededError(reason)


def _locked_refusal(target: Target, size: int, objects: int, *, count: bool) -> str:
    """The reason to refuse an upload to ``target``'s workspace (empty: it fits, or no quota
    applies), judged with the ledger's lock held; with ``count``, an upload that fits is
    counted in that same locked step."""
    quota = _quota(target)
    if quota is None:
        return ""
    ledger = _ledger(target, quota)
    with ledger.lock:
        reason = _refusal(target, quota, ledger, size, objects)
        if count and not reason:
            _count(target, quota, ledger, size, objects)
    return reason


def _count(target: Target, quota: Quota, ledger: _Ledger, size: int, objects: int) -> None:
    """Add a stored upload to the ledger (its lock held) and show it in the metrics."""
    ledger.bytes += size
    ledger.objects += objects
    _report(target, quota, ledger)


def admit_files(target: Target, local_files: list[str]) -> None:
    """Admit a batch of local files (``log_artifacts``) as one upload."""
    if _quota(target) is not None:
        import os

        admit(target, sum(os.path.getsize(f) for f in local_files), len(local_files))


def hold(target: Target, hold_id: str, size: int, objects: int = 1, *, check: bool = True) -> None:
    """Hold ``size`` bytes and ``objects`` objects of ``target``'s workspace for something this
    worker let a client store directly (a presigned URL, a pending multipart upload) until
    :func:`release`; with ``check``, refuse when it does not fit. A hold replaces the previous
    one of the same id.

    Raises:
        QuotaExceededError: ``check`` and it would take the workspace beyond its quota.
    """
    quota = _quota(target)
    if quota is None:
        return
    ledger = _ledger(target, quota)
    key = (target.route.url, target.scope)
    with ledger.lock:
        held = _holds.setdefault(key, {})
        previous = held.pop(hold_id, None)
        reason = _refusal(target, quota, ledger, size, objects) if check else ""
        if reason:
            if previous is not None:
                held[hold_id] = previous
            raise QuotaExceededError(reason)
        held[hold_id] = (size, objects)


def release(target: Target, hold_id: str, *, stored: tuple[int, int] | None = None) -> None:
    """Give back a hold; ``stored`` (bytes, objects) is what it turned into, now counted."""
    _settle(target, hold_id, stored, check=False)


def convert(target: Target, hold_id: str, size: int, objects: int = 1) -> None:
    """Replace a hold by what was stored (``size`` bytes, ``objects`` objects), counted, in
    one locked step; refuse (and drop the hold) when that does not fit.

    Raises:
        QuotaExceededError: It would take the workspace beyond its quota.
    """
    _settle(target, hold_id, (size, objects), check=True)


def _settle(target: Target, hold_id: str, stored: tuple[int, int] | None, *, check: bool) -> None:
    """Drop a hold and count what it turned into (``stored``), in one locked step; with
    ``check``, refuse what does not fit (the hold stays dropped)."""
    quota = _quota(target)
    if quota is None:
        return
    ledger = _ledger(target, quota)
    with ledger.lock:
        _holds.get((target.route.url, target.scope), {}).pop(hold_id, None)
        if stored is None:
            return
        reason = _refusal(target, quota, ledger, *stored) if check else ""
        if reason:
            raise QuotaExceededError(reason)
        _count(target, quota, ledger, *stored)


def headroom(target: Target) -> int | None:
    """Bytes ``target``'s workspace may still take (holds subtracted); None: no byte quota."""
    quota = _quota(target)
    if quota is None or quota.max_bytes is None:
        return None
    ledger = _ledger(target, quota)
    with ledger.lock:
        return max(0, quota.max_bytes - ledger.bytes - _held(target)[0])


def limited(target: Target) -> bool:
    """Whether a quota applies to ``target``."""
    return _quota(target) is not None


def check_declared(target: Target, size: int) -> None:
    """Refuse an upload of ``size`` bytes (its Content-Length) that cannot fit, before any of
    it is read; nothing is counted (the upload itself is, as it arrives).

    Raises:
        QuotaExceededError: It would take the workspace beyond its quota.
    """
    reason = _locked_refusal(target, size, 1, count=False)
    if reason:
        raise QuotaExceededError(
            reason.replace("Upload refused:", f"Upload of {size} bytes refused:", 1)
        )


def declare_length(size: int | None) -> contextvars.Token[int | None]:
    """Say how large the upload received in this context is (None: unknown); give the token
    to :func:`undeclare_length` when the request ends."""
    return _declared.set(size)


def undeclare_length(token: contextvars.Token[int | None]) -> None:
    _declared.reset(token)


def forget(target: Target) -> None:
    """After a delete: the next upload to the workspace measures it again."""
    if _quota(target) is not None:
        _ledgers.pop((target.route.url, target.scope), None)


def metered(target: Target, stream: BinaryIO) -> BinaryIO:
    """A stream of unknown length: admitted when the workspace has room for one more object,
    then counted as it is read; the read that crosses the quota raises, which aborts the
    upload (nothing partial is kept) and gives back what it had counted."""
    quota = _quota(target)
    if quota is None:
        return stream
    meter = _Meter(target, quota)
    meter.start()
    return _MeteredStream(stream, meter)  # type: ignore[return-value]


def metered_chunks(target: Target, chunks: AsyncIterable[bytes]) -> AsyncIterable[bytes]:
    """As :func:`metered`, for an ASGI body; refusals are MlflowExceptions (HTTP 413)."""
    quota = _quota(target)
    if quota is None:
        return chunks
    return _metered_chunks(_Meter(target, quota), chunks)


async def _metered_chunks(meter: _Meter, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    import asyncio

    from ws_artifacts.serving import refusals

    try:
        await asyncio.to_thread(meter.start)  # a first listing must not block the loop
        async for chunk in chunks:
            meter.count(len(chunk))
            yield chunk
    except QuotaExceededError as err:
        raise refusals.mlflow_error(err) from err


class _Meter:
    """Counts one streamed upload against its workspace's ledger."""

    def __init__(self, target: Target, quota: Quota) -> None:
        self.target, self.quota = target, quota
        self.ledger: _Ledger | None = None
        self.counted = 0

    def start(self) -> None:
        declared = _declared.get()
        if declared:  # the whole upload's size is known: judge it before reading any of it
            check_declared(self.target, declared)
        admit(self.target, 0)  # room for one more object (and not over in bytes)
        self.ledger = _ledger(self.target, self.quota)

    def count(self, size: int) -> None:
        ledger = self.ledger
        if ledger is None or not size:
            return
        with ledger.lock:
            ledger.bytes -= self.counted  # judged as one whole upload of everything read so far
            ledger.objects -= 1
            reason = _refusal(self.target, self.quota, ledger, self.counted + size, 1)
            if reason:  # the upload is aborted: what it held stays given back
                self.ledger = None
                raise QuotaExceededError(reason)
            self.counted += size
            _count(self.target, self.quota, ledger, self.counted, 1)


class _MeteredStream:
    """A read-only view of a stream that counts what is read."""

    def __init__(self, stream: BinaryIO, meter: _Meter) -> None:
        self._stream, self._meter = stream, meter

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._meter.count(len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
