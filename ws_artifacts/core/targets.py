"""What routing answers: a :class:`Route` (a configured place's settings), a :class:`Target`
(one key on a route, inside its workspace's scope: containment is checked when it is built) and
a :class:`Place` (a workspace's location on one route, current or previous). Built only by
:mod:`ws_artifacts.core.routing`; pure, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ws_artifacts.core.errors import (
    OwnershipError,
    PathError,
    WsArtifactsError,
)
from ws_artifacts.core.paths import (
    DEFAULT_WORKSPACE,
    WORKSPACES_SEGMENT,
    is_within,
    join,
    may_name_workspace,
    split_logical,
)
from ws_artifacts.core.quarantine_names import QUARANTINE_SEGMENT, in_quarantine
from ws_artifacts.core.settings import Settings

__all__ = [
    "ANY_WORKSPACE",
    "DESTINATION",
    "SOURCE_DEFAULT",
    "SOURCE_FILE",
    "SOURCE_GLOB",
    "SOURCE_WORKSPACE",
    "Place",
    "Route",
    "Target",
    "WorkspaceRoot",
]

#: ``Route.name`` of the default destination.
DESTINATION = "(default destination)"
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
