"""Which backend serves a route: one instance per route, built on first use.

Each kind of store is one package (:mod:`ws_artifacts.storage.s3`, :mod:`ws_artifacts.storage.fs`),
imported only when a route of its kind is first served.
"""

from __future__ import annotations

import threading

from ws_artifacts.core.targets import Route
from ws_artifacts.storage.base import Backend

__all__ = ["backend_for"]

_lock = threading.Lock()
_backends: dict[Route, Backend] = {}
_LIMIT = 10_000


def backend_for(route: Route) -> Backend:
    """The backend serving ``route`` (cached per route; clients are shared below that)."""
    backend = _backends.get(route)
    if backend is None:
        if route.backend == "s3":
            from ws_artifacts.storage.s3.backend import S3Backend

            backend = S3Backend(route)
        else:
            from ws_artifacts.storage.fs.backend import FsspecBackend

            backend = FsspecBackend(route)
        with _lock:
            if len(_backends) >= _LIMIT:
                _backends.clear()
            _backends[route] = backend
    return backend
