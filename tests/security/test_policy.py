"""The guard's location policy, in process: exact decisions, then a property (hypothesis)."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ws_artifacts.core.loading import parse_config
from ws_artifacts.core.paths import is_within
from ws_artifacts.core.targets import Place
from ws_artifacts.serving.guard.policy import LocationPolicy, LocationRefused

CONFIG = parse_config(
    {
        "workspaces": {
            "team-a": {"url": "s3://team-a-artifacts"},
            "team-b": {"url": "s3://team-b-artifacts"},
            "vision-*": {"url": "s3://vision-artifacts/{workspace}"},
            "files": {"url": "file:///srv/stores/files"},
        }
    }
)
POLICY = LocationPolicy(CONFIG, ["ws-s3://root", "mlflow-artifacts:/"], follow_links=False)
RUNS = {
    "runs:/own/model": "ws-s3://root/workspaces/team-a/1/own/artifacts/model",
    "runs:/theirs/model": "ws-s3://root/workspaces/team-b/1/theirs/artifacts/model",
    "models:/m-own": "s3://team-a-artifacts/workspaces/team-a/1/models/m-own/artifacts",
    "models:/chain/1": "runs:/own/model",
    "models:/loop/1": "models:/loop/1",
}


def resolve(uri: str) -> str:
    try:
        return RUNS[uri]
    except KeyError:
        raise LookupError(f"{uri} not found") from None


@pytest.mark.parametrize(
    ("workspace", "uri"),
    [
        ("team-a", ""),
        ("team-a", "ws-s3://root/workspaces/team-a/1/r/artifacts/model"),
        ("team-a", "ws-s3://elsewhere/workspaces/team-a/1"),  # routed: the URI's bucket is unused
        ("team-a", "mlflow-artifacts:/workspaces/team-a/1/r/artifacts"),
        ("team-a", "s3://team-a-artifacts/workspaces/team-a/1/model"),
        ("team-a", "runs:/own/model"),
        ("team-a", "models:/m-own"),
        ("team-a", "models:/chain/1"),
        ("vision-x", "s3://vision-artifacts/vision-x/workspaces/vision-x/1"),
        ("other", "ws-s3://root/workspaces/other/1"),
        ("other", "s3://root/workspaces/other/1"),
        ("default", "ws-s3://root/1/r/artifacts"),
        ("default", "mlflow-artifacts:/1/r/artifacts"),
        ("default", "s3://root/1/r/artifacts"),
        ("files", "file:///srv/stores/files/workspaces/files/1"),
        ("files", "/srv/stores/files/workspaces/files/1"),
    ],
    ids=[
        "empty",
        "ws-uri",
        "ws-uri-routed-elsewhere",
        "mlflow-artifacts",
        "raw-own-route",
        "own-run",
        "own-logged-model",
        "model-version-chain",
        "pattern-route",
        "unrouted-ws-uri",
        "unrouted-raw",
        "default-legacy-ws",
        "default-legacy-proxied",
        "default-legacy-raw",
        "file-route",
        "bare-path",
    ],
)
def test_accepted(workspace: str, uri: str) -> None:
    POLICY.check(uri, workspace, field="source", resolve=resolve)


@pytest.mark.parametrize(
    ("workspace", "uri", "match"),
    [
        ("team-a", "ws-s3://root/workspaces/team-b/1", "in workspace 'team-b', not 'team-a'"),
        ("team-a", "ws-s3://root/1/r/artifacts", "in workspace 'default', not 'team-a'"),
        ("team-a", "ws-s3://root/workspaces/TEAM-B/1", "not a valid workspace name"),
        ("team-a", "ws-s3://root/Workspaces/team-b/1", "only the exact lowercase"),
        ("team-a", "ws-s3://root/workspaces/team-a/%2e%2e/team-b/1", "percent-escaped"),
        ("team-a", "ws-s3://root/workspaces/team-a/../team-b/1", r"contains '\.\.'"),
        ("team-a", "ws-s3://root/workspaces/team-b%0a/1", "percent-escaped"),
        ("team-a", "ws-s3://root/workspaces/team-b\n/1", "control character"),
        ("team-a", " ws-s3://root/workspaces/team-a/1", "whitespace at an end"),
        ("team-a", "ws-s3://root/workspaces/team-a/1?versionId=3", "query or a fragment"),
        ("team-a", "ws-s3://root/workspaces/team-a/1#x", "query or a fragment"),
        ("team-a", "mlflow-artifacts:/workspaces/team-b/1", "in workspace 'team-b'"),
        ("team-a", "mlflow-artifacts://evil.example/workspaces/team-a/1", "another server"),
        (
            "team-a",
            "s3://team-b-artifacts/workspaces/team-b/1",
            "not inside a place of workspace 'team-a'",
        ),
        ("team-a", "s3://team-a-artifacts/unmanaged", "not inside a place"),
        ("team-a", "s3://team-a-artifacts/workspaces/team-ab/1", "not inside a place"),
        ("team-a", "s3a://team-a-artifacts/workspaces/team-a/1", "not inside a place"),
        (
            "team-a",
            "s3://user:secret@team-a-artifacts/workspaces/team-a/1",
            "'s3://\\*\\*\\*@team-a",
        ),
        ("team-a", "file:///etc/passwd", "not inside a place"),
        (
            "team-a",
            "https://evil.example/api/2.0/mlflow-artifacts/artifacts/x",
            "not inside a place",
        ),
        ("team-a", "runs:/theirs/model", "in workspace 'team-b', not 'team-a'"),
        ("team-a", "runs:/missing/model", "does not resolve in workspace 'team-a'"),
        ("team-a", "runs://profile/own/model", "another tracking server"),
        ("team-a", "models:/loop/1", "cannot be followed here"),
        ("vision-x", "s3://vision-artifacts/vision-y/workspaces/vision-y/1", "not inside a place"),
        ("vision-x", "ws-s3://root/workspaces/vision-y/1", "in workspace 'vision-y'"),
        (
            "other",
            "ws-s3://team-b-artifacts/workspaces/other/1",
            "not under this server's artifact destination",
        ),
        (
            "other",
            "ws-s3://root/deeper/workspaces/other/1",
            "not under this server's artifact destination",
        ),
        ("default", "ws-file:///etc/passwd", "not under this server's artifact destination"),
        ("default", "ws-s3://team-b-artifacts/unmanaged/secret", "not under this server's"),
        ("default", "s3://root/x/workspaces/team-b/1", "not inside a place of workspace 'default'"),
        ("files", "file:///srv/stores/files/workspaces/files/%2e%2e/x", r"contains '\.\.'"),
        ("files", "file://host/srv/stores/files/workspaces/files/x", "may not name a host"),
        ("team-b\n", "ws-s3://root/workspaces/team-b/1", "not a valid workspace name"),
        ("team-a", "ws-s3://root/" + "a/" * 5000, "longer than 8192"),
    ],
    ids=[
        "other-workspace",
        "default-legacy",
        "case-name",
        "case-segment",
        "encoded-dotdot",
        "dotdot",
        "encoded-newline",
        "raw-newline",
        "leading-space",
        "query",
        "fragment",
        "proxied-other",
        "proxied-host",
        "raw-other-bucket",
        "raw-unmanaged-key",
        "raw-sibling-name",
        "raw-other-scheme",
        "secret-not-echoed",
        "raw-server-file",
        "http",
        "their-run",
        "missing-run",
        "run-on-other-server",
        "reference-loop",
        "pattern-sibling",
        "pattern-sibling-ws",
        "unrouted-other-bucket",
        "unrouted-deeper-root",
        "default-server-file",
        "default-other-bucket",
        "default-naming-workspace",
        "file-encoded-dotdot",
        "file-host",
        "newline-workspace",
        "very-long",
    ],
)
def test_refused(workspace: str, uri: str, match: str) -> None:
    with pytest.raises(LocationRefused, match=match):
        POLICY.check(uri, workspace, field="source", resolve=resolve)


def test_user_information_is_not_echoed() -> None:
    uri = "s3://user:hunter2@team-b-artifacts/x"
    with pytest.raises(LocationRefused, match="'s3://\\*\\*\\*@team-b-artifacts/x'") as err:
        POLICY.check(uri, "team-a", field="source")
    assert "hunter2" not in str(err.value)


def test_the_message_names_the_places_to_use() -> None:
    with pytest.raises(LocationRefused) as err:
        POLICY.check("s3://team-b-artifacts/x", "team-a", field="the model version source")
    assert str(err.value) == (
        "Refused to set the model version source to 's3://team-b-artifacts/x': it is not inside "
        "a place of workspace 'team-a'. Use a location inside workspace 'team-a': "
        "mlflow-artifacts:/workspaces/team-a/..., s3://team-a-artifacts/workspaces/team-a/..., "
        "runs:/ or models:/ of it."
    )


def test_references_are_refused_without_a_resolver() -> None:
    with pytest.raises(LocationRefused, match="cannot be followed here"):
        POLICY.check("runs:/own/model", "team-a", field="source")


def _where(places: tuple[Place, ...]) -> tuple[tuple[str, str, str, bool], ...]:
    return tuple((p.scheme, p.location, p.scope, p.legacy) for p in places)


def test_places() -> None:
    assert _where(POLICY.places("team-a")) == (
        ("s3", "team-a-artifacts", "workspaces/team-a", False),
    )
    assert _where(POLICY.places("default")) == (
        ("s3", "root", "workspaces/default", False),
        ("s3", "root", "", True),
    )
    assert LocationPolicy(CONFIG, []).places("other") == ()
    assert LocationPolicy(None, ["ws-s3://root"]).places("team-a") == ()


def test_symbolic_links_of_file_locations_are_resolved(tmp_path: Path) -> None:
    own = tmp_path / "stores" / "workspaces" / "files"
    secret = tmp_path / "secret"
    own.mkdir(parents=True)
    secret.mkdir()
    (own / "link").symlink_to(secret)
    config = parse_config({"workspaces": {"files": {"url": f"file://{tmp_path}/stores"}}})
    policy = LocationPolicy(config, ["ws-s3://root"])
    policy.check(f"file://{own}/real", "files", field="source")
    with pytest.raises(LocationRefused, match="not inside a place of workspace 'files'"):
        policy.check(f"file://{own}/link/x", "files", field="source")


# -- property: an accepted raw or ws- location lies inside the workspace's places --------
_SEGMENT = st.one_of(
    st.sampled_from(
        [
            "workspaces",
            "team-a",
            "team-b",
            "other",
            "default",
            "..",
            ".",
            "",
            "%2e%2e",
            "x",
            "Workspaces",
            "vision-x",
            "vision-y",
        ]
    ),
    st.text(max_size=6),
)
_LOCATIONS = st.tuples(
    st.sampled_from(["s3", "ws-s3", "mlflow-artifacts", "file", "gs"]),
    st.sampled_from(["root", "team-a-artifacts", "team-b-artifacts", "vision-artifacts", ""]),
    st.lists(_SEGMENT, max_size=6).map("/".join),
)


@given(_LOCATIONS, st.sampled_from(["team-a", "vision-x", "other", "default"]))
def test_any_accepted_location_lies_inside_the_workspace(
    location: tuple[str, str, str], workspace: str
) -> None:
    scheme, bucket, path = location
    uri = f"{scheme}://{bucket}/{path}" if bucket else f"{scheme}:/{path}"
    try:
        POLICY.check(uri, workspace, field="source")
    except LocationRefused:
        return
    parts = urllib.parse.urlsplit(uri)
    clean = os.path.normpath("/" + parts.path).lstrip("/") if parts.path.strip("/") else ""
    if scheme in ("ws-s3", "mlflow-artifacts"):
        owner = _owner(clean)
        assert owner == workspace
        if scheme == "ws-s3" and workspace in ("other", "default"):
            assert parts.netloc == "root"
        return
    assert any(
        (place.scheme, place.location) == (scheme, parts.netloc) and is_within(place.scope, clean)
        for place in POLICY.places(workspace)
    )


def _owner(path: str) -> str:
    segments = path.split("/")
    if "workspaces" in segments:
        return segments[segments.index("workspaces") + 1]
    return "default"
