"""Presigned URLs: a PUT or GET of one object, and the part URLs of a multipart upload.

Presigned requests carry no ExpectedBucketOwner: it would become a signed header that MLflow's
clients do not send (S3 would answer SignatureDoesNotMatch). The owner is checked by the calls
the server makes itself: create/complete for uploads (an upload id only exists in its bucket),
a HEAD just before presigning a download.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from ws_artifacts.core.errors import StorageError
from ws_artifacts.core.targets import Target
from ws_artifacts.storage.content import PRESIGN_FALLBACK_TYPE, upload_headers
from ws_artifacts.storage.s3.bucket import BucketBackend
from ws_artifacts.storage.s3.upload_args import put_args

__all__ = ["Presigning", "part_urls"]


class Presigning(BucketBackend):
    """Presigned PUTs and GETs of the route's objects."""

    def presign_put(self, target: Target, expiration: int) -> tuple[str, dict[str, str]]:
        """A presigned PUT for ``target`` with the route's storage policy, and the headers the
        client must send with it (the URL is signed with them: SSE, class, tags, type)."""
        args = put_args(self.route, target.workspace, target.key)
        args.setdefault("ContentType", PRESIGN_FALLBACK_TYPE)
        headers, unmapped = upload_headers(args)
        if unmapped:
            raise StorageError(
                f"Cannot presign an upload to {target.uri} for workspace '{target.workspace}': "
                f"upload argument(s) {', '.join(sorted(unmapped))} have no HTTP header a client "
                "could send; remove them from MLFLOW_S3_UPLOAD_EXTRA_ARGS or upload through "
                "the server."
            )
        with self._errors("presign", target):
            url = self.client(target).generate_presigned_url(
                "put_object",
                Params={"Bucket": self.bucket, "Key": target.key, **args},
                ExpiresIn=expiration,
            )
        return str(url), headers

    def presign_get(self, target: Target, expiration: int) -> tuple[str, int]:
        """A presigned GET URL and the object's size (the HEAD for the size also checks the
        bucket's owner)."""
        size = self.size(target)
        with self._errors("presign", target):
            url = self.client(target).generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": target.key},
                ExpiresIn=expiration,
            )
        return str(url), size


_PART_URL_SECONDS = 3600  # ws_artifacts.serving.bounds.MAX_URL_SECONDS


def part_urls(client: Any, bucket: str, key: str, upload_id: str, count: int) -> list[str]:
    """Presigned ``upload_part`` URLs for parts 1..``count``.

    botocore takes about a millisecond per URL (serialising, events, endpoint rules), which
    made 10 000 parts cost seconds of a worker. The URLs differ only in ``partNumber`` and the
    signature, so botocore signs part 1 and the others are signed here from the same canonical
    request (SigV4 query signing, ``UNSIGNED-PAYLOAD``). Part 1 is signed both ways first: when
    the two differ (another signer, a virtual-host quirk, credentials not readable), botocore
    signs every part as before.
    """

    def botocore_url(number: int) -> str:
        params = {"Bucket": bucket, "Key": key, "PartNumber": number, "UploadId": upload_id}
        return str(
            client.generate_presigned_url("upload_part", Params=params, ExpiresIn=_PART_URL_SECONDS)
        )

    first = botocore_url(1)
    signer = _PartSigner.for_url(client, first)
    if signer is None or signer.url(1) != first:
        return [first, *(botocore_url(n) for n in range(2, count + 1))]
    return [first, *(signer.url(n) for n in range(2, count + 1))]


class _PartSigner:
    """SigV4 query signatures of one presigned part URL's siblings (see :func:`part_urls`)."""

    def __init__(self, url: str, key: bytes, scope: str, amz_date: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self._base = f"{parts.scheme}://{parts.netloc}{parts.path}"
        self._items = [
            item for item in parts.query.split("&") if not item.startswith("X-Amz-Signature=")
        ]
        self._decoded = [
            (k, v)
            for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
            if k != "X-Amz-Signature"
        ]
        self._head = f"PUT\n{parts.path}\n"
        self._tail = f"\nhost:{parts.netloc}\n\nhost\nUNSIGNED-PAYLOAD"
        self._key, self._scope, self._date = key, scope, amz_date

    @classmethod
    def for_url(cls, client: Any, url: str) -> _PartSigner | None:
        import hmac

        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
        if credentials is None or query.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
            return None
        secret = credentials.get_frozen_credentials().secret_key
        _akid, date, region, service, _end = query["X-Amz-Credential"].split("/")
        key = f"AWS4{secret}".encode()
        for step in (date, region, service, "aws4_request"):
            key = hmac.new(key, step.encode(), "sha256").digest()
        return cls(url, key, f"{date}/{region}/{service}/aws4_request", query["X-Amz-Date"])

    def url(self, number: int) -> str:
        import hashlib
        import hmac

        def quote(text: str) -> str:
            return urllib.parse.quote(text, safe="-_.~")

        pairs = [(k, str(number) if k == "partNumber" else v) for k, v in self._decoded]
        canonical_query = "&".join(f"{quote(k)}={quote(v)}" for k, v in sorted(pairs))
        canonical = f"{self._head}{canonical_query}{self._tail}"
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        to_sign = f"AWS4-HMAC-SHA256\n{self._date}\n{self._scope}\n{digest}"
        signature = hmac.new(self._key, to_sign.encode(), "sha256").hexdigest()
        items = [f"partNumber={number}" if i.startswith("partNumber=") else i for i in self._items]
        return f"{self._base}?{'&'.join(items)}&X-Amz-Signature={signature}"
