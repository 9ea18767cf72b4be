"""What the ``check`` and ``route`` commands report: resolved routes, optionally probed.

Everything here is safe to print: credential *sources*, never credentials.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ws_artifacts.core.config import Config
from ws_artifacts.core.errors import WsArtifactsError
from ws_artifacts.core.locations import routes_by_root
from ws_artifacts.core.paths import (
    DEFAULT_WORKSPACE,
    WORKSPACES_SEGMENT,
    check_owner,
    join,
    normalize,
    split_logical,
)
from ws_artifacts.core.routing import Router
from ws_artifacts.core.settings import Settings
from ws_artifacts.core.targets import DESTINATION, Route, Target, WorkspaceRoot
from ws_artifacts.core.urls import split_url
from ws_artifacts.storage.registry import backend_for

__all__ = ["RouteReport", "check_routes", "describe_route", "example_name", "quota_summary"]


@dataclass
class RouteReport:
    """One configured entry, resolved for an example workspace (and probed, if asked)."""

    entry: str
    workspace: str
    url: str
    backend: str
    credentials: str
    storage: str
    ok: bool | None = None
    error: str | None = None
    previous: int = 0
    left_in_previous: int | None = None
    quota: str = "-"
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return asdict(self)


def example_name(pattern: str) -> str:
    """A workspace name the glob ``pattern`` matches (the name itself for exact entries)."""
    name = re.sub(r"\[!?([^\]])[^\]]*\]", r"\1", pattern)
    return name.replace("*", "example").replace("?", "x")


def credentials_source(settings: Settings) -> str:
    """Where the route's credentials come from, safe to print."""
    from ws_artifacts.storage.clients import describe_credentials

    return describe_credentials(settings)


def storage_summary(settings: Settings) -> str:
    """SSE, storage class, tags and bucket owner, safe to print."""
    policy = settings.storage
    if policy is None:
        return "tags: mlflow-workspace"
    parts = []
    if policy.sse:
        parts.append(
            f"sse={policy.sse}" + (f" key={policy.kms_key_id}" if policy.kms_key_id else "")
        )
    if policy.storage_class:
        parts.append(f"class={policy.storage_class}")
    tags = sorted(policy.tags) + (["mlflow-workspace"] if policy.tag_workspace else [])
    if tags:
        parts.append("tags: " + ",".join(tags))
    if policy.expected_bucket_owner:
        parts.append(f"owner={policy.expected_bucket_owner}")
    return "; ".join(parts) or "-"


def quota_summary(settings: Settings) -> str:
    """The quota each workspace of the route has (``-``: none)."""
    quota = settings.quota
    if quota is None or (quota.max_bytes is None and quota.max_objects is None):
        return "-"
    parts = []
    if quota.max_bytes is not None:
        parts.append(f"{quota.max_bytes} bytes")
    if quota.max_objects is not None:
        parts.append(f"{quota.max_objects} objects")
    return " and ".join(parts) + " per workspace"


def check_routes(
    config: Config,
    destination: str,
    *,
    probe: bool,
    roots: Mapping[str, WorkspaceRoot] | None = None,
) -> list[RouteReport]:
    """Resolve every configured entry (patterns through an example name) and every workspace
    routed by its own root (``roots``, from the database); with ``probe``, write, read back and
    delete a small marker in each route with the route's own credentials."""
    router = Router(config, _inner(destination), roots)
    places = [(entry, example_name(entry)) for entry in config.workspaces]
    places += [
        (f"{name} (root)", name)
        for name, root in sorted((roots or {}).items())
        if name not in config.workspaces and routes_by_root(root.url)
    ]
    reports = []
    for entry, workspace in places:
        try:
            route = router.route_for(workspace)
        except WsArtifactsError as err:  # a root outside every approved location
            reports.append(RouteReport(entry, workspace, "-", "-", "-", "-", False, str(err)))
            continue
        scope = join(route.prefix, WORKSPACES_SEGMENT, workspace)
        report = _report(entry, workspace, route, scope, probe)
        if report.ok and route.previous and route.source == "glob":
            try:
                report.left_in_previous = _left_in_glob_previous(router, entry)
            except WsArtifactsError as err:
                report.ok, report.error = False, str(err)
        reports.append(report)
    # The default destination: the default workspace, unrouted workspaces, legacy paths.
    _, _, root = split_url(_inner(destination))
    scope = join(root, WORKSPACES_SEGMENT, DEFAULT_WORKSPACE)
    report = _report(DESTINATION, DEFAULT_WORKSPACE, router.destination, scope, probe)
    report.url = _inner(destination)
    reports.append(report)
    return reports


