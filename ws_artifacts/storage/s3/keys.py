"""Lifecycle work by key on S3 (quarantine, restore, purge, orphans): see
:class:`ws_artifacts.storage.base.Backend`. Every call names the bucket's expected owner, as
the repository's calls do."""

from __future__ import annotations

from collections.abc import Iterator

from ws_artifacts.core.errors import StorageError, boto_code
from ws_artifacts.storage.s3 import listing
from ws_artifacts.storage.s3.bucket import MISSING, BucketBackend
from ws_artifacts.storage.s3.key_copy import copy_key
from ws_artifacts.storage.s3.upload_args import put_args

__all__ = ["KeyOperations"]

_DELETE_BATCH = 1000


class KeyOperations(BucketBackend):
    """Objects by key inside an area ``base`` of the route's bucket."""

    def walk_keys(self, base: str, prefix: str) -> Iterator[tuple[str, int]]:
        client = self._area(base, prefix)
        with self._key_errors("list", prefix):
            start = prefix + "/" if prefix else ""
            for obj in listing.objects(client, self.bucket, start, self._owner):
                yield obj["Key"], int(obj["Size"])

    def children(self, base: str, prefix: str) -> list[str]:
        client = self._area(base, prefix)
        start = prefix + "/" if prefix else ""
        names: list[str] = []
        with self._key_errors("list", prefix):
            for page in listing.pages(client, self.bucket, start, self._owner, delimiter="/"):
                names.extend(
                    c["Prefix"][len(start) :].rstrip("/") for c in page.get("CommonPrefixes", [])
                )
                names.extend(o["Key"][len(start) :] for o in page.get("Contents", []))
        return sorted(n for n in names if n)

    def newest(self, base: str, prefix: str) -> float | None:
        client = self._area(base, prefix)
        with self._key_errors("list", prefix):
            start = prefix + "/" if prefix else ""
            found = listing.objects(client, self.bucket, start, self._owner)
            return max((obj["LastModified"].timestamp() for obj in found), default=None)

    def key_size(self, base: str, key: str) -> int | None:
        client = self._area(base, key)
        with self._key_errors("stat", key):
            head = self._head(client, key, self._owner)
        return None if head is None else int(head["ContentLength"])

    def copy_key(self, base: str, src: str, dst: str, size: int, workspace: str) -> None:
        """``copy_object`` below the route's multipart threshold, ``upload_part_copy`` above it;
        the route's storage policy (encryption, class, tags) is applied to the copy."""
        client = self._area(base, src, dst)
        args = put_args(self.route, workspace)
        with self._key_errors("copy", src, workspace):
            copy_key(client, self.bucket, src, dst, size, args, self.transfer, self._owner)

    def delete_keys(self, base: str, keys: list[str], workspace: str | None = None) -> None:
        client = self._area(base, *keys)
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            with self._key_errors("delete", batch[0], workspace):
                result = client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                    **self._owner,
                )
            if result.get("Errors"):
                first = result["Errors"][0]
                owner = workspace or self.route.workspace
                raise StorageError(
                    f"delete failed for workspace '{owner}' at "
                    f"{self.key_uri(first.get('Key', ''))}: {first.get('Code', 'error')}; grant "
                    f"the route's credentials s3:DeleteObject on bucket '{self.bucket}', then "
                    "run the command again."
                )

    def write_bytes(self, base: str, key: str, data: bytes) -> None:
        client = self._area(base, key)
        with self._key_errors("upload", key):
            client.put_object(Bucket=self.bucket, Key=key, Body=data, **self._owner)

    def read_bytes(self, base: str, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        client = self._area(base, key)
        with self._key_errors("download", key):
            try:
                body = client.get_object(Bucket=self.bucket, Key=key, **self._owner)["Body"]
            except ClientError as err:
                if boto_code(err) in MISSING:
                    return None
                raise
            data: bytes = body.read()
        return data
