"""Orphans: objects under ``workspaces/<ws>/`` whose workspace, experiment or skill version is
gone. What each child is, and who owns it, comes from :mod:`ws_artifacts.lifecycle.layout`; a
child it does not know is never an orphan (listed as "unknown, kept", with its size).

The truth is MLflow's: every workspace and every experiment id (active or deleted, since a
deleted experiment can still be restored), read through MLflow's client on the server's REST
API or on the tracking database (:func:`ws_artifacts._mlflow.tracking_client.tracking_truth`). The
stores are
scanned where routing puts workspaces (:mod:`ws_artifacts.lifecycle.discovery`): the
destination's ``workspaces/``, each route's prefix, and, for routes whose URL ends in
``{workspace}``, the directories beside it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ws_artifacts.core.paths import join
from ws_artifacts.core.routing import Router
from ws_artifacts.core.targets import Place
from ws_artifacts.lifecycle import layout
from ws_artifacts.lifecycle.discovery import discover_places
from ws_artifacts.lifecycle.quarantine import quarantine_place
from ws_artifacts.storage.base import Backend
from ws_artifacts.storage.registry import backend_for

__all__ = [
    "SKILL_MIN_AGE",
    "Orphan",
    "OrphanScan",
    "SkillPaths",
    "find_orphans",
    "scan_orphans",
    "workspace_experiments",
]


@dataclass
class Orphan:
    """One ``workspaces/<ws>/<child>`` with no owner in the tracking database (or, ``kept``,
    one that nobody knows). ``child`` is a path below the place: an experiment id, a skill
    upload ``skills/<name>/<token>``, or an unknown child."""

    workspace: str
    child: str
    reason: str
    uri: str
    keys: list[tuple[str, int]] = field(default_factory=list)
    #: The workspace that now has an experiment of this id (``mlflow db move-resources`` moved
    #: it there, or the id was reused): held back from quarantine, for ``migrate --moved-from``.
    moved_to: str | None = None
    #: What it is (:class:`ws_artifacts.lifecycle.layout.Kind`): experiment, skills or unknown.
    kind: str = "experiment"
    #: Listed with its size but never quarantined: content nobody knows (``unknown, kept``).
    kept: bool = False

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
            "child": self.child,
            "experiment": self.child,  # the name of this field before skills existed
            "reason": self.reason,
            "uri": self.uri,
            "objects": self.objects,
            "bytes": self.bytes,
            "moved_to": self.moved_to,
            "kind": self.kind,
            "kept": self.kept,
            "keys": [{"key": k, "size": s} for k, s in self.keys],
        }


#: Reads the content paths of every skill version
#: (:func:`ws_artifacts._mlflow.tracking_client.skill_truth`), once,
#: after listing.
SkillPaths = Callable[[], Mapping[str, set[str]] | None]


#: How old (seconds) a skill upload must be before ``orphans`` may take it: MLflow uploads a
#: skill version's content, then commits the version; an hour covers any registration.
SKILL_MIN_AGE = 3600.0


def find_orphans(
    places: Iterable[Place],
    truth: Mapping[str, set[str]],
    skills: SkillPaths | None = None,
    *,
    mlflow_version: str | None = None,
    skill_min_age: float = SKILL_MIN_AGE,
    now: Callable[[], float] = time.time,
) -> list[Orphan]:
    """Every child of a place whose owner is gone, and every child nobody knows (kept).

    What a child is comes from :mod:`ws_artifacts.lifecycle.layout`. An experiment id directory is
    an
    orphan when its workspace does not exist or the id is not one of that workspace's
    experiments (in a live workspace, an id that is another workspace's experiment is marked
    ``moved_to`` it). Skill content (``skills/...``) is an orphan per upload, when no existing
    skill version names it; ``skills`` is read after the listing, so an upload whose version
    was committed meanwhile is seen as live; MLflow writes a version's content before its row,
    so an upload younger than ``skill_min_age`` seconds (or whose age the store does not tell)
    may belong to a registration in progress and is kept. Anything else is reported ``kept``,
    never taken.

    Args:
        places: The places to scan.
        truth: ``{workspace: {experiment id, ...}}`` for every existing workspace.
        skills: Reads ``{workspace: {skill content path, ...}}``; None, or a reader returning
            None, keeps every skill content (unknown, kept).
        mlflow_version: The layout to apply (default: the installed MLflow's).
        skill_min_age: Seconds a skill upload must be old before it can be an orphan.
        now: The clock (seconds since the epoch) that age is measured with.
    """
    version = mlflow_version or _mlflow_version()
    owners = {exp: ws for ws, ids in truth.items() for exp in ids}  # experiment ids are global
    orphans: list[Orphan] = []
    skill_places: list[_SkillContent] = []
    for place in places:
        orphans += _place_orphans(place, truth.get(place.workspace), owners, version, skill_places)
    if skill_places:
        live = skills() if skills is not None else None
        for place, store, keys in skill_places:
            ages = _Ages(store, place.base, skill_min_age, now())
            orphans.extend(_skill_orphans(place, store, keys, live, ages))
    return sorted(orphans, key=lambda o: (o.workspace, o.kept, o.child))


_UNKNOWN = "unknown, kept"
#: A live workspace's skill content, judged once every place is listed: (place, store, keys).
_SkillContent = tuple[Place, Backend, list[tuple[str, int]]]


def _place_orphans(
    place: Place,
    known: set[str] | None,
    owners: Mapping[str, str],
    version: str,
    skill_places: list[_SkillContent],
) -> list[Orphan]:
    """The orphans among ``place``'s children (``known``: its workspace's experiment ids, None
    when it does not exist); a live workspace's skill content goes to ``skill_places``."""
    store = backend_for(place.route)
    orphans: list[Orphan] = []
    for child in store.children(place.base, place.scope):
        kind = layout.kind_of(child, version)
        if kind is layout.Kind.EXPERIMENT and known is not None and child in known:
            continue
        keys = _keys(store, place.base, join(place.scope, child))
        if not keys:
            continue
        if kind is layout.Kind.UNKNOWN:
            orphans.append(_orphan(place, store, child, keys, kind, _UNKNOWN))
        elif kind is layout.Kind.SKILLS and known is not None:
            skill_places.append((place, store, keys))
        elif kind is layout.Kind.SKILLS:
            orphans.append(_orphan(place, store, child, keys, kind, "workspace does not exist"))
        else:
            orphans.append(_experiment_orphan(place, store, child, keys, known, owners))
    return orphans


