"""Any fsspec file system: local directories, memory, s3fs, gcsfs, adlfs...

The route's ``storage_options`` go to the file system unchanged (and are never printed).
On local routes every path is checked after resolving symlinks, so a link planted inside a
workspace's directory cannot lead outside it.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from ws_artifacts.core.errors import (
    StorageError,
)
from ws_artifacts.core.targets import Target
from ws_artifacts.storage.base import TEMP_PREFIX, Entry, Piece, Split, is_temporary
from ws_artifacts.storage.content import content_args
from ws_artifacts.storage.fs.keys import FsspecKeys
from ws_artifacts.storage.fs.local_files import CHUNK, copy_times, write_local

__all__ = ["FsspecBackend"]


class FsspecBackend(FsspecKeys):
    """One route's fsspec file system and root (no presigned URLs, no client-driven multipart
    uploads: it declares no :class:`~ws_artifacts.storage.base.Capability`)."""

    def check(self, target: Target) -> None:
        """Refuse a target that resolves outside its workspace (see :meth:`_checked`)."""
        self._checked(target)

    # -- writes ---------------------------------------------------------------------------
    def put_file(self, target: Target, local_path: str) -> None:
        """Copy a local file into place; local routes write a temporary name, then rename."""
        path = self._checked(target)
        with self._errors("upload", target):
            if self.local:
                with open(local_path, "rb") as src:
                    write_local(path, src, times_of=local_path)
            else:
                self.fs.put_file(local_path, path, **self._content(target))

    def put_stream(self, target: Target, stream: BinaryIO) -> None:
        """Copy a stream into place, chunk by chunk."""
        path = self._checked(target)
        with self._errors("upload", target):
            if self.local:
                write_local(path, stream)
                return
            # Not `with`: fsspec files commit on close even after an error.
            out = self.fs.open(path, "wb", **self._content(target))
            try:
                shutil.copyfileobj(stream, out, CHUNK)
            except BaseException:
                _discard(out)
                with contextlib.suppress(Exception):
                    if self.fs.exists(path):
                        self.fs.rm_file(path)
                raise
            out.close()

    def _content(self, target: Target) -> dict[str, str]:
        """Content-Type and -Encoding from the name, on s3fs (which takes them as upload
        arguments); other file systems have no such metadata."""
        return content_args(target.key) if self.route.scheme == "s3" else {}

    def make_dir(self, target: Target) -> None:
        """Create the directory ``target`` (local routes keep empty directories, as MLflow's
        local repository does; object stores have no directories)."""
        if self.local:
            path = self._checked(target)
            with self._errors("upload", target):
                os.makedirs(path, exist_ok=True)

    # -- reads ----------------------------------------------------------------------------
    def get_file(self, target: Target, local_path: str) -> None:
        """Copy to a temporary file beside ``local_path``, then rename it into place."""
        path = self._checked(target)
        directory = os.path.dirname(os.path.abspath(local_path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX)
        os.close(fd)
        try:
            with self._errors("download", target):
                if self.fs.isdir(path):
                    raise IsADirectoryError(path)
                self.fs.get_file(path, tmp)
                if self.local:
                    copy_times(path, tmp)
            os.replace(tmp, local_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def read_chunks(self, target: Target, size: int = CHUNK) -> Iterator[bytes]:
        """The file's bytes, ``size`` at a time, read as they are asked for (close the
        generator to stop early). A file that cannot be opened or read raises ours
        (NotFoundError, AccessDeniedError, StorageError), never an OSError."""
        path = self._checked(target)
        with self._errors("download", target), self.fs.open(path, "rb") as body:
            while chunk := body.read(size):
                yield chunk

    def list_dir(self, target: Target) -> list[Entry]:
        """Direct children; a file or a missing path lists as empty."""
        path = self._checked(target)
        with self._errors("list", target):
            if not self.fs.isdir(path):
                return []
            items = self.fs.ls(path, detail=True)
        entries = []
        for item in items:
            name = item["name"].rstrip("/").rsplit("/", 1)[-1]
            if is_temporary(name):
                continue  # an upload still in flight
            is_dir = item["type"] == "directory"
            entries.append(Entry(name, is_dir, None if is_dir else int(item.get("size") or 0)))
        return entries

    def walk(self, target: Target) -> Iterator[Entry]:
        """Every file below ``target``."""
        path = self._checked(target)
        with self._errors("list", target):
            found = self._find(path)
        for rel, item in self._files(path, sorted(found.items())):
            yield Entry(rel, False, int(item.get("size") or 0))

    def walk_split(self, target: Target, piece: Piece | None = None) -> Split:
        """The whole target (``piece`` None) is its directory's files and one piece per
        directory in it; such a piece is that directory's whole tree, from one ``find``."""
        if piece is None:
            found: list[tuple[str, int]] = []
            more: list[Piece] = []
            path = self._path(target.key)
            for item in self._listing(target, lambda: self.fs.ls(path, detail=True), []):
                name = item["name"].rstrip("/").rsplit("/", 1)[-1]
                if is_temporary(name):  # an upload in flight
                    continue
                if item["type"] == "directory":
                    more.append(Piece(posixpath.join(path, name), split=True, rel=name))
                else:
                    found.append((name, int(item.get("size") or 0)))
            return found, more
        tree = self._listing(target, lambda: self.fs.find(piece.prefix, detail=True), {})
        return [
            (f"{piece.rel}/{rel}", int(item.get("size") or 0))
            for rel, item in self._files(piece.prefix, tree.items())
        ], []

    def _listing(self, target: Target, call: Callable[[], Any], empty: Any) -> Any:
        """A listing for :meth:`walk_split`: ``empty`` when there is nothing at its path."""
        try:
            return call()
        except (FileNotFoundError, NotADirectoryError):
            return empty
        except OSError as err:
            raise StorageError(
                f"list failed for workspace '{target.workspace}' at {target.uri}: "
                f"{type(err).__name__}; check the route's url and storage_options."
            ) from None

    def subdirs(self, prefix: str) -> list[str]:
        try:
            items = self.fs.ls(self._path(prefix), detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as err:
            raise StorageError(
                f"list failed at {self.route.url}/{prefix}: {type(err).__name__}."
            ) from None
        return [
            item["name"].rstrip("/").rsplit("/", 1)[-1]
            for item in items
            if item["type"] == "directory"
        ]

    def modified_times(self, target: Target) -> dict[str, float | None]:
        """Every file below ``target`` with its modification time (POSIX seconds), None where
        the store does not say."""
        path = self._checked(target)
        with self._errors("list", target):
            found = self._find(path)
        out: dict[str, float | None] = {}
        for rel, item in self._files(path, found.items()):
            when = item.get("mtime", item.get("created"))
            if hasattr(when, "timestamp"):
                when = when.timestamp()
            out[rel] = float(when) if isinstance(when, int | float) else None
        return out

    def empty_dirs(self, target: Target) -> list[str]:
        """Directories below ``target`` holding nothing (local routes keep them, as MLflow's
        local repository does; other stores have no empty directories)."""
        if not self.local:
            return []
        path = self._checked(target)
        found = []
        with self._errors("list", target):
            for root, dirs, files in os.walk(path):
                if not dirs and not [f for f in files if not is_temporary(f)]:
                    rel = os.path.relpath(root, path)
                    if rel != ".":
                        found.append(rel.replace(os.sep, "/"))
        return sorted(found)

    def size(self, target: Target) -> int:
        """The file's size in bytes."""
        path = self._checked(target)
        with self._errors("stat", target):
            return int(self.fs.size(path))

    def look(self, target: Target) -> tuple[str, int] | None:
        """``("", size)`` of the file at ``target``, or None when there is none (file
        systems have no ETags)."""
        path = self._checked(target)
        with self._errors("stat", target):
            if not self.fs.isfile(path):
                return None
            return "", int(self.fs.size(path))

    def remove(self, target: Target) -> None:
        """Delete exactly the file at ``target`` (a missing one is no error)."""
        path = self._checked(target)
        with self._errors("delete", target), contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(path)

    def delete(self, target: Target) -> int:
        """Delete the file or directory tree; return how many files went."""
        path = self._checked(target)
        with self._errors("delete", target):
            if not self.fs.exists(path):
                return 0
            count = sum(1 for _ in self.walk(target)) if self.fs.isdir(path) else 1
            self.fs.rm(path, recursive=True)
        return count


def _discard(out: Any) -> None:
    """Drop a half-written fsspec file without committing it."""
    from fsspec.spec import AbstractBufferedFile

    if isinstance(out, AbstractBufferedFile):  # s3fs & co: aborts the multipart upload
        out.discard()
        out.closed = True  # else its __del__ would close, and so commit, it
