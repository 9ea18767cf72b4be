"""Whether two objects hold the same bytes: sizes, ETags where they are checksums, MD5s read
where they are not (SSE-KMS, fsspec stores, other part layouts). Used by :mod:`.copying`."""

from __future__ import annotations

import hashlib
from collections.abc import Generator
from dataclasses import dataclass
from typing import cast

from ws_artifacts.core.targets import Target
from ws_artifacts.storage.fs.backend import FsspecBackend
from ws_artifacts.storage.registry import backend_for
from ws_artifacts.storage.s3 import copy as s3_copy
from ws_artifacts.storage.s3.copy import is_multipart

__all__ = [
    "UNREAD",
    "HashingReader",
    "Listed",
    "chunks",
    "md5_etag",
    "read_md5",
    "same_content",
    "stat",
]


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


UNREAD = "unread"  # same_content without reading: only reading both could tell


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
    a, b = md5_etag(src, src_listed), md5_etag(dst, dst_listed)
    if a is not None and a == b:
        return "size+etag"
    if a is not None and b is not None and _parts(a) == _parts(b):
        return None  # comparable (both MD5s, or multipart of as many parts) and different
    if not read:
        return UNREAD if streamed_md5 is None else "size"
    left = a if a is not None and not is_multipart(a) else streamed_md5 or read_md5(src)
    right = b if b is not None and not is_multipart(b) else read_md5(dst)
    return "size+md5" if left == right else None


def md5_etag(target: Target, listed: Listed) -> str | None:
    """The ETag when it is a content checksum (not under SSE-KMS, whose ETags are not)."""
    if listed.etag is None or target.route.backend != "s3":
        return None
    policy = target.route.settings.storage
    if policy is not None and policy.sse == "aws:kms":
        return None
    return listed.etag


def _parts(etag: str) -> str:
    """``""`` for an MD5, the part count for a multipart ETag (``"<md5>-<count>"``)."""
    return etag.rpartition("-")[2] if "-" in etag else ""


def stat(target: Target) -> Listed:
    if target.route.backend != "s3":
        size = backend_for(target.route).size(target)
        return Listed(target.key, int(size), None)
    size, etag = s3_copy.stat(target)
    return Listed(target.key, size, etag)


def read_md5(target: Target) -> str:
    """The object's MD5, from reading it (a failed read raises ours)."""
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in chunks(target):
        digest.update(chunk)
    return digest.hexdigest()


def chunks(target: Target) -> Generator[bytes, None, None]:
    """The object's bytes, a chunk at a time, read as asked for (one GET on S3); a failed open
    or read raises ours, never botocore's errors nor an OSError; closing stops the read."""
    if target.route.backend == "s3":
        yield from s3_copy.read_chunks(target, _READ)
    else:
        yield from cast(FsspecBackend, backend_for(target.route)).read_chunks(target, _READ)


class HashingReader:
    """A binary reader over :func:`chunks`, hashing (MD5) and counting what goes by. A failed
    read raises the source's translated error: the copy fails, its upload is aborted."""

    def __init__(self, chunks: Generator[bytes, None, None]) -> None:
        self.chunks = chunks
        self._pending = b""  # what is left of the last chunk
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            data, self._pending = self._pending + b"".join(self.chunks), b""
        else:  # uploads ask for a chunk at a time: a whole chunk is passed on, not copied
            chunk = self._pending or next(self.chunks, b"")
            data, self._pending = chunk[:size], chunk[size:]
        self.md5.update(data)
        self.size += len(data)
        return data

    def close(self) -> None:
        self.chunks.close()


_READ = 1024 * 1024
