"""Lifecycle work by key on an fsspec store (quarantine, restore, purge, orphans): see
:class:`ws_artifacts.storage.base.Backend`. No symbolic-link check: keys are not user paths."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ws_artifacts.core.errors import (
    NotFoundError,
    StorageError,
)
from ws_artifacts.core.paths import join
from ws_artifacts.storage.fs.store import FsspecStore, modified

__all__ = ["FsspecKeys"]


class FsspecKeys(FsspecStore):
    """Objects by key inside an area ``base`` of the route's file system."""

    # -- lifecycle work by key (see Backend; no symlink check: keys are not user paths) -----
    @contextlib.contextmanager
    def _key_errors(self, operation: str, key: str) -> Iterator[None]:
        try:
            yield
        except FileNotFoundError:
            raise NotFoundError(
                f"{operation} failed: {self.key_uri(key)} does not exist."
            ) from None
        except OSError as err:
            raise StorageError(
                f"{operation} failed at {self.key_uri(key)}: {type(err).__name__}: "
                f"{err.strerror or 'I/O error'}; check the route's location and permissions."
            ) from None

    def walk_keys(self, base: str, prefix: str) -> Iterator[tuple[str, int]]:
        self._inside(base, prefix)
        path = self._path(prefix)
        with self._key_errors("list", prefix):
            found = self._find(path)
        for rel, item in self._files(path, sorted(found.items()), ours=True):
            yield join(prefix, rel), int(item.get("size") or 0)

    def children(self, base: str, prefix: str) -> list[str]:
        self._inside(base, prefix)
        path = self._path(prefix)
        with self._key_errors("list", prefix):
            if not self.fs.isdir(path):
                return []
            items = self.fs.ls(path, detail=False)
        return sorted(str(i).rstrip("/").rsplit("/", 1)[-1] for i in items)

    def newest(self, base: str, prefix: str) -> float | None:
        self._inside(base, prefix)
        path = self._path(prefix)
        with self._key_errors("list", prefix):
            found = self._find(path)
        times = [modified(item) for _, item in self._files(path, found.items(), ours=True)]
        if not times or None in times:
            return None  # a store that does not tell cannot show an object to be old
        return max(t for t in times if t is not None)

    def key_size(self, base: str, key: str) -> int | None:
        self._inside(base, key)
        path = self._path(key)
        with self._key_errors("stat", key):
            if not self.fs.isfile(path):
                return None
            return int(self.fs.size(path))

    def copy_key(self, base: str, src: str, dst: str, size: int, workspace: str) -> None:
        self._inside(base, src, dst)
        with self._key_errors("copy", src):
            self.fs.makedirs(self.fs._parent(self._path(dst)), exist_ok=True)
            self.fs.cp_file(self._path(src), self._path(dst))

    def delete_keys(self, base: str, keys: list[str], workspace: str | None = None) -> None:
        self._inside(base, *keys)
        for key in keys:
            with self._key_errors("delete", key), contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self._path(key))

    def write_bytes(self, base: str, key: str, data: bytes) -> None:
        self._inside(base, key)
        with self._key_errors("upload", key):
            self.fs.makedirs(self.fs._parent(self._path(key)), exist_ok=True)
            self.fs.pipe_file(self._path(key), data)

    def read_bytes(self, base: str, key: str) -> bytes | None:
        self._inside(base, key)
        path = self._path(key)
        with self._key_errors("download", key):
            if not self.fs.isfile(path):
                return None
            data: bytes = self.fs.cat_file(path)
        return data
