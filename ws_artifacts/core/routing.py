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
from dataclasses import dataclass
from typing import Literal

from ws_artifacts.core.config import Config, PlaceConfig, RouteConfig
from ws_artifacts.core.errors import (
    OwnershipError,
    PathError,
    UnroutedWorkspaceError,
    WsArtifactsError,
)
from ws_artifacts.core.paths import (
    DEFAULT_WORKSPACE,
    WORKSPACES_SEGMENT,
    LogicalPath,
    is_within,
    join,
    may_name_workspace,
    normalize,
    split_logical,
)
from ws_artifacts.core.quarantine_names import QUARANTINE_SEGMENT, in_quarantine
from ws_artifacts.core.roots import find_location, routes_by_root
from ws_artifacts.core.settings import Settings, merge_settings
from ws_artifacts.core.urls import check_route_prefix, split_url

__all__ = [
    "DESTINATION",
    "Place",
    "Route",
    "Router",
    "Target",
    "WorkspaceRoot",
    "root_route",
]

#: ``Route.name`` of the default destination.
DESTINATION = "(default destination)"
_CACHE_LIMIT = 100_000
#: Where a route came from (``Route.source``).
SOURCE_FILE = "file"
SOURCE_WORKSPACE = "workspace setting"
SOURCE_GLOB = "glob"
SOURCE_DEFAULT = "default"
#: The workspace of :meth:`Router.entry_route` for a glob: the URL's placeholder, kept.
ANY_WORKSPACE = "{workspace}"


@dataclass(frozen=True, slots=True)
class WorkspaceRoot:
    """A workspace's own ``default_artifact_root`` as MLflow's database holds it.

    Attributes:
        url: The current root (None: the workspace has none).
        previous: Roots it had before, newest first (ws-artifacts' own table): reads fall back
            to ``<root>/workspaces/<ws>`` in each, as for a file route's ``previous``.
    """

    url: str | None
    previous: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, eq=False)  # identity hash: settings hold dicts
class Route:
    """A resolved route: one store location with its settings.

    Attributes:
        name: The configuration key that matched (``team-a``, ``vision-*``), or DESTINATION.
        url: The route's URL with ``{workspace}`` filled in, e.g. ``s3://vision/vision-x``.
        scheme: The URL's scheme (``s3``, ``file``, ``memory``, ...).
        location: The bucket (or the fsspec URL's host part; empty for ``file``).
        prefix: The key prefix inside ``location``, without slashes at either end.
        backend: Which backend serves it: ``s3`` (boto3) or ``fsspec``.
        settings: The effective settings: the route's own over ``defaults``.
        workspace: The workspace it was resolved for (None for the destination).
        previous: The places this route used to be, newest first, each a Route of its own
            (same layout, so the same containment check), read after this one.
        source: Where the route came from: ``file`` (an exact name in the configuration),
            ``workspace setting`` (the workspace's default_artifact_root), ``glob`` or
            ``default`` (the default destination).
    """

    name: str
    url: str
    scheme: str
    location: str
    prefix: str
    backend: Literal["s3", "fsspec"]
    settings: Settings
    workspace: str | None
    previous: tuple[Route, ...] = ()
    source: str = SOURCE_FILE

    @property
    def is_destination(self) -> bool:
        """Whether this is the default destination (keys kept exactly as MLflow named them)."""
        return self.name == DESTINATION


@dataclass(frozen=True, slots=True)
class Target:
    """One physical place: a route and a key relative to the route's location.

    Attributes:
        route: The route serving it.
        key: The key (or path) inside the route's location.
        workspace: The workspace that owns it.
        scope: The key prefix that workspace owns in this location; ``key`` lies inside it.
    """

    route: Route
    key: str
    workspace: str
    scope: str

    def __post_init__(self) -> None:
        """Refuse to exist outside the workspace's place: the one containment check that every
        read, write, list and delete passes, whatever the backend.

        Raises:
            OwnershipError: The key lies outside the workspace's scope, the scope is not the
                workspace's layout on this route, or a legacy key names a workspace.
        """
        problem = _containment_problem(self)
        if problem:
            raise OwnershipError(
                f"Refused: {self.uri} {problem}, so it is outside the place of workspace "
                f"'{self.workspace}'. Artifacts are only reachable inside their own workspace."
            )

    @property
    def uri(self) -> str:
        """``scheme://location/key``, for messages and the CLI (no secrets in it)."""
        if not self.route.location:  # file:///srv/x
            return f"{self.route.scheme}:///{self.key}"
        return f"{self.route.scheme}://{join(self.route.location, self.key)}"

    def child(self, name: str) -> Target:
        """The target of ``name`` below this one."""
        return Target(self.route, join(self.key, name), self.workspace, self.scope)

    def places(self) -> tuple[Target, ...]:
        """This target, then the same path in each previous place of its route (newest
        first). Each is built as a Target, so each passes the same containment check."""
        if not self.route.previous:
            return (self,)
        rest = self.key[len(self.scope) :].lstrip("/")
        out = [self]
        for route in self.route.previous:
            scope = join(route.prefix, WORKSPACES_SEGMENT, self.workspace)
            out.append(Target(route, join(scope, rest), self.workspace, scope))
        return tuple(out)

    def place(self) -> Place:
        """The place this target lies in: its workspace's scope on its route."""
        whole = Target(self.route, self.scope, self.workspace, self.scope)
        legacy = not self.scope or not may_name_workspace(self.scope)
        base = self.scope if legacy else split_logical(self.scope).root
        return Place(whole, base, legacy=legacy)


