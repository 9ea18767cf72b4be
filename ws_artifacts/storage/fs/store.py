"""What every fsspec store shares: the route's file system and root, its paths, and the
translation of its errors (OSError and friends) into ours. Every fsspec call of ws-artifacts
is made in this package."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from typing import Any

from ws_artifacts.core.errors import (
    AccessDeniedError,
    NotFoundError,
    OwnershipError,
    StorageError,
    WsArtifactsError,
)
from ws_artifacts.core.paths import join
from ws_artifacts.core.targets import Route, Target
from ws_artifacts.storage.base import Backend, is_temporary
from ws_artifacts.storage.fs.s3fs_options import s3fs_options

__all__ = ["FsspecStore", "modified"]


class FsspecStore(Backend):
    """One route's fsspec file system and root."""

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


def modified(item: dict[str, Any]) -> float | None:
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
