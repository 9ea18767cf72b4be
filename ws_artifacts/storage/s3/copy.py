"""The S3 calls of the verified copy engine (:mod:`ws_artifacts.storage.copying`).

A tree listed in parallel by prefix, server-side copies (one ``copy_object``, or
``upload_part_copy`` in the source's own part layout), the HEAD and GET that streamed copies
and verification read, a listing by modification time, and batched deletes. Every function
takes resolved targets, names the bucket's expected owner as S3Backend does (the route's, else
MLflow's variable) and raises botocore's errors translated by
:func:`ws_artifacts.core.errors.translate_boto_error` (reads of a body included).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, cast

from ws_artifacts.core.errors import StorageError
from ws_artifacts.core.paths import join
from ws_artifacts.core.settings import Transfer
from ws_artifacts.core.targets import Route, Target
from ws_artifacts.storage.registry import backend_for
from ws_artifacts.storage.s3.backend import S3Backend
from ws_artifacts.storage.s3.upload_args import put_args

__all__ = [
    "copy_object",
    "delete_objects",
    "is_multipart",
    "list_objects",
    "modified_after",
    "read_chunks",
    "stat",
    "translated",
]

_GIB = 1024**3
_MAX_COPY_OBJECT = 5 * _GIB  # S3's limit for one copy_object
_LIST_DEPTH = 1  # one delimited listing of experiments, then one flat listing each
_DELETE_BATCH = 1000

#: One listed object: its key relative to the listed target, its size, its ETag without quotes.
Object = tuple[str, int, str]


def is_multipart(etag: str | None) -> bool:
    """Whether ``etag`` is a multipart upload's (``"<md5>-<parts>"``), not an MD5."""
    return etag is not None and "-" in etag


# -- listing ------------------------------------------------------------------------------
def list_objects(target: Target, *, threads: int) -> list[Object]:
    """Every object below ``target``, listed in parallel: one delimited listing of the
    experiments, then one flat listing per experiment."""
    client = _client(target)
    root = target.key + "/" if target.key else ""
    found: list[Object] = []
    with translated("list", target), ThreadPoolExecutor(max_workers=threads) as pool:
        pending = [pool.submit(_list_level, client, target, root, 0)]
        while pending:
            objects, prefixes, depth = pending.pop().result()
            for key, size, etag in objects:
                name = key[len(root) :]
                if name and not name.endswith("/"):
                    found.append((name, size, etag))
            pending.extend(pool.submit(_list_level, client, target, p, depth + 1) for p in prefixes)
    return found


def _list_level(
    client: Any, target: Target, prefix: str, depth: int
) -> tuple[list[Object], list[str], int]:
    """Objects directly under ``prefix`` and its sub-prefixes; past the split depth, every
    object below it from one flat listing."""
    delimited = depth < _LIST_DEPTH
    extra = {"Delimiter": "/"} if delimited else {}
    objects: list[Object] = []
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


def modified_after(target: Target, cutoff: float) -> list[str]:
    """The objects below ``target`` (names relative to it) last modified after ``cutoff`` (a
    POSIX timestamp), from one flat listing."""
    root = target.key + "/" if target.key else ""
    newer: list[str] = []
    with translated("list", target):
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
    return newer