@dataclass(frozen=True, slots=True)
class Place:
    """One workspace's place on one route: the key prefix ``scope`` in ``route.location``.

    A workspace's place is ``<base>/workspaces/<ws>`` on its route (``<base>``: the route's
    prefix, or the destination's root for a workspace without a route of its own); a route that
    moved also has previous places, read after the current one until ``migrate`` empties them.
    Places are built by routing only (:meth:`Router.places`, :meth:`Router.destination_place`,
    :meth:`Router.legacy_place`, :meth:`Target.place`), over a target of their scope, so every
    place has passed the containment check. The guard, usage, quota, migrate, quarantine and
    orphans all use this one class.

    Attributes:
        target: The place as a target (its key is the scope), built and so checked by routing.
        base: The key prefix the place lies under: ``<base>/workspaces/<ws>`` (the root itself
            for the legacy layout).
        current: Whether it is the route's current place (False: a previous one).
        legacy: Whether it is the default workspace's legacy layout at a destination: the keys
            below ``scope`` that name no workspace.
    """

    target: Target
    base: str
    current: bool = True
    legacy: bool = False

    @property
    def workspace(self) -> str:
        """The workspace that owns it."""
        return self.target.workspace

    @property
    def route(self) -> Route:
        """The route it is on (``route.source``: where that route came from)."""
        return self.target.route

    @property
    def scope(self) -> str:
        """The key prefix the workspace owns here."""
        return self.target.key

    @property
    def scheme(self) -> str:
        """The route's scheme (``s3``, ``file``, ...)."""
        return self.target.route.scheme

    @property
    def location(self) -> str:
        """The route's bucket (or host; empty for ``file``)."""
        return self.target.route.location

    @property
    def uri(self) -> str:
        """Where it is, for output (no secrets in it)."""
        return self.target.uri

    def holds(self, scheme: str, location: str, path: str, *, scope: str | None = None) -> bool:
        """Whether the (normalised) ``path`` at ``scheme://location`` lies inside this place
        (``scope``: the place's scope as the caller resolved it, e.g. after symbolic links)."""
        scope = self.scope if scope is None else scope
        if (scheme, location) != (self.scheme, self.location) or not is_within(scope, path):
            return False
        try:
            return not self.legacy or split_logical(path).workspace is None
        except WsArtifactsError:
            return False

    def __str__(self) -> str:
        where = f"{self.scheme}://{self.location}/{self.scope}".rstrip("/")
        return f"{where}/ (legacy paths)" if self.legacy else f"{where}/"


def _containment_problem(target: Target) -> str:
    """What is wrong with ``target``'s place (empty when nothing is)."""
    key, scope, route, workspace = target.key, target.scope, target.route, target.workspace
    if "\\" in key or any(part in ("", ".", "..") for part in key.split("/") if key):
        return "is not a normalised key"
    if in_quarantine(key) or in_quarantine(scope):
        return f"lies in the quarantine area '{QUARANTINE_SEGMENT}', which is nobody's place"
    if not scope or not may_name_workspace(scope):  # the default workspace's legacy layout
        if not route.is_destination or workspace != DEFAULT_WORKSPACE:
            return "has no workspace layout"
        if may_name_workspace(key):
            return "names a workspace's layout in a legacy path"
        if not is_within(scope, key):
            return f"lies outside '{scope}'"
        return ""
    if not is_within(scope, key):
        return f"lies outside '{scope}'"
    if not route.is_destination:  # a workspace's own route: exactly <prefix>/workspaces/<ws>
        if route.workspace != workspace:
            return f"is on route '{route.name}' of workspace '{route.workspace}'"
        if scope != join(route.prefix, WORKSPACES_SEGMENT, workspace):
            return f"has scope '{scope}', which is not the layout of route '{route.name}'"
        return ""
    try:  # the destination: <root>/workspaces/<ws>, with no workspace named in <root>
        layout = split_logical(scope)
    except PathError:
        return f"has a malformed scope '{scope}'"
    if layout.workspace != workspace or layout.rest:
        return f"has scope '{scope}', which is not the layout of workspace '{workspace}'"
    return ""


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
