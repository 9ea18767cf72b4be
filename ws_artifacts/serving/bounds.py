"""Bounds on what clients store straight into S3: presigned PUT URLs and multipart uploads.

The server never sees these bytes, so the quota (:mod:`ws_artifacts.serving.quota`) cannot count
them
as they arrive. MLflow's requests carry no size (a presigned upload names a path; a multipart
upload a number of parts) and its clients PUT what they like to the URLs, so S3 cannot be made
to enforce a length either: a signed ``Content-Length`` needs the size up front, and a presigned
POST policy is not what MLflow's clients send. So this worker bounds them itself:

* **Limits on every request**, quota or not: ``num_parts`` from 1 to :data:`MAX_PARTS`, a
  presigned upload URL's ``expiration`` from 1 to :data:`MAX_URL_SECONDS` seconds.
* **A presigned PUT URL holds the headroom it grants** (all of it: the URLs of one workspace
  are granted one after another) in the worker's ledger until it expires. Once the object is
  seen (its ETag changed), the hold shrinks to the object's size; an object larger than its
  grant is deleted. It is looked at when the workspace's next presigned or multipart request
  reaches the worker, and :data:`RECHECK_SECONDS` after the URL expires, when what is there is
  counted and the hold given back. At most :data:`MAX_HELD_URLS` URLs per workspace and worker.
* **A pending multipart upload holds its parts**: at least the smallest size its part count
  allows, then what its listed parts add up to, measured at the workspace's next presigned or
  multipart request and after its URLs expire. An upload whose parts no longer fit is aborted
  (it could never complete). At most :data:`MAX_OPEN_UPLOADS` per workspace and worker.
* **Completion admits exactly what S3 assembles**: the listed parts whose ETags the client
  names, summed; a named part missing or with another ETag is refused. The object is measured
  again after completion and removed when it breaks the quota.
* **An upload id must be a pending upload of the caller's key** before it is completed or
  aborted (not every S3-compatible store binds upload ids to keys).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ws_artifacts.core.errors import (
    InvalidRequestError,
    NotFoundError,
    QuotaExceededError,
    RequestLimitError,
)
from ws_artifacts.core.targets import Target
from ws_artifacts.serving import quota

if TYPE_CHECKING:
    from ws_artifacts.storage.base import Backend

__all__ = [
    "MAX_DOWNLOAD_URL_SECONDS",
    "MAX_HELD_URLS",
    "MAX_OPEN_UPLOADS",
    "MAX_PARTS",
    "MAX_URL_SECONDS",
    "RECHECK_SECONDS",
    "abort",
    "check_expiration",
    "check_parts",
    "complete",
    "create",
    "grant_put",
]

_logger = logging.getLogger(__name__)

#: Most parts of one multipart upload (S3's own limit).
MAX_PARTS = 10_000
#: Longest lifetime of a presigned upload URL (PUT or part), in seconds.
MAX_URL_SECONDS = 3600
#: Longest lifetime of a presigned download URL, in seconds (MLflow's own limit, 7 days).
MAX_DOWNLOAD_URL_SECONDS = 604_800
#: Presigned PUT URLs one worker keeps outstanding per workspace with a quota.
MAX_HELD_URLS = 16
#: Multipart uploads one worker keeps open per workspace with a quota.
MAX_OPEN_UPLOADS = 16
#: How long after a URL's expiry its object (or upload) is looked at for the last time.
RECHECK_SECONDS = 5.0
_MIN_PART = 5 * 1024 * 1024  # S3: every part but the last is at least this large


@dataclass
class _Held:
    """One presigned PUT URL or multipart upload this worker handed out."""

    target: Target
    backend: Backend
    expires: float  # time.monotonic()
    size: int | None  # bytes held (None: no byte quota, any size)
    etag: str | None = None  # presigned PUT: the key's ETag before the URL (None: no object)
    upload_id: str | None = None  # multipart: its id
    minimum: int = 0  # multipart: the least its part count allows
    foreign: bool = False  # multipart: started elsewhere (counted, never aborted here)


_held: dict[tuple[str, str], dict[str, _Held]] = {}
_listed: dict[tuple[str, str], float] = {}  # place -> when its pending uploads were listed
_lock = threading.Lock()


def _place(target: Target) -> tuple[str, str]:
    return (target.route.url, target.scope)


def check_parts(target: Target, num_parts: int) -> None:
    """Refuse a part count outside 1..:data:`MAX_PARTS`."""
    if not 1 <= num_parts <= MAX_PARTS:
        raise RequestLimitError(
            f"num_parts must be between 1 and {MAX_PARTS} (got {num_parts}) for a multipart "
            f"upload to {target.uri} in workspace '{target.workspace}'; split the file into "
            f"at most {MAX_PARTS} parts of at least 5 MiB (S3's limits)."
        )


def check_expiration(target: Target, expiration: int, limit: int = MAX_URL_SECONDS) -> None:
    """Refuse a presigned URL lifetime outside 1..``limit`` seconds."""
    if not 1 <= expiration <= limit:
        raise RequestLimitError(
            f"expiration must be between 1 and {limit} seconds (got {expiration}) for a "
            f"presigned URL of {target.uri} in workspace '{target.workspace}'; ask for a "
            "shorter-lived URL and request a new one when it expires."
        )


# -- presigned PUT URLs -----------------------------------------------------------------------
def grant_put(target: Target, backend: Backend, expiration: int) -> None:
    """Before presigning a PUT: hold the workspace's headroom for the URL, or refuse."""
    check_expiration(target, expiration)
    if not quota.limited(target):
        return
    settle(target)
    _check_count(target, lambda h: h.upload_id is None, MAX_HELD_URLS, "presigned upload URLs")
    seen = backend.look(target)
    room = quota.headroom(target)  # None: no byte quota, only objects are counted
    size = None if room is None else max(room, 1)  # no room at all is refused just below
    hold_id = f"put:{uuid.uuid4().hex}"
    quota.hold(target, hold_id, size or 0, 1)
    held = _Held(target, backend, time.monotonic() + expiration, size)
    held.etag = seen[0] if seen else None
    _register(hold_id, held, expiration)


