"""Pure routing: (workspace, logical path) -> where the bytes go.

This is the module to read first. Given the configuration and the *default destination* (the
URL the repository was built with, minus its ``ws-`` prefix), :class:`Router` answers:

* a workspace with a route of its own (exact name first, then glob patterns in file order)
  goes to ``<route url>/workspaces/<ws>/<rest>``;
* a workspace without one goes to the default destination, at exactly the path MLflow named,
  unless ``unknown_workspaces: deny`` (the default workspace always may use the destination);
* a legacy path (no ``workspaces/`` segment) is the default workspace's and stays at the
  default destination, literally.

No I/O and no MLflow import happen here.
"""

from __future__ import annotations

import fnmatch
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Literal

from ws_artifacts.config import Config, Credentials, RouteConfig, Settings
from ws_artifacts.errors import UnroutedWorkspaceError
from ws_artifacts.paths import DEFAULT_WORKSPACE, WORKSPACES_SEGMENT, LogicalPath, join

__all__ = ["DESTINATION", "Route", "Router", "Target", "split_url"]

#: ``Route.name`` of the default destination.
DESTINATION = "(default destination)"
_CACHE_LIMIT = 100_000


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
    """

    name: str
    url: str
    scheme: str
    location: str
    prefix: str
    backend: Literal["s3", "fsspec"]
    settings: Settings
    workspace: str | None

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

    @property
    def uri(self) -> str:
        """``scheme://location/key``, for messages and the CLI (no secrets in it)."""
        return f"{self.route.scheme}://{join(self.route.location, self.key)}"

    def child(self, name: str) -> Target:
        """The target of ``name`` below this one."""
        return Target(self.route, join(self.key, name), self.workspace, self.scope)


def split_url(url: str) -> tuple[str, str, str]:
    """Split ``scheme://location/prefix`` into its three parts (location = bucket or host).

    For ``file:///srv/x`` the location is empty and the prefix ``srv/x``.
    """
    parsed = urllib.parse.urlsplit(url)
    return parsed.scheme, parsed.netloc, parsed.path.strip("/")


class Router:
    """Routes workspaces for one default destination under one configuration."""

    def __init__(self, config: Config, destination_url: str) -> None:
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
        )
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

    def _resolve(self, workspace: str) -> Route:
        name = workspace if workspace in self._exact else None
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
        return _build_route(name, self.config.workspaces[name], self.config.defaults, workspace)


def _is_glob(key: str) -> bool:
    return any(ch in key for ch in "*?[")


def _build_route(name: str, route: RouteConfig, defaults: Settings, workspace: str) -> Route:
    url = route.url.replace("{workspace}", workspace)
    scheme, location, prefix = split_url(url)
    return Route(
        name=name,
        url=url,
        scheme=scheme,
        location=location,
        prefix=prefix,
        backend=route.backend_kind,
        settings=_merge(route, defaults, workspace),
        workspace=workspace,
    )


def _merge(route: RouteConfig, defaults: Settings, workspace: str) -> Settings:
    """The route's settings over the defaults; nested blocks replace, not merge, except
    ``storage_options``, which merges key by key."""
    values = {name: getattr(defaults, name) for name in Settings.model_fields}
    for name in route.model_fields_set & set(Settings.model_fields):
        values[name] = getattr(route, name)
    values["storage_options"] = {**defaults.storage_options, **route.storage_options}
    credentials: Credentials | None = values["credentials"]
    if credentials is not None and (credentials.role_arn or credentials.session_name):
        values["credentials"] = credentials.model_copy(
            update={
                "role_arn": (credentials.role_arn or "").replace("{workspace}", workspace)
                or None,
                "session_name": (credentials.session_name or "").replace("{workspace}", workspace)
                or None,
            }
        )
    return Settings.model_construct(**values)
