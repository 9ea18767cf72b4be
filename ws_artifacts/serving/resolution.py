"""From a repository's path to a checked :class:`~ws_artifacts.core.targets.Target`.

The repository resolves every operation in the calling thread; this module holds what that
needs beyond the repository itself: the configuration in force (a server worker's, whose load
errors go to the server's log), one Router per (configuration, workspace roots, destination),
and the routing decision, memoised because it is a pure function of its arguments.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Mapping

from ws_artifacts.core.config import Config
from ws_artifacts.core.destinations import check_destination, destinations_from_env
from ws_artifacts.core.errors import ConfigError, PathError
from ws_artifacts.core.loading import CONFIG_ENV_VAR
from ws_artifacts.core.paths import check_owner, normalize, split_logical, split_under
from ws_artifacts.core.routing import Router
from ws_artifacts.core.targets import Target, WorkspaceRoot
from ws_artifacts.core.urls import split_url
from ws_artifacts.lifecycle import roots
from ws_artifacts.serving.live_config import config_from_env

__all__ = ["checked_target", "router_for", "split_repository_uri"]

_logger = logging.getLogger(__name__)


class _Routers:
    """One Router per (configuration, workspace roots, destination); a reloaded file or a
    changed root gets new ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[Config | None, Mapping[str, WorkspaceRoot] | None] = (None, None)
        self._routers: dict[str, Router] = {}

    def get(
        self, config: Config, destination: str, roots: Mapping[str, WorkspaceRoot] | None = None
    ) -> Router:
        key, routers = self._key, self._routers
        if key[0] is not config or key[1] is not roots:
            with self._lock:
                if self._key[0] is not config or self._key[1] is not roots:
                    self._key, self._routers = (config, roots), {}
                routers = self._routers
        router = routers.get(destination)
        if router is None:
            router = routers.setdefault(destination, Router(config, destination, roots))
        return router


_routers = _Routers()


def split_repository_uri(artifact_uri: str) -> tuple[str, str, str | None]:
    """A repository's ``ws-<scheme>://<location>/<path>`` URI as the destination it routes
    under (``<scheme>://<location>``), its base path below that, and, for a ws-file repository
    at a legacy (no ``workspaces/``) location, that base again: such a repository keeps links
    inside its own directory, as MLflow's local repository does.

    Raises:
        PathError: Not a ws-artifacts URI, or its path is not a valid path.
    """
    scheme, location, path = split_url(artifact_uri)
    if not scheme.startswith("ws-") or len(scheme) <= 3:
        raise PathError(
            f"{artifact_uri!r} is not a ws-artifacts URI; use ws-s3://bucket[/prefix] or "
            "ws-file:///directory."
        )
    base = normalize(path)
    legacy = (
        bool(base) and scheme[3:] in ("file", "local") and split_logical(base).workspace is None
    )
    return f"{scheme[3:]}://{location}", base, base if legacy else None


def router_for(
    destination: str, artifact_uri: str, tracking_uri: str | None, active: str | None
) -> Router:
    """The Router of ``destination`` under the configuration in force, with the workspace
    roots ``active`` needs (when any workspace may have a root of its own).

    Raises:
        ConfigError: No configuration is set, or (on a server) it cannot be loaded.
    """
    on_server = destinations_from_env(os.environ) is not None
    config = _server_config() if on_server else config_from_env()
    if config is None:
        raise ConfigError(
            f"{CONFIG_ENV_VAR} is not set, so ws-artifacts cannot tell where each "
            f"workspace's artifacts live ({artifact_uri}). Point {CONFIG_ENV_VAR} at "
            "the same configuration file the MLflow server uses."
        )
    if not config.locations:  # no workspace may have a root of its own
        return _routers.get(config, destination)
    cache = roots.roots_cache(tracking_uri, on_server=on_server)
    return _routers.get(config, destination, cache.snapshot(active))


@functools.lru_cache(maxsize=4096)
def checked_target(
    base: str,
    path: str | None,
    operation: str,
    active: str | None,
    router: Router,
    destinations: tuple[str, ...] | None,
) -> Target:
    """The routing decision: a pure function of its arguments, so it is memoised.

    Every input that changes the outcome is in the key: the repository's base path, the
    requested path, the operation, the active workspace, the router (a reloaded configuration
    builds new routers) and the server's destinations. Refusals raise and are never cached.
    """
    logical = split_under(base, normalize(path))
    check_owner(logical, active, operation=operation)
    return check_destination(router.target(logical), destinations)


def _server_config() -> Config | None:
    """The configuration in a server worker. Its load errors name the file and its keys: they
    go to the server's log, and the client is only told to look there."""
    try:
        return config_from_env()
    except ConfigError as err:
        _logger.error("%s", err)
        raise ConfigError(
            f"The ws-artifacts configuration of this server cannot be loaded ({CONFIG_ENV_VAR}); "
            "the server's log says which file and key, and why. Ask the server's operator to "
            "fix it."
        ) from None