@dataclass
class _Ages:
    """Whether a skill upload is old enough to be judged (see :data:`SKILL_MIN_AGE`)."""

    store: Backend
    base: str
    min_age: float
    now: float

    def too_new(self, prefix: str) -> bool:
        if self.min_age <= 0:
            return False
        newest = self.store.newest(self.base, prefix)
        return newest is None or self.now - newest < self.min_age


def _mlflow_version() -> str:
    from ws_artifacts._mlflow.environment import MLFLOW_VERSION

    return MLFLOW_VERSION


def _keys(store: Backend, base: str, prefix: str) -> list[tuple[str, int]]:
    keys = list(store.walk_keys(base, prefix))
    if not keys:
        size = store.key_size(base, prefix)
        keys = [(prefix, size)] if size is not None else []
    return keys


def _orphan(
    place: Place,
    store: Backend,
    child: str,
    keys: list[tuple[str, int]],
    kind: layout.Kind | str,
    reason: str,
    moved_to: str | None = None,
) -> Orphan:
    kept = reason == _UNKNOWN
    uri = store.key_uri(join(place.scope, child))
    return Orphan(place.workspace, child, reason, uri, keys, moved_to, str(kind), kept)


def _experiment_orphan(
    place: Place,
    store: Backend,
    child: str,
    keys: list[tuple[str, int]],
    known: set[str] | None,
    owners: Mapping[str, str],
) -> Orphan:
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
    return _orphan(place, store, child, keys, layout.Kind.EXPERIMENT, reason, moved_to)


