"""Routing and its one containment check: exact targets, refusals, then a property."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.config import ConfigFile
from ws_artifacts.core.config import Config
from ws_artifacts.core.destinations import check_destination, destinations_from_env
from ws_artifacts.core.errors import ConfigError, OwnershipError, PathError, UnroutedWorkspaceError
from ws_artifacts.core.loading import parse_config
from ws_artifacts.core.paths import LogicalPath, check_owner, normalize, split_under
from ws_artifacts.core.routing import Router
from ws_artifacts.core.targets import DESTINATION, Target


def config(**extra: Any) -> Config:
    file = ConfigFile().route("team-a", "s3://team-a-artifacts")
    file.route("team-b", "s3://team-b-artifacts")
    file.route("vision-*", "s3://vision-artifacts/{workspace}")
    file.route("files", "file:///srv/stores/files")
    file.workspaces.update(extra)
    return parse_config(file.data())


ROUTER = Router(config(), "s3://root")


@pytest.mark.parametrize(
    ("logical", "route", "uri", "scope"),
    [
        (
            LogicalPath("", "team-a", "1/r/a.txt"),
            "team-a",
            "s3://team-a-artifacts/workspaces/team-a/1/r/a.txt",
            "workspaces/team-a",
        ),
        (
            LogicalPath("anything", "team-a", "1"),
            "team-a",
            "s3://team-a-artifacts/workspaces/team-a/1",
            "workspaces/team-a",
        ),
        (
            LogicalPath("", "vision-x", "1"),
            "vision-*",
            "s3://vision-artifacts/vision-x/workspaces/vision-x/1",
            "vision-x/workspaces/vision-x",
        ),
        (
            LogicalPath("", "files", "1"),
            "files",
            "file:///srv/stores/files/workspaces/files/1",
            "srv/stores/files/workspaces/files",
        ),
        (
            LogicalPath("", "other", "1"),
            DESTINATION,
            "s3://root/workspaces/other/1",
            "workspaces/other",
        ),
        (
            LogicalPath("prefix", "other", "1"),
            DESTINATION,
            "s3://root/prefix/workspaces/other/1",
            "prefix/workspaces/other",
        ),
        (LogicalPath("1/r/artifacts", None, ""), DESTINATION, "s3://root/1/r/artifacts", ""),
    ],
    ids=[
        "routed",
        "routed-ignores-root",
        "pattern",
        "file-route",
        "unrouted",
        "unrouted-prefix",
        "legacy",
    ],
)
def test_targets(logical: LogicalPath, route: str, uri: str, scope: str) -> None:
    target = ROUTER.target(logical)
    assert (target.route.name, target.uri, target.scope, target.workspace) == (
        route,
        uri,
        scope,
        logical.owner,
    )


def test_unknown_workspaces_can_be_denied() -> None:
    router = Router(parse_config({"unknown_workspaces": "deny"}), "s3://root")
    with pytest.raises(UnroutedWorkspaceError, match="Workspace 'other' has no route"):
        router.target(LogicalPath("", "other", "1"))
    assert router.target(LogicalPath("", "default", "1")).uri == "s3://root/workspaces/default/1"


# -- the containment check every Target passes -------------------------------------------
def _route(workspace: str | None) -> Any:
    return ROUTER.route_for(workspace)


@pytest.mark.parametrize(
    ("route_of", "key", "workspace", "scope", "match"),
    [
        (
            "team-a",
            "workspaces/team-b/x",
            "team-a",
            "workspaces/team-a",
            "lies outside 'workspaces/team-a'",
        ),
        ("team-a", "workspaces/team-ab/x", "team-a", "workspaces/team-a", "lies outside"),
        (
            "team-a",
            "workspaces/team-a/../team-b",
            "team-a",
            "workspaces/team-a",
            "not a normalised key",
        ),
        ("team-a", "workspaces/team-a//x", "team-a", "workspaces/team-a", "not a normalised key"),
        ("team-a", "workspaces\\team-b", "team-a", "workspaces/team-a", "not a normalised key"),
        (
            "team-b",
            "workspaces/team-a/x",
            "team-a",
            "workspaces/team-a",
            "on route 'team-b' of workspace 'team-b'",
        ),
        (
            "team-a",
            "x/workspaces/team-a/y",
            "team-a",
            "x/workspaces/team-a",
            "not the layout of route 'team-a'",
        ),
        (None, "a/b", "team-a", "a", "has no workspace layout"),
        (None, "q/x", "default", "p", "lies outside 'p'"),
        ("team-a", "p/x", "default", "p", "has no workspace layout"),
        (
            None,
            "workspaces/team-b/x",
            "team-a",
            "workspaces/team-b",
            "not the layout of workspace 'team-a'",
        ),
        (None, "workspaces/team-a/x/y", "team-a", "workspaces/team-a/x", "not the layout"),
        ("team-a", "anything", "default", "", "has no workspace layout"),
        (None, "1/x", "team-a", "", "has no workspace layout"),
        (None, "1/workspaces/team-b/x", "default", "", "names a workspace's layout"),
        (None, "1/Workspaces/team-b/x", "default", "", "names a workspace's layout"),
    ],
    ids=[
        "other-workspace",
        "sibling-name",
        "dotdot",
        "double-slash",
        "backslash",
        "foreign-route",
        "route-with-wrong-root",
        "scope-without-layout",
        "legacy-outside-its-root",
        "legacy-root-on-a-route",
        "scope-of-other",
        "scope-too-deep",
        "legacy-on-a-route",
        "legacy-for-a-workspace",
        "legacy-naming-a-workspace",
        "legacy-naming-a-workspace-by-case",
    ],
)
def test_a_target_outside_its_place_cannot_exist(
    route_of: str | None, key: str, workspace: str, scope: str, match: str
) -> None:
    with pytest.raises(OwnershipError, match=match):
        Target(_route(route_of), key, workspace, scope)


@pytest.mark.parametrize(
    "name",
    ["../x", "a/../../b", "..", "a//b", "./a"],
    ids=["up", "up-twice", "dotdot", "empty", "dot"],
)
def test_a_child_cannot_leave_its_parent(name: str) -> None:
    parent = ROUTER.target(LogicalPath("", "team-a", "1"))
    with pytest.raises(OwnershipError, match="outside the place of workspace 'team-a'"):
        parent.child(name)


def test_a_child_stays_below_its_parent() -> None:
    parent = ROUTER.target(LogicalPath("", "team-a", "1"))
    assert parent.child("d/x.txt").uri == "s3://team-a-artifacts/workspaces/team-a/1/d/x.txt"


@pytest.mark.parametrize(
    ("url", "workspace"),
    [
        ("s3://team-a-artifacts/workspaces/team-a/evil", "team-x"),
        ("s3://shared/Workspaces/team-a", "team-x"),
        ("s3://shared/x/workspaces", "team-x"),
        ("s3://shared/%2e%2e/team-a", "team-x"),
    ],
    ids=["inside-another-layout", "inside-by-case", "dangling-segment", "encoded-dotdot"],
)
def test_a_route_inside_another_workspaces_layout_is_a_config_error(
    url: str, workspace: str
) -> None:
    router = Router(config(**{"team-x": {"url": url}}), "s3://root")
    with pytest.raises(ConfigError, match=r"workspaces\.team-x\.url"):
        router.target(LogicalPath("", workspace, "1"))


def test_a_route_may_name_its_own_workspace() -> None:
    router = Router(config(**{"ml-*": {"url": "s3://shared/workspaces/{workspace}"}}), "s3://root")
    target = router.target(LogicalPath("", "ml-one", "1"))
    assert target.uri == "s3://shared/workspaces/ml-one/workspaces/ml-one/1"


# -- destinations ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("destination", "logical", "allowed", "scope"),
    [
        ("s3://root", LogicalPath("", "other", "1"), ("ws-s3://root",), "workspaces/other"),
        ("s3://root", LogicalPath("p", "other", "1"), ("ws-s3://root/p",), "p/workspaces/other"),
        ("s3://root", LogicalPath("p/1", None, ""), ("ws-s3://root/p",), "p"),
        ("file://", LogicalPath("srv/d/1", None, ""), ("ws-file:///srv/d",), "srv/d"),
        ("s3://team-b-artifacts", LogicalPath("", "team-a", "1"), (), "workspaces/team-a"),
        ("s3://anything", LogicalPath("x", None, ""), None, ""),
    ],
    ids=[
        "unrouted",
        "unrouted-prefix",
        "legacy-scoped-to-the-destination",
        "legacy-file-destination",
        "routed-ignores-destination",
        "not-a-server",
    ],
)
def test_check_destination_accepts(
    destination: str, logical: LogicalPath, allowed: tuple[str, ...] | None, scope: str
) -> None:
    target = Router(config(), destination).target(logical)
    kept = check_destination(target, allowed)
    assert (kept.key, kept.scope) == (target.key, scope)


@pytest.mark.parametrize(
    ("destination", "logical", "allowed"),
    [
        ("file://", LogicalPath("etc", None, ""), ("ws-s3://root",)),
        ("s3://team-b-artifacts", LogicalPath("unmanaged", None, ""), ("ws-s3://root",)),
        ("s3://root", LogicalPath("x", "other", "1"), ("ws-s3://root",)),
        ("s3://root", LogicalPath("", "other", "1"), ("ws-s3://root/p",)),
        ("s3://root", LogicalPath("q/1", None, ""), ("ws-s3://root/p",)),
        ("s3://root", LogicalPath("", "other", "1"), ()),
    ],
    ids=[
        "server-file-system",
        "another-bucket",
        "deeper-root",
        "outside-prefix",
        "legacy-outside-prefix",
        "no-ws-destination",
    ],
)
def test_check_destination_refuses(
    destination: str, logical: LogicalPath, allowed: tuple[str, ...]
) -> None:
    target = Router(config(), destination).target(logical)
    with pytest.raises(OwnershipError, match="not under this server's artifact destination"):
        check_destination(target, allowed)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"_MLFLOW_SERVER_ARTIFACT_DESTINATION": "ws-s3://root"}, ("ws-s3://root",)),
        ({"_MLFLOW_SERVER_ARTIFACT_ROOT": "mlflow-artifacts:/"}, ()),
        (
            {
                "_MLFLOW_SERVER_ARTIFACT_DESTINATION": "ws-s3://root",
                "_MLFLOW_SERVER_ARTIFACT_ROOT": "ws-s3://other",
            },
            ("ws-s3://root", "ws-s3://other"),
        ),
    ],
    ids=["client", "proxied", "plain-root", "both"],
)
def test_destinations_from_env(environ: dict[str, str], expected: tuple[str, ...] | None) -> None:
    assert destinations_from_env(environ) == expected


# -- property: whatever is accepted lands inside the active workspace's place ------------
_PLACES = {
    "team-a": ("team-a-artifacts", "workspaces/team-a"),
    "vision-x": ("vision-artifacts", "vision-x/workspaces/vision-x"),
    "other": ("root", "workspaces/other"),
    "default": ("root", "workspaces/default"),
}
_SEGMENT = st.one_of(
    st.sampled_from(
        [
            "workspaces",
            "team-a",
            "team-b",
            "vision-x",
            "vision-y",
            "other",
            "default",
            "..",
            ".",
            "",
            "%2e%2e",
            "Workspaces",
            "\uff0e\uff0e",
            "x",
        ]
    ),
    st.text(max_size=8),
)


@given(st.lists(_SEGMENT, max_size=7).map("/".join), st.sampled_from(sorted(_PLACES)))
def test_any_accepted_path_resolves_inside_the_active_workspace(path: str, active: str) -> None:
    try:
        logical = split_under("", normalize(path))
        check_owner(logical, active, operation="read")
        target = ROUTER.target(logical)
        check_destination(target, ("ws-s3://root",))
    except (PathError, OwnershipError):
        return
    assert target.workspace == active
    bucket, scope = _PLACES[active]
    if logical.workspace is None:  # the default workspace's legacy layout
        assert (active, target.route.location, target.scope) == ("default", "root", "")
        assert "workspaces" not in target.key.casefold()
    else:
        assert (target.route.location, target.scope) == (bucket, scope)
        assert target.key == scope or target.key.startswith(scope + "/")
