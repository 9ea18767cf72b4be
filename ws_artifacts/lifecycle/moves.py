"""``ws-artifacts migrate --moved-from X --to Y``: finish what ``mlflow db move-resources`` starts.

``mlflow db move-resources`` moves experiments from workspace X to Y in the database (at most
repointing each experiment's own location), but their runs, logged models and traces keep their
stored ``.../workspaces/X/<experiment>/...`` URIs, which Y's requests are refused. This module:

1. reads, through MLflow's own database models
   (:func:`ws_artifacts._mlflow.tracking_db.stored_locations`),
   every location stored for Y's experiments that still names ``workspaces/X/<experiment>``;
2. copies each such experiment's tree from X's place (and X's previous places) to Y's place
   with the verified copy engine (:func:`ws_artifacts.lifecycle.migrate.migrate_places`);
3. only when every object is verified, rewrites those locations to ``workspaces/Y/...`` in one
   transaction (:func:`ws_artifacts._mlflow.tracking_db.update_locations`);
4. with ``delete_source``, and only after the transaction committed, deletes the verified
   copies at X's place.

Only ws-artifacts locations (``mlflow-artifacts:`` and ``ws-<scheme>://``) are rewritten;
others are reported and left alone.

X must not be able to plant files into Y's runs between the move and the migration. On a server,
X's writes below a moved experiment are refused (:mod:`ws_artifacts.serving.experiments`, within its
cache bound); and given ``moved_at`` (when ``move-resources`` ran), objects at X's places last
modified after it are refused: not copied, never deleted, listed in the result.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ws_artifacts._mlflow import tracking_db
from ws_artifacts.core.errors import ConfigError, PathError, StorageError
from ws_artifacts.core.paths import WORKSPACES_SEGMENT, is_valid_workspace_name, join, split_logical
from ws_artifacts.core.routing import Router
from ws_artifacts.core.targets import Target
from ws_artifacts.core.urls import split_url
from ws_artifacts.lifecycle.migrate import MigrateOutcome, migrate_places
from ws_artifacts.storage.copying import Outcome, delete_objects, modified_after

__all__ = ["MovePlan", "MoveResult", "migrate_moved", "plan_move", "retarget_uri"]

_OURS = re.compile(r"^(mlflow-artifacts:|ws-[a-z0-9+.-]+://)")


def retarget_uri(uri: str, source: str, target: str) -> str | None:
    """``uri`` with its ``workspaces/<source>/<experiment>`` segment renamed to ``target``, or
    None when it names no such segment."""
    pattern = re.compile(rf"(^|[/:]){WORKSPACES_SEGMENT}/{re.escape(source)}/(\d+)(?=/|$)")
    new, count = pattern.subn(rf"\g<1>{WORKSPACES_SEGMENT}/{target}/\g<2>", uri, count=1)
    return new if count else None


@dataclass
class MovePlan:
    """What a move migration finds in the database."""

    source: str
    target: str
    experiments: list[str] = field(default_factory=list)
    changes: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    foreign: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Locations to rewrite, by kind (experiment, run, logged_model, trace)."""
        out = {"experiment": 0, "run": 0, "logged_model": 0, "trace": 0}
        for kind, _key in self.changes:
            out[kind] += 1
        return out


@dataclass
class MoveResult:
    """What ``migrate_moved`` did."""

    plan: MovePlan
    places: list[MigrateOutcome]
    updated: int = 0
    deleted: int = 0
    refused: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return {
            "moved_from": self.plan.source,
            "to": self.plan.target,
            "experiments": self.plan.experiments,
            "locations": self.plan.counts(),
            "not_ws_artifacts_locations": self.plan.foreign,
            "updated": self.updated,
            "deleted": self.deleted,
            "places": [p.as_dict() for p in self.places],
            "refused_newer_than_move": self.refused,
        }


def plan_move(store_uri: str, source: str, target: str) -> MovePlan:
    """Find the locations of ``target``'s experiments that still name ``source``.

    Raises:
        PathError: A workspace name is invalid, or both are the same.
    """
    for name in (source, target):
        if not is_valid_workspace_name(name):
            raise PathError(f"'{name}' is not a workspace name; give the names MLflow shows.")
    if source == target:
        raise PathError(f"--moved-from and --to are both '{source}'; give two workspaces.")
    plan = MovePlan(source, target)
    experiments: set[str] = set()
    for loc in tracking_db.stored_locations(store_uri, target):
        new = retarget_uri(loc.uri, source, target)
        if new is None:
            continue
        if not _OURS.match(loc.uri):
            plan.foreign.append(f"{loc.kind} {loc.key}: {loc.uri}")
            continue
        plan.changes[(loc.kind, loc.key)] = (loc.uri, new)
        experiments.add(loc.experiment_id)
    plan.experiments = sorted(experiments, key=int)
    return plan


