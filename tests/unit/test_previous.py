"""``previous`` places in the configuration and routing, and the URI rewrite of moved
experiments: pure, no I/O."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.config import ConfigFile
from ws_artifacts.core.errors import ConfigError, OwnershipError
from ws_artifacts.core.loading import parse_config
from ws_artifacts.core.paths import split_logical
from ws_artifacts.core.routing import Router
from ws_artifacts.core.targets import Target
from ws_artifacts.lifecycle.moves import retarget_uri


def config(route: dict[str, Any], name: str = "team-a") -> Any:
    file = ConfigFile(defaults={"endpoint_url": "http://127.0.0.1:9", "region": "us-east-1"})
    return parse_config(file.route(name, **route).data())


def test_previous_urls_and_mappings_resolve_in_order_with_their_own_settings() -> None:
    cfg = config(
        {
            "url": "s3://new-bucket/a",
            "storage": {"sse": "AES256"},
            "previous": [
                "s3://old-bucket/team-a",
                {"url": "s3://older", "endpoint_url": "http://127.0.0.1:8", "region": "eu-west-1"},
                "file:///srv/old",
            ],
        }
    )
    route = Router(cfg, "s3://root").route_for("team-a")
    assert [(p.name, p.url, p.backend) for p in route.previous] == [
        ("team-a.previous.0", "s3://old-bucket/team-a", "s3"),
        ("team-a.previous.1", "s3://older", "s3"),
        ("team-a.previous.2", "file:///srv/old", "fsspec"),
    ]
    first, second, _ = route.previous
    assert (first.settings.endpoint_url, first.settings.region) == (
        "http://127.0.0.1:9",
        "us-east-1",
    )
    assert (second.settings.endpoint_url, second.settings.region) == (
        "http://127.0.0.1:8",
        "eu-west-1",
    )
    assert first.settings.storage == route.settings.storage  # the route's own policy


def test_places_keep_the_layout_in_every_previous_place() -> None:
    cfg = config({"url": "s3://new/p", "previous": ["s3://old", "s3://v-{workspace}/x"]})
    router = Router(cfg, "s3://root")
    target = router.target(split_logical("workspaces/team-a/3/run/artifacts/m.pkl"))
    assert [t.uri for t in target.places()] == [
        "s3://new/p/workspaces/team-a/3/run/artifacts/m.pkl",
        "s3://old/workspaces/team-a/3/run/artifacts/m.pkl",
        "s3://v-team-a/x/workspaces/team-a/3/run/artifacts/m.pkl",
    ]
    assert [t.scope for t in target.places()] == [
        "p/workspaces/team-a",
        "workspaces/team-a",
        "x/workspaces/team-a",
    ]
    plain = Router(config({"url": "s3://new"}), "s3://root")
    only = plain.target(split_logical("workspaces/team-a/1/f"))
    assert only.places() == (only,)


def test_a_previous_place_cannot_reach_into_another_workspace() -> None:
    route = Router(config({"url": "s3://new", "previous": ["s3://old"]}), "s3://root").route_for(
        "team-a"
    )
    old = route.previous[0]
    with pytest.raises(OwnershipError, match=r"is on route 'team-a.previous.0' of workspace"):
        Target(old, "workspaces/team-b/1/f", "team-b", "workspaces/team-b")
    bad = config({"url": "s3://new", "previous": ["s3://old/workspaces/team-b"]})
    with pytest.raises(
        ConfigError, match=r"workspaces.team-a.previous.0.url: .* another workspace"
    ):
        Router(bad, "s3://root").route_for("team-a")


@pytest.mark.parametrize(
    ("previous", "message"),
    [
        ("s3://old", r"previous is a list of places"),
        (["s3://new"], r"previous: place 0 \(s3://new\) is the route's url or listed twice"),
        (
            ["s3://old", "s3://old/"],
            r"previous: place 1 \(s3://old/\) is the route's url or listed twice",
        ),
        (
            [{"url": "s3://old", "storage": {"sse": "AES256"}}],
            r"previous: place 0: storage is the route's own",
        ),
        (["s3://"], r"an s3:// url needs a bucket name"),
        (["s3://old/{team}"], r"url may only use the placeholder \{workspace\}"),
        (["old-bucket"], r"previous\.0\.url: url needs a scheme, e\.g\. s3://bucket/prefix"),
        ([{"url": "s3://old", "colour": "red"}], r"unknown key"),
    ],
    ids=[
        "string",
        "same-as-url",
        "twice",
        "storage",
        "no-bucket",
        "placeholder",
        "no-scheme",
        "extra",
    ],
)
def test_bad_previous_places_are_refused_with_the_key_path(previous: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        config({"url": "s3://new", "previous": previous})
    assert "workspaces.team-a.previous" in str(err.value)


def test_previous_credentials_are_secrets() -> None:
    from ws_artifacts.core.config import secret_values

    cfg = config(
        {
            "url": "s3://new",
            "previous": [
                {
                    "url": "s3://old",
                    "credentials": {"access_key_id": "AK", "secret_access_key": "S3"},
                }
            ],
        }
    )
    assert secret_values(cfg) == ["AK", "S3"]
    assert "S3" not in repr(cfg)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "mlflow-artifacts:/workspaces/x-a/7/r1/artifacts",
            "mlflow-artifacts:/workspaces/y-b/7/r1/artifacts",
        ),
        ("ws-s3://root/workspaces/x-a/7", "ws-s3://root/workspaces/y-b/7"),
        (
            "ws-s3://root/pre/workspaces/x-a/12/models/m-1/artifacts",
            "ws-s3://root/pre/workspaces/y-b/12/models/m-1/artifacts",
        ),
        ("mlflow-artifacts:/workspaces/x-ab/7/r1", None),
        ("mlflow-artifacts:/workspaces/x-a/seven", None),
        ("mlflow-artifacts:/workspaces/y-b/7/r1", None),
        ("mlflow-artifacts:/old/workspaces-x-a/7", None),
    ],
    ids=[
        "proxied",
        "direct-experiment",
        "prefixed-model",
        "longer-name",
        "no-id",
        "already",
        "lookalike",
    ],
)
def test_retarget_uri_renames_only_the_workspace_segment(uri: str, expected: str | None) -> None:
    assert retarget_uri(uri, "x-a", "y-b") == expected
