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
  skips what is already there and verified.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from ws_artifacts.core.errors import StorageError, WsArtifactsError, translate_boto_error
from ws_artifacts.core.paths import join
from ws_artifacts.core.routing import Route, Target
from ws_artifacts.core.settings import Transfer
from ws_artifacts.storage.clients import client_for, describe_credentials
from ws_artifacts.storage.registry import backend_for
from ws_artifacts.storage.s3.backend import put_args

__all__ = [
    "Listed",
    "Outcome",
    "copy_tree",
    "delete_objects",
    "list_tree",
    "modified_after",
    "same_content",
    "server_side",
]

_logger = logging.getLogger(__name__)
_GIB = 1024**3
_MAX_COPY_OBJECT = 5 * _GIB  # S3's limit for one copy_object
_LIST_DEPTH = 1  # one delimited listing of experiments, then one flat listing each
_LIST_THREADS = 16
_READ = 1024 * 1024
_RELIST_FROM = 50  # copies verified from one listing of the target rather than HEADs

Mode = Literal["server-side", "streamed"]
#: ``compare`` (dry runs only): the target has an object of the same size whose ETag cannot be
#: compared with the source's (SSE-KMS, other part layouts); the real run reads both to decide
#: between ``present`` and ``shadowed``.
Action = Literal["copied", "present", "shadowed", "failed", "planned", "compare"]


@dataclass(frozen=True, slots=True)
class Listed:
    """One object of a listed tree.

    Attributes:
        name: The key relative to the listed target.
        size: Its size in bytes.
        etag: Its ETag without quotes (S3), or None (fsspec stores).
    """

    name: str
    size: int
    etag: str | None


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
    client = client_for(target.route.settings, target.route.location, target.scope)
    root = target.key + "/" if target.key else ""
    found: dict[str, Listed] = {}
    with _errors("list", target), ThreadPoolExecutor(max_workers=threads) as pool:
        pending = [pool.submit(_list_level, client, target, root, 0)]
        while pending:
            objects, prefixes, depth = pending.pop().result()
            for key, size, etag in objects:
                name = key[len(root) :]
                if name and not name.endswith("/"):
                    found[name] = Listed(name, size, etag)
            pending.extend(pool.submit(_list_level, client, target, p, depth + 1) for p in prefixes)
    return found


def _list_level(
    client: Any, target: Target, prefix: str, depth: int
) -> tuple[list[tuple[str, int, str]], list[str], int]:
    """Objects directly under ``prefix`` and its sub-prefixes; past the split depth, every
    object below it from one flat listing."""
    delimited = depth < _LIST_DEPTH
    extra = {"Delimiter": "/"} if delimited else {}
    objects: list[tuple[str, int, str]] = []
    prefixes: list[str] = []
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=target.route.location, Prefix=prefix, **extra, **_owner(target.route)
    )
    for page in pages:
        prefixes.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
        objects.extend(
            (o["Key"], int(o["Size"]), str(o["ETag"]).strip('"')) for o in page.get("Contents", [])
        )
    return objects, prefixes, depth


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
    outcomes: list[Outcome] = []
    jobs: list[_Job] = []
    report = progress or (lambda _outcome: None)
    for name in sorted(sources):
        listed = sources[name]
        job = _Job(src.child(name), dst.child(name), listed, mode)
        there = existing.get(name)
        if there is not None:
            job.outcome = _compare(job, there, read=not dry_run)
            outcomes.append(job.outcome)
            report(job.outcome)
        elif dry_run:
            job.outcome = Outcome(name, listed.size, "planned", mode)
            outcomes.append(job.outcome)
            report(job.outcome)
        else:
            jobs.append(job)
    if jobs:
        transfer = dst.route.settings.transfer or Transfer()
        with ThreadPoolExecutor(max_workers=transfer.max_concurrency) as pool:
            errors = dict(zip(map(id, jobs), pool.map(_run, jobs), strict=True))
            copied = [job for job in jobs if errors[id(job)] is None]
            # One (parallel) listing verifies many copies in a few requests; a few copies are
            # verified with one HEAD each.
            after = list_tree(dst) if len(copied) >= _RELIST_FROM else {}
            list(pool.map(functools.partial(_verify, after=after), copied))
        for job in jobs:
            outcomes.append(job.outcome)
            report(job.outcome)
    return sorted(outcomes, key=lambda o: o.name)


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


