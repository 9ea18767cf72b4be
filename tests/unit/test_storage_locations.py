"""Approved storage locations: the configuration, routing by a workspace's own root (and its
precedence), previous roots, and the per-process cache of roots (its bound and its refusals)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from tests.support.config import ConfigFile
from ws_artifacts.core.config import Config
from ws_artifacts.core.errors import ConfigError, OwnershipError, StorageError
from ws_artifacts.core.loading import parse_config
from ws_artifacts.core.locations import find_location
from ws_artifacts.core.paths import LogicalPath
from ws_artifacts.core.routing import Router
from ws_artifacts.core.targets import WorkspaceRoot
from ws_artifacts.lifecycle.roots import ROOTS_TTL_ENV, RootsCache, roots_ttl


def config(**extra: Any) -> Config:
    file = ConfigFile(defaults={"region": "us-east-1"})
    file.with_top(
        locations={
            "one": {
                "url": "s3://loc-one/teams",
                "credentials": {"access_key_id": "AKIAONE", "secret_access_key": "one-secret"},
                "storage": {"storage_class": "STANDARD_IA"},
            },
            "two": {"url": "s3://loc-two", "endpoint_url": "http://two.example:9000"},
            "files": {"url": "file:///srv/approved"},
        }
    )
    file.route("team-a", "s3://loc-one/teams/a", location="one")
    file.route("vision-*", "s3://vision/{workspace}")
    return parse_config({**file.data(), **extra})


ROOTS = {
    "team-c": WorkspaceRoot("s3://loc-one/teams/c"),
    "vision-c": WorkspaceRoot("s3://loc-two/vision-c", ("s3://loc-one/teams/old",)),
    "team-a": WorkspaceRoot("s3://loc-two/ignored"),
    "plain": WorkspaceRoot(None),
    "ws-form": WorkspaceRoot("ws-s3://root/workspaces/ws-form"),
}
ROUTER = Router(config(), "s3://root", ROOTS)


@pytest.mark.parametrize(
    ("workspace", "name", "source", "uri"),
    [
        ("team-a", "team-a", "file", "s3://loc-one/teams/a/workspaces/team-a/1/f"),
        (
            "team-c",
            "location:one",
            "workspace setting",
            "s3://loc-one/teams/c/workspaces/team-c/1/f",
        ),
        (
            "vision-c",
            "location:two",
            "workspace setting",
            "s3://loc-two/vision-c/workspaces/vision-c/1/f",
        ),
        ("vision-x", "vision-*", "glob", "s3://vision/vision-x/workspaces/vision-x/1/f"),
        ("plain", "(default destination)", "default", "s3://root/workspaces/plain/1/f"),
        ("ws-form", "(default destination)", "default", "s3://root/workspaces/ws-form/1/f"),
    ],
    ids=[
        "exact-file-route-wins-over-root",
        "root",
        "root-wins-over-glob",
        "glob",
        "no-root",
        "ws-form-root-is-no-route",
    ],
)
def test_precedence_file_then_root_then_glob_then_default(
    workspace: str, name: str, source: str, uri: str
) -> None:
    target = ROUTER.target(LogicalPath("", workspace, "1/f"))
    assert (target.route.name, target.route.source, target.uri) == (name, source, uri)


def test_a_root_route_has_its_locations_settings_and_the_workspace_layout() -> None:
    route = ROUTER.route_for("team-c")
    creds = route.settings.credentials
    assert creds is not None
    assert creds.access_key_id is not None
    assert creds.access_key_id.get_secret_value() == "AKIAONE"
    assert route.settings.storage is not None
    assert route.settings.storage.storage_class == "STANDARD_IA"
    assert route.settings.region == "us-east-1"  # the defaults under the location
    assert (route.location, route.prefix, route.workspace) == ("loc-one", "teams/c", "team-c")
    assert ROUTER.route_for("vision-c").settings.endpoint_url == "http://two.example:9000"


def test_a_file_route_referencing_a_location_takes_its_settings() -> None:
    route = ROUTER.route_for("team-a")
    creds = route.settings.credentials
    assert creds is not None
    assert creds.access_key_id is not None
    assert creds.access_key_id.get_secret_value() == "AKIAONE"
    assert route.source == "file"


def test_previous_roots_are_read_after_the_current_one_with_their_own_settings() -> None:
    target = ROUTER.target(LogicalPath("", "vision-c", "1/f"))
    places = target.places()
    assert [p.uri for p in places] == [
        "s3://loc-two/vision-c/workspaces/vision-c/1/f",
        "s3://loc-one/teams/old/workspaces/vision-c/1/f",
    ]
    old = places[1].route.settings.credentials
    assert old is not None
    assert old.access_key_id is not None
    assert old.access_key_id.get_secret_value() == "AKIAONE"


def test_a_previous_root_outside_every_location_is_the_default_destination_layout() -> None:
    router = Router(
        config(), "s3://root", {"team-d": WorkspaceRoot("s3://loc-two/d", ("s3://root",))}
    )
    places = router.target(LogicalPath("", "team-d", "1/f")).places()
    assert [p.uri for p in places] == [
        "s3://loc-two/d/workspaces/team-d/1/f",
        "s3://root/workspaces/team-d/1/f",
    ]
    assert places[1].route.settings.credentials is None  # the defaults (the server's chain)


def test_a_root_outside_every_location_is_refused_not_routed_to_the_default() -> None:
    router = Router(config(), "s3://root", {"team-e": WorkspaceRoot("s3://elsewhere/e")})
    with pytest.raises(
        OwnershipError,
        match=r"workspace 'team-e' has default_artifact_root s3://elsewhere/e, which is not inside "
        r"an approved storage location \(approved: one \(s3://loc-one/teams\), "
        r"two \(s3://loc-two\), files \(file:///srv/approved\)\)",
    ):
        router.target(LogicalPath("", "team-e", "1/f"))


@pytest.mark.parametrize(
    ("url", "found"),
    [
        ("s3://loc-one/teams", "one"),
        ("s3://loc-one/teams/c/d", "one"),
        ("s3://loc-one/teamsx", None),
        ("s3://loc-one", None),
        ("s3://loc-one-x/teams", None),
        ("s3://loc-two", "two"),
        ("file:///srv/approved/x", "files"),
        ("file:///srv/approvedx", None),
        ("s3://loc-one/teams/../x", None),
    ],
    ids=[
        "equal",
        "below",
        "segment-lookalike",
        "above",
        "bucket-lookalike",
        "bucket",
        "file",
        "file-lookalike",
        "traversal",
    ],
)
def test_find_location_compares_segment_wise(url: str, found: str | None) -> None:
    hit = find_location(config(), url)
    assert (hit[0] if hit else None) == found


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (
            {"locations": {"one": {"url": "s3://loc-x/{workspace}"}}},
            r"locations\.one\.url: a location's url is fixed",
        ),
        ({"locations": {"One": {"url": "s3://loc-x"}}}, r"locations: location name 'One'"),
        (
            {"locations": {"one": {"url": "s3://loc-x", "bogus": 1}}},
            r"locations\.one\.bogus: unknown key",
        ),
        (
            {"workspaces": {"team-a": {"url": "s3://loc-x/a", "location": "nope"}}},
            r"workspaces\.team-a\.location: no location named 'nope' "
            r"\(locations: files, one, two\)",
        ),
        (
            {"workspaces": {"team-a": {"url": "s3://loc-one/other", "location": "one"}}},
            r"workspaces\.team-a\.url: s3://loc-one/other is not inside location 'one' \(s3://loc-one/teams\)",
        ),
    ],
    ids=[
        "placeholder",
        "bad-name",
        "unknown-key",
        "unknown-location",
        "route-outside-its-location",
    ],
)
def test_bad_locations_are_refused_with_the_key_path(extra: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        config(**extra)


def test_location_secrets_are_masked_in_dumps() -> None:
    dumped = config().model_dump_json()
    assert "one-secret" not in dumped
    assert "AKIAONE" not in dumped


# -- the cache of roots ------------------------------------------------------------------
class FakeDb:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[str | None, tuple[str, ...]]] = {
            "team-c": ("s3://loc-one/teams/c", ())
        }
        self.reads = 0
        self.fail = False

    def __call__(self) -> Mapping[str, tuple[str | None, tuple[str, ...]]]:
        self.reads += 1
        if self.fail:
            raise OSError("database is locked")
        return dict(self.rows)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_cache_is_read_again_after_its_ttl_and_keeps_its_object_while_unchanged() -> None:
    db, clock = FakeDb(), Clock()
    cache = RootsCache(db, "the test database", ttl=2.0, clock=clock)
    first = cache.snapshot("team-c")
    clock.now += 1.9
    assert cache.snapshot("team-c") is first
    assert db.reads == 1
    clock.now += 0.1
    assert cache.snapshot("team-c") is first
    assert db.reads == 2
    db.rows["team-c"] = ("s3://loc-two/c", ("s3://loc-one/teams/c",))
    assert cache.snapshot("team-c") is first  # within the bound: the old root (now a previous)
    clock.now += 2.0
    assert cache.snapshot("team-c")["team-c"] == WorkspaceRoot(
        "s3://loc-two/c", ("s3://loc-one/teams/c",)
    )


def test_a_workspace_created_since_the_last_read_is_read_at_once() -> None:
    db, clock = FakeDb(), Clock()
    cache = RootsCache(db, "the test database", ttl=60.0, clock=clock)
    cache.snapshot("team-c")
    db.rows["team-new"] = ("s3://loc-two/new", ())
    assert cache.snapshot("team-new")["team-new"].url == "s3://loc-two/new"
    assert db.reads == 2


def test_a_workspace_missing_from_the_database_is_refused() -> None:
    cache = RootsCache(FakeDb(), "the test database", ttl=60.0, clock=Clock())
    with pytest.raises(
        StorageError, match="Refused: workspace 'ghost' is not in the test database"
    ):
        cache.snapshot("ghost")
    assert cache.snapshot("default") is not None  # the default workspace needs no row


def test_a_failed_read_refuses_instead_of_routing_to_the_default() -> None:
    db, clock = FakeDb(), Clock()
    cache = RootsCache(db, "the test database", ttl=1.0, clock=clock)
    cache.snapshot("team-c")
    db.fail = True
    clock.now += 1.0
    with pytest.raises(
        StorageError,
        match=r"needed for workspace 'team-c'\) cannot be read from the test database \(OSError\)",
    ):
        cache.snapshot("team-c")


@pytest.mark.parametrize(
    ("raw", "value"),
    [("", 2.0), ("0", 0.0), ("0.5", 0.5), ("300", 300.0)],
    ids=["unset", "zero", "half", "max"],
)
def test_roots_ttl_from_the_environment(raw: str, value: float) -> None:
    assert roots_ttl({ROOTS_TTL_ENV: raw}) == value


@pytest.mark.parametrize("raw", ["-1", "301", "soon"], ids=["negative", "too-long", "not-a-number"])
def test_a_bad_roots_ttl_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match=f"{ROOTS_TTL_ENV}='{raw}': give seconds from 0 to 300"):
        roots_ttl({ROOTS_TTL_ENV: raw})
