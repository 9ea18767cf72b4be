"""Orphans: objects under ``workspaces/<ws>/<id>`` whose workspace or experiment is gone.

The truth is MLflow's: every workspace and every experiment id (active or deleted, since a
deleted experiment can still be restored), read through MLflow's client on the server's REST
API or on the tracking database (:func:`ws_artifacts._mlflow.tracking_truth`). The stores are
scanned where routing puts workspaces: the destination's ``workspaces/``, each route's prefix,
and, for routes whose URL ends in ``{workspace}``, the directories beside it.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ws_artifacts.checks import example_name
from ws_artifacts.errors import UnroutedWorkspaceError, WsArtifactsError
from ws_artifacts.paths import WORKSPACES_SEGMENT, is_valid_workspace_name, join
from ws_artifacts.quarantine import Place, place_of
from ws_artifacts.routing import Route, Router, split_url
from ws_artifacts.stores import store_for

__all__ = ["Orphan", "discover_places", "find_orphans", "router_for"]

_logger = logging.getLogger(__name__)


@dataclass
class Orphan:
    """One ``workspaces/<ws>/<child>`` with no owner in the tracking database."""

    workspace: str
    child: str
    reason: str
    uri: str
    keys: list[tuple[str, int]] = field(default_factory=list)
    #: The workspace that now has an experiment of this id (``mlflow db move-resources`` moved
    #: it there, or the id was reused): held back from quarantine, for ``migrate --moved-from``.
    moved_to: str | None = None

    @property
    def objects(self) -> int:
        """How many objects."""
        return len(self.keys)

    @property
    def bytes(self) -> int:
        """Their total size."""
        return sum(size for _, size in self.keys)

    def as_dict(self) -> dict[str, object]:
        """The JSON form (``orphans --json``)."""
        return {
            "workspace": self.workspace,
            "experiment": self.child,
            "reason": self.reason,
            "uri": self.uri,
            "objects": self.objects,
            "bytes": self.bytes,
            "moved_to": self.moved_to,
            "keys": [{"key": k, "size": s} for k, s in self.keys],
        }


def router_for(config: object, destination: str) -> Router:
    """The router for ``destination`` (``ws-`` prefix optional) as a server would build it."""
    from ws_artifacts.config import Config

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
            example = router.route_for(example_name(key))
        except WsArtifactsError:
            continue
        if example.name != key:
            continue
        if "{workspace}" in route_config.url:
            head, tail = route_config.url.split("{workspace}", 1)
            if tail.strip("/") or not head.endswith("/"):
                _logger.warning("route %s: cannot list workspaces of url %s", key, route_config.url)
                continue
            parent = example.prefix.rsplit("/", 1)[0] if "/" in example.prefix else ""
            candidates = _listed(example, parent)
        else:
            candidates = _listed(example, join(example.prefix, WORKSPACES_SEGMENT))
        found |= {n for n in candidates if fnmatch.fnmatchcase(n, key)}
    places: dict[str, Place] = {}
    for name in sorted(found):
        if not is_valid_workspace_name(name):
            continue
        try:
            places[name] = place_of(router, destination, name)
        except UnroutedWorkspaceError:
            continue
    return list(places.values())


def _listed(route: Route, prefix: str) -> set[str]:
    try:
        return set(store_for(route, prefix).children(prefix))
    except WsArtifactsError as err:
        _logger.warning("cannot list %s on route %s: %s", prefix, route.name, err)
        return set()


def find_orphans(places: Iterable[Place], truth: Mapping[str, set[str]]) -> list[Orphan]:
    """Every child of a place (an experiment id directory, or a stray file) whose workspace
    does not exist, or whose experiment id is not one of that workspace's experiments. In a
    live workspace, a child whose id is an experiment of another workspace is marked
    ``moved_to`` that workspace."""
    owners = {exp: ws for ws, ids in truth.items() for exp in ids}  # experiment ids are global
    orphans: list[Orphan] = []
    for place in places:
        store = place.store()
        known = truth.get(place.workspace)
        for child in store.children(place.scope):
            if known is not None and child in known:
                continue
            # move-resources moves between live workspaces; a deleted one's objects are orphans
            moved_to = owners.get(child) if known is not None else None
            if moved_to is not None:
                reason = (
                    f"experiment {child} is now in workspace {moved_to}: see `ws-artifacts "
                    f"migrate --moved-from {place.workspace} --to {moved_to} --dry-run`"
                )
            elif known is None:
                reason = "workspace does not exist"
            else:
                reason = f"no experiment {child} in workspace {place.workspace}"
            prefix = join(place.scope, child)
            keys = list(store.walk(prefix))
            if not keys:
                size = store.size(prefix)
                keys = [(prefix, size)] if size is not None else []
            if keys:
                orphans.append(
                    Orphan(place.workspace, child, reason, store.uri(prefix), keys, moved_to)
                )
    return orphans