def _fail(job: _Job, err: WsArtifactsError) -> None:
    _logger.debug("copy of %s failed: %s", job.src.uri, type(err).__name__)
    job.outcome = Outcome(job.listed.name, job.listed.size, "failed", job.mode, error=str(err))


def _copy_server_side(job: _Job) -> str:
    """Copy inside the store; return the new object's ETag."""
    src, dst, listed = job.src, job.dst, job.listed
    client = _client(dst)
    args = put_args(dst.route, dst.workspace)
    source = {"Bucket": src.route.location, "Key": src.key}
    with _errors("copy", dst):
        if not _is_multipart(listed.etag) and listed.size <= _MAX_COPY_OBJECT:
            response = client.copy_object(
                Bucket=dst.route.location,
                Key=dst.key,
                CopySource=source,
                MetadataDirective="COPY",
                **({"TaggingDirective": "REPLACE"} if "Tagging" in args else {}),
                **args,
            )
            return str(response["CopyObjectResult"]["ETag"]).strip('"')
        return _copy_parts(job, client, source, args)


def _copy_parts(job: _Job, client: Any, source: dict[str, str], args: dict[str, str]) -> str:
    """``upload_part_copy`` in the source's own part layout (its first part's size), parts in
    parallel; aborted on any failure, so no parts and no partial object are left."""
    src, dst, size = job.src, job.dst, job.listed.size
    transfer = dst.route.settings.transfer or Transfer()
    part = transfer.part_size
    if _is_multipart(job.listed.etag):
        head = client.head_object(Bucket=src.route.location, Key=src.key, PartNumber=1)
        part = int(head["ContentLength"]) or part
    part = max(part, -(-size // 10_000))  # S3 allows 10 000 parts
    spans = [(start, min(start + part, size) - 1) for start in range(0, size, part)]
    bucket, owner = dst.route.location, _owner(dst.route)
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=dst.key, **args)["UploadId"]

    def one(numbered: tuple[int, tuple[int, int]]) -> dict[str, Any]:
        number, (first, last) = numbered
        result = client.upload_part_copy(
            Bucket=bucket,
            Key=dst.key,
            UploadId=upload_id,
            PartNumber=number,
            CopySource=source,
            CopySourceRange=f"bytes={first}-{last}",
            **owner,
        )
        return {"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]}

    from ws_artifacts.storage.s3.backend import S3Backend

    backend = backend_for(dst.route)
    assert isinstance(backend, S3Backend)  # a server-side copy is between S3 routes
    try:
        with ThreadPoolExecutor(max_workers=max(transfer.parts_in_flight, 8)) as pool:
            parts = list(pool.map(one, enumerate(spans, start=1)))
        # A migrate killed midway could not abort its upload of this key: this one replaces it.
        stale = backend.stale_uploads(dst, upload_id)
        done = client.complete_multipart_upload(
            Bucket=bucket,
            Key=dst.key,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
            **owner,
        )
    except BaseException:
        with contextlib.suppress(Exception):
            client.abort_multipart_upload(Bucket=bucket, Key=dst.key, UploadId=upload_id, **owner)
        raise
    backend.abort_stale(dst, stale)
    return str(done["ETag"]).strip('"')


def _copy_streamed(job: _Job) -> str:
    """Read the source and upload it through the target's backend (its policy, multipart
    when large, aborted on failure). Returns the source bytes' MD5."""
    reader = _HashingReader(_open(job.src), job.src)
    try:
        backend_for(job.dst.route).put_stream(job.dst, reader)  # type: ignore[arg-type]
    finally:
        reader.close()
    md5 = reader.md5.hexdigest()
    listed = _md5_etag(job.src, job.listed)
    if reader.size != job.listed.size or (listed and not _is_multipart(listed) and listed != md5):
        with contextlib.suppress(WsArtifactsError):
            backend_for(job.dst.route).delete(job.dst)
        raise StorageError(
            f"copy failed for workspace '{job.src.workspace}': {job.src.uri} changed while it "
            "was read (size or MD5 differ from its listing); run migrate again."
        )
    return md5


# -- verification -------------------------------------------------------------------------
def _verify_copy(job: _Job, listed_after: Listed | None) -> str:
    """Check the new object (as listed after the copies, else from a HEAD) against the source;
    on a mismatch delete it and raise."""
    src, dst, listed = job.src, job.dst, job.listed
    there = listed_after or _stat(dst)
    how = same_content(src, listed, dst, there, streamed_md5=job.md5)
    if how is None:
        with contextlib.suppress(WsArtifactsError):
            backend_for(dst.route).delete(dst)
        raise StorageError(
            f"copy failed for workspace '{dst.workspace}': {dst.uri} does not match "
            f"{src.uri} (size or checksum); it was removed; run migrate again."
        )
    return how


def _compare(job: _Job, there: Listed, *, read: bool) -> Outcome:
    name, size = job.listed.name, job.listed.size
    how = same_content(job.src, job.listed, job.dst, there, read=read)
    if how == _UNREAD:
        return Outcome(name, size, "compare", job.mode)
    if how is None:
        return Outcome(name, size, "shadowed", job.mode)
    return Outcome(name, size, "present", job.mode, how)


_UNREAD = "unread"  # same_content without reading: only reading both could tell


def same_content(
    src: Target,
    src_listed: Listed,
    dst: Target,
    dst_listed: Listed,
    *,
    read: bool = True,
    streamed_md5: str | None = None,
) -> str | None:
    """How the two objects were found equal (``"size+etag"``, ``"size+md5"``), or None.

    ETags are compared when both are MD5s or both multipart (of the same part count); else the
    MD5 of each side comes from its ETag when that is one, or from reading it (``read``).
    Without ``read``, objects of one size that only reading could compare give ``"unread"``.
    """
    if src_listed.size != dst_listed.size:
        return None
    a, b = _md5_etag(src, src_listed), _md5_etag(dst, dst_listed)
    if a is not None and a == b:
        return "size+etag"
    if a is not None and b is not None and _parts(a) == _parts(b):
        return None  # comparable (both MD5s, or multipart of as many parts) and different
    if not read:
        return _UNREAD if streamed_md5 is None else "size"
    left = a if a is not None and not _is_multipart(a) else streamed_md5 or _read_md5(src)
    right = b if b is not None and not _is_multipart(b) else _read_md5(dst)
    return "size+md5" if left == right else None


def _md5_etag(target: Target, listed: Listed) -> str | None:
    """The ETag when it is a content checksum (not under SSE-KMS, whose ETags are not)."""
    if listed.etag is None or target.route.backend != "s3":
        return None
    policy = target.route.settings.storage
    if policy is not None and policy.sse == "aws:kms":
        return None
    return listed.etag


def _is_multipart(etag: str | None) -> bool:
    return etag is not None and "-" in etag


def _parts(etag: str) -> str:
    """``""`` for an MD5, the part count for a multipart ETag (``"<md5>-<count>"``)."""
    return etag.rpartition("-")[2] if "-" in etag else ""


def _stat(target: Target) -> Listed:
    if target.route.backend != "s3":
        size = backend_for(target.route).size(target)  # type: ignore[attr-defined]
        return Listed(target.key, int(size), None)
    with _errors("stat", target):
        head = _client(target).head_object(
            Bucket=target.route.location, Key=target.key, **_owner(target.route)
        )
    return Listed(target.key, int(head["ContentLength"]), str(head["ETag"]).strip('"'))


def _read_md5(target: Target) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    body = _open(target)
    try:
        while chunk := body.read(_READ):
            digest.update(chunk)
    finally:
        body.close()
    return digest.hexdigest()


# -- times --------------------------------------------------------------------------------
def modified_after(target: Target, moment: dt.datetime) -> list[str]:
    """The objects below ``target`` (names relative to it) last modified after ``moment``, or
    whose time the store does not tell (they cannot be shown to be older), sorted."""
    cutoff = moment.timestamp()
    if target.route.backend != "s3":
        backend: Any = backend_for(target.route)
        times: dict[str, float | None] = backend.modified_times(target)
        return sorted(name for name, when in times.items() if when is None or when > cutoff)
    root = target.key + "/" if target.key else ""
    newer: list[str] = []
    with _errors("list", target):
        pages = (
            _client(target)
            .get_paginator("list_objects_v2")
            .paginate(Bucket=target.route.location, Prefix=root, **_owner(target.route))
        )
        for page in pages:
            for obj in page.get("Contents", []):
                name = obj["Key"][len(root) :]
                if name and not name.endswith("/") and obj["LastModified"].timestamp() > cutoff:
                    newer.append(name)
    return sorted(newer)


# -- deleting -----------------------------------------------------------------------------
def delete_objects(root: Target, names: list[str]) -> int:
    """Delete exactly these objects below ``root`` (S3: batches of 1000); return how many."""
    if root.route.backend != "s3":
        backend = backend_for(root.route)
        return sum(backend.delete(root.child(name)) for name in names)
    client = _client(root)
    deleted = 0
    with _errors("delete", root):
        for start in range(0, len(names), 1000):
            batch = [join(root.key, n) for n in names[start : start + 1000]]
            result = client.delete_objects(
                Bucket=root.route.location,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                **_owner(root.route),
            )
            if errors := result.get("Errors"):
                raise StorageError(
                    f"delete failed for workspace '{root.workspace}' at "
                    f"s3://{root.route.location}/{errors[0].get('Key')}: "
                    f"{errors[0].get('Code')}; {len(errors)} object(s) were kept."
                )
            deleted += len(batch)
    return deleted


# -- helpers ------------------------------------------------------------------------------
def _client(target: Target) -> Any:
    return client_for(target.route.settings, target.route.location, target.scope)


def _owner(route: Route) -> dict[str, str]:
    policy = route.settings.storage
    owner = policy.expected_bucket_owner if policy else None
    return {"ExpectedBucketOwner": owner} if owner else {}


def _open(target: Target) -> Any:
    """A binary reader on the object."""
    if target.route.backend == "s3":
        with _errors("download", target):
            response = _client(target).get_object(
                Bucket=target.route.location, Key=target.key, **_owner(target.route)
            )
        return response["Body"]
    backend: Any = backend_for(target.route)
    return backend.fs.open(backend._checked(target), "rb")


class _HashingReader:
    """Passes reads through, hashing (MD5) and counting what went by. A read that fails (the
    connection drops, botocore's response checksum does not match) raises the source's
    translated error, so the copy fails as a whole and its upload is aborted."""

    def __init__(self, body: Any, source: Target) -> None:
        self._body = body
        self._source = source
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        with _errors("download", self._source):
            data: bytes = self._body.read(size) if size >= 0 else self._body.read()
        self.md5.update(data)
        self.size += len(data)
        return data

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._body.close()


@contextlib.contextmanager
def _errors(operation: str, target: Target) -> Iterator[None]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError) as err:
        raise translate_boto_error(
            err,
            workspace=target.workspace,
            location=target.uri,
            operation=operation,
            bucket=target.route.location,
            credentials=describe_credentials(target.route.settings),
        ) from err
