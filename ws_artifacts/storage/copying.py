"""Copy a tree of objects from one place to another, verified object by object.

The engine under ``ws-artifacts migrate`` (and free for any other tool that moves artifacts):

* :func:`list_tree` lists a place, S3 in parallel by prefix (experiments, then runs), so a tree
  of 100 000 objects is not read one page after another;
* :func:`copy_tree` copies what the target lacks: an S3 server-side copy where one identity
  reaches both places (same endpoint, region and credentials), else a stream from the source
  into the target backend's own upload (multipart for large objects); the target route's
  storage policy (SSE, KMS key, storage class, tags) is applied either way;
* every object is verified: same size, and the same content by checksum. A single-part S3
  ETag (not SSE-KMS) is the object's MD5; a multipart ETag is the MD5 of the parts' MD5s, so
  two multipart ETags agree only for the same bytes cut into the same parts. Server-side
  copies keep that comparable: a single-part source goes in one ``copy_object`` (its ETag is
  the source's MD5), a multipart source is copied part for part with ``upload_part_copy`` in
  the source's own part layout (its ETag is the source's). Where ETags cannot be compared
  (SSE-KMS, fsspec stores, a streamed multipart upload), the MD5 is computed by reading;
* an object is copied whole or not at all (``copy_object``, an aborted multipart upload, the
  backends' atomic uploads), so an interrupted run leaves nothing partial and a second run
  skips what is already there and verified. (The S3 calls are in :mod:`.s3.copy`, the
  comparison of contents in :mod:`.verify`.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from ws_artifacts.core.errors import StorageError, WsArtifactsError
from ws_artifacts.core.settings import Transfer
from ws_artifacts.core.targets import Route, Target
from ws_artifacts.storage.registry import backend_for
from ws_artifacts.storage.s3 import copy as s3_copy
from ws_artifacts.storage.s3.copy import is_multipart
from ws_artifacts.storage.verify import (
    UNREAD,
    HashingReader,
    Listed,
    chunks,
    md5_etag,
    same_content,
    stat,
)

__all__ = [
    "Listed",
    "Outcome",
    "copy_tree",
    "delete_objects",
    "list_tree",
    "modified_after",
    "server_side",
]

_logger = logging.getLogger(__name__)
_LIST_THREADS = 16
_RELIST_FROM = 50  # copies verified from one listing of the target rather than HEADs

Mode = Literal["server-side", "streamed"]
#: ``compare`` (dry runs only): the target has an object of the same size whose ETag cannot be
#: compared with the source's (SSE-KMS, other part layouts); the real run reads both to decide
#: between ``present`` and ``shadowed``.
Action = Literal["copied", "present", "shadowed", "failed", "planned", "compare"]


@dataclass
class Outcome:
    """What happened to one source object.

    ``copied``: copied and verified; ``present``: the target already holds the same bytes
    (verified); ``shadowed``: the target holds other bytes under that name, which win, so the
    source is left alone; ``failed``: see ``error``; ``planned``: a dry run would copy it.
    """

    name: str
    size: int
    action: Action
    mode: Mode | None = None
    verified_by: str | None = None
    error: str | None = None

    @property
    def verified(self) -> bool:
        """Whether the target holds exactly these bytes (the source may go)."""
        return self.action in ("copied", "present")


@dataclass
class _Job:
    src: Target
    dst: Target
    listed: Listed
    mode: Mode
    outcome: Outcome = field(init=False)
    md5: str | None = None  # of the bytes streamed (streamed copies)


# -- listing ------------------------------------------------------------------------------
def list_tree(target: Target, *, threads: int = _LIST_THREADS) -> dict[str, Listed]:
    """Every object below ``target`` (names relative to it). S3 trees are listed in parallel:
    one delimited listing of the experiments, then one flat listing per experiment."""
    if target.route.backend != "s3":
        backend = backend_for(target.route)
        return {e.name: Listed(e.name, e.size or 0, None) for e in backend.walk(target)}
    objects = s3_copy.list_objects(target, threads=threads)
    return {name: Listed(name, size, etag) for name, size, etag in objects}


# -- copying ------------------------------------------------------------------------------
def server_side(src: Route, dst: Route) -> bool:
    """Whether one identity can read ``src`` and write ``dst``: both S3 through boto3, with the
    same endpoint, region and credentials (so a server-side copy is allowed to work)."""
    a, b = src.settings, dst.settings
    return (
        src.backend == dst.backend == "s3"
        and (a.endpoint_url, a.region, a.credentials) == (b.endpoint_url, b.region, b.credentials)
        and src.scheme == dst.scheme
    )


def copy_tree(
    sources: dict[str, Listed],
    src: Target,
    dst: Target,
    *,
    existing: dict[str, Listed] | None = None,
    dry_run: bool = False,
    progress: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Copy every object of ``sources`` (listed below ``src``) to the same name below ``dst``.

    Objects the target already holds are compared, not copied: the same bytes are
    ``present``, other bytes ``shadowed`` (the target's version wins; nothing is overwritten).

    Args:
        sources: ``list_tree(src)``.
        src: The source tree's root.
        dst: The target tree's root.
        existing: ``list_tree(dst)``, when the caller listed it already.
        dry_run: Plan only: nothing is written (existing objects are compared by size and
            ETag alone, so a dry run reads no object).
        progress: Called with each outcome as it is settled.

    Returns:
        One outcome per source object, in name order.
    """
    existing = list_tree(dst) if existing is None else existing
    mode: Mode = "server-side" if server_side(src.route, dst.route) else "streamed"
    report = progress or (lambda _outcome: None)
    outcomes: list[Outcome] = []
    jobs: list[_Job] = []
    for name in sorted(sources):
        job = _Job(src.child(name), dst.child(name), sources[name], mode)
        outcome = _settled_without_copy(job, existing.get(name), dry_run=dry_run)
        if outcome is None:
            jobs.append(job)
        else:
            outcomes.append(outcome)
            report(outcome)
    if jobs:
        _copy_jobs(jobs, dst)
        for job in jobs:
            outcomes.append(job.outcome)
            report(job.outcome)
    return sorted(outcomes, key=lambda o: o.name)


