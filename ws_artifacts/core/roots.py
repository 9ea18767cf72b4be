"""A workspace's own ``default_artifact_root``: whether it makes a route of its own
(:func:`routes_by_root`), and which approved storage location holds it (:func:`find_location`).
The route built from it is :func:`ws_artifacts.core.routing.root_route`; whether a root may be
set at all is :func:`ws_artifacts.core.locations.check_root`. Pure: no I/O.
"""

from __future__ import annotations

from ws_artifacts.core.config import Config, LocationConfig
from ws_artifacts.core.errors import PathError
from ws_artifacts.core.paths import is_within, normalize
from ws_artifacts.core.urls import split_url

__all__ = ["find_location", "routes_by_root"]


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