def _check_count(target: Target, kind: Callable[[_Held], bool], limit: int, what: str) -> None:
    with _lock:
        count = sum(1 for h in _held.get(_place(target), {}).values() if kind(h))
    if count >= limit:
        raise RequestLimitError(
            f"Workspace '{target.workspace}' has {count} {what} outstanding at "
            f"{target.uri} on this server worker, the most it allows ({limit}); use or "
            "finish them first, or wait until they expire."
        )


def _register(hold_id: str, held: _Held, seconds: float) -> None:
    with _lock:
        _held.setdefault(_place(held.target), {})[hold_id] = held
    timer = threading.Timer(seconds + RECHECK_SECONDS, settle, args=(held.target,))
    timer.daemon = True
    timer.start()


def settle(target: Target) -> None:
    """Look at every URL and upload this worker holds for ``target``'s workspace: count what
    expired URLs stored, shrink holds to what is seen, remove objects larger than their grant,
    and abort uploads whose parts no longer fit. Failures are logged (the next look retries).

    Once per ``quota.remeasure_seconds`` the workspace's pending uploads are listed too, so
    that uploads started through other workers (or servers) are counted here; those are only
    counted, never aborted by this worker."""
    _list_pending(target)
    with _lock:
        items = list(_held.get(_place(target), {}).items())
    for hold_id, held in items:
        try:
            if held.upload_id is None:
                _settle_put(hold_id, held)
            else:
                _settle_upload(hold_id, held)
        except Exception as err:  # noqa: BLE001 - logged; the hold stays until the next look
            _logger.warning(
                "cannot check a presigned upload of workspace=%s at %s: %s",
                held.target.workspace,
                held.target.uri,
                err,
            )


def _list_pending(target: Target) -> None:
    settings = target.route.settings.quota
    place = _place(target)
    now = time.monotonic()
    if settings is None or now - _listed.get(place, -1e18) < settings.remeasure_seconds:
        return
    from ws_artifacts.storage.base import Capability
    from ws_artifacts.storage.registry import backend_for

    backend = backend_for(target.route)
    if not backend.supports(Capability.MULTIPART_UPLOADS):
        return
    scope = Target(target.route, target.scope, target.workspace, target.scope)
    found = backend.pending_uploads(scope)
    _listed[place] = now
    with _lock:
        known = _held.setdefault(place, {})
        for upload_id, key in found.items():
            if upload_id not in known:
                where = Target(target.route, key, target.workspace, target.scope)
                other = _Held(where, backend, now + MAX_URL_SECONDS, 0)
                other.upload_id, other.foreign = upload_id, True
                known[upload_id] = other


def _drop(held: _Held, hold_id: str) -> None:
    with _lock:
        _held.get(_place(held.target), {}).pop(hold_id, None)


def _settle_put(hold_id: str, held: _Held) -> None:
    expired = time.monotonic() >= held.expires
    seen = held.backend.look(held.target)
    new = seen is not None and seen[0] != held.etag
    if new and seen is not None and held.size is not None and seen[1] > held.size:
        held.backend.remove(held.target)
        held.etag = None
        _logger.warning(
            "removed %s of workspace=%s: its presigned upload stored %d bytes, more than the "
            "%d bytes of quota its URL was granted",
            held.target.uri,
            held.target.workspace,
            seen[1],
            held.size,
        )
        new = False
    if expired:
        _drop(held, hold_id)
        stored = (seen[1], 1) if new and seen is not None else None
        quota.release(held.target, hold_id, stored=stored)
    elif new and seen is not None and held.size is not None:
        held.size = seen[1]
        quota.hold(held.target, hold_id, seen[1], 1, check=False)


