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

import contextlib
import fnmatch
import posixpath
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from ws_artifacts.core import routing
from ws_artifacts.core.config import Config
from ws_artifacts.core.errors import (
    PathError,
    StorageError,
    UnroutedWorkspaceError,
    WsArtifactsError,
)
from ws_artifacts.core.paths import WORKSPACES_SEGMENT, is_valid_workspace_name, join
from ws_artifacts.core.routing import Place, Route, Router, Target, WorkspaceRoot, split_url
from ws_artifacts.lifecycle import layout
from ws_artifacts.lifecycle.usage_report import Row, Usage
from ws_artifacts.storage.base import is_temporary
from ws_artifacts.storage.registry import backend_for

__all__ = ["discover", "measure", "measure_scope"]

#: Listing threads of one measurement.
DEFAULT_PARALLEL = 16
#: Keys asked for in a listing's first page; a listing that does not end there is split.
PAGE_KEYS = 1000


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
        names |= {n for n, root in (roots or {}).items() if routing.routes_by_root(root.url)}
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
        settings=routing._merge(place, base, ""),
        workspace=None,
    )
    return _children(route, prefix)


def _children(route: Route, prefix: str) -> list[str]:
    """Names of the directories directly below ``prefix`` in ``route.location``."""
    backend: Any = backend_for(route)
    if route.backend == "s3":
        names = []
        with _boto_errors(route, prefix, "list"):
            client = _discovery_client(backend, route)
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=backend.bucket, Prefix=prefix + "/" if prefix else "", Delimiter="/"
            )
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    names.append(common["Prefix"].rstrip("/").rsplit("/", 1)[-1])
        return names
    path = _fs_path(backend, prefix)
    try:
        items = backend.fs.ls(path, detail=True)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as err:
        raise StorageError(f"list failed at {route.url}/{prefix}: {type(err).__name__}.") from None
    return [
        item["name"].rstrip("/").rsplit("/", 1)[-1] for item in items if item["type"] == "directory"
    ]


def _discovery_client(backend: Any, route: Route) -> Any:
    from ws_artifacts.storage.clients import client_for

    return client_for(route.settings, backend.bucket, "")


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
    from ws_artifacts._mlflow import MLFLOW_VERSION

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
    backend: Any = backend_for(place.route)
    target = place.target
    if place.route.backend == "s3":
        # A workspace's place nearly always holds experiment directories: split at once.
        return lambda: _s3_job(index, backend, target, target.key + "/", "", split=True)
    return lambda: _fs_dir_job(index, backend, target, _fs_path(backend, target.key), None)


def _add(counts: dict[str, list[int]], exp: str, size: int) -> None:
    entry = counts.get(exp)
    if entry is None:
        counts[exp] = [1, size]
    else:
        entry[0] += 1
        entry[1] += size


def _s3_job(
    index: int, backend: Any, target: Target, prefix: str, start_after: str, split: bool = False
) -> tuple[int, dict[str, list[int]], list[Any]]:
    """One page of ``prefix`` after ``start_after``; when there is more, split at the next
    ``/`` and hand each part after this page's last key to a job of its own (``split``: split
    without reading a first page)."""
    cut = len(target.key) + 1
    counts: dict[str, list[int]] = {}
    with _boto_errors(target.route, prefix, "list", target.workspace):
        client = backend.client(target)
        last = start_after
        if not split:
            args: dict[str, Any] = {"Bucket": backend.bucket, "Prefix": prefix}
            args["MaxKeys"] = PAGE_KEYS
            if start_after:
                args["StartAfter"] = start_after
            page = client.list_objects_v2(**args)
            contents = page.get("Contents", [])
            for obj in contents:
                _add(counts, _experiment(obj["Key"], cut), int(obj["Size"]))
            if not page.get("IsTruncated") or not contents:
                return index, counts, []
            last = contents[-1]["Key"]
        more: list[Any] = []
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=backend.bucket, Prefix=prefix, Delimiter="/"
        )
        for listing in pages:
            for obj in listing.get("Contents", []):
                if obj["Key"] > last:
                    _add(counts, _experiment(obj["Key"], cut), int(obj["Size"]))
            for common in listing.get("CommonPrefixes", []):
                child = common["Prefix"]
                if last and last.startswith(child):
                    more.append(_bind_s3(index, backend, target, child, last))
                elif child > last:
                    more.append(_bind_s3(index, backend, target, child, ""))
                # else: every key of child sorts before last, so this page counted it
    return index, counts, more


def _bind_s3(index: int, backend: Any, target: Target, prefix: str, after: str) -> _Job:
    return lambda: _s3_job(index, backend, target, prefix, after)


def _experiment(key: str, cut: int) -> str:
    rel = key[cut:]
    slash = rel.find("/")
    return rel[:slash] if slash > 0 else ""


def _fs_path(backend: Any, key: str) -> str:
    joined = join(backend.route.location, key)
    return "/" + joined if backend.local else joined


def _fs_dir_job(
    index: int, backend: Any, target: Target, path: str, experiment: str | None
) -> tuple[int, dict[str, list[int]], list[Any]]:
    """The workspace's directory: its files, and one job per experiment directory."""
    counts: dict[str, list[int]] = {}
    more: list[Any] = []
    for item in _fs_call(target, lambda: backend.fs.ls(path, detail=True), []):
        name = item["name"].rstrip("/").rsplit("/", 1)[-1]
        if is_temporary(name):  # an upload in flight on an fsspec route
            continue
        if item["type"] == "directory":
            child = posixpath.join(path, name)
            more.append(_bind_fs(index, backend, target, child, experiment or name))
        else:
            _add(counts, experiment or "", int(item.get("size") or 0))
    return index, counts, more


def _bind_fs(index: int, backend: Any, target: Target, path: str, experiment: str) -> _Job:
    return lambda: _fs_tree_job(index, backend, target, path, experiment)


def _fs_tree_job(
    index: int, backend: Any, target: Target, path: str, experiment: str
) -> tuple[int, dict[str, list[int]], list[Any]]:
    counts: dict[str, list[int]] = {}
    found = _fs_call(target, lambda: backend.fs.find(path, detail=True), {})
    for name, item in found.items():
        if item["type"] != "directory" and not is_temporary(name.rsplit("/", 1)[-1]):
            _add(counts, experiment, int(item.get("size") or 0))
    return index, counts, []


def _fs_call(target: Target, call: Callable[[], Any], empty: Any) -> Any:
    try:
        return call()
    except (FileNotFoundError, NotADirectoryError):
        return empty
    except OSError as err:
        raise StorageError(
            f"list failed for workspace '{target.workspace}' at {target.uri}: "
            f"{type(err).__name__}; check the route's url and storage_options."
        ) from None


@contextlib.contextmanager
def _boto_errors(
    route: Route, prefix: str, operation: str, workspace: str | None = None
) -> Iterator[None]:
    """Translate botocore errors of a listing through the one table."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError) as err:
        from ws_artifacts.core.errors import translate_boto_error
        from ws_artifacts.storage.clients import describe_credentials

        raise translate_boto_error(
            err,
            workspace=workspace,
            location=f"s3://{join(route.location, prefix)}",
            operation=operation,
            bucket=route.location,
            credentials=describe_credentials(route.settings),
        ) from err
