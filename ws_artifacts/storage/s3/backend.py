"""S3 through boto3: the route's own client, credentials and storage policy on every call."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import tempfile
import urllib.parse
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any, BinaryIO

from ws_artifacts.core.errors import NotFoundError, StorageError, boto_code, translate_boto_error
from ws_artifacts.core.paths import join
from ws_artifacts.core.routing import Route, Target
from ws_artifacts.core.settings import WORKSPACE_TAG, Transfer
from ws_artifacts.storage.base import TEMP_PREFIX, Entry
from ws_artifacts.storage.clients import client_for, describe_credentials
from ws_artifacts.storage.content import PRESIGN_FALLBACK_TYPE, content_args, upload_headers
from ws_artifacts.storage.mlflow_settings import s3_defaults

__all__ = ["S3Backend", "put_args"]

_logger = logging.getLogger(__name__)
_READ_CHUNK = 1024 * 1024
# A stream that ends within this many bytes is uploaded from memory in one PUT; a longer one
# is spooled to disk part by part (see S3Backend.put_stream).
_MEMORY_PUT = 2 * _READ_CHUNK
_DELETE_BATCH = 1000


def put_args(route: Route, workspace: str, name: str = "") -> dict[str, Any]:
    """The arguments of every upload of an object called ``name``: ``put_object``,
    ``create_multipart_upload`` (parts inherit SSE, class and tags from it) and presigned PUTs.

    In increasing precedence: Content-Type and Content-Encoding guessed from the name (as
    MLflow's S3 repository does), ``MLFLOW_S3_UPLOAD_EXTRA_ARGS`` and
    ``MLFLOW_S3_EXPECTED_BUCKET_OWNER``, then the route's storage policy (the file wins).
    """
    policy = route.settings.storage
    env = s3_defaults()
    args: dict[str, Any] = content_args(name) if name else {}
    args.update(env.extra_args())
    if env.expected_bucket_owner:
        args["ExpectedBucketOwner"] = env.expected_bucket_owner
    tags: dict[str, str] = {}
    if policy is not None:
        if policy.sse:
            args["ServerSideEncryption"] = policy.sse
        if policy.kms_key_id:
            args["SSEKMSKeyId"] = policy.kms_key_id
        if policy.storage_class:
            args["StorageClass"] = policy.storage_class
        if policy.expected_bucket_owner:
            args["ExpectedBucketOwner"] = policy.expected_bucket_owner
        tags.update(policy.tags)
    if policy is None or policy.tag_workspace:
        tags[WORKSPACE_TAG] = workspace
    if tags:
        # x-amz-tagging is a query string; quote (not quote_plus) so a space stays a space.
        args["Tagging"] = urllib.parse.urlencode(tags, quote_via=urllib.parse.quote)
    return args


class S3Backend:
    """One route's bucket and prefix."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.bucket = route.location
        self.transfer = route.settings.transfer or Transfer()

    @property
    def _owner(self) -> dict[str, str]:
        """``ExpectedBucketOwner`` for every call: the route's, else MLflow's variable (read
        now, so a changed environment counts)."""
        policy = self.route.settings.storage
        owner = (policy.expected_bucket_owner if policy else None) or (
            s3_defaults().expected_bucket_owner
        )
        return {"ExpectedBucketOwner": owner} if owner else {}

    def client(self, target: Target) -> Any:
        """The client for ``target`` (shared, cached, rebuilt after its age limit). With
        ``restrict_to_route``, its session only reaches the workspace's prefix
        (``target.scope``)."""
        return client_for(self.route.settings, self.bucket, target.scope)

    @contextlib.contextmanager
    def _errors(self, operation: str, target: Target) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (ClientError, BotoCoreError) as err:
            _logger.debug(
                "%s failed for workspace=%s bucket=%s: %s",
                operation,
                target.workspace,
                self.bucket,
                type(err).__name__,
            )
            raise translate_boto_error(
                err,
                workspace=target.workspace,
                location=target.uri,
                operation=operation,
                bucket=self.bucket,
                credentials=describe_credentials(self.route.settings),
            ) from err

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
                self._multipart(target, _memory_parts(body, self.transfer.part_size), args)

    def put_stream(self, target: Target, stream: BinaryIO) -> None:
        """Upload a stream of unknown length without holding it in memory.

        A stream that ends within 2 MiB is one PUT from memory. A longer one is spooled to
        temporary files one part at a time: one PUT when it ends within the first part, else a
        multipart upload whose parts go up from their files while the next one arrives. Memory
        stays at one read buffer whatever the size; disk holds at most ``parts_in_flight`` + 1
        parts, never the whole object.
        """
        args = put_args(self.route, target.workspace, target.key)
        head = _read_full(stream, _MEMORY_PUT)
        with self._errors("upload", target):
            if len(head) < _MEMORY_PUT:
                self.client(target).put_object(
                    Bucket=self.bucket, Key=target.key, Body=head, **args
                )
                return
            parts = _spooled_parts(head, stream, self.transfer.part_size)
            first = next(parts)
            if _size(first) < self.transfer.part_size:  # the stream ended within one part
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
        ids: list[str] = []
        pages = (
            self.client(target)
            .get_paginator("list_multipart_uploads")
            .paginate(Bucket=self.bucket, Prefix=target.key, **self._owner)
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                if upload.get("Key") == target.key:  # not K/child or K.bak: another object
                    ids.append(str(upload["UploadId"]))
        return ids

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
        parts: dict[int, tuple[str, int]] = {}
        with self._errors("list parts", target):
            pages = (
                self.client(target)
                .get_paginator("list_parts")
                .paginate(Bucket=self.bucket, Key=target.key, UploadId=upload_id, **self._owner)
            )
            for page in pages:
                for part in page.get("Parts", []):
                    parts[int(part["PartNumber"])] = (str(part["ETag"]), int(part["Size"]))
        return parts

    def pending_uploads(self, target: Target) -> dict[str, str]:
        """Every pending upload below ``target.key``: upload id -> object key."""
        prefix = target.key + "/" if target.key else ""
        found: dict[str, str] = {}
        with self._errors("list multipart uploads", target):
            pages = (
                self.client(target)
                .get_paginator("list_multipart_uploads")
                .paginate(Bucket=self.bucket, Prefix=prefix, **self._owner)
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    found[str(upload["UploadId"])] = str(upload["Key"])
        return found

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
        with self._errors("download", target), _temporary_beside(local_path) as out:
            try:
                first = client.get_object(
                    Bucket=self.bucket, Key=target.key, Range=f"bytes=0-{part - 1}", **self._owner
                )
            except ClientError as err:
                if boto_code(err) != "InvalidRange":  # an empty object has no byte 0
                    raise
                first = client.get_object(Bucket=self.bucket, Key=target.key, **self._owner)
            _copy_at(first["Body"], out, 0)
            total = _total_size(first)
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
                _copy_at(response["Body"], out, span[0])

            with ThreadPoolExecutor(max_workers=self.transfer.parts_in_flight) as pool:
                for future in [pool.submit(fetch, span) for span in ranges]:
                    future.result()

    def list_dir(self, target: Target) -> list[Entry]:
        """Direct children, from one paginated delimiter listing."""
        prefix = target.key + "/" if target.key else ""
        entries: list[Entry] = []
        with self._errors("list", target):
            pages = (
                self.client(target)
                .get_paginator("list_objects_v2")
                .paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/", **self._owner)
            )
            for page in pages:
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
            pages = (
                self.client(target)
                .get_paginator("list_objects_v2")
                .paginate(Bucket=self.bucket, Prefix=prefix, **self._owner)
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(prefix) :]
                    if name and not name.endswith("/"):
                        yield Entry(name, False, int(obj["Size"]))

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
        from botocore.exceptions import ClientError

        with self._errors("stat", target):
            try:
                head = self.client(target).head_object(
                    Bucket=self.bucket, Key=target.key, **self._owner
                )
            except ClientError as err:
                if boto_code(err) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
        return str(head.get("ETag", "")), int(head["ContentLength"])

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
                    raise NotFoundError(
                        f"delete failed for workspace '{target.workspace}' at "
                        f"s3://{self.bucket}/{first.get('Key')}: {first.get('Code')}; "
                        f"{len(errors)} object(s) were not deleted."
                    )
                deleted += len(batch)
        return deleted

    # -- multipart and presigned URLs (proxied clients talk to S3 directly) ---------------
    # Presigned requests carry no ExpectedBucketOwner: it would become a signed header that
    # MLflow's clients do not send (S3 would answer SignatureDoesNotMatch). The owner is
    # checked by the calls the server makes itself: create/complete for uploads (an upload id
    # only exists in its bucket), a HEAD just before presigning a download. SSE-KMS needs no
    # per-part headers either: parts inherit the encryption of create_multipart_upload.
    def create_multipart(self, target: Target, num_parts: int) -> tuple[str, list[str]]:
        """Start a multipart upload with the route's policy; presign one URL per part."""
        args = put_args(self.route, target.workspace, target.key)
        with self._errors("create multipart upload", target):
            client = self.client(target)
            upload_id = client.create_multipart_upload(Bucket=self.bucket, Key=target.key, **args)[
                "UploadId"
            ]
            urls = _part_urls(client, self.bucket, target.key, upload_id, num_parts)
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


def _part_urls(client: Any, bucket: str, key: str, upload_id: str, count: int) -> list[str]:
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
    """SigV4 query signatures of one presigned part URL's siblings (see :func:`_part_urls`)."""

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


def _size(spool: IO[bytes]) -> int:
    return os.fstat(spool.fileno()).st_size


def _memory_parts(body: BinaryIO, part_size: int) -> Iterator[bytes]:
    """A local file's parts, read as they are needed (``parts_in_flight`` bounds how many)."""
    while chunk := _read_full(body, part_size):
        yield chunk


def _spooled_parts(head: bytes, stream: BinaryIO, part_size: int) -> Generator[IO[bytes]]:
    """``head`` and then the rest of ``stream``, cut into parts of ``part_size`` bytes, each in
    its own unlinked temporary file, rewound. The next part is read only when asked for."""
    pending = head
    while True:
        spool = tempfile.TemporaryFile(prefix="ws-artifacts-part-")  # noqa: SIM115 - handed on
        try:
            spool.write(pending)
            written, pending = len(pending), b""
            while written < part_size:
                chunk = stream.read(min(_READ_CHUNK, part_size - written))
                if not chunk:
                    break
                spool.write(chunk)
                written += len(chunk)
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        if written == 0:
            spool.close()
            return
        yield spool
        if written < part_size:
            return


def _read_full(stream: BinaryIO, size: int) -> bytes:
    """Read exactly ``size`` bytes unless the stream ends first (raw streams return short)."""
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


@contextlib.contextmanager
def _temporary_beside(local_path: str) -> Iterator[int]:
    """A file descriptor on a temporary file next to ``local_path``, renamed onto it on success
    and removed on failure (no partial file is ever left under the final name)."""
    directory = os.path.dirname(os.path.abspath(local_path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX)
    try:
        yield fd
        os.close(fd)
        fd = -1
        os.replace(tmp, local_path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _copy_at(body: Any, fd: int, offset: int) -> None:
    for chunk in body.iter_chunks(_READ_CHUNK):
        os.pwrite(fd, chunk, offset)
        offset += len(chunk)


def _total_size(response: dict[str, Any]) -> int:
    content_range = response.get("ContentRange")  # "bytes 0-8388607/268435456"
    if content_range and "/" in content_range:
        return int(content_range.rsplit("/", 1)[1])
    return int(response["ContentLength"])
