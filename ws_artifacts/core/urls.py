"""URLs of places (``scheme://location/prefix``): split them into their parts, say whether one
lies inside another, and keep a route's prefix out of other workspaces' layouts. Pure: no I/O.
"""

from __future__ import annotations

import urllib.parse

from ws_artifacts.core.errors import ConfigError, PathError
from ws_artifacts.core.paths import WORKSPACES_SEGMENT, normalize, reads_as_workspaces
from ws_artifacts.core.quarantine_names import QUARANTINE_SEGMENT, in_quarantine

__all__ = ["check_route_prefix", "split_url", "url_within"]


def split_url(url: str) -> tuple[str, str, str]:
    """Split ``scheme://location/prefix`` into its three parts (location = bucket or host).

    For ``file:///srv/x`` the location is empty and the prefix ``srv/x``.
    """
    parsed = urllib.parse.urlsplit(url)
    return parsed.scheme, parsed.netloc, parsed.path.strip("/")


def url_within(outer: str, inner: str) -> bool:
    """Whether URL ``inner`` is ``outer`` or below it (same scheme and location, segment-wise)."""
    o_scheme, _, o_rest = outer.partition("://")
    i_scheme, _, i_rest = inner.replace("{workspace}", "ws").partition("://")
    o_parts = [p for p in o_rest.split("/") if p]
    i_parts = [p for p in i_rest.split("/") if p]
    if o_rest.startswith("/"):  # file:///srv: no location, keep the leading slash's meaning
        o_parts.insert(0, "")
    if i_rest.startswith("/"):
        i_parts.insert(0, "")
    return o_scheme == i_scheme and i_parts[: len(o_parts)] == o_parts


def check_route_prefix(name: str, prefix: str, workspace: str) -> None:
    """A route's key prefix may not lie inside another workspace's layout: ``workspaces/<x>``
    in it must name the workspace itself (else <x>'s scope would contain this route)."""
    try:
        clean = normalize(prefix)
        segments = clean.split("/") if clean else []
    except PathError as err:
        raise ConfigError(f"workspaces.{name}.url: the path part is unsafe: {err}") from None
    if in_quarantine(clean):
        raise ConfigError(
            f"workspaces.{name}.url: the path '{prefix}' lies in a quarantine area "
            f"('{QUARANTINE_SEGMENT}'); give the route a place of its own."
        )
    for index, segment in enumerate(segments):
        if not reads_as_workspaces(segment):
            continue
        following = segments[index + 1] if index + 1 < len(segments) else ""
        if segment != WORKSPACES_SEGMENT or following != workspace:
            raise ConfigError(
                f"workspaces.{name}.url: for workspace '{workspace}' the path '{prefix}' lies "
                f"inside the layout '{segment}/{following}' of another workspace; use a "
                "prefix without a 'workspaces/<name>' part, or use {workspace}."
            )
