"""Quarantine: a workspace's artifacts moved out of reach, kept, listed, restored or purged.

A workspace's *place* is ``<base>/workspaces/<ws>`` on its route (``<base>`` is the route's key
prefix, or the destination's root for workspaces without a route). Its quarantine is beside it::

    <base>/.ws-quarantine/<ws>/<UTC time>/workspaces/<ws>/<what was in the place>
    <base>/.ws-quarantine/<ws>/<UTC time>/ws-quarantine.json      (the manifest)

No request can reach it, whatever workspace it runs in (the default workspace's legacy paths
included): routing refuses every target whose key or scope has a segment that reads as
``.ws-quarantine`` in any spelling
(:func:`ws_artifacts.core.quarantine_names.in_quarantine`), listings and tree
downloads leave it out, a tree delete that holds any of it is refused whole, and the guard
refuses such paths and locations before MLflow handles them.

Moves are copy, verify (size), then delete the source: a failure at any point loses nothing,
and running the same move again finishes it (objects already copied are not copied twice). The
manifest says ``moving`` until every object is across, then ``quarantined``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from ws_artifacts.core.errors import ConfigError, StorageError, WsArtifactsError
from ws_artifacts.core.paths import (
    WORKSPACES_SEGMENT,
    is_valid_workspace_name,
    join,
)
from ws_artifacts.core.quarantine_names import QUARANTINE_SEGMENT
from ws_artifacts.core.routing import Router
from ws_artifacts.core.targets import Place, Route
from ws_artifacts.core.urls import split_url
from ws_artifacts.storage.base import Backend
from ws_artifacts.storage.registry import backend_for

__all__ = [
    "MANIFEST",
    "QUARANTINE_SEGMENT",
    "Entry",
    "Suspicious",
    "list_entries",
    "move",
    "owner_place",
    "parse_age",
    "place_of",
    "places_of",
    "purge",
    "quarantine_place",
    "restore",
]

_logger = logging.getLogger(__name__)

MANIFEST = "ws-quarantine.json"
_STAMP = "%Y%m%dT%H%M%SZ"
_THREADS = 8


def place_of(router: Router, destination: str, workspace: str) -> Place:
    """The current place of ``workspace`` under ``router`` (destination:
    ``scheme://location/root``, without ``ws-``). Raises what routing raises (e.g. an unrouted
    workspace under ``deny``)."""
    return places_of(router, destination, workspace)[0]


def places_of(router: Router, destination: str, workspace: str) -> list[Place]:
    """The workspace's current place, then one per previous place of its route (reads fall
    back to those, so deletion and re-creation empty them too)."""
    return list(router.places(workspace, split_url(destination)[2]))


def owner_place(entry: Entry, places: Iterable[Place]) -> Place | None:
    """The place among ``places`` that ``entry`` was quarantined from."""
    for place in places:
        if (place.route.url, place.base) == (entry.route_url, entry.base):
            return place
    return None


@dataclass
class Entry:
    """One quarantined incarnation of a workspace (what its manifest says)."""

    workspace: str
    deleted_at: str
    reason: str
    state: str
    route_url: str
    base: str
    stamp: str
    objects: int = 0
    bytes: int = 0

    @property
    def root(self) -> str:
        """The entry's key prefix: ``<base>/.ws-quarantine/<ws>/<stamp>``."""
        return join(self.base, QUARANTINE_SEGMENT, self.workspace, self.stamp)

    @property
    def data(self) -> str:
        """Where the objects are: ``<root>/workspaces/<ws>``."""
        return join(self.root, WORKSPACES_SEGMENT, self.workspace)

    def as_dict(self) -> dict[str, object]:
        """The JSON form (``quarantine list --json``, the manifest)."""
        return {**asdict(self), "root": self.root}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _write_manifest(store: Backend, entry: Entry) -> None:
    fields = {k: v for k, v in entry.as_dict().items() if k != "root"}
    store.write_bytes(entry.base, join(entry.root, MANIFEST), json.dumps(fields, indent=2).encode())


@dataclass(frozen=True)
class Suspicious:
    """A manifest that is not trusted: unreadable, or its contents do not match its key."""

    uri: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        """For ``--json`` and messages."""
        return {"manifest": self.uri, "reason": self.reason}


#: Manifests found untrusted in this process, for the CLI to report (cleared by it).
suspicious: list[Suspicious] = []


