"""``ws-artifacts migrate``: empty a route's previous places into its current one.

For each workspace, every previous place of its route (newest first) is listed in parallel and
copied to the current place with :mod:`ws_artifacts.storage.copying` (server-side where one identity
reaches both, streamed otherwise; the route's storage policy applied; every object verified).
Objects already at the current place with the same bytes count as ``present``; a different
object under the same name at the current place wins (``shadowed``: left alone, never
overwritten, never deleted). With ``delete_source`` only verified objects are deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ws_artifacts.core.errors import ConfigError
from ws_artifacts.core.routing import Router
from ws_artifacts.core.targets import Place, Target
from ws_artifacts.storage.copying import Mode, Outcome, copy_tree, delete_objects, list_tree
from ws_artifacts.storage.copying import server_side as _server_side
from ws_artifacts.storage.verify import Listed

__all__ = [
    "MigrateOutcome",
    "glob_workspaces_in_previous",
    "migrate_places",
    "migrate_workspace",
    "workspaces_with_previous",
]

_ACTIONS = ("planned", "copied", "present", "shadowed", "failed", "compare")


@dataclass
class MigrateOutcome:
    """What migrating one source place to its target did (or, in a dry run, would do)."""

    workspace: str
    source: str
    target: str
    mode: Mode
    outcomes: list[Outcome] = field(default_factory=list)
    deleted: int = 0

    def count(self, action: str) -> int:
        """How many objects had ``action``."""
        return sum(1 for o in self.outcomes if o.action == action)

    def size(self, action: str) -> int:
        """How many bytes had ``action``."""
        return sum(o.size for o in self.outcomes if o.action == action)

    @property
    def left(self) -> int:
        """Objects still only in the source (not verified at the target)."""
        return sum(1 for o in self.outcomes if not o.verified)

    def as_dict(self) -> dict[str, Any]:
        """For ``--json``: counts, bytes and each failure."""
        return {
            "workspace": self.workspace,
            "source": self.source,
            "target": self.target,
            "mode": self.mode,
            "objects": len(self.outcomes),
            "bytes": sum(o.size for o in self.outcomes),
            **{action: self.count(action) for action in _ACTIONS},
            "bytes_copied": self.size("copied"),
            "bytes_planned": self.size("planned"),
            "deleted": self.deleted,
            "failures": [{"name": o.name, "error": o.error} for o in self.outcomes if o.error],
            "shadowed_names": [o.name for o in self.outcomes if o.action == "shadowed"][:100],
        }


def workspace_places(router: Router, workspace: str) -> tuple[Place, ...]:
    """The workspace's places: the current one of its route, then the previous ones.

    Raises:
        ConfigError: The workspace has no route of its own (nothing can have moved).
    """
    route = router.route_for(workspace)
    if route.is_destination:
        raise ConfigError(
            f"Workspace '{workspace}' has no route of its own in the configuration, so it has "
            "no previous places to migrate; give it a route with 'previous: [...]' (or, for a "
            "workspace routed by its own default_artifact_root, give --backend-store-uri)."
        )
    return router.places(workspace)


def workspaces_with_previous(router: Router) -> list[str]:
    """Every workspace whose route lists previous places (``--all``): the exactly named ones,
    and the workspaces of glob routes found by listing those routes' previous places."""
    from ws_artifacts.core import routing

    names: set[str] = set()
    for pattern, entry in router.config.workspaces.items():
        if entry.previous:
            glob = routing._is_glob(pattern)
            names |= glob_workspaces_in_previous(router, pattern) if glob else {pattern}
    names |= {name for name, root in router.roots.items() if root.previous}  # own roots
    return sorted(names)


def glob_workspaces_in_previous(router: Router, pattern: str) -> set[str]:
    """The workspaces of the glob route ``pattern`` that its previous places hold."""
    from ws_artifacts.core.settings import merge_settings
    from ws_artifacts.lifecycle.usage import workspaces_in_place

    config = router.config
    entry = config.workspaces[pattern]
    base = merge_settings(entry, config.defaults, "")
    names: set[str] = set()
    for place in entry.previous:
        names |= workspaces_in_place(router, pattern, place, base)
    return names


def migrate_workspace(
    router: Router,
    workspace: str,
    *,
    dry_run: bool = False,
    delete_source: bool = False,
    on_listed: Callable[[int, int], None] | None = None,
    progress: Callable[[Outcome], None] | None = None,
) -> list[MigrateOutcome]:
    """Copy every previous place of ``workspace``'s route to its current place."""
    current, *previous = workspace_places(router, workspace)
    return migrate_places(
        [place.target for place in previous],
        current.target,
        dry_run=dry_run,
        delete_source=delete_source,
        on_listed=on_listed,
        progress=progress,
    )


def migrate_places(
    sources: list[Target],
    target: Target,
    *,
    dry_run: bool = False,
    delete_source: bool = False,
    on_listed: Callable[[int, int], None] | None = None,
    progress: Callable[[Outcome], None] | None = None,
    exclude: Mapping[str, Collection[str]] | None = None,
) -> list[MigrateOutcome]:
    """Copy each tree of ``sources`` (newest first) into ``target``, verified.

    Args:
        sources: Source roots; a name in an earlier one wins over a later one.
        target: The target root.
        dry_run: List and compare only; nothing is written or deleted.
        delete_source: Delete, in each source, exactly the objects verified at the target.
        on_listed: Called once everything is listed, with the object count and bytes.
        progress: Called with each settled object.
        exclude: Per source (its ``uri``), names below it to leave alone: not copied, not
            deleted, not counted.
    """
    listed = [list_tree(source) for source in sources]
    if exclude:
        listed = [
            {name: o for name, o in tree.items() if name not in exclude.get(source.uri, ())}
            for source, tree in zip(sources, listed, strict=True)
        ]
    if on_listed is not None:
        on_listed(sum(map(len, listed)), sum(o.size for tree in listed for o in tree.values()))
    existing: dict[str, Listed] = list_tree(target)
    results = []
    for index, (source, objects) in enumerate(zip(sources, listed, strict=True)):
        mode: Mode = "server-side" if _server_side(source.route, target.route) else "streamed"
        result = MigrateOutcome(target.workspace, source.uri, target.uri, mode)
        result.outcomes = copy_tree(
            objects, source, target, existing=existing, dry_run=dry_run, progress=progress
        )
        if delete_source and not dry_run:
            result.deleted = delete_objects(source, [o.name for o in result.outcomes if o.verified])
        if dry_run:  # what the next (older) source would meet at the target after this one
            existing = {**{o.name: objects[o.name] for o in result.outcomes}, **existing}
        elif index + 1 < len(sources):
            existing = list_tree(target)
        results.append(result)
    return results