def _skill_orphans(
    place: Place,
    store: Backend,
    keys: list[tuple[str, int]],
    live: Mapping[str, set[str]] | None,
    ages: _Ages,
) -> list[Orphan]:
    """The uploads under ``skills/`` that no existing version names (one orphan each), and
    what is not of an upload's shape, or cannot be judged (``live`` None), as kept."""
    cut = len(place.scope) + 1
    units: dict[str, list[tuple[str, int]]] = {}
    unknown: list[tuple[str, int]] = []
    for key, size in keys:
        unit = layout.skill_unit(key[cut:]) if live is not None else None
        if unit is None:
            unknown.append((key, size))
        else:
            units.setdefault(unit.path, []).append((key, size))
    paths = (live or {}).get(place.workspace, set())
    found: list[Orphan] = []
    for path, unit_keys in sorted(units.items()):
        unit = layout.skill_unit(unit_keys[0][0][cut:])
        if unit is None or layout.skill_unit_is_live(unit, paths):
            continue
        if ages.too_new(join(place.scope, path)):
            reason = (
                f"uploaded less than {ages.min_age:.0f} s ago (a registration of skill "
                f"{unit.qualified_name} may be in progress), kept"
            )
            young = _orphan(place, store, path, unit_keys, layout.Kind.SKILLS, reason)
            found.append(dataclasses.replace(young, kept=True))
            continue
        reason = f"no version of skill {unit.qualified_name} in workspace {place.workspace} has it"
        found.append(_orphan(place, store, path, unit_keys, layout.Kind.SKILLS, reason))
    if unknown:
        found.append(_orphan(place, store, layout.SKILLS, unknown, layout.Kind.SKILLS, _UNKNOWN))
    return found


def workspace_experiments(tracking_uri: str) -> dict[str, set[str]]:
    """Every workspace and the ids of all its experiments (active and deleted), read from the
    tracking server (URL) or database (URI): ``{workspace: {experiment_id, ...}}``."""
    from ws_artifacts._mlflow.tracking_client import tracking_truth

    return tracking_truth(tracking_uri)


@dataclass
class OrphanScan:
    """What ``orphans`` found, and what it moved to quarantine.

    Objects of an experiment moved to another workspace are migrate's to copy, not orphans'
    to take away: ``held`` (listed, never quarantined unless ``include_moved``). Unknown
    content is ``kept``: listed and always kept.
    """

    found: list[Orphan]
    include_moved: bool = False
    quarantined: bool = False

    @property
    def kept(self) -> list[Orphan]:
        """Content nobody knows: listed, never quarantined."""
        return [o for o in self.found if o.kept]

    @property
    def held(self) -> list[Orphan]:
        """Objects of ids that are now another workspace's experiments, held back."""
        return [
            o
            for o in self.found
            if not o.kept and o.moved_to is not None and not self.include_moved
        ]

    @property
    def movable(self) -> list[Orphan]:
        """What ``--quarantine --yes`` moves."""
        return [o for o in self.found if not o.kept and (o.moved_to is None or self.include_moved)]

    def as_dict(self, *, dry_run: bool) -> dict[str, object]:
        """The JSON form (``orphans --json``)."""
        return {
            "quarantined": self.quarantined,
            "dry_run": dry_run,
            "orphans": [o.as_dict() for o in self.found],
            "objects": sum(o.objects for o in self.found if not o.kept),
            "bytes": sum(o.bytes for o in self.found if not o.kept),
            "held_back": sum(o.objects for o in self.held),
            "kept": sum(o.objects for o in self.kept),
        }


def scan_orphans(
    router: Router,
    destination: str,
    tracking_uri: str,
    experiments: Mapping[str, set[str]],
    *,
    quarantine: bool = False,
    include_moved: bool = False,
    skill_min_age: float = SKILL_MIN_AGE,
) -> OrphanScan:
    """Find the orphans of every place (``experiments``: :func:`workspace_experiments` of
    ``tracking_uri``) and, with ``quarantine``, move the movable ones to quarantine."""
    from ws_artifacts._mlflow.tracking_client import skill_truth

    places = discover_places(router, destination, set(experiments))
    found = find_orphans(
        places,
        experiments,
        lambda: skill_truth(tracking_uri, experiments),
        skill_min_age=skill_min_age,
    )
    scan = OrphanScan(found, include_moved, quarantined=quarantine)
    if quarantine:
        movable = scan.movable
        by_place = {p.workspace: p for p in places}
        for name in sorted({o.workspace for o in movable}):
            children = [o.child for o in movable if o.workspace == name]
            quarantine_place(by_place[name], "orphans", only=children)
    return scan