def _read_manifest(store: Backend, base: str, workspace: str, stamp: str) -> Entry | None:
    """The entry whose manifest is at ``<base>/.ws-quarantine/<workspace>/<stamp>/``, trusted
    only when what it says matches that key and this store: anyone who could write a manifest
    elsewhere must not steer purge or restore to another entry. Untrusted ones are logged,
    kept in :data:`suspicious` and left alone (None)."""
    key = join(base, QUARANTINE_SEGMENT, workspace, stamp, MANIFEST)
    raw = store.read_bytes(base, key)
    if raw is None:
        return None
    try:
        entry = Entry(**json.loads(raw))
        problem = _mismatch(entry, store.route.url, base, workspace, stamp)
    except (ValueError, TypeError):
        entry, problem = None, "it is not a readable manifest"
    if problem:
        found = Suspicious(store.key_uri(key), problem)
        suspicious.append(found)
        _logger.warning("suspicious quarantine manifest at %s: %s; ignored", found.uri, problem)
        return None
    return entry


def _mismatch(entry: Entry, route_url: str, base: str, workspace: str, stamp: str) -> str:
    """Why ``entry`` does not match the key it was found at (empty when it does)."""
    texts = (entry.workspace, entry.deleted_at, entry.state, entry.route_url, entry.base)
    if not all(isinstance(t, str) for t in (*texts, entry.stamp, entry.reason)):
        return "a field that should be text is not"
    if not all(isinstance(n, int) and n >= 0 for n in (entry.objects, entry.bytes)):
        return "its object or byte count is not a whole number"
    if entry.workspace != workspace or not is_valid_workspace_name(workspace):
        return f"it names workspace {entry.workspace!r} but lies under {workspace!r}"
    if entry.stamp != stamp:
        return f"it names time stamp {entry.stamp!r} but lies under {stamp!r}"
    if (entry.route_url, entry.base) != (route_url, base):
        return f"it names place {entry.route_url!r} {entry.base!r}, not the one it lies in"
    if entry.state not in ("moving", "quarantined"):
        return f"its state {entry.state!r} is not 'moving' or 'quarantined'"
    try:
        moment = deleted_at(entry)
    except ValueError:
        return f"its time {entry.deleted_at!r} is not an ISO time"
    if moment.tzinfo is None or moment.strftime(_STAMP) != stamp.split("-", 1)[0]:
        return f"its time {entry.deleted_at!r} does not match its time stamp {stamp!r}"
    return ""


def entries_of(place: Place) -> list[Entry]:
    """The trusted quarantine entries of ``place``'s workspace on its route, oldest first."""
    store = backend_for(place.route)
    prefix = join(place.base, QUARANTINE_SEGMENT, place.workspace)
    found = []
    for stamp in store.children(place.base, prefix):
        entry = _read_manifest(store, place.base, place.workspace, stamp)
        if entry is not None:
            found.append(entry)
    return sorted(found, key=lambda e: e.stamp)


def move(
    store: Backend, base: str, pairs: Iterable[tuple[str, str, int]], workspace: str
) -> tuple[int, int]:
    """Move objects within one store's area ``base``: copy each (unless its copy is already
    there with the same size), check the copy's size, and only then delete the sources, in
    batches.

    Returns:
        (objects, bytes) moved.

    Raises:
        StorageError: A copy came out with another size (the source is kept).
        WsArtifactsError: Any store failure; sources of unverified copies are kept.
    """
    todo = list(pairs)

    def one(item: tuple[str, str, int]) -> str:
        src, dst, size = item
        if store.key_size(base, dst) != size:
            store.copy_key(base, src, dst, size, workspace)
            copied = store.key_size(base, dst)
            if copied != size:
                raise StorageError(
                    f"copy of {store.key_uri(src)} to {store.key_uri(dst)} has {copied} bytes, not "
                    f"{size}; the source was kept. Run the command again."
                )
        return src

    verified: list[str] = []
    with ThreadPoolExecutor(max_workers=_THREADS) as pool:
        futures = [pool.submit(one, item) for item in todo]
        error: BaseException | None = None
        for future in futures:
            try:
                verified.append(future.result())
            except WsArtifactsError as err:
                error = error or err
    store.delete_keys(
        base, verified, workspace
    )  # only what was verified, even when another copy failed
    if error is not None:
        raise error
    return len(todo), sum(size for _, _, size in todo)