# -- multipart uploads ------------------------------------------------------------------------
def create(target: Target, backend: Backend, num_parts: int) -> tuple[str, list[str]]:
    """Start a multipart upload of ``num_parts`` parts, its smallest possible size held."""
    check_parts(target, num_parts)
    if not quota.limited(target):
        return backend.create_multipart(target, num_parts)
    settle(target)
    _check_count(
        target,
        lambda h: h.upload_id is not None and not h.foreign,
        MAX_OPEN_UPLOADS,
        "multipart uploads",
    )
    minimum = (num_parts - 1) * _MIN_PART
    provisional = f"mpu:{uuid.uuid4().hex}"
    quota.hold(target, provisional, minimum, 1)
    try:
        upload_id, urls = backend.create_multipart(target, num_parts)
    finally:
        quota.release(target, provisional)
    quota.hold(target, upload_id, minimum, 1, check=False)
    held = _Held(target, backend, time.monotonic() + MAX_URL_SECONDS, minimum)
    held.upload_id, held.minimum = upload_id, minimum
    _register(upload_id, held, MAX_URL_SECONDS)
    return upload_id, urls


def _settle_upload(hold_id: str, held: _Held) -> None:
    upload_id = held.upload_id or hold_id
    try:
        parts = held.backend.parts_of(held.target, upload_id)
    except NotFoundError:  # completed or aborted (perhaps through another worker)
        _drop(held, hold_id)
        quota.release(held.target, hold_id)
        return
    size = max(held.minimum, sum(s for _e, s in parts.values()))
    if held.foreign:
        quota.hold(held.target, hold_id, size, 1, check=False)
        held.size = size
        return
    try:
        quota.hold(held.target, hold_id, size, 1)
    except QuotaExceededError:
        _drop(held, hold_id)
        quota.release(held.target, hold_id)
        held.backend.abort_multipart(held.target, upload_id)
        _logger.warning(
            "aborted multipart upload of %s for workspace=%s: its pending parts (%d bytes) do "
            "not fit the workspace's quota",
            held.target.uri,
            held.target.workspace,
            size,
        )
        return
    held.size = size


def complete(
    target: Target, backend: Backend, upload_id: str, etags: list[tuple[int, str]]
) -> None:
    """Complete an upload of the caller's key, admitting exactly the parts it names."""
    stale = backend.check_upload(target, upload_id)
    if not quota.limited(target):
        backend.complete_multipart(target, upload_id, etags, stale=stale)
        return
    size = _named_size(target, backend, upload_id, etags)
    _forget_upload(target, upload_id)
    try:
        quota.convert(target, upload_id, size)
    except QuotaExceededError:
        backend.abort_multipart(target, upload_id)
        raise
    try:
        backend.complete_multipart(target, upload_id, etags, stale=stale)
    except BaseException:
        quota.release(target, upload_id, stored=(-size, -1))
        raise
    _recheck(target, backend, size)


def _named_size(
    target: Target, backend: Backend, upload_id: str, etags: list[tuple[int, str]]
) -> int:
    parts = backend.parts_of(target, upload_id)
    size = 0
    for number, etag in etags:
        listed = parts.get(number)
        if listed is None or listed[0].strip('"') != etag.strip('"'):
            raise InvalidRequestError(
                f"Part {number} of multipart upload {upload_id[:200]!r} of {target.uri} "
                f"(workspace '{target.workspace}') was not uploaded with ETag {etag[:80]!r}; "
                "complete with the ETags the part uploads answered, or upload the part again."
            )
        size += listed[1]
    return size


def _recheck(target: Target, backend: Backend, admitted: int) -> None:
    """After completion: the object must be what was admitted; one that breaks the quota
    (a store that assembled more than the named parts) is removed."""
    seen = backend.look(target)
    actual = seen[1] if seen is not None else 0
    if actual == admitted:
        return
    quota.release(target, "", stored=(-admitted, -1))
    try:
        quota.admit(target, actual)
    except QuotaExceededError:
        backend.remove(target)
        raise


def _forget_upload(target: Target, upload_id: str) -> None:
    with _lock:
        _held.get(_place(target), {}).pop(upload_id, None)


def abort(target: Target, backend: Backend, upload_id: str) -> None:
    """Abort an upload of the caller's key, giving back what it held."""
    backend.check_upload(target, upload_id)
    backend.abort_multipart(target, upload_id)
    _forget_upload(target, upload_id)
    quota.release(target, upload_id)
