"""Workspace roots, read from MLflow's database and cached in each process for a stated time.

The database is the source of truth: MLflow's ``workspaces.default_artifact_root`` holds each
workspace's current root, ws-artifacts' ``ws_artifacts_previous_roots`` its earlier ones. Each
process (every uvicorn worker of every server) keeps one snapshot of all of them and reads it
again when it is older than ``WS_ARTIFACTS_ROOTS_TTL`` seconds (default 2), so a root set
through one server is used by every worker of every server within that bound (measured in
docs/storage-locations.md). Between an update and the next read a worker still routes to the
old root, which the update has already recorded as a previous place of the same workspace: no
request goes to a place the workspace does not own. A workspace missing from the snapshot
(created since) makes the process read again at once, and a failed read refuses the request:
it never falls back to the default destination.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping

from ws_artifacts._mlflow import workspace_store
from ws_artifacts.core.errors import ConfigError, StorageError
from ws_artifacts.core.paths import DEFAULT_WORKSPACE
from ws_artifacts.core.targets import WorkspaceRoot

__all__ = [
    "DEFAULT_TTL",
    "ROOTS_TTL_ENV",
    "RootsCache",
    "database_roots",
    "forget_all",
    "roots_cache",
    "roots_ttl",
]

_logger = logging.getLogger(__name__)

#: Seconds a process keeps its snapshot of the workspaces' roots.
ROOTS_TTL_ENV = "WS_ARTIFACTS_ROOTS_TTL"
DEFAULT_TTL = 2.0

Loader = Callable[[], Mapping[str, tuple[str | None, tuple[str, ...]]]]


def roots_ttl(environ: Mapping[str, str] | None = None) -> float:
    """``WS_ARTIFACTS_ROOTS_TTL`` in seconds (0 to 300; default 2).

    Raises:
        ConfigError: It is not a number in range.
    """
    raw = (os.environ if environ is None else environ).get(ROOTS_TTL_ENV, "").strip()
    if not raw:
        return DEFAULT_TTL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 300:
        raise ConfigError(f"{ROOTS_TTL_ENV}={raw!r}: give seconds from 0 to 300 (default 2).")
    return value


class RootsCache:
    """One process's snapshot of every workspace's roots.

    Args:
        load: Reads ``{workspace: (root or None, previous roots)}`` from the source of truth.
        where: What is read, for messages (``the server's database``).
        ttl: Seconds a snapshot is used.
        clock: A monotonic clock (tests pass their own).
    """

    def __init__(
        self,
        load: Loader,
        where: str,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load, self._where, self._ttl, self._clock = load, where, ttl, clock
        self._lock = threading.Lock()
        self._snapshot: Mapping[str, WorkspaceRoot] | None = None
        self._at = 0.0

    def snapshot(self, workspace: str | None) -> Mapping[str, WorkspaceRoot]:
        """The roots to route ``workspace`` with (the same object while nothing changed, so
        routing decisions made with it stay cached).

        Raises:
            StorageError: The roots cannot be read, or ``workspace`` is not in the database:
                the request is refused rather than routed to the default destination.
        """
        snap, at = self._snapshot, self._at
        if snap is None or self._clock() - at >= self._ttl or _missing(snap, workspace):
            with self._lock:
                current = self._snapshot
                snap = self._reload(workspace) if current is snap or current is None else current
        if _missing(snap, workspace):
            raise StorageError(
                f"Refused: workspace '{workspace}' is not in {self._where}, so ws-artifacts "
                "cannot tell whether it has its own artifact root. Retry; if it persists, check "
                "that every server uses the same database."
            )
        return snap

    def forget(self) -> None:
        """Read again at the next request (after this process changed a root)."""
        with self._lock:
            self._snapshot = None

    def _reload(self, workspace: str | None) -> Mapping[str, WorkspaceRoot]:
        now = self._clock()
        try:
            rows = self._load()
        except Exception as err:
            _logger.error("reading workspace roots from %s failed: %s", self._where, err)
            raise StorageError(
                f"Refused: the artifact roots of the workspaces (needed for workspace "
                f"'{workspace}') cannot be read from {self._where} ({type(err).__name__}); "
                "ws-artifacts does not guess a place. Check the database connection and retry."
            ) from err
        fresh = {name: WorkspaceRoot(url, previous) for name, (url, previous) in rows.items()}
        if self._snapshot is None or fresh != self._snapshot:
            self._snapshot = fresh
            _logger.debug(
                "workspace roots re-read from %s: %d workspace(s)", self._where, len(rows)
            )
        self._at = now
        return self._snapshot


def _missing(snap: Mapping[str, WorkspaceRoot], workspace: str | None) -> bool:
    return workspace is not None and workspace != DEFAULT_WORKSPACE and workspace not in snap


_caches_lock = threading.Lock()
_caches: dict[str, RootsCache] = {}


def roots_cache(tracking_uri: str | None, *, on_server: bool) -> RootsCache:
    """This process's cache of the workspaces' roots: the server's own database in a server
    worker, the tracking server's workspace list in a direct-mode client."""
    key = "" if on_server else (tracking_uri or "")
    cache = _caches.get(key)
    if cache is None:
        with _caches_lock:
            cache = _caches.get(key)
            if cache is None:
                if on_server:
                    load: Loader = workspace_store.server_workspace_roots
                    where = "this server's workspace database"
                else:
                    load = functools.partial(workspace_store.client_workspace_roots, tracking_uri)
                    where = f"the tracking server's workspaces ({tracking_uri or 'default'})"
                cache = _caches[key] = RootsCache(load, where, ttl=roots_ttl())
    return cache


def forget_all() -> None:
    """Make every cache of this process read again (after this process changed a root)."""
    for cache in list(_caches.values()):
        cache.forget()


def database_roots(db_uri: str) -> dict[str, WorkspaceRoot]:
    """Every workspace's current and previous roots, read once from the database ``db_uri``
    (for the CLI: ``migrate``, ``check``, ``route``, ``usage``).

    Raises:
        StorageError: The database cannot be read.
    """
    try:
        rows = workspace_store.database_workspace_roots(db_uri)
    except Exception as err:
        raise StorageError(
            f"The workspaces' artifact roots cannot be read from the tracking database "
            f"({type(err).__name__}: {err}). Give the server's --backend-store-uri."
        ) from err
    return {name: WorkspaceRoot(url, previous) for name, (url, previous) in rows.items()}