def quarantine_place(
    place: Place,
    reason: str,
    *,
    only: Iterable[str] | None = None,
    now: dt.datetime | None = None,
) -> Entry | None:
    """Move everything in ``place`` (or only what is below the paths named in ``only``, e.g.
    experiment ids or ``skills/<name>/<token>``) into a new quarantine entry, or into an
    unfinished one of the same workspace, so an interrupted move resumes. None when there is
    nothing to move.
    """
    store = backend_for(place.route)
    objects = list(store.walk_keys(place.base, place.scope))
    if only is not None:
        chosen = [path.strip("/") for path in only]
        objects = [o for o in objects if _below_any(o[0][len(place.scope) + 1 :], chosen)]
    unfinished = [e for e in entries_of(place) if e.state == "moving"]
    if not objects and not unfinished:
        return None
    if unfinished:
        entry = unfinished[-1]
    else:
        moment = now or _now()
        entry = Entry(
            workspace=place.workspace,
            deleted_at=moment.isoformat().replace("+00:00", "Z"),
            reason=reason,
            state="moving",
            route_url=place.route.url,
            base=place.base,
            stamp=_free_stamp(place, moment),
        )
        _write_manifest(store, entry)
    _logger.info(
        "quarantining workspace=%s: %d object(s) from %s to %s",
        place.workspace,
        len(objects),
        store.key_uri(place.scope),
        store.key_uri(entry.data),
    )
    pairs = [(key, join(entry.data, key[len(place.scope) + 1 :]), size) for key, size in objects]
    count, size = move(store, place.base, pairs, place.workspace)
    entry.objects, entry.bytes = _totals(store, entry)
    entry.state = "quarantined"
    _write_manifest(store, entry)
    _logger.info("quarantined workspace=%s: %d object(s), %d byte(s)", entry.workspace, count, size)
    return entry


def _below_any(relative: str, paths: list[str]) -> bool:
    return any(relative == p or relative.startswith(p + "/") for p in paths if p)


def _free_stamp(place: Place, moment: dt.datetime) -> str:
    taken = {e.stamp for e in entries_of(place)}
    stamp, n = moment.strftime(_STAMP), 1
    while stamp in taken:
        n += 1
        stamp = f"{moment.strftime(_STAMP)}-{n}"
    return stamp


def _totals(store: Backend, entry: Entry) -> tuple[int, int]:
    sizes = [size for _, size in store.walk_keys(entry.base, entry.data)]
    return len(sizes), sum(sizes)


def restore(entry: Entry, place: Place) -> int:
    """Move a quarantined entry back into ``place`` and drop its manifest.

    Raises:
        ConfigError: The workspace's place is not empty (nothing is moved then).
    """
    store = backend_for(place.route)
    if place.route.url != entry.route_url or place.base != entry.base:
        raise ConfigError(
            f"Workspace '{entry.workspace}' is now routed to {place.uri}, but its quarantine "
            f"from {entry.deleted_at} is at {store.key_uri(entry.root)}; restore it with the "
            "configuration it was quarantined under, or copy it by hand."
        )
    if next(iter(store.walk_keys(place.base, place.scope)), None) is not None:
        raise ConfigError(
            f"Cannot restore workspace '{entry.workspace}' (quarantined {entry.deleted_at}): "
            f"its place {place.uri} is not empty. Quarantine or remove what is there first "
            "(ws-artifacts orphans --quarantine, or delete the workspace again)."
        )
    objects = list(store.walk_keys(place.base, entry.data))
    pairs = [(key, join(place.scope, key[len(entry.data) + 1 :]), size) for key, size in objects]
    count, _ = move(store, place.base, pairs, entry.workspace)
    store.delete_keys(place.base, [join(entry.root, MANIFEST)])
    _logger.info("restored workspace=%s: %d object(s) to %s", entry.workspace, count, place.uri)
    return count


def purge(entry: Entry, store: Backend) -> int:
    """Delete a quarantined entry's objects, then its manifest. Returns the objects deleted."""
    keys = [key for key, _ in store.walk_keys(entry.base, entry.data)]
    store.delete_keys(entry.base, keys, entry.workspace)
    store.delete_keys(entry.base, [join(entry.root, MANIFEST)])
    _logger.info("purged quarantine of workspace=%s from %s", entry.workspace, entry.deleted_at)
    return len(keys)


def list_entries(bases: Iterable[tuple[Route, str]]) -> Iterator[Entry]:
    """Every trusted quarantine entry found under the given (route, base) pairs (untrusted
    manifests go to :data:`suspicious`)."""
    seen: set[tuple[str, str]] = set()
    for route, base in bases:
        if (route.url, base) in seen:
            continue
        seen.add((route.url, base))
        store = backend_for(route)
        top = join(base, QUARANTINE_SEGMENT)
        for workspace in store.children(base, top):
            for stamp in store.children(base, join(top, workspace)):
                entry = _read_manifest(store, base, workspace, stamp)
                if entry is not None:
                    yield entry


_AGE = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ``2w``, ``90m``, ``45s`` (or combined: ``1d12h``) as a time span.

    Raises:
        ConfigError: Not such a span.
    """
    cleaned = text.strip().lower()
    parts = _AGE.findall(cleaned)
    if not parts or "".join(n + u for n, u in parts) != cleaned:
        raise ConfigError(
            f"--older-than {text!r} is not a time span; use e.g. 30d, 12h, 2w or 1d12h."
        )
    return dt.timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))


def deleted_at(entry: Entry) -> dt.datetime:
    """When the entry was quarantined, as an aware UTC datetime."""
    return dt.datetime.fromisoformat(entry.deleted_at.replace("Z", "+00:00"))