def migrate_moved(
    router: Router,
    destination: str,
    store_uri: str,
    source: str,
    target: str,
    *,
    dry_run: bool = False,
    delete_source: bool = False,
    on_listed: Callable[[int, int], None] | None = None,
    progress: Callable[[Outcome], None] | None = None,
    moved_at: dt.datetime | None = None,
) -> MoveResult:
    """Copy the moved experiments' artifacts from ``source``'s place to ``target``'s, then
    rewrite their stored locations in one transaction (see the module docstring).

    Args:
        router: Routes of the server's configuration and default destination.
        destination: The server's ``--artifacts-destination`` (its key prefix is where
            ``mlflow-artifacts:/`` paths start).
        store_uri: The tracking database (``--backend-store-uri``).
        source: The workspace the experiments were moved from.
        target: The workspace they are in now.
        dry_run: Plan only.
        delete_source: After the database is updated, delete the verified copies at X.
        on_listed: As for :func:`migrate_places` (called once per experiment).
        progress: As for :func:`migrate_places`.
        moved_at: When the experiments were moved (aware). Objects at ``source``'s places
            modified after it were written after the move: they are refused (not copied, not
            deleted) and listed in ``MoveResult.refused`` as URIs.

    Raises:
        StorageError: Some object could not be copied and verified; the database is unchanged.
    """
    plan = plan_move(store_uri, source, target)
    prefix = split_url(destination.removeprefix("ws-"))[2]
    result = MoveResult(plan, [])
    copy = functools.partial(
        migrate_places, dry_run=dry_run, on_listed=on_listed, progress=progress
    )
    for experiment in plan.experiments:
        _copy_experiment(router, prefix, experiment, result, moved_at, copy)
    if dry_run:
        return result
    _check_verified(result)
    result.updated = tracking_db.update_locations(
        store_uri, {key: new for key, (_old, new) in plan.changes.items()}
    )
    if delete_source:
        for place in result.places:
            root = _root_of(router, prefix, source, place)
            result.deleted += delete_objects(root, [o.name for o in place.outcomes if o.verified])
    return result


def _copy_experiment(
    router: Router,
    prefix: str,
    experiment: str,
    result: MoveResult,
    moved_at: dt.datetime | None,
    copy: Callable[..., list[MigrateOutcome]],
) -> None:
    """Copy one moved experiment's tree from the source's places to the target's place with
    ``copy`` (:func:`migrate_places` with the run's options), leaving out (and listing as
    refused) what was written after ``moved_at``."""
    src = _tree(router, prefix, result.plan.source, experiment)
    dst = _tree(router, prefix, result.plan.target, experiment)
    newer = {p.uri: modified_after(p, moved_at) for p in src.places()} if moved_at else {}
    result.refused += [f"{uri}/{name}" for uri, names in newer.items() for name in names]
    result.places += copy(list(src.places()), dst, exclude=newer)


def _check_verified(result: MoveResult) -> None:
    """Refuse to touch the database unless every object was copied and verified."""
    failed = [o for p in result.places for o in p.outcomes if not o.verified]
    if failed:
        why = failed[0].error or failed[0].action
        raise StorageError(
            f"{len(failed)} object(s) of the experiments moved from '{result.plan.source}' to "
            f"'{result.plan.target}' were not copied and verified (first: {failed[0].name}: "
            f"{why}); the database was not changed. Fix the cause and run again."
        )


def _tree(router: Router, prefix: str, workspace: str, experiment: str) -> Target:
    logical = split_logical(join(prefix, WORKSPACES_SEGMENT, workspace, experiment))
    return router.target(logical)


def _root_of(router: Router, prefix: str, workspace: str, place: MigrateOutcome) -> Target:
    experiment = place.target.rstrip("/").rsplit("/", 1)[1]
    for candidate in _tree(router, prefix, workspace, experiment).places():
        if candidate.uri == place.source:
            return candidate
    raise ConfigError(f"{place.source} is no longer a place of workspace '{workspace}'.")
