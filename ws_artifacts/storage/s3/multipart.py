"""Multipart uploads: the server's own (a large file or stream, parts in parallel), those
proxied clients drive with presigned part URLs, and the stale uploads a killed server left."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ws_artifacts.core.errors import NotFoundError, boto_code
from ws_artifacts.core.targets import Target
from ws_artifacts.storage.s3 import listing
from ws_artifacts.storage.s3.bucket import BucketBackend
from ws_artifacts.storage.s3.presign import part_urls
from ws_artifacts.storage.s3.upload_args import put_args

__all__ = ["MultipartUploads"]

# The logger of the S3 backend: operators filter on it for the stale-upload lines.
_logger = logging.getLogger("ws_artifacts.storage.s3.backend")


class MultipartUploads(BucketBackend):
    """Multipart uploads of the route's objects."""

    def _multipart(self, target: Target, parts: Iterable[Any], args: dict[str, str]) -> None:
        """Upload ``parts`` (bytes, or spool files closed once uploaded), ``parts_in_flight``
        at a time, which bounds what is held; abort on any failure so no parts are left behind
        and no partial object appears."""
        client = self.client(target)
        upload_id = client.create_multipart_upload(Bucket=self.bucket, Key=target.key, **args)[
            "UploadId"
        ]
        owner = self._owner
        held: list[tuple[Future[Any], Any]] = []
        try:
            done: list[dict[str, Any]] = []
            window = self.transfer.parts_in_flight
            with ThreadPoolExecutor(max_workers=window) as pool:
                for number, body in enumerate(parts, start=1):
                    future = pool.submit(
                        client.upload_part,
                        Bucket=self.bucket,
                        Key=target.key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=body,
                        **owner,
                    )
                    held.append((future, body))
                    if len(held) >= window:
                        done.append(_settle(held, len(done) + 1))
                while held:
                    done.append(_settle(held, len(done) + 1))
            stale = self.stale_uploads(target, upload_id)
            client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=target.key,
                UploadId=upload_id,
                MultipartUpload={"Parts": done},
                **owner,
            )
        except BaseException:
            for _future, body in held:
                _release(body)
            with contextlib.suppress(Exception):
                client.abort_multipart_upload(
                    Bucket=self.bucket, Key=target.key, UploadId=upload_id, **owner
                )
            raise
        self.abort_stale(target, stale)

    # -- uploads a killed server left behind ------------------------------------------------
    # A server killed in the middle of a multipart upload cannot abort it; its parts would stay
    # (and be billed) until a bucket lifecycle rule removes them. So when a multipart write of
    # key K completes, the uploads of exactly K that S3 lists before ours (it lists one key's
    # uploads in ascending order of initiation) are aborted: they began before this write and
    # this write replaces whatever they would have produced. Best effort: a failure here never
    # fails the write (AbortIncompleteMultipartUpload in the lifecycle rule is the backstop).
    def stale_uploads(self, target: Target, upload_id: str) -> list[str]:
        """The pending uploads of exactly ``target.key`` initiated before ``upload_id``."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            uploads = self.uploads_of(target)
        except (ClientError, BotoCoreError) as err:
            _logger.info(
                "cannot list pending uploads for workspace=%s bucket=%s (%s); stale uploads are "
                "left to the bucket's lifecycle rule",
                target.workspace,
                self.bucket,
                boto_code(err) or type(err).__name__,
            )
            return []
        if upload_id not in uploads:
            return []  # ours was not listed: no order to go by, abort nothing
        return uploads[: uploads.index(upload_id)]

    def uploads_of(self, target: Target) -> list[str]:
        """The ids of the pending uploads of exactly ``target.key``, oldest first (botocore
        errors are raised as they are)."""
        client = self.client(target)
        return [
            str(upload["UploadId"])
            for upload in listing.uploads(client, self.bucket, target.key, self._owner)
            if upload.get("Key") == target.key  # not K/child or K.bak: another object
        ]

    def check_upload(self, target: Target, upload_id: str) -> list[str]:
        """Refuse an upload id that is not a pending upload of exactly ``target.key``: not
        every S3-compatible store binds upload ids to keys, so naming another workspace's
        upload id under one's own path must not reach it. Returns the key's pending uploads
        initiated before this one (see :meth:`stale_uploads`).

        Raises:
            NotFoundError: No pending upload of this key has that id.
        """
        with self._errors("list multipart uploads", target):
            uploads = self.uploads_of(target)
        if upload_id not in uploads:
            raise NotFoundError(
                f"No pending multipart upload {upload_id[:200]!r} of {target.uri} for workspace "
                f"'{target.workspace}' (bucket {self.bucket}): it was completed or aborted "
                "already, or belongs to another file. Start a new upload of this file."
            )
        return uploads[: uploads.index(upload_id)]

    def parts_of(self, target: Target, upload_id: str) -> dict[int, tuple[str, int]]:
        """The uploaded parts of ``upload_id``: part number -> (ETag, size)."""
        with self._errors("list parts", target):
            client = self.client(target)
            return {
                int(part["PartNumber"]): (str(part["ETag"]), int(part["Size"]))
                for part in listing.parts(client, self.bucket, target.key, upload_id, self._owner)
            }

    def pending_uploads(self, target: Target) -> dict[str, str]:
        """Every pending upload below ``target.key``: upload id -> object key."""
        prefix = target.key + "/" if target.key else ""
        with self._errors("list multipart uploads", target):
            client = self.client(target)
            return {
                str(upload["UploadId"]): str(upload["Key"])
                for upload in listing.uploads(client, self.bucket, prefix, self._owner)
            }

    def abort_stale(self, target: Target, upload_ids: list[str]) -> None:
        """Abort ``upload_ids`` (from :meth:`stale_uploads`); failures are logged, not raised."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client(target)
        for stale in upload_ids:
            try:
                client.abort_multipart_upload(
                    Bucket=self.bucket, Key=target.key, UploadId=stale, **self._owner
                )
            except (ClientError, BotoCoreError) as err:
                _logger.info(
                    "cannot abort a stale upload for workspace=%s bucket=%s (%s)",
                    target.workspace,
                    self.bucket,
                    boto_code(err) or type(err).__name__,
                )
            else:
                _logger.info(
                    "aborted a stale multipart upload for workspace=%s bucket=%s key=%s",
                    target.workspace,
                    self.bucket,
                    target.key,
                )

    # -- multipart uploads proxied clients drive (their parts go to S3 directly) ----------
    # Part URLs carry no ExpectedBucketOwner (see .presign); the owner is checked by the calls
    # the server makes itself: create and complete (an upload id only exists in its bucket).
    # SSE-KMS needs no per-part headers either: parts inherit the encryption of
    # create_multipart_upload.
    def create_multipart(self, target: Target, num_parts: int) -> tuple[str, list[str]]:
        """Start a multipart upload with the route's policy; presign one URL per part."""
        args = put_args(self.route, target.workspace, target.key)
        with self._errors("create multipart upload", target):
            client = self.client(target)
            upload_id = client.create_multipart_upload(Bucket=self.bucket, Key=target.key, **args)[
                "UploadId"
            ]
            urls = part_urls(client, self.bucket, target.key, upload_id, num_parts)
        return upload_id, urls

    def complete_multipart(
        self,
        target: Target,
        upload_id: str,
        etags: list[tuple[int, str]],
        *,
        stale: list[str] | None = None,
    ) -> None:
        """Assemble the uploaded parts into the object, then abort older uploads of the same
        key (``stale``, else found by :meth:`stale_uploads`)."""
        if stale is None:
            stale = self.stale_uploads(target, upload_id)
        with self._errors("complete multipart upload", target):
            self.client(target).complete_multipart_upload(
                Bucket=self.bucket,
                Key=target.key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in etags]},
                **self._owner,
            )
        self.abort_stale(target, stale)

    def abort_multipart(self, target: Target, upload_id: str) -> None:
        """Abort, so no orphaned parts remain."""
        with self._errors("abort multipart upload", target):
            self.client(target).abort_multipart_upload(
                Bucket=self.bucket, Key=target.key, UploadId=upload_id, **self._owner
            )


def _settle(held: list[tuple[Future[Any], Any]], number: int) -> dict[str, Any]:
    """Wait for the oldest part in flight (raising its error) and release its body."""
    future, body = held[0]
    etag = future.result()["ETag"]
    held.pop(0)
    _release(body)
    return {"PartNumber": number, "ETag": etag}


def _release(body: Any) -> None:
    if hasattr(body, "close"):
        body.close()  # a spool file: closing deletes it
