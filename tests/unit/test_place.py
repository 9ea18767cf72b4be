"""The one Place: built by routing (current and previous places, the destination's place, the
default workspace's legacy layout, a glob entry's route), pure, no I/O."""

from __future__ import annotations

import pytest

from ws_artifacts.core.errors import UnroutedWorkspaceError
from ws_artifacts.core.loading import parse_config
from ws_artifacts.core.routing import Router

CONFIG = parse_config(
    {
        "defaults": {"endpoint_url": "http://127.0.0.1:9", "region": "us-east-1"},
        "workspaces": {
            "team-a": {"url": "s3://new/a", "previous": ["s3://old/a", "file:///srv/old"]},
            "vision-*": {"url": "s3://vision/teams/{workspace}"},
        },
    }
)


def test_a_routed_workspace_has_its_current_place_then_each_previous_one() -> None:
    places = Router(CONFIG, "s3://root").places("team-a", "root")
    assert [(p.uri, p.base, p.current, p.legacy) for p in places] == [
        ("s3://new/a/workspaces/team-a", "a", True, False),
        ("s3://old/a/workspaces/team-a", "a", False, False),
        ("file:///srv/old/workspaces/team-a", "srv/old", False, False),
    ]
    assert {p.workspace for p in places} == {"team-a"}
    assert places[0].target.key == places[0].scope == "a/workspaces/team-a"


def test_an_unrouted_workspace_is_at_the_destination_and_the_default_has_legacy_paths() -> None:
    router = Router(CONFIG, "s3://root")
    (place,) = router.places("other", "p")
    assert (place.uri, place.route.is_destination) == ("s3://root/p/workspaces/other", True)
    assert router.destination_place("team-a", "p").uri == "s3://root/p/workspaces/team-a"
    legacy = router.legacy_place("p")
    assert (legacy.workspace, legacy.scope, legacy.legacy, str(legacy)) == (
        "default",
        "p",
        True,
        "s3://root/p/ (legacy paths)",
    )
    assert legacy.holds("s3", "root", "p/1/x")
    assert not legacy.holds("s3", "root", "p/workspaces/other/1/x")
    assert place.holds("s3", "root", "p/workspaces/other/1")
    assert not place.holds("s3", "root", "p/workspaces/others/1")


def test_a_denied_workspace_has_no_place() -> None:
    config = parse_config({"unknown_workspaces": "deny"})
    with pytest.raises(UnroutedWorkspaceError, match="has no route"):
        Router(config, "s3://root").places("nobody")


def test_a_glob_entry_route_keeps_its_placeholder() -> None:
    route = Router(CONFIG, "s3://root").entry_route("vision-*")
    assert (route.name, route.prefix, route.source) == ("vision-*", "teams/{workspace}", "glob")
    assert Router(CONFIG, "s3://root").entry_route("team-a").prefix == "a"


def test_a_targets_place_is_its_scope() -> None:
    router = Router(CONFIG, "s3://root")
    target = router.places("team-a")[0].target.child("1/r/artifacts/x")
    place = target.place()
    assert (place.scope, place.base, place.current) == ("a/workspaces/team-a", "a", True)
