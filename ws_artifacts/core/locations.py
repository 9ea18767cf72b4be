"""Approved storage locations: may a workspace use this ``default_artifact_root``? (pure)

An operator approves locations in the configuration file (``locations:``); a workspace manager
sets the workspace's ``default_artifact_root`` through MLflow's own API or UI, and the workspace
is then routed to ``<root>/workspaces/<workspace>/...`` with the location's settings
(:func:`ws_artifacts.core.routing.root_route`). :func:`check_root` decides whether a root is
acceptable. A root is refused when it:

* is not a plain, canonical URL (no user, port, query, fragment, percent-escape, ``.`` or
  ``..`` segment, repeated slash, upper-case scheme or host, whitespace or control character);
* lies in no approved location;
* contains a ``workspaces`` segment (it would sit inside some workspace's layout);
* belongs to a workspace whose exact route is in the file (that route wins, the root would do
  nothing);
* is nested in, or is a prefix of, another root or route prefix: roots are equal (the places
  ``<root>/workspaces/<a>`` and ``<root>/workspaces/<b>`` are disjoint) or disjoint. Other roots
  are every place some other workspace has: exact file routes and their previous places (never
  shared, not even an equal root), glob routes (the part before ``{workspace}``, never shared),
  the server's default destinations, and the current and previous roots of every other
  workspace in MLflow's database.

No I/O and no MLflow import happen here.
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse
from collections.abc import Mapping, Sequence

from ws_artifacts.core.config import Config, LocationConfig
from ws_artifacts.core.errors import PathError, StorageLocationError
from ws_artifacts.core.paths import WORKSPACES_SEGMENT, is_within, normalize, reads_as_workspaces
from ws_artifacts.core.quarantine_names import QUARANTINE_SEGMENT, in_quarantine
from ws_artifacts.core.targets import WorkspaceRoot
from ws_artifacts.core.urls import split_url

__all__ = ["approved_locations", "check_root", "find_location", "routes_by_root"]

_MAX_ROOT_LENGTH = 1024
_HOST = re.compile(r"[a-z0-9][a-z0-9.-]*")


def approved_locations(config: Config | None) -> str:
    """The approved locations, for messages: ``name (url), ...``."""
    if config is None or not config.locations:
        return "none (the operator has approved no storage locations)"
    return ", ".join(f"{name} ({entry.url})" for name, entry in config.locations.items())


def check_root(
    config: Config | None,
    workspace: str,
    url: str,
    *,
    destinations: Sequence[str] = (),
    roots: Mapping[str, WorkspaceRoot] | None = None,
) -> str:
    """Refuse ``url`` as ``workspace``'s ``default_artifact_root`` unless it may be used.

    Args:
        config: The ws-artifacts configuration (None: nothing is approved).
        workspace: The workspace being created or updated.
        url: The root it asks for.
        destinations: The server's ``ws-`` destinations (their layouts are other places).
        roots: Every workspace's root from MLflow's database (the workspace's own is skipped).

    Returns:
        ``url`` without a trailing slash (the form stored).

    Raises:
        StorageLocationError: Why, and the approved locations to pick from.
    """
    try:
        return _check(config, workspace, url, destinations, roots or {})
    except _Refused as err:
        shown = "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in url[:300])
        raise StorageLocationError(
            f"Refused to set the default_artifact_root of workspace '{workspace}' to "
            f"'{shown}': {err} Use a location inside one of the approved storage locations: "
            f"{approved_locations(config)}."
        ) from None


class _Refused(Exception):
    pass


def _check(
    config: Config | None,
    workspace: str,
    url: str,
    destinations: Sequence[str],
    roots: Mapping[str, WorkspaceRoot],
) -> str:
    scheme, location, prefix = _canonical(url)
    if config is None or not config.locations:
        raise _Refused("no storage location is approved on this server.")
    found = find_location(config, url)
    if found is None:
        raise _Refused("it is not inside an approved storage location.")
    if any(reads_as_workspaces(segment) for segment in prefix.split("/")):
        raise _Refused(f"it contains a '{WORKSPACES_SEGMENT}' segment (a workspace's layout).")
    if in_quarantine(prefix):
        raise _Refused(f"it names the quarantine area ('{QUARANTINE_SEGMENT}'), nobody's place.")
    if workspace in config.workspaces:
        raise _Refused(
            f"workspace '{workspace}' has its own route in the ws-artifacts configuration "
            "file, which wins over the workspace's root; ask the operator to remove it first."
        )
    for owner, (o_scheme, o_location, o_prefix, shareable) in _other_roots(
        config, workspace, destinations, roots
    ):
        if (o_scheme, o_location) != (scheme, location):
            continue
        if prefix == o_prefix and shareable:
            continue
        if is_within(prefix, o_prefix) or is_within(o_prefix, prefix):
            raise _Refused(f"it overlaps the place of {owner}.")
    return url.rstrip("/")


def _canonical(url: str) -> tuple[str, str, str]:
    """The URL's scheme, location and prefix, refusing anything not written plainly."""
    if not url or len(url) > _MAX_ROOT_LENGTH:
        raise _Refused(f"a root is 1 to {_MAX_ROOT_LENGTH} characters.")
    if any(unicodedata.category(ch)[0] in "CZ" for ch in url) or not url.isascii():
        raise _Refused("it contains whitespace, a control or a non-ASCII character.")
    if any(ch in url for ch in "%?#@\\{}"):
        raise _Refused("a root may not contain %, ?, #, @, \\ or braces.")
    parts = urllib.parse.urlsplit(url)
    scheme, location, path = parts.scheme, parts.netloc, parts.path
    if not scheme or url[: len(scheme) + 3] != f"{scheme}://":
        raise _Refused("it is not a URL of the form scheme://bucket/prefix.")
    if location and not _HOST.fullmatch(location):
        raise _Refused("the bucket or host must be lower-case letters, digits, dots and hyphens.")
    stripped = path.strip("/")
    try:
        clean = normalize(stripped)
    except PathError as err:
        raise _Refused(str(err)) from None
    if clean != stripped or (path.startswith("//")):
        raise _Refused("its path is not canonical (., .. or repeated slashes).")
    return scheme, location, clean


def _other_roots(
    config: Config,
    workspace: str,
    destinations: Sequence[str],
    roots: Mapping[str, WorkspaceRoot],
) -> list[tuple[str, tuple[str, str, str, bool]]]:
    """(who, (scheme, location, prefix, shareable)) for every root of another workspace.
    ``shareable``: another root may equal it (its places are ``<prefix>/workspaces/<name>``)."""
    out: list[tuple[str, tuple[str, str, str, bool]]] = []
    for key, entry in config.workspaces.items():
        urls = [entry.url, *(p.url for p in entry.previous)]
        for index, url in enumerate(urls):
            who = f"route '{key}' in the configuration file" + (" (a previous place)" * bool(index))
            if "{workspace}" in url:
                fixed = url.split("{workspace}", 1)[0]
                out.append((who, (*_split(fixed.rsplit("/", 1)[0] + "/"), False)))
            else:  # another team's route: not shared, even where a location includes it
                out.append((who, (*_split(url), False)))
    for destination in destinations:
        out.append(("the default destination", (*_split(destination.removeprefix("ws-")), True)))
    for name, root in roots.items():
        if name == workspace:
            continue
        for other in (root.url, *root.previous):
            if other:
                out.append((f"workspace '{name}'", (*_split(other), True)))
    return out


def _split(url: str) -> tuple[str, str, str]:
    scheme, location, prefix = split_url(url)
    try:
        return scheme, location, normalize(prefix)
    except PathError:
        return scheme, location, prefix.strip("/")


def routes_by_root(url: str | None) -> bool:
    """Whether a workspace's root is a route of its own: not ``ws-``/``mlflow-artifacts:``,
    which only name MLflow's own layout below the server's destination (the guard keeps those
    inside the workspace)."""
    return bool(url) and not str(url).startswith(("ws-", "mlflow-artifacts:"))


def find_location(config: Config, url: str) -> tuple[str, LocationConfig] | None:
    """The approved location ``url`` lies in (the most specific one), or None.

    The URL is compared part by part: same scheme, same bucket (or host), and a key prefix at
    or below the location's, segment-wise (``s3://b/ab`` is not inside ``s3://b/a``).
    """
    scheme, location, prefix = split_url(url)
    try:
        clean = normalize(prefix)
    except PathError:
        return None
    best: tuple[str, LocationConfig] | None = None
    for name, entry in config.locations.items():
        l_scheme, l_location, l_prefix = split_url(entry.url)
        if (l_scheme, l_location) != (scheme, location) or not is_within(l_prefix, clean):
            continue
        if best is None or len(entry.url) > len(best[1].url):
            best = (name, entry)
    return best
