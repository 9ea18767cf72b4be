"""S3 listings: every ``list_objects_v2``, ``list_multipart_uploads`` and ``list_parts`` call.

Each function takes the route's client and bucket and the ``ExpectedBucketOwner`` arguments to
send (empty where the caller sends none); botocore errors are raised as they are, for the
caller to translate.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["objects", "pages", "parts", "uploads"]


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
