"""Which workspaces have places: the names given, the configuration's, and every name found
in the stores' layouts (the destination's ``workspaces/``, each route's prefix, and, for routes
whose URL ends in ``{workspace}``, the directories beside it), each at its current place.

Used by ``orphans`` and the ``quarantine`` commands.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterable

from ws_artifacts.core.errors import UnroutedWorkspaceError, WsArtifactsError
from ws_artifacts.core.paths import WORKSPACES_SEGMENT, is_valid_workspace_name, join
from ws_artifacts.core.routing import Router
from ws_artifacts.core.targets import Place, Route
from ws_artifacts.core.urls import split_url
from ws_artifacts.storage.registry import backend_for

__all__ = ["discover_places", "quarantine_bases", "router_for"]

_logger = logging.getLogger(__name__)


def router_for(config: object, destination: str) -> Router:
    """The router for ``destination`` (``ws-`` prefix optional) as a server would build it."""
    from ws_artifacts.core.config import Config

    if not isinstance(config, Config):
        raise TypeError("config must be a Config")
    scheme, location, _ = split_url(destination.removeprefix("ws-"))
    return Router(config, f"{scheme}://{location}")


def discover_places(router: Router, destination: str, names: Iterable[str]) -> list[Place]:
    """The places of ``names`` and of every workspace name found in the stores' layouts."""
    destination = destination.removeprefix("ws-")
    found = set(names) | {k for k in router.config.workspaces if is_valid_workspace_name(k)}
    _, _, root = split_url(destination)
    found |= _listed(router.destination, join(root, WORKSPACES_SEGMENT))
    for key, route_config in router.config.workspaces.items():
        try:
            route = router.entry_route(key)
        except WsArtifactsError:
            continue
        if "{workspace}" in route_config.url:
            head, tail = route_config.url.split("{workspace}", 1)
            if tail.strip("/") or not head.endswith("/"):
                _logger.warning("route %s: cannot list workspaces of url %s", key, route_config.url)
                continue
            parent = route.prefix.rsplit("/", 1)[0] if "/" in route.prefix else ""
            candidates = _listed(route, parent)
        else:
            candidates = _listed(route, join(route.prefix, WORKSPACES_SEGMENT))
        found |= {n for n in candidates if fnmatch.fnmatchcase(n, key)}
    places: dict[str, Place] = {}
    for name in sorted(found):
        if not is_valid_workspace_name(name):
            continue
        try:
            places[name] = router.places(name, root)[0]
        except UnroutedWorkspaceError:
            continue
    return list(places.values())


def _listed(route: Route, prefix: str) -> set[str]:
    try:
        return set(backend_for(route).children(prefix, prefix))
    except WsArtifactsError as err:
        _logger.warning("cannot list %s on route %s: %s", prefix, route.name, err)
        return set()


def quarantine_bases(
    router: Router, destination: str, names: Iterable[str]
) -> list[tuple[Route, str]]:
    """Where quarantine areas may lie: the destination's root, then the base of every place of
    ``names`` and of the workspaces found (:func:`discover_places`), current and previous."""
    places = discover_places(router, destination, names)
    _, _, root = split_url(destination.removeprefix("ws-"))
    previous = ((r, r.prefix) for p in places for r in p.route.previous)
    return [(router.destination, root), *((p.route, p.base) for p in places), *previous]
