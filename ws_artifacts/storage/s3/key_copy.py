"""Server-side copy of one object to another key of the same bucket (lifecycle moves:
quarantine and restore), with the route's storage policy applied to the copy."""

from __future__ import annotations

import contextlib
import math
from typing import Any

from ws_artifacts.core.settings import Transfer

__all__ = ["copy_key"]

_MAX_PARTS = 10_000


def copy_key(
    client: Any,
    bucket: str,
    src: str,
    dst: str,
    size: int,
    args: dict[str, Any],
    transfer: Transfer,
    owner: dict[str, str],
) -> None:
    """``copy_object`` below the route's multipart threshold, ``upload_part_copy`` above it;
    ``args`` (encryption, class, tags) go to the copy; ``owner`` (``ExpectedBucketOwner``, or
    empty) to every call, for the source as for the target. A failed multipart copy is aborted.
    botocore errors are raised as they are."""
    source = {"Bucket": bucket, "Key": src}
    source_owner = {"ExpectedSourceBucketOwner": owner["ExpectedBucketOwner"]} if owner else {}
    both = {**owner, **source_owner}
    target = {**owner, **args, **source_owner}  # args name the owner too (put_args)
    if size < transfer.multipart_threshold:
        extra = {"TaggingDirective": "REPLACE"} if "Tagging" in args else {}
        client.copy_object(Bucket=bucket, Key=dst, CopySource=source, **target, **extra)
        return
    part = max(transfer.part_size, math.ceil(size / _MAX_PARTS))
    upload = client.create_multipart_upload(Bucket=bucket, Key=dst, **{**owner, **args})
    try:
        parts = []
        for number, start in enumerate(range(0, size, part), start=1):
            end = min(start + part, size) - 1
            answer = client.upload_part_copy(
                Bucket=bucket,
                Key=dst,
                UploadId=upload["UploadId"],
                PartNumber=number,
                CopySource=source,
                CopySourceRange=f"bytes={start}-{end}",
                **both,
            )
            parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
        client.complete_multipart_upload(
            Bucket=bucket,
            Key=dst,
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": parts},
            **owner,
        )
    except BaseException:
        with contextlib.suppress(Exception):
            client.abort_multipart_upload(
                Bucket=bucket, Key=dst, UploadId=upload["UploadId"], **owner
            )
        raise