def describe_route(
    config: Config,
    destination: str,
    workspace: str,
    path: str | None = None,
    roots: Mapping[str, WorkspaceRoot] | None = None,
) -> dict[str, Any]:
    """Where ``workspace``'s artifacts (or ``path``, relative to the workspace) go, and where
    that route came from (file, workspace setting, glob, default)."""
    scheme, location, prefix = split_url(_inner(destination))
    router = Router(config, f"{scheme}://{location}", roots)
    rel = normalize(path)
    if not rel.startswith(f"{WORKSPACES_SEGMENT}/"):
        rel = join(WORKSPACES_SEGMENT, workspace, rel)
    logical = split_logical(join(prefix, rel))
    check_owner(logical, workspace, operation="route")
    target = router.target(logical)
    return {
        "workspace": workspace,
        "entry": target.route.name,
        "source": target.route.source,
        "location": target.uri,
        "backend": target.route.backend,
        "credentials": credentials_source(target.route.settings),
        "storage": storage_summary(target.route.settings),
    }


def _inner(destination: str) -> str:
    """``ws-s3://b/p`` -> ``s3://b/p`` (the store URL the router works with)."""
    return destination[3:] if destination.startswith("ws-") else destination


def _report(entry: str, workspace: str, route: Route, scope: str, probe: bool) -> RouteReport:
    report = RouteReport(
        entry=entry,
        workspace=workspace,
        url=route.url,
        backend=route.backend,
        credentials=credentials_source(route.settings),
        storage=storage_summary(route.settings),
        previous=len(route.previous),
        quota=quota_summary(route.settings),
        source=route.source,
    )
    if probe:
        try:
            _probe(route, workspace, scope)
            report.ok = True
            if route.previous and route.source != "glob":  # globs: _left_in_glob_previous
                report.left_in_previous = _left_in_previous(route, workspace, scope)
        except WsArtifactsError as err:
            report.ok, report.error = False, str(err)
    return report


def _left_in_previous(route: Route, workspace: str, scope: str) -> int:
    """Objects of ``workspace`` still in its route's previous places (parallel listing)."""
    from ws_artifacts.storage.copying import list_tree

    root = Target(route, scope, workspace, scope)
    return sum(len(list_tree(place)) for place in root.places()[1:])


def _left_in_glob_previous(router: Router, pattern: str) -> int:
    """Objects still in the previous places of the glob route ``pattern``, summed over the
    workspaces found there."""
    from ws_artifacts.lifecycle.migrate import glob_workspaces_in_previous

    total = 0
    for name in sorted(glob_workspaces_in_previous(router, pattern)):
        route = router.route_for(name)
        total += _left_in_previous(route, name, join(route.prefix, WORKSPACES_SEGMENT, name))
    return total


def _probe(route: Route, workspace: str, scope: str) -> None:
    target = Target(route, join(scope, f".ws-artifacts-probe-{uuid.uuid4().hex}"), workspace, scope)
    backend = backend_for(route)
    payload = b"ws-artifacts probe"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe")
        with open(src, "wb") as out:
            out.write(payload)
        backend.put_file(target, src)
        try:
            back = os.path.join(tmp, "back")
            backend.get_file(target, back)
            with open(back, "rb") as got:
                if got.read() != payload:
                    raise WsArtifactsError(f"probe at {target.uri} read back other bytes")
        finally:
            backend.delete(target)