def _settled_without_copy(job: _Job, there: Listed | None, *, dry_run: bool) -> Outcome | None:
    """The outcome of an object the target holds already (compared), or that a dry run would
    copy; None when it is to be copied."""
    if there is not None:
        return _compare(job, there, read=not dry_run)
    if dry_run:
        return Outcome(job.listed.name, job.listed.size, "planned", job.mode)
    return None


def _copy_jobs(jobs: list[_Job], dst: Target) -> None:
    """Copy, then verify, every job in parallel (the target route's ``max_concurrency``),
    settling each job's outcome."""
    transfer = dst.route.settings.transfer or Transfer()
    with ThreadPoolExecutor(max_workers=transfer.max_concurrency) as pool:
        errors = dict(zip(map(id, jobs), pool.map(_run, jobs), strict=True))
        copied = [job for job in jobs if errors[id(job)] is None]
        # One (parallel) listing verifies many copies in a few requests; a few copies are
        # verified with one HEAD each.
        after = list_tree(dst) if len(copied) >= _RELIST_FROM else {}
        list(pool.map(functools.partial(_verify, after=after), copied))


def _run(job: _Job) -> WsArtifactsError | None:
    """Copy one object; on failure, settle its outcome and return the error."""
    try:
        if job.mode == "server-side":
            _copy_server_side(job)
        else:
            job.md5 = _copy_streamed(job)
    except WsArtifactsError as err:
        _fail(job, err)
        return err
    return None


def _verify(job: _Job, after: dict[str, Listed]) -> None:
    try:
        how = _verify_copy(job, after.get(job.listed.name))
        job.outcome = Outcome(job.listed.name, job.listed.size, "copied", job.mode, how)
    except WsArtifactsError as err:
        _fail(job, err)


