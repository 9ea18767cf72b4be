"""S3 listings: every ``list_objects_v2``, ``list_multipart_uploads`` and ``list_parts`` call.

Each function takes the route's client and bucket and the ``ExpectedBucketOwner`` arguments to
send (empty where the caller sends none); botocore errors are raised as they are, for the
caller to translate.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ws_artifacts.storage.base import Piece, Split

__all__ = ["PAGE_KEYS", "objects", "pages", "parts", "split", "uploads"]

#: Keys asked for in the first page of a piece of a split walk; a piece that does not end
#: there is split.
PAGE_KEYS = 1000


def pages(
    client: Any, bucket: str, prefix: str, owner: dict[str, str], *, delimiter: str = ""
) -> Iterator[dict[str, Any]]:
    """The pages of a listing of ``prefix`` (flat, or by ``delimiter``)."""
    extra = {"Delimiter": delimiter} if delimiter else {}
    paginator = client.get_paginator("list_objects_v2")
    yield from paginator.paginate(Bucket=bucket, Prefix=prefix, **extra, **owner)


def objects(client: Any, bucket: str, prefix: str, owner: dict[str, str]) -> Iterator[Any]:
    """Every object below ``prefix`` (its listing entry: Key, Size, LastModified, ...) from
    one flat listing: no per-directory round trips."""
    for page in pages(client, bucket, prefix, owner):
        yield from page.get("Contents", [])


def uploads(client: Any, bucket: str, prefix: str, owner: dict[str, str]) -> Iterator[Any]:
    """Every pending multipart upload whose key starts with ``prefix`` (Key, UploadId, ...),
    one key's uploads in ascending order of initiation."""
    paginator = client.get_paginator("list_multipart_uploads")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, **owner):
        yield from page.get("Uploads", [])


def parts(
    client: Any, bucket: str, key: str, upload_id: str, owner: dict[str, str]
) -> Iterator[Any]:
    """Every uploaded part of ``upload_id`` (PartNumber, ETag, Size)."""
    paginator = client.get_paginator("list_parts")
    for page in paginator.paginate(Bucket=bucket, Key=key, UploadId=upload_id, **owner):
        yield from page.get("Parts", [])


def split(client: Any, bucket: str, piece: Piece, cut: int, owner: dict[str, str]) -> Split:
    """One page of ``piece.prefix`` after ``piece.after`` (``piece.split``: none); when there
    is more, list by ``/`` and make every part after the page's last key a piece of its own.
    Names are the keys without their first ``cut`` characters; ``owner``: the bucket's
    expected owner (``ExpectedBucketOwner``), or empty."""
    found: list[tuple[str, int]] = []
    last = piece.after
    if not piece.split:
        args: dict[str, Any] = {"Bucket": bucket, "Prefix": piece.prefix, "MaxKeys": PAGE_KEYS}
        args.update(owner)
        if piece.after:
            args["StartAfter"] = piece.after
        page = client.list_objects_v2(**args)
        contents = page.get("Contents", [])
        found.extend((obj["Key"][cut:], int(obj["Size"])) for obj in contents)
        if not page.get("IsTruncated") or not contents:
            return found, []
        last = contents[-1]["Key"]
    more: list[Piece] = []
    for page in pages(client, bucket, piece.prefix, owner, delimiter="/"):
        found.extend(
            (obj["Key"][cut:], int(obj["Size"]))
            for obj in page.get("Contents", [])
            if obj["Key"] > last
        )
        for common in page.get("CommonPrefixes", []):
            child = common["Prefix"]
            if last and last.startswith(child):
                more.append(Piece(child, last))
            elif child > last:
                more.append(Piece(child))
            # else: every key of child sorts before last, so this page counted it
    return found, more