# -- copying ------------------------------------------------------------------------------
def copy_object(src: Target, dst: Target, size: int, etag: str | None) -> str:
    """Copy ``src`` to ``dst`` inside the store, with ``dst``'s storage policy; return the new
    object's ETag. A single-part source goes in one ``copy_object`` (its ETag stays the
    source's MD5); a multipart or larger one part for part (see :func:`_copy_parts`)."""
    client = _client(dst)
    args = put_args(dst.route, dst.workspace)
    source = {"Bucket": src.route.location, "Key": src.key}
    with translated("copy", dst):
        if not is_multipart(etag) and size <= _MAX_COPY_OBJECT:
            response = client.copy_object(
                Bucket=dst.route.location,
                Key=dst.key,
                CopySource=source,
                MetadataDirective="COPY",
                **({"TaggingDirective": "REPLACE"} if "Tagging" in args else {}),
                **args,
            )
            return str(response["CopyObjectResult"]["ETag"]).strip('"')
        part = _source_part_size(client, src, etag, dst.route.settings.transfer or Transfer())
        part = max(part, -(-size // 10_000))  # S3 allows 10 000 parts
        spans = [(start, min(start + part, size) - 1) for start in range(0, size, part)]
        return _copy_parts(client, source, dst, spans, args)


def _source_part_size(client: Any, src: Target, etag: str | None, transfer: Transfer) -> int:
    """The size of the source's first part (its own part layout), else the route's part size."""
    if not is_multipart(etag):
        return transfer.part_size
    head = client.head_object(
        Bucket=src.route.location, Key=src.key, PartNumber=1, **_owner(src.route)
    )
    return int(head["ContentLength"]) or transfer.part_size


def _copy_parts(
    client: Any, source: dict[str, str], dst: Target, spans: list[tuple[int, int]], args: Any
) -> str:
    """``upload_part_copy`` of each byte span, parts in parallel; aborted on any failure, so no
    parts and no partial object are left."""
    transfer = dst.route.settings.transfer or Transfer()
    bucket, owner = dst.route.location, _owner(dst.route)
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=dst.key, **args)["UploadId"]
    one = functools.partial(_copy_part, client, source, dst, upload_id)
    backend = _bucket(dst.route)  # the route's pending uploads
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


def _copy_part(
    client: Any,
    source: dict[str, str],
    dst: Target,
    upload_id: str,
    numbered: tuple[int, tuple[int, int]],
) -> dict[str, Any]:
    number, (first, last) = numbered
    result = client.upload_part_copy(
        Bucket=dst.route.location,
        Key=dst.key,
        UploadId=upload_id,
        PartNumber=number,
        CopySource=source,
        CopySourceRange=f"bytes={first}-{last}",
        **_owner(dst.route),
    )
    return {"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]}


# -- reading what verification needs ------------------------------------------------------
def stat(target: Target) -> tuple[int, str]:
    """The object's size and ETag (without quotes), from one HEAD."""
    with translated("stat", target):
        head = _client(target).head_object(
            Bucket=target.route.location, Key=target.key, **_owner(target.route)
        )
    return int(head["ContentLength"]), str(head["ETag"]).strip('"')


def read_chunks(target: Target, size: int) -> Iterator[bytes]:
    """The object's bytes, ``size`` at a time, from one GET read as they are asked for (close
    the generator to stop early). A failed GET or read (a connection dropped mid-body, a
    response checksum that does not match) raises ours, never botocore's."""
    with translated("download", target):
        response = _client(target).get_object(
            Bucket=target.route.location, Key=target.key, **_owner(target.route)
        )
        body = response["Body"]
        try:
            while chunk := body.read(size):
                yield chunk
        finally:
            with contextlib.suppress(Exception):
                body.close()


# -- deleting -----------------------------------------------------------------------------
def delete_objects(root: Target, names: list[str]) -> int:
    """Delete exactly these objects below ``root`` in batches of 1000; return how many."""
    client = _client(root)
    deleted = 0
    with translated("delete", root):
        for start in range(0, len(names), _DELETE_BATCH):
            batch = [join(root.key, n) for n in names[start : start + _DELETE_BATCH]]
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


# -- the route's client, owner and errors: its S3Backend's own ---------------------------
def _bucket(route: Route) -> S3Backend:
    """The route's backend (built once per route by the registry): the one place that knows
    its client, its bucket's expected owner and how its errors read."""
    return cast(S3Backend, backend_for(route))


def _client(target: Target) -> Any:
    return _bucket(target.route).client(target)


def _owner(route: Route) -> dict[str, str]:
    """``ExpectedBucketOwner`` for a call on ``route``'s bucket (the route's, else MLflow's)."""
    return _bucket(route)._owner


def translated(operation: str, target: Target) -> AbstractContextManager[None]:
    """Raise botocore's errors of what runs inside as ours (``operation`` on ``target``)."""
    return _bucket(target.route)._translated(operation, target.workspace, target.uri)
