"""A place: where one workspace's artifacts live on one route.

A workspace's place is ``<base>/workspaces/<ws>`` on its route (``<base>``: the route's key
prefix, or the destination's root for a workspace without a route of its own); a route that
moved also has *previous* places, read after the current one until ``migrate`` empties them.
The default workspace also owns the destination's legacy layout: the keys below the root that
name no workspace.

Places are built by routing only (:meth:`ws_artifacts.core.routing.Router.places` and its
siblings), each over a :class:`~ws_artifacts.core.routing.Target` of its scope, so every place
has passed routing's containment check. Guard, usage, quota, migrate, quarantine and orphans all
use this one class. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ws_artifacts.core.errors import WsArtifactsError
from ws_artifacts.core.paths import is_within, split_logical

if TYPE_CHECKING:
    from ws_artifacts.core.routing import Route, Target

__all__ = ["Place"]


@dataclass(frozen=True, slots=True)
class Place:
    """One workspace's place on one route: the key prefix ``scope`` in ``route.location``.

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
