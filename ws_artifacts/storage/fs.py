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
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

from ws_artifacts.core.errors import (
    AccessDeniedError,
    NotFoundError,
    OwnershipError,
    StorageError,
    WsArtifactsError,
)
from ws_artifacts.core.paths import join
from ws_artifacts.core.targets import Route, Target
from ws_artifacts.storage.base import TEMP_PREFIX, Backend, Entry, Piece, Split, is_temporary
from ws_artifacts.storage.content import content_args
from ws_artifacts.storage.local_files import CHUNK, copy_times, write_local
from ws_artifacts.storage.s3fs_options import s3fs_options

__all__ = ["FsspecBackend"]


class FsspecBackend(Backend):
    """One route's fsspec file system and root (no presigned URLs, no client-driven multipart
    uploads: it declares no :class:`~ws_artifacts.storage.base.Capability`)."""

    def __init__(self, route: Route) -> None:
        import fsspec

        self.route = route
        self.local = route.scheme in ("file", "local")
        options = dict(route.settings.storage_options)
        if route.scheme == "s3":
            options = s3fs_options(route, options)
        try:
            # Our backend cache is bounded; fsspec's instance cache would keep one file system
            # per distinct route for the life of the process.
            self.fs: Any = fsspec.filesystem(route.scheme, skip_instance_cache=True, **options)
        except (ImportError, ValueError) as err:
            raise StorageError(
                f"Cannot open the {route.scheme}:// file system of route '{route.name}' "
                f"({type(err).__name__}); install its fsspec implementation or fix the url."
            ) from None
        self.root = self._path("")

    def _path(self, key: str) -> str:
        joined = join(self.route.location, key)
        return "/" + joined if self.local else joined

    @contextlib.contextmanager
    def _errors(self, operation: str, target: Target) -> Iterator[None]:
        try:
            yield
        except WsArtifactsError:
            raise
        except FileNotFoundError:
            raise NotFoundError(
                f"No such artifact: '{target.uri}'. {operation} failed for workspace "
                f"'{target.workspace}'; check the artifact path."
            ) from None
        except PermissionError:
            raise AccessDeniedError(
                f"{operation} failed for workspace '{target.workspace}' at {target.uri}: "
                "permission denied; give the server access to the route's location."
            ) from None
        except OSError as err:
            raise StorageError(
                f"{operation} failed for workspace '{target.workspace}' at {target.uri}: "
                f"{type(err).__name__}: {err.strerror or 'I/O error'}."
            ) from None

    def _checked(self, target: Target) -> str:
        """The file-system path of ``target``; on local routes, symlinks resolved and checked."""
        path = self._path(target.key)
        if self.local:
            scope = os.path.realpath(self._path(target.scope))
            real = os.path.realpath(path)
            if real != scope and not real.startswith(scope.rstrip("/") + "/"):
                raise OwnershipError(
                    f"Refused: {target.uri} resolves (through a symbolic link) outside the "
                    f"artifact directory of workspace '{target.workspace}'; remove the link."
                )
        return path

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

    def _find(self, path: str) -> dict[str, Any]:
        """Every entry below ``path`` with its details (empty when it is no directory): the
        one listing that walks, sizes, times and key walks read."""
        if not self.fs.isdir(path):
            return {}
        found: dict[str, Any] = self.fs.find(path, detail=True)
        return found

    def _files(
        self, path: str, found: Iterable[tuple[str, Any]], *, ours: bool = False
    ) -> Iterator[tuple[str, Any]]:
        """The files among ``found`` (a ``find`` below ``path``), named relative to ``path``;
        our temporary files left out unless ``ours``."""
        base = self.fs._strip_protocol(path).rstrip("/") + "/"
        for name, item in found:
            rel = name[len(base) :] if name.startswith(base) else name.rsplit("/", 1)[-1]
            if item["type"] != "directory" and (ours or not is_temporary(rel.rsplit("/", 1)[-1])):
                yield rel, item

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
        times = [_modified(item) for _, item in self._files(path, found.items(), ours=True)]
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


def _discard(out: Any) -> None:
    """Drop a half-written fsspec file without committing it."""
    from fsspec.spec import AbstractBufferedFile

    if isinstance(out, AbstractBufferedFile):  # s3fs & co: aborts the multipart upload
        out.discard()
        out.closed = True  # else its __del__ would close, and so commit, it
