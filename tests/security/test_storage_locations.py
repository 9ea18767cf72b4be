"""A workspace manager choosing a hostile default_artifact_root: another team's bucket or place,
traversal, look-alike URLs, a root that is a prefix of another's place. Decided in process by
the pure rule (:func:`ws_artifacts.core.locations.check_root`), by the guard's policy, and by the
``ws+sqlite`` provider itself (the door every create/update goes through, guard or not), whose
moves run against the session's moto server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.config import ConfigFile
from tests.support.servers import MOTO_KEY, MOTO_SECRET, Server
from tests.support.workspaces import unique
from ws_artifacts.core.errors import StorageLocationError
from ws_artifacts.core.loading import parse_config
from ws_artifacts.core.locations import check_root
from ws_artifacts.core.targets import WorkspaceRoot
from ws_artifacts.serving.guard.policy import LocationPolicy, LocationRefused

CONFIG = parse_config(
    {
        "locations": {
            "one": {"url": "s3://loc-one/teams"},
            "two": {"url": "s3://loc-two"},
            "three": {"url": "s3://root/shared"},
        },
        "workspaces": {
            "team-a": {"url": "s3://loc-one/teams/a", "location": "one"},
            "team-b": {"url": "s3://team-b-bucket"},
            "lab-*": {"url": "s3://loc-two/labs/{workspace}"},
        },
    }
)
DESTINATIONS = ("ws-s3://root",)
ROOTS = {"team-x": WorkspaceRoot("s3://loc-two/x", ("s3://loc-one/teams/x-old",))}
LISTED = r"one \(s3://loc-one/teams\), two \(s3://loc-two\), three \(s3://root/shared\)\.$"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("s3://team-b-bucket", "not inside an approved storage location"),
        ("s3://team-b-bucket/workspaces/team-b", "not inside an approved storage location"),
        ("s3://loc-one/teams/a/workspaces/team-a", "contains a 'workspaces' segment"),
        ("s3://loc-one/teams/c/Workspaces/team-a", "contains a 'workspaces' segment"),
        ("s3://loc-one/teams/a/sub", "overlaps the place of route 'team-a'"),
        ("s3://loc-one/teams/a", "overlaps the place of route 'team-a'"),
        ("s3://loc-one/teams", "overlaps the place of route 'team-a'"),
        ("s3://loc-two", "overlaps the place of route 'lab-\\*'"),
        ("s3://loc-two/labs/evil", "overlaps the place of route 'lab-\\*'"),
        ("s3://loc-two/x/y", "overlaps the place of workspace 'team-x'"),
        ("s3://loc-one/teams/x-old/y", "overlaps the place of workspace 'team-x'"),
        ("s3://root/shared/c", "overlaps the place of the default destination"),
        ("s3://loc-one/teams/../teams/a", "contains '\\.\\.'"),
        ("s3://loc-one/teams/./c", "not canonical"),
        ("s3://loc-one/teams//c", "not canonical"),
        ("s3://loc-one/teams/c/..", "contains '\\.\\.'"),
        ("s3://loc-one/teams/.ws-quarantine", "names the quarantine area"),
        ("s3://loc-one/teams/c/.WS-Quarantine/d", "names the quarantine area"),
        ("s3://loc-two/x/.ws-quarantine", "names the quarantine area"),
        ("s3://loc-one/teams/%2e%2e/a", "may not contain %"),
        ("s3://loc-one-evil/teams/c", "not inside an approved storage location"),
        ("s3://loc-one.evil.example/teams/c", "not inside an approved storage location"),
        ("s3://evil@loc-one/teams/c", "may not contain"),
        ("s3://loc-one:443/teams/c", "bucket or host must be"),
        ("S3://loc-one/teams/c", "not a URL of the form"),
        ("s3://LOC-ONE/teams/c", "bucket or host must be"),
        ("s3://loc-one/teamsx/c", "not inside an approved storage location"),
        ("s3://loc-one/teams/c ", "whitespace"),
        ("s3://loc-one/teams/c\n", "whitespace"),
        ("s3://loc-one/teams/c?versionId=1", "may not contain"),
        ("s3://loc-one/teams/c#x", "may not contain"),
        ("s3://loc-one/teams/\u0441", "non-ASCII"),
        ("s3://loc-one/teams\\c", "may not contain"),
        ("s3a://loc-one/teams/c", "not inside an approved storage location"),
        ("s3:/loc-one/teams/c", "not a URL of the form"),
        ("/loc-one/teams/c", "not a URL of the form"),
        ("s3://loc-one/teams/{workspace}", "braces"),
        ("", "a root is 1 to 1024 characters"),
    ],
    ids=[
        "another-teams-bucket",
        "another-teams-place-not-approved",
        "inside-another-teams-place",
        "workspaces-segment-case-folded",
        "inside-another-teams-route",
        "another-teams-route-itself",
        "prefix-of-another-teams-place",
        "prefix-of-a-glob-routes-places",
        "inside-a-glob-routes-places",
        "inside-another-workspaces-root",
        "inside-another-workspaces-previous-root",
        "inside-the-default-destination",
        "traversal-back-into-a-place",
        "dot-segment",
        "repeated-slash",
        "trailing-dotdot",
        "the-quarantine-area",
        "the-quarantine-area-case-folded",
        "a-quarantine-area-inside-a-root",
        "percent-encoded-dotdot",
        "lookalike-bucket-suffix",
        "lookalike-host",
        "userinfo",
        "port",
        "upper-case-scheme",
        "upper-case-bucket",
        "lookalike-prefix-segment",
        "trailing-space",
        "newline",
        "query",
        "fragment",
        "cyrillic-letter",
        "backslash",
        "other-scheme-same-bucket",
        "one-slash",
        "bare-path",
        "placeholder",
        "empty",
    ],
)
def test_hostile_roots_are_refused_with_the_approved_locations(url: str, why: str) -> None:
    with pytest.raises(StorageLocationError, match=rf"workspace 'evil'.*{why}.*{LISTED}"):
        check_root(CONFIG, "evil", url, destinations=DESTINATIONS, roots=ROOTS)


def test_a_workspace_with_a_file_route_may_not_set_a_root() -> None:
    with pytest.raises(
        StorageLocationError, match="'team-a' has its own route in the ws-artifacts"
    ):
        check_root(CONFIG, "team-a", "s3://loc-two/a", destinations=DESTINATIONS, roots=ROOTS)


def test_no_approved_location_refuses_every_root() -> None:
    bare = parse_config({})
    with pytest.raises(StorageLocationError, match=r"no storage location is approved.*: none"):
        check_root(bare, "evil", "s3://loc-one/teams/c")


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("s3://loc-one/teams/c", "s3://loc-one/teams/c"),
        ("s3://loc-one/teams/c/", "s3://loc-one/teams/c"),
        ("s3://loc-two/x", "s3://loc-two/x"),  # shares team-x's root, not its place
        ("s3://loc-two/c", "s3://loc-two/c"),
        ("s3://loc-two/x-other", "s3://loc-two/x-other"),
    ],
    ids=["inside", "trailing-slash", "shared-root", "bucket", "name-prefix-of-another-root"],
)
def test_roots_inside_a_location_and_nobody_elses_place_pass(url: str, stored: str) -> None:
    assert check_root(CONFIG, "team-c", url, destinations=DESTINATIONS, roots=ROOTS) == stored


def test_the_own_previous_roots_do_not_count_as_another_workspaces() -> None:
    roots = {"team-c": WorkspaceRoot("s3://loc-two/c", ("s3://loc-one/teams/c",))}
    assert check_root(CONFIG, "team-c", "s3://loc-one/teams/c/d", roots=roots) == (
        "s3://loc-one/teams/c/d"
    )


POLICY = LocationPolicy(CONFIG, DESTINATIONS, follow_links=False)


@pytest.mark.parametrize(
    ("workspace", "uri", "match"),
    [
        ("evil", "s3://team-b-bucket", "not inside an approved storage location"),
        ("evil", "ws-s3://root/workspaces/team-a", "it is in workspace 'team-a', not 'evil'"),
        ("evil", "mlflow-artifacts:/workspaces/team-a", "it is in workspace 'team-a'"),
    ],
    ids=["raw", "ws-form-of-another", "proxied-form-of-another"],
)
def test_the_guard_refuses_hostile_roots(workspace: str, uri: str, match: str) -> None:
    with pytest.raises(LocationRefused, match=match):
        POLICY.check_workspace_root(uri, workspace)


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "s3://loc-one/teams/c",
        "ws-s3://root/workspaces/evil",
        "mlflow-artifacts:/workspaces/evil",
    ],
    ids=["unset", "approved", "ws-form-own", "proxied-form-own"],
)
def test_the_guard_lets_approved_and_own_roots_through(uri: str) -> None:
    assert POLICY.check_workspace_root(uri, "evil") is None


# -- the provider: the door every create and update goes through -------------------------
BUCKETS = ("sl-root", "sl-one", "sl-two")


@pytest.fixture(scope="module")
def buckets(moto: Server, s3: Any) -> None:
    for bucket in BUCKETS:
        s3.create_bucket(Bucket=bucket)


@pytest.fixture
def provider(
    moto: Server, buckets: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    from ws_artifacts.serving.provider import create_provider

    config = ConfigFile(moto.url).with_top(
        locations={"one": {"url": "s3://sl-one/teams"}, "two": {"url": "s3://sl-two"}}
    )
    config = config.route("team-a", "s3://sl-one/teams/a", location="one").write(
        tmp_path / "ws.yaml"
    )
    for name, value in {
        "WS_ARTIFACTS_CONFIG": str(config),
        "AWS_ACCESS_KEY_ID": MOTO_KEY,
        "AWS_SECRET_ACCESS_KEY": MOTO_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "_MLFLOW_SERVER_ARTIFACT_DESTINATION": "ws-s3://sl-root",
    }.items():
        monkeypatch.setenv(name, value)
    return create_provider(workspace_uri=f"ws+sqlite:///{tmp_path / 'mlflow.db'}")


PROVIDER_LISTED = r"one \(s3://sl-one/teams\), two \(s3://sl-two\)\.$"


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning")
@pytest.mark.parametrize(
    "url",
    [
        "s3://sl-root",
        "s3://sl-one/teams/a",
        "s3://sl-one/teams",
        "s3://sl-one/teams/a/workspaces/team-a",
        "s3://sl-one/teams/../teams/a",
        "s3://sl-one-x/teams/c",
    ],
    ids=[
        "destination-bucket",
        "team-a-route",
        "prefix-of-team-a",
        "team-a-place",
        "traversal",
        "lookalike",
    ],
)
def test_the_provider_refuses_hostile_roots_and_stores_nothing(provider: Any, url: str) -> None:
    from mlflow.entities import Workspace
    from mlflow.exceptions import MlflowException

    name = unique("evil")
    with pytest.raises(MlflowException, match=rf"workspace '{name}'.*{PROVIDER_LISTED}") as info:
        provider.create_workspace(Workspace(name=name, default_artifact_root=url))
    assert info.value.error_code == "PERMISSION_DENIED"
    with pytest.raises(MlflowException, match="not found"):
        provider.get_workspace(name)
    provider.create_workspace(Workspace(name=name, default_artifact_root="s3://sl-two/evil"))
    with pytest.raises(MlflowException, match=rf"workspace '{name}'.*{PROVIDER_LISTED}"):
        provider.update_workspace(Workspace(name=name, default_artifact_root=url))
    assert provider.get_workspace(name).default_artifact_root == "s3://sl-two/evil"
    assert provider.workspace_roots()[name] == WorkspaceRoot("s3://sl-two/evil")


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning")
def test_the_provider_refuses_a_root_inside_another_workspaces_root(provider: Any) -> None:
    from mlflow.entities import Workspace
    from mlflow.exceptions import MlflowException

    first, second = unique("ws-one"), unique("ws-two")
    provider.create_workspace(Workspace(name=first, default_artifact_root="s3://sl-two/shared"))
    with pytest.raises(MlflowException, match=rf"overlaps the place of workspace '{first}'"):
        provider.create_workspace(
            Workspace(name=second, default_artifact_root="s3://sl-two/shared/inner")
        )
    with pytest.raises(MlflowException, match=rf"overlaps the place of workspace '{first}'"):
        provider.create_workspace(Workspace(name=second, default_artifact_root="s3://sl-two"))
    provider.create_workspace(Workspace(name=second, default_artifact_root="s3://sl-two/shared"))
    roots = provider.workspace_roots()
    assert (roots[first].url, roots[second].url) == ("s3://sl-two/shared", "s3://sl-two/shared")


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning")
@pytest.mark.parametrize(
    "replacement",
    ["", "ws-s3://sl-root/workspaces/{name}", "mlflow-artifacts:/workspaces/{name}"],
    ids=["cleared", "ws-form", "proxied-form"],
)
def test_clearing_a_root_is_refused(provider: Any, replacement: str) -> None:
    from mlflow.entities import Workspace
    from mlflow.exceptions import MlflowException

    name = unique("clear")
    provider.create_workspace(Workspace(name=name, default_artifact_root="s3://sl-two/clear"))
    with pytest.raises(
        MlflowException,
        match=rf"Refused to clear the default_artifact_root of workspace '{name}' "
        r"\(s3://sl-two/clear\) or to point it at MLflow's own layout",
    ):
        provider.update_workspace(
            Workspace(name=name, default_artifact_root=replacement.format(name=name))
        )
    assert provider.get_workspace(name).default_artifact_root == "s3://sl-two/clear"
    assert provider.workspace_roots()[name] == WorkspaceRoot("s3://sl-two/clear")


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning")
def test_creating_an_existing_workspace_again_keeps_its_previous_roots(provider: Any) -> None:
    """A create that MLflow refuses (the name exists) must not erase the record of the old
    roots: reads fall back to them, migrate and the deletion's quarantine find them there."""
    from mlflow.entities import Workspace
    from mlflow.exceptions import MlflowException

    name = unique("again")
    provider.create_workspace(Workspace(name=name, default_artifact_root="s3://sl-two/first"))
    provider.update_workspace(Workspace(name=name, default_artifact_root="s3://sl-two/second"))
    kept = WorkspaceRoot("s3://sl-two/second", ("s3://sl-two/first",))
    assert provider.workspace_roots()[name] == kept
    with pytest.raises(MlflowException, match="already exists"):
        provider.create_workspace(Workspace(name=name, default_artifact_root="s3://sl-two/second"))
    assert provider.workspace_roots()[name] == kept
