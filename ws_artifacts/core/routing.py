"""Pure routing: (workspace, logical path) -> where the bytes go.

This is the module to read first. Given the configuration and the *default destination* (the
URL the repository was built with, minus its ``ws-`` prefix), :class:`Router` answers:

* a workspace with a route of its own goes to ``<route url>/workspaces/<ws>/<rest>``. Which
  route, first match wins: an exact name in the file; the workspace's own
  ``default_artifact_root`` when it lies inside an approved storage location (``locations``;
  the roots come from MLflow's database, handed in as :class:`WorkspaceRoot` values); glob
  patterns in file order;
* a workspace without one goes to the default destination, at exactly the path MLflow named,
  unless ``unknown_workspaces: deny`` (the default workspace always may use the destination);
* a legacy path (no ``workspaces/`` segment) is the default workspace's and stays at the
  default destination, literally.

The places of a workspace (:meth:`Router.places`: its current place and its route's previous
ones, each a :class:`Place`) come from here too.

Containment is checked here, once, for every operation: a :class:`Target` cannot be built
unless its key lies inside the place its workspace owns (:meth:`Target.__post_init__`), a route
may not place its files inside another workspace's layout, and
:func:`ws_artifacts.core.destinations.check_destination` keeps a server's default-destination
targets under the destinations it was started with.

No I/O and no MLflow import happen here.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Mapping
from typing import Literal

from ws_artifacts.core.config import Config, PlaceConfig, RouteConfig
from ws_artifacts.core.errors import (
    OwnershipError,
    UnroutedWorkspaceError,
)
from ws_artifacts.core.locations import find_location, routes_by_root
from ws_artifacts.core.paths import (
    DEFAULT_WORKSPACE,
    WORKSPACES_SEGMENT,
    LogicalPath,
    join,
    normalize,
    split_logical,
)
from ws_artifacts.core.settings import Settings, merge_settings
from ws_artifacts.core.targets import (
    ANY_WORKSPACE,
    DESTINATION,
    SOURCE_DEFAULT,
    SOURCE_GLOB,
    SOURCE_WORKSPACE,
    Place,
    Route,
    Target,
    WorkspaceRoot,
)
from ws_artifacts.core.urls import check_route_prefix, split_url

__all__ = ["Router", "root_route"]

_CACHE_LIMIT = 100_000


class Router:
    """Routes workspaces for one default destination under one configuration."""

    def __init__(
        self,
        config: Config,
        destination_url: str,
        roots: Mapping[str, WorkspaceRoot] | None = None,
    ) -> None:
        self.config = config
        scheme, location, _ = split_url(destination_url)
        self.destination = Route(
            name=DESTINATION,
            url=destination_url,
            scheme=scheme,
            location=location,
            prefix="",  # keys at the destination are MLflow's full path, prefix included
            backend="s3" if scheme == "s3" else "fsspec",
            settings=config.defaults,
            workspace=None,
            source=SOURCE_DEFAULT,
        )
        self.roots: Mapping[str, WorkspaceRoot] = roots or {}
        self._exact = {k: v for k, v in config.workspaces.items() if not _is_glob(k)}
        self._patterns = [(k, v) for k, v in config.workspaces.items() if _is_glob(k)]
        self._cache: dict[str, Route] = {}
        self._lock = threading.Lock()

    def route_for(self, workspace: str | None) -> Route:
        """The route of ``workspace`` (None: a legacy default-workspace path).

        Raises:
            UnroutedWorkspaceError: No route matches and unknown workspaces are denied.
        """
        if workspace is None:
            return self.destination
        route = self._cache.get(workspace)
        if route is None:
            route = self._resolve(workspace)
            with self._lock:
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
                self._cache[workspace] = route
        return route

    def target(self, logical: LogicalPath) -> Target:
        """Where the (already normalised and ownership-checked) path lives."""
        route = self.route_for(logical.workspace)
        if logical.workspace is None:  # legacy default-workspace path, kept literally
            return Target(route, logical.root, logical.owner, "")
        base = logical.root if route.is_destination else route.prefix
        scope = join(base, WORKSPACES_SEGMENT, logical.workspace)
        return Target(route, join(scope, logical.rest), logical.owner, scope)

    def places(self, workspace: str, root: str = "") -> tuple[Place, ...]:
        """The places of ``workspace``: its current place, then each previous place of its
        route, newest first (reads fall back to those). ``root``: the default destination's
        root, where a workspace without a route of its own has its place.

        Raises:
            UnroutedWorkspaceError: No route matches and unknown workspaces are denied.
        """
        current = self.target(LogicalPath(root, workspace, ""))
        places = [Place(current, split_logical(current.scope).root)]
        for route in current.route.previous:
            scope = join(route.prefix, WORKSPACES_SEGMENT, workspace)
            target = Target(route, scope, workspace, scope)
            places.append(Place(target, route.prefix, current=False))
        return tuple(places)

    def destination_place(self, workspace: str, root: str) -> Place:
        """``workspace``'s place at the default destination (``<root>/workspaces/<ws>``), where
        its files lie while it has no route, whatever its route is now."""
        scope = join(root, WORKSPACES_SEGMENT, workspace)
        return Place(Target(self.destination, scope, workspace, scope), root)

    def legacy_place(self, root: str) -> Place:
        """The default workspace's legacy layout at the destination: keys below ``root`` that
        name no workspace."""
        return Place(Target(self.destination, root, DEFAULT_WORKSPACE, ""), root, legacy=True)

    def _resolve(self, workspace: str) -> Route:
        name = workspace if workspace in self._exact else None
        root = self.roots.get(workspace)
        if name is None and root is not None and routes_by_root(root.url):
            return root_route(self.config, workspace, root)
        if name is None:
            name = next((k for k, _ in self._patterns if fnmatch.fnmatchcase(workspace, k)), None)
        if name is None:
            if self.config.unknown_workspaces == "deny" and workspace != DEFAULT_WORKSPACE:
                raise UnroutedWorkspaceError(
                    f"Workspace '{workspace}' has no route in the ws-artifacts configuration and "
                    "unknown_workspaces is 'deny'. Add a 'workspaces' entry for it (or a pattern "
                    "that matches it) to the configuration file."
                )
            return self.destination
        return self._entry_route(name, workspace)

    def entry_route(self, name: str) -> Route:
        """The route of the configuration entry ``name`` itself: an exact name's route, or a
        glob's for no workspace in particular (``{workspace}`` left in its URL and prefix, and
        in its settings), which says where that glob's workspaces have their places.

        Raises:
            ConfigError: The entry's URL is not a place a workspace may have.
        """
        return self._entry_route(name, name if not _is_glob(name) else ANY_WORKSPACE)

    def _entry_route(self, name: str, workspace: str) -> Route:
        entry = self.config.workspaces[name]
        base = self.config.defaults
        if entry.location is not None:
            base = merge_settings(self.config.locations[entry.location], base, workspace)
        route = _build_route(name, entry, base, workspace)
        if name == workspace:
            return route
        return _with_source(route, SOURCE_GLOB)


def _with_source(route: Route, source: str) -> Route:
    return Route(
        route.name,
        route.url,
        route.scheme,
        route.location,
        route.prefix,
        route.backend,
        route.settings,
        route.workspace,
        route.previous,
        source,
    )


def root_route(config: Config, workspace: str, root: WorkspaceRoot) -> Route:
    """The route of ``workspace`` from its own root: ``<root>/workspaces/<workspace>`` with the
    settings of the approved location the root lies in; each previous root is a previous place
    (with its location's settings, or the defaults when it was the default destination).

    Raises:
        OwnershipError: The root lies in no approved location (never routed elsewhere instead).
    """
    url = root.url or ""
    found = find_location(config, url)
    if found is None:
        known = ", ".join(f"{n} ({e.url})" for n, e in config.locations.items()) or "none"
        raise OwnershipError(
            f"Refused: workspace '{workspace}' has default_artifact_root {url}, which is not "
            f"inside an approved storage location (approved: {known}). Set the workspace's "
            "default_artifact_root to a location inside one of them, or ask the operator to "
            "approve the location."
        )
    name, location = found
    previous = tuple(
        _previous_root(config, f"location:{name}.previous.{index}", old, workspace)
        for index, old in enumerate(root.previous)
    )
    settings = merge_settings(location, config.defaults, workspace)
    return _root_place(f"location:{name}", url, location.backend, settings, workspace, previous)


def _previous_root(config: Config, name: str, url: str, workspace: str) -> Route:
    found = find_location(config, url)
    if found is None:  # the default destination (or a glob route's place) it had before
        backend: Literal["s3", "fsspec"] = "s3" if url.startswith("s3://") else "fsspec"
        return _root_place(name, url, backend, config.defaults, workspace, ())
    location = found[1]
    settings = merge_settings(location, config.defaults, workspace)
    return _root_place(name, url, location.backend, settings, workspace, ())


def _root_place(
    name: str,
    url: str,
    backend: Literal["s3", "fsspec"] | None,
    settings: Settings,
    workspace: str,
    previous: tuple[Route, ...],
) -> Route:
    scheme, location, prefix = split_url(url)
    check_route_prefix(name, prefix, workspace)
    return Route(
        name=name,
        url=url,
        scheme=scheme,
        location=location,
        prefix=normalize(prefix),
        backend=backend or ("s3" if scheme == "s3" else "fsspec"),
        settings=settings,
        workspace=workspace,
        previous=previous,
        source=SOURCE_WORKSPACE,
    )


def _is_glob(key: str) -> bool:
    return any(ch in key for ch in "*?[")


def _build_route(name: str, route: RouteConfig, defaults: Settings, workspace: str) -> Route:
    settings = merge_settings(route, defaults, workspace)
    previous = tuple(
        _build_place(f"{name}.previous.{index}", place, settings, workspace)
        for index, place in enumerate(route.previous)
    )
    return _build_place(name, route, defaults, workspace, previous)


def _build_place(
    name: str,
    place: PlaceConfig,
    base: Settings,
    workspace: str,
    previous: tuple[Route, ...] = (),
) -> Route:
    """A Route for ``place``: its own settings over ``base`` (the defaults for a route, the
    route's effective settings for one of its previous places)."""
    url = place.url.replace("{workspace}", workspace)
    scheme, location, prefix = split_url(url)
    check_route_prefix(name, prefix, workspace)
    return Route(
        name=name,
        url=url,
        scheme=scheme,
        location=location,
        prefix=prefix,
        backend=place.backend_kind,
        settings=merge_settings(place, base, workspace),
        workspace=workspace,
        previous=previous,
    )
