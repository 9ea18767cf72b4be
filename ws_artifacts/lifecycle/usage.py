"""How much each workspace stores: objects and bytes per workspace, route, and experiment or
kind of content (what each child of a workspace's place is: :mod:`ws_artifacts.lifecycle.layout`).

Measured by listing, in parallel across routes and key ranges. A workspace's place
(``<route prefix>/workspaces/<ws>``) is listed flat; a listing that does not end within its
first page is split at the next ``/`` (a delimiter listing: experiment ids, then runs, then
directories), and every part after the first page's last key is listed on its own, so a big
workspace is listed by many threads at once and no key is counted twice.

Which workspaces exist: the configuration's exact entries, the names found under glob routes
(``<prefix>/workspaces/`` or the path before ``{workspace}``) and under the default
destination's ``workspaces/``, and, given a tracking server, the workspaces it knows.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from ws_artifacts.core import routing
from ws_artifacts.core.config import Config
from ws_artifacts.core.errors import (
    PathError,
    UnroutedWorkspaceError,
    WsArtifactsError,
)
from ws_artifacts.core.locations import routes_by_root
from ws_artifacts.core.paths import WORKSPACES_SEGMENT, is_valid_workspace_name, join
from ws_artifacts.core.routing import Router
from ws_artifacts.core.settings import merge_settings
from ws_artifacts.core.targets import Place, Route, Target, WorkspaceRoot
from ws_artifacts.core.urls import split_url
from ws_artifacts.lifecycle import layout
from ws_artifacts.lifecycle.usage_report import Row, Usage
from ws_artifacts.storage.base import Backend, Piece
from ws_artifacts.storage.registry import backend_for

__all__ = ["discover", "measure", "measure_scope"]

#: Listing threads of one measurement.
DEFAULT_PARALLEL = 16


# -- which workspaces, where ----------------------------------------------------------------
def discover(
    config: Config,
    destination: str,
    workspaces: Sequence[str] = (),
    *,
    known: Iterable[str] = (),
    roots: Mapping[str, WorkspaceRoot] | None = None,
) -> list[Place]:
    """The places to measure.

    Args:
        config: The configuration.
        destination: The default destination, ``ws-s3://...`` or ``s3://...``.
        workspaces: Only these workspaces (default: every one that can be found).
        known: More workspace names (e.g. the tracking server's).
        roots: The workspaces' own roots (from the database): those workspaces are measured
            at their roots.

    Returns:
        Each workspace on its route, and at the default destination too when it has a
        ``workspaces/<name>`` there (files from before it had a route, or no route at all).
    """
    router = Router(config, destination.removeprefix("ws-"), roots)
    dest = router.destination
    dest_root = split_url(dest.url)[2]
    at_destination = set(_children(dest, join(dest_root, WORKSPACES_SEGMENT)))
    if workspaces:
        names = set(workspaces)
    else:
        names = {k for k in config.workspaces if not routing._is_glob(k)}
        names |= _glob_names(config, router) | at_destination | set(known)
        names |= {n for n, root in (roots or {}).items() if routes_by_root(root.url)}
    places: list[Place] = []
    for name in sorted(n for n in names if is_valid_workspace_name(n)):
        try:
            current: Place | None = router.places(name, dest_root)[0]
        except UnroutedWorkspaceError:
            current = None
        if current is not None and not current.route.is_destination:
            places.append(current)
        if current is None or current.route.is_destination or name in at_destination:
            places.append(router.destination_place(name, dest_root))
    return places


def _glob_names(config: Config, router: Router) -> set[str]:
    """Workspace names found under the glob routes' locations."""
    found: set[str] = set()
    for pattern, entry in config.workspaces.items():
        if routing._is_glob(pattern):
            found |= workspaces_in_place(router, pattern, entry, config.defaults)
    return found


def workspaces_in_place(router: Router, pattern: str, place: Any, base: Any) -> set[str]:
    """The names of the glob route ``pattern``'s workspaces found in ``place`` (the route's
    own location, or one of its previous places), listed with ``place``'s settings over
    ``base``. A place with ``{workspace}`` in its bucket (one bucket per workspace) cannot be
    listed: name those workspaces on the command line."""
    _scheme, location, template = split_url(place.url)
    if "{workspace}" in location:
        return set()
    if "{workspace}" in template:
        static, _, _rest = template.partition("{workspace}")
        parent = static.rsplit("/", 1)[0] if "/" in static else ""
        stem = static[len(parent) :].lstrip("/")
        listing = [c[len(stem) :] for c in _children_of(place, pattern, base, parent)]
        candidates = [c for c in listing if c]
    else:
        candidates = _children_of(place, pattern, base, join(template, WORKSPACES_SEGMENT))
    found: set[str] = set()
    for name in candidates:
        if fnmatch.fnmatchcase(name, pattern) and is_valid_workspace_name(name):
            try:
                if router.route_for(name).name == pattern:
                    found.add(name)
            except (WsArtifactsError, PathError):
                continue
    return found


def _children_of(place: Any, pattern: str, base: Any, prefix: str) -> list[str]:
    scheme, location, _ = split_url(place.url)
    route = Route(
        name=pattern,
        url=f"{scheme}://{location}",
        scheme=scheme,
        location=location,
        prefix="",
        backend=place.backend_kind,
        settings=merge_settings(place, base, ""),
        workspace=None,
    )
    return _children(route, prefix)


def _children(route: Route, prefix: str) -> list[str]:
    """Names of the directories directly below ``prefix`` in ``route.location``."""
    return backend_for(route).subdirs(prefix)


# -- measuring ------------------------------------------------------------------------------
_Job = Callable[[], tuple[int, dict[str, list[int]], list[Any]]]


def measure(
    places: Sequence[Place],
    *,
    by_experiment: bool = False,
    by_kind: bool = False,
    parallel: int = DEFAULT_PARALLEL,
    progress: Callable[[int, int, int], None] | None = None,
) -> list[Row]:
    """List every place, in parallel; largest first.

    Args:
        places: From :func:`discover`.
        by_experiment: Also give each experiment's share (and the share of each other kind
            of content, :mod:`ws_artifacts.lifecycle.layout`: never an experiment named ``skills``).
        by_kind: Also give each kind's share (experiments, skills, unknown).
        parallel: Listing threads.
        progress: Called as ``progress(objects_so_far, listings_done, listings_known)``.

    Raises:
        WsArtifactsError: A listing failed (the message names the workspace and the URL).
    """
    rows = [Row(place, Usage()) for place in places]
    version = _mlflow_version() if by_experiment or by_kind else ""
    jobs: list[Any] = [_root_job(index, place) for index, place in enumerate(places)]
    objects = done = 0
    total = len(jobs)
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        pending: set[Future[Any]] = {pool.submit(job) for job in jobs}
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    index, counts, more = future.result()
                    row = rows[index]
                    for exp, (n, size) in counts.items():
                        row.total.add(n, size)
                        objects += n
                        if by_experiment or by_kind:
                            _share(row, exp, n, size, by_experiment, version)
                    pending |= {pool.submit(job) for job in more}
                    done += 1
                    total += len(more)
                if progress is not None:
                    progress(objects, done, total)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return sorted(rows, key=lambda r: (-r.total.bytes, -r.total.objects, r.place.workspace))


def _mlflow_version() -> str:
    from ws_artifacts._mlflow.environment import MLFLOW_VERSION

    return MLFLOW_VERSION


def _share(row: Row, child: str, n: int, size: int, by_experiment: bool, version: str) -> None:
    """Count ``n`` objects of ``size`` bytes of the child ``child`` to its experiment or kind."""
    kind = layout.kind_of(child, version)
    if by_experiment and kind is layout.Kind.EXPERIMENT:
        row.experiments.setdefault(child, Usage()).add(n, size)
    else:
        row.kinds.setdefault(str(kind), Usage()).add(n, size)


def measure_scope(place: Place, *, parallel: int = 8) -> Usage:
    """The usage of one place (what quotas are checked against)."""
    return measure([place], parallel=parallel)[0].total


def _root_job(index: int, place: Place) -> _Job:
    return _job(index, backend_for(place.route), place.target, None)


def _job(index: int, backend: Backend, target: Target, piece: Piece | None) -> _Job:
    """Walk one piece of a place (the whole place for None), counting what it finds to the
    experiment (the first path segment) and handing on the pieces it leaves."""

    def run() -> tuple[int, dict[str, list[int]], list[Any]]:
        found, pieces = backend.walk_split(target, piece)
        counts: dict[str, list[int]] = {}
        for name, size in found:
            slash = name.find("/")
            exp = name[:slash] if slash > 0 else ""
            entry = counts.get(exp)
            if entry is None:
                counts[exp] = [1, size]
            else:
                entry[0] += 1
                entry[1] += size
        return index, counts, [_job(index, backend, target, p) for p in pieces]

    return run
