"""Raw key access to one route's store, for lifecycle work (quarantine, restore, purge, orphans).

The repository reaches stores only through :class:`~ws_artifacts.core.routing.Target`, which cannot
exist outside a workspace's place. Quarantine lives outside every workspace's place on purpose,
so lifecycle modules use this small interface instead: keys relative to the route's location,
with the route's own client, credentials and storage policy. Only the lifecycle modules build
keys for it, each from a place the router resolved.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, Protocol

from ws_artifacts.core.errors import NotFoundError, StorageError, boto_code, translate_boto_error
from ws_artifacts.core.paths import join
from ws_artifacts.core.routing import Route
from ws_artifacts.core.settings import Transfer
from ws_artifacts.storage.clients import client_for, describe_credentials
from ws_artifacts.storage.s3.backend import put_args

__all__ = ["KeyStore", "store_for"]

_DELETE_BATCH = 1000
_MAX_PARTS = 10_000


class KeyStore(Protocol):
    """What lifecycle work does on one route's location, by key."""

    route: Route

    def uri(self, key: str) -> str:
        """``scheme://location/key`` for messages."""

    def walk(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Every object key below ``prefix`` (a directory-like prefix) with its size."""

    def children(self, prefix: str) -> list[str]:
        """The names directly below ``prefix`` (files and directories)."""

    def size(self, key: str) -> int | None:
        """The object's size, None when it does not exist."""

    def newest(self, prefix: str) -> float | None:
        """When the newest object below ``prefix`` was written (seconds since the epoch);
        None when there is none, or the store does not tell."""

    def copy(self, src: str, dst: str, size: int, workspace: str) -> None:
        """Copy one object within the location (server-side where the store can)."""

    def delete(self, keys: list[str], workspace: str | None = None) -> None:
        """Delete these objects (missing ones are no error)."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write a small object."""

    def get_bytes(self, key: str) -> bytes | None:
        """Read a small object; None when it does not exist."""


def store_for(route: Route, base: str) -> KeyStore:
    """The key store of ``route``; ``base`` is the key prefix the work stays under (its
    credentials, when narrowed to a route, are narrowed to it)."""
    if route.backend == "s3":
        return S3Keys(route, base)
    return FsKeys(route)


class S3Keys:
    """Keys in an S3 bucket through boto3 with the route's client."""

    def __init__(self, route: Route, base: str) -> None:
        self.route = route
        self.bucket = route.location
        self.client: Any = client_for(route.settings, route.location, base)
        self.transfer = route.settings.transfer or Transfer()

    def uri(self, key: str) -> str:
        return f"s3://{join(self.bucket, key)}"

    @contextlib.contextmanager
    def _errors(self, operation: str, key: str, workspace: str | None = None) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (ClientError, BotoCoreError) as err:
            raise translate_boto_error(
                err,
                workspace=workspace or self.route.workspace,
                location=self.uri(key),
                operation=operation,
                bucket=self.bucket,
                credentials=describe_credentials(self.route.settings),
            ) from err

    def walk(self, prefix: str) -> Iterator[tuple[str, int]]:
        start = prefix + "/" if prefix else ""
        with self._errors("list", prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    yield obj["Key"], int(obj["Size"])

    def children(self, prefix: str) -> list[str]:
        start = prefix + "/" if prefix else ""
        names: list[str] = []
        with self._errors("list", prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start, Delimiter="/"
            )
            for page in pages:
                names.extend(
                    c["Prefix"][len(start) :].rstrip("/") for c in page.get("CommonPrefixes", [])
                )
                names.extend(o["Key"][len(start) :] for o in page.get("Contents", []))
        return sorted(n for n in names if n)

    def newest(self, prefix: str) -> float | None:
        times = [
            obj["LastModified"].timestamp()
            for page in self._pages(prefix)
            for obj in page.get("Contents", [])
        ]
        return max(times, default=None)

    def _pages(self, prefix: str) -> Iterator[dict[str, Any]]:
        start = prefix + "/" if prefix else ""
        with self._errors("list", prefix):
            yield from self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            )

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        with self._errors("stat", key):
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as err:
                if boto_code(err) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
        return int(head["ContentLength"])

    def copy(self, src: str, dst: str, size: int, workspace: str) -> None:
        """``copy_object`` below the route's multipart threshold, ``upload_part_copy`` above it;
        the route's storage policy (encryption, class, tags) is applied to the copy."""
        args = put_args(self.route, workspace)
        source = {"Bucket": self.bucket, "Key": src}
        with self._errors("copy", src, workspace):
            if size < self.transfer.multipart_threshold:
                extra = {"TaggingDirective": "REPLACE"} if "Tagging" in args else {}
                self.client.copy_object(
                    Bucket=self.bucket, Key=dst, CopySource=source, **args, **extra
                )
                return
            part = max(self.transfer.part_size, math.ceil(size / _MAX_PARTS))
            upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=dst, **args)
            try:
                parts = []
                for number, start in enumerate(range(0, size, part), start=1):
                    end = min(start + part, size) - 1
                    answer = self.client.upload_part_copy(
                        Bucket=self.bucket,
                        Key=dst,
                        UploadId=upload["UploadId"],
                        PartNumber=number,
                        CopySource=source,
                        CopySourceRange=f"bytes={start}-{end}",
                    )
                    parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=dst,
                    UploadId=upload["UploadId"],
                    MultipartUpload={"Parts": parts},
                )
            except BaseException:
                with contextlib.suppress(Exception):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=dst, UploadId=upload["UploadId"]
                    )
                raise

    def delete(self, keys: list[str], workspace: str | None = None) -> None:
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            with self._errors("delete", batch[0], workspace):
                result = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
            if result.get("Errors"):
                first = result["Errors"][0]
                owner = workspace or self.route.workspace
                raise StorageError(
                    f"delete failed for workspace '{owner}' at {self.uri(first.get('Key', ''))}: "
                    f"{first.get('Code', 'error')}; grant the route's credentials "
                    f"s3:DeleteObject on bucket '{self.bucket}', then run the command again."
                )

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._errors("upload", key):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def get_bytes(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        with self._errors("download", key):
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            except ClientError as err:
                if boto_code(err) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
            data: bytes = body.read()
        return data


class FsKeys:
    """Keys in any fsspec file system (local directories, memory, gcsfs, adlfs...)."""

    def __init__(self, route: Route) -> None:
        from ws_artifacts.storage.fs import FsspecBackend

        self.route = route
        backend = FsspecBackend(route)
        self.fs: Any = backend.fs
        self._path = backend._path

    def uri(self, key: str) -> str:
        if not self.route.location:
            return f"{self.route.scheme}:///{key}"
        return f"{self.route.scheme}://{join(self.route.location, key)}"

    @contextlib.contextmanager
    def _errors(self, operation: str, key: str) -> Iterator[None]:
        try:
            yield
        except FileNotFoundError:
            raise NotFoundError(f"{operation} failed: {self.uri(key)} does not exist.") from None
        except OSError as err:
            raise StorageError(
                f"{operation} failed at {self.uri(key)}: {type(err).__name__}: "
                f"{err.strerror or 'I/O error'}; check the route's location and permissions."
            ) from None

    def _key(self, path: str, root: str) -> str:
        stripped = self.fs._strip_protocol(path)
        return join(root, stripped[len(self.fs._strip_protocol(self._path(root))) :])

    def walk(self, prefix: str) -> Iterator[tuple[str, int]]:
        path = self._path(prefix)
        with self._errors("list", prefix):
            if not self.fs.isdir(path):
                return
            found = self.fs.find(path, detail=True)
        for name, item in sorted(found.items()):
            if item["type"] != "directory":
                yield self._key(name, prefix), int(item.get("size") or 0)

    def children(self, prefix: str) -> list[str]:
        path = self._path(prefix)
        with self._errors("list", prefix):
            if not self.fs.isdir(path):
                return []
            items = self.fs.ls(path, detail=False)
        return sorted(str(i).rstrip("/").rsplit("/", 1)[-1] for i in items)

    def newest(self, prefix: str) -> float | None:
        path = self._path(prefix)
        with self._errors("list", prefix):
            if not self.fs.isdir(path):
                return None
            found = self.fs.find(path, detail=True)
        times = [_modified(item) for item in found.values() if item["type"] != "directory"]
        if not times or None in times:
            return None  # a store that does not tell cannot show an object to be old
        return max(t for t in times if t is not None)

    def size(self, key: str) -> int | None:
        path = self._path(key)
        with self._errors("stat", key):
            if not self.fs.isfile(path):
                return None
            return int(self.fs.size(path))

    def copy(self, src: str, dst: str, size: int, workspace: str) -> None:
        with self._errors("copy", src):
            self.fs.makedirs(self.fs._parent(self._path(dst)), exist_ok=True)
            self.fs.cp_file(self._path(src), self._path(dst))

    def delete(self, keys: list[str], workspace: str | None = None) -> None:
        for key in keys:
            with self._errors("delete", key), contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self._path(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._errors("upload", key):
            self.fs.makedirs(self.fs._parent(self._path(key)), exist_ok=True)
            self.fs.pipe_file(self._path(key), data)

    def get_bytes(self, key: str) -> bytes | None:
        path = self._path(key)
        with self._errors("download", key):
            if not self.fs.isfile(path):
                return None
            data: bytes = self.fs.cat_file(path)
        return data


def _modified(item: dict[str, Any]) -> float | None:
    """An fsspec listing entry's modification time (local: mtime, memory: created, s3fs:
    LastModified), in seconds since the epoch."""
    for name in ("mtime", "LastModified", "last_modified", "created"):
        value = item.get(name)
        if isinstance(value, int | float):
            return float(value)
        timestamp = getattr(value, "timestamp", None)
        if callable(timestamp):
            return float(timestamp())
    return None
