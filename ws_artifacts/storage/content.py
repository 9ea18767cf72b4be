"""What an object is, as MLflow's S3 repository tells the store: Content-Type and
Content-Encoding guessed from the file name, and the HTTP headers of upload arguments (for
presigned PUTs, where the client must send what the URL was signed with)."""

from __future__ import annotations

import mimetypes
import posixpath
from typing import Any

__all__ = ["PRESIGN_FALLBACK_TYPE", "content_args", "upload_headers"]

#: The type a presigned PUT is signed with when the name says nothing (as MLflow's).
PRESIGN_FALLBACK_TYPE = "application/octet-stream"

# put_object parameters -> the header a client must send with a presigned PUT signed with them.
_PARAM_HEADERS = {
    "ACL": "x-amz-acl",
    "CacheControl": "Cache-Control",
    "ContentDisposition": "Content-Disposition",
    "ContentEncoding": "Content-Encoding",
    "ContentLanguage": "Content-Language",
    "ContentType": "Content-Type",
    "ExpectedBucketOwner": "x-amz-expected-bucket-owner",
    "Expires": "Expires",
    "GrantFullControl": "x-amz-grant-full-control",
    "GrantRead": "x-amz-grant-read",
    "GrantReadACP": "x-amz-grant-read-acp",
    "GrantWriteACP": "x-amz-grant-write-acp",
    "ObjectLockLegalHoldStatus": "x-amz-object-lock-legal-hold",
    "ObjectLockMode": "x-amz-object-lock-mode",
    "ObjectLockRetainUntilDate": "x-amz-object-lock-retain-until-date",
    "RequestPayer": "x-amz-request-payer",
    "SSEKMSKeyId": "x-amz-server-side-encryption-aws-kms-key-id",
    "ServerSideEncryption": "x-amz-server-side-encryption",
    "StorageClass": "x-amz-storage-class",
    "Tagging": "x-amz-tagging",
    "BucketKeyEnabled": "x-amz-server-side-encryption-bucket-key-enabled",
}


def content_args(name: str) -> dict[str, str]:
    """``ContentType`` and ``ContentEncoding`` for an object called ``name``, guessed the way
    MLflow's S3 repository guesses them (``mimetypes.guess_type``); empty when nothing is known.

    ``b.tar.gz`` gives ``application/x-tar`` with encoding ``gzip``; ``model.pkl`` nothing.
    """
    guessed_type, guessed_encoding = mimetypes.guess_type(posixpath.basename(name))
    args: dict[str, str] = {}
    if guessed_type is not None:
        args["ContentType"] = guessed_type
    if guessed_encoding is not None:
        args["ContentEncoding"] = guessed_encoding
    return args


def upload_headers(params: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The headers a client must send with a PUT presigned with ``params``, and the names of
    parameters that have no header (the caller leaves those out of the URL)."""
    headers: dict[str, str] = {}
    unmapped: list[str] = []
    for name, value in params.items():
        if name in ("Bucket", "Key"):
            continue
        header = _PARAM_HEADERS.get(name)
        if header is None:
            unmapped.append(name)
        else:
            headers[header] = str(value).lower() if isinstance(value, bool) else str(value)
    return headers, unmapped
