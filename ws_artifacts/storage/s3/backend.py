"""S3 through boto3: the route's own client, credentials and storage policy on every call.

:class:`S3Backend` is the route's backend; its operations are grouped by module: writes, reads,
listings and deletes here, multipart uploads in :mod:`.multipart`, presigned URLs in
:mod:`.presign`, lifecycle work by key in :mod:`.keys`, all on :class:`.bucket.BucketBackend`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from ws_artifacts.core.errors import boto_code, error_class
from ws_artifacts.core.paths import join
from ws_artifacts.core.targets import Target
from ws_artifacts.storage.base import Capability, Entry, Piece, Split
from ws_artifacts.storage.clients import client_for
from ws_artifacts.storage.s3 import listing
from ws_artifacts.storage.s3.keys import KeyOperations
from ws_artifacts.storage.s3.multipart import MultipartUploads
from ws_artifacts.storage.s3.presign import Presigning
from ws_artifacts.storage.s3.transfer import (
    READ_CHUNK,
    copy_at,
    memory_parts,
    read_full,
    spool_size,
    spooled_parts,
    temporary_beside,
    total_size,
)
from ws_artifacts.storage.s3.upload_args import put_args

__all__ = ["S3Backend"]

# A stream that ends within this many bytes is uploaded from memory in one PUT; a longer one
# is spooled to disk part by part (see S3Backend.put_stream).
_MEMORY_PUT = 2 * READ_CHUNK
_DELETE_BATCH = 1000
_EVERY_CAPABILITY = frozenset(Capability)
_WITHOUT_PRESIGNED_READS = _EVERY_CAPABILITY - {Capability.PRESIGNED_READS}


class S3Backend(Presigning, MultipartUploads, KeyOperations):
    """One route's bucket and prefix."""

    @property
    def capabilities(self) -> frozenset[Capability]:
        """Presigned uploads and multipart uploads always; presigned downloads unless the
        route turns them off (``transfer.presigned_downloads: false``)."""
        if self.transfer.presigned_downloads:
            return _EVERY_CAPABILITY
        return _WITHOUT_PRESIGNED_READS

    # -- writes ---------------------------------------------------------------------------
    def put_file(self, target: Target, local_path: str) -> None:
        """Single PUT below the multipart threshold, parallel multipart above it."""
        size = os.path.getsize(local_path)
        args = put_args(self.route, target.workspace, target.key)
        with self._errors("upload", target):
            if size < self.transfer.multipart_threshold:
                with open(local_path, "rb") as body:
                    self.client(target).put_object(
                        Bucket=self.bucket, Key=target.key, Body=body, **args
                    )
                return
            with open(local_path, "rb") as body:
                self._multipart(target, memory_parts(body, self.transfer.part_size), args)

    def put_stream(self, target: Target, stream: BinaryIO) -> None:
        """Upload a stream of unknown length without holding it in memory.

        A stream that ends within 2 MiB is one PUT from memory. A longer one is spooled to
        temporary files one part at a time: one PUT when it ends within the first part, else a
        multipart upload whose parts go up from their files while the next one arrives. Memory
        stays at one read buffer whatever the size; disk holds at most ``parts_in_flight`` + 1
        parts, never the whole object.
        """
        args = put_args(self.route, target.workspace, target.key)
        head = read_full(stream, _MEMORY_PUT)
        with self._errors("upload", target):
            if len(head) < _MEMORY_PUT:
                self.client(target).put_object(
                    Bucket=self.bucket, Key=target.key, Body=head, **args
                )
                return
            parts = spooled_parts(head, stream, self.transfer.part_size)
            first = next(parts)
            if spool_size(first) < self.transfer.part_size:  # the stream ended within one part
                with first:
                    self.client(target).put_object(
                        Bucket=self.bucket, Key=target.key, Body=first, **args
                    )
                return
            try:
                self._multipart(target, itertools.chain([first], parts), args)
            finally:
                first.close()  # already closed once uploaded; this covers an early failure
                parts.close()

    # -- reads ----------------------------------------------------------------------------
    def get_file(self, target: Target, local_path: str) -> None:
        """Download to a temporary file beside ``local_path``, then rename it into place.

        The first request asks for the first part only: a small object arrives whole in that
        one GET (no HEAD first), a large one continues in ranged GETs, ``parts_in_flight`` at a
        time, each pinned to the first answer's ETag so a concurrent overwrite cannot mix two
        versions.
        """
        from botocore.exceptions import ClientError

        client = self.client(target)
        part = self.transfer.part_size
        with self._errors("download", target), temporary_beside(local_path) as out:
            try:
                first = client.get_object(
                    Bucket=self.bucket, Key=target.key, Range=f"bytes=0-{part - 1}", **self._owner
                )
            except ClientError as err:
                if boto_code(err) != "InvalidRange":  # an empty object has no byte 0
                    raise
                first = client.get_object(Bucket=self.bucket, Key=target.key, **self._owner)
            copy_at(first["Body"], out, 0)
            total = total_size(first)
            ranges = [(start, min(start + part, total) - 1) for start in range(part, total, part)]
            if not ranges:
                return

            def fetch(span: tuple[int, int]) -> None:
                response = client.get_object(
                    Bucket=self.bucket,
                    Key=target.key,
                    Range=f"bytes={span[0]}-{span[1]}",
                    IfMatch=first["ETag"],
                    **self._owner,
                )
                copy_at(response["Body"], out, span[0])

            with ThreadPoolExecutor(max_workers=self.transfer.parts_in_flight) as pool:
                for future in [pool.submit(fetch, span) for span in ranges]:
                    future.result()

    def list_dir(self, target: Target) -> list[Entry]:
        """Direct children, from one paginated delimiter listing."""
        prefix = target.key + "/" if target.key else ""
        entries: list[Entry] = []
        with self._errors("list", target):
            client = self.client(target)
            for page in listing.pages(client, self.bucket, prefix, self._owner, delimiter="/"):
                for common in page.get("CommonPrefixes", []):
                    name = common["Prefix"][len(prefix) :].rstrip("/")
                    if name:
                        entries.append(Entry(name, True, None))
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(prefix) :]
                    if name and "/" not in name:
                        entries.append(Entry(name, False, int(obj["Size"])))
        return entries

    def walk(self, target: Target) -> Iterator[Entry]:
        """Every object below ``target`` from a flat listing (no per-directory round trips)."""
        prefix = target.key + "/" if target.key else ""
        with self._errors("list", target):
            client = self.client(target)
            for obj in listing.objects(client, self.bucket, prefix, self._owner):
                name = obj["Key"][len(prefix) :]
                if name and not name.endswith("/"):
                    yield Entry(name, False, int(obj["Size"]))

    def walk_split(self, target: Target, piece: Piece | None = None) -> Split:
        """One page of ``piece.prefix`` after ``piece.after``; when there is more, split at
        the next ``/`` and return each part after this page's last key as a piece of its own.
        The whole target (``piece`` None) nearly always holds experiment directories: it is
        split at once, without reading a first page."""
        if piece is None:
            piece = Piece(target.key + "/", split=True)
        cut = len(target.key) + 1
        location = f"s3://{join(self.bucket, piece.prefix)}"
        with self._translated("list", target.workspace, location):
            client = self.client(target)
            return listing.split(client, self.bucket, piece, cut, self._owner)

    def subdirs(self, prefix: str) -> list[str]:
        location = f"s3://{join(self.bucket, prefix)}"
        with self._translated("list", None, location):
            client = client_for(self.route.settings, self.bucket, "")
            start = prefix + "/" if prefix else ""
            return [
                common["Prefix"].rstrip("/").rsplit("/", 1)[-1]
                for page in listing.pages(client, self.bucket, start, self._owner, delimiter="/")
                for common in page.get("CommonPrefixes", [])
            ]

    def check(self, target: Target) -> None:
        """Nothing to check before a read: object keys have no links."""

    def size(self, target: Target) -> int:
        """The object's size in bytes."""
        with self._errors("stat", target):
            head = self.client(target).head_object(
                Bucket=self.bucket, Key=target.key, **self._owner
            )
        return int(head["ContentLength"])

    def look(self, target: Target) -> tuple[str, int] | None:
        """The object's (ETag, size), or None when there is no object at ``target.key``."""
        with self._errors("stat", target):
            head = self._head(self.client(target), target.key, self._owner)
        return None if head is None else (str(head.get("ETag", "")), int(head["ContentLength"]))

    def remove(self, target: Target) -> None:
        """Delete exactly the object at ``target.key`` (nothing below it)."""
        with self._errors("delete", target):
            self.client(target).delete_object(Bucket=self.bucket, Key=target.key, **self._owner)

    def delete(self, target: Target) -> int:
        """Delete the object and everything under ``key/`` in batches of 1000."""
        keys = [join(target.key, e.name) for e in self.walk(target)]
        if target.key:
            keys.append(target.key)
        deleted = 0
        with self._errors("delete", target):
            client = self.client(target)
            for start in range(0, len(keys), _DELETE_BATCH):
                batch = keys[start : start + _DELETE_BATCH]
                result = client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                    **self._owner,
                )
                if errors := result.get("Errors"):
                    first = errors[0]
                    raise error_class(str(first.get("Code", "")))(
                        f"delete failed for workspace '{target.workspace}' at "
                        f"s3://{self.bucket}/{first.get('Key')}: {first.get('Code')}; "
                        f"{len(errors)} object(s) were not deleted."
                    )
                deleted += len(batch)
        return deleted