def _fail(job: _Job, err: WsArtifactsError) -> Outcome:
    _logger.debug("copy of %s failed: %s", job.src.uri, type(err).__name__)
    job.outcome = Outcome(job.listed.name, job.listed.size, "failed", job.mode, error=str(err))
    return job.outcome


def _copy_server_side(job: _Job) -> str:
    """Copy inside the store; return the new object's ETag."""
    return s3_copy.copy_object(job.src, job.dst, job.listed.size, job.listed.etag)


def _copy_streamed(job: _Job) -> str:
    """Read the source and upload it through the target's backend (its policy, multipart
    when large, aborted on failure). Returns the source bytes' MD5."""
    reader = HashingReader(chunks(job.src))
    try:
        backend_for(job.dst.route).put_stream(job.dst, reader)  # type: ignore[arg-type]
    finally:
        reader.close()
    md5 = reader.md5.hexdigest()
    listed = md5_etag(job.src, job.listed)
    if reader.size != job.listed.size or (listed and not is_multipart(listed) and listed != md5):
        _remove(job.dst)
        raise StorageError(
            f"copy failed for workspace '{job.src.workspace}': {job.src.uri} changed while it "
            "was read (size or MD5 differ from its listing); run migrate again."
        )
    return md5


# -- verification -------------------------------------------------------------------------
def _verify_copy(job: _Job, listed_after: Listed | None) -> str:
    """Check the new object (as listed after the copies, else from a HEAD) against the source;
    on a mismatch, or when it cannot be checked (a read fails), delete it and raise."""
    src, dst, listed = job.src, job.dst, job.listed
    try:
        there = listed_after or stat(dst)
        how = same_content(src, listed, dst, there, streamed_md5=job.md5)
    except WsArtifactsError as err:
        _remove(dst)
        raise StorageError(
            f"copy failed for workspace '{dst.workspace}': {dst.uri} could not be verified; "
            f"it was removed; run migrate again. {err}"
        ) from err
    if how is None:
        _remove(dst)
        raise StorageError(
            f"copy failed for workspace '{dst.workspace}': {dst.uri} does not match "
            f"{src.uri} (size or checksum); it was removed; run migrate again."
        )
    return how


def _remove(target: Target) -> None:
    """Delete a copy not shown to be the source's bytes (if that fails, a rerun compares it)."""
    with contextlib.suppress(WsArtifactsError):
        backend_for(target.route).delete(target)


def _compare(job: _Job, there: Listed, *, read: bool) -> Outcome:
    """An object the target holds already: ``present``, ``shadowed``, ``compare`` (dry runs),
    or ``failed`` when reading them fails (both are kept)."""
    name, size = job.listed.name, job.listed.size
    try:
        how = same_content(job.src, job.listed, job.dst, there, read=read)
    except WsArtifactsError as err:
        return _fail(job, err)
    if how == UNREAD:
        return Outcome(name, size, "compare", job.mode)
    if how is None:
        return Outcome(name, size, "shadowed", job.mode)
    return Outcome(name, size, "present", job.mode, how)


# -- times --------------------------------------------------------------------------------
def modified_after(target: Target, moment: dt.datetime) -> list[str]:
    """The objects below ``target`` (names relative to it) last modified after ``moment``, or
    whose time the store does not tell (they cannot be shown to be older), sorted."""
    cutoff = moment.timestamp()
    if target.route.backend != "s3":
        backend: Any = backend_for(target.route)
        times: dict[str, float | None] = backend.modified_times(target)
        return sorted(name for name, when in times.items() if when is None or when > cutoff)
    return sorted(s3_copy.modified_after(target, cutoff))


# -- deleting -----------------------------------------------------------------------------
def delete_objects(root: Target, names: list[str]) -> int:
    """Delete exactly these objects below ``root`` (S3: batches of 1000); return how many."""
    if root.route.backend != "s3":
        backend = backend_for(root.route)
        return sum(backend.delete(root.child(name)) for name in names)
    return s3_copy.delete_objects(root, names)
