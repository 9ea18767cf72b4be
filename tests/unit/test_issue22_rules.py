"""The pure rules behind issue 22's fixes: the quarantine segment in any spelling, manifests
trusted only at their own key, the owners' cache of moved experiments, and header values in the
audit trail."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.security.spellings import IDS, SPELLINGS, Spelling
from ws_artifacts.core.errors import ConfigError, OwnershipError
from ws_artifacts.core.loading import parse_config
from ws_artifacts.core.quarantine_names import in_quarantine
from ws_artifacts.core.routing import Router


@pytest.mark.parametrize("spelling", SPELLINGS, ids=IDS)
def test_every_spelling_is_in_the_quarantine(spelling: Spelling) -> None:
    assert in_quarantine(f"{spelling.decoded('.ws-quarantine')}/team-a/x")
    assert in_quarantine(f"deep/er/{spelling.wire('.ws-quarantine')}")


@pytest.mark.parametrize(
    "path",
    [
        "",
        "ws-quarantine/x",
        ".ws-quarantined/x",
        "x/.ws-quarantine-2",
        "workspaces/team-a/1/r/artifacts/model.pkl",
        "workspaces/team-a/1/r/artifacts/quarantine.txt",
    ],
    ids=["root", "no-dot", "longer", "suffix", "ordinary", "similar-file"],
)
def test_other_paths_are_not(path: str) -> None:
    assert not in_quarantine(path)


def test_a_route_inside_a_quarantine_area_is_a_configuration_error() -> None:
    config = parse_config(
        {"workspaces": {"team-a": {"url": "s3://bucket/.WS-Quarantine/team-a"}}}, source="unit"
    )
    with pytest.raises(ConfigError, match=r"workspaces\.team-a\.url: the path .* quarantine area"):
        Router(config, "s3://root").route_for("team-a")


# -- manifests ----------------------------------------------------------------------------
BUCKET = "issue22-unit"
STAMP = "20260102T030405Z"


@pytest.fixture
def place() -> Any:
    import fsspec

    from ws_artifacts.lifecycle.discovery import router_for
    from ws_artifacts.lifecycle.quarantine import place_of

    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{BUCKET}"):
        fs.rm(f"/{BUCKET}", recursive=True)
    config = parse_config({"workspaces": {}}, source="unit")
    router = router_for(config, f"ws-memory://{BUCKET}")
    return place_of(router, f"memory://{BUCKET}", "team-m")


def _manifest(**changes: object) -> bytes:
    fields = {
        "workspace": "team-m",
        "deleted_at": "2026-01-02T03:04:05Z",
        "reason": "delete_workspace CASCADE",
        "state": "quarantined",
        "route_url": f"memory://{BUCKET}",
        "base": "",
        "stamp": STAMP,
        "objects": 1,
        "bytes": 3,
        **changes,
    }
    return json.dumps(fields).encode()


@pytest.mark.parametrize(
    ("stamp", "changes", "reason"),
    [
        (STAMP, {}, ""),
        (STAMP, {"workspace": "team-x"}, "it names workspace 'team-x' but lies under 'team-m'"),
        ("20200101T000000Z", {}, f"it names time stamp '{STAMP}' but lies under '2020"),
        (STAMP, {"base": "teams"}, "it names place 'memory://issue22-unit' 'teams'"),
        (STAMP, {"route_url": "memory://other"}, "it names place 'memory://other' ''"),
        (STAMP, {"deleted_at": "2020-01-01T00:00:00Z"}, "does not match its time stamp"),
        (STAMP, {"deleted_at": "yesterday"}, "its time 'yesterday' is not an ISO time"),
        (STAMP, {"state": "restored"}, "its state 'restored' is not"),
        (STAMP, {"objects": "many"}, "its object or byte count is not a whole number"),
        (STAMP, {"stamp": 7}, "a field that should be text is not"),
    ],
    ids=[
        "genuine",
        "other-workspace",
        "other-stamp",
        "other-base",
        "other-route",
        "other-time",
        "no-time",
        "unknown-state",
        "bad-count",
        "bad-type",
    ],
)
def test_a_manifest_is_trusted_only_at_its_own_key(
    place: Any, stamp: str, changes: dict[str, object], reason: str
) -> None:
    import fsspec

    from ws_artifacts.lifecycle import quarantine as q

    key = f"/{BUCKET}/.ws-quarantine/team-m/{stamp}/ws-quarantine.json"
    fsspec.filesystem("memory").pipe_file(key, _manifest(**changes))
    q.suspicious.clear()

    found = [(e.workspace, e.stamp) for e in q.entries_of(place)]
    listed = [(e.workspace, e.stamp) for e in q.list_entries([(place.route, "")])]

    if not reason:
        assert found == listed == [("team-m", STAMP)]
        assert q.suspicious == []
        return
    assert found == listed == []
    assert {s.uri for s in q.suspicious} == {
        f"memory://{BUCKET}/.ws-quarantine/team-m/{stamp}/ws-quarantine.json"
    }
    assert all(reason in s.reason for s in q.suspicious), q.suspicious


# -- the owners' cache ---------------------------------------------------------------------
def test_owners_are_asked_again_after_the_bound_and_refusals_are_never_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ws_artifacts.core.targets import Target
    from ws_artifacts.serving import experiments

    config = parse_config({"workspaces": {}}, source="unit")
    route = Router(config, "s3://root").destination
    target = Target(route, "workspaces/team-a/7/r/artifacts/f", "team-a", "workspaces/team-a")
    owner = {"7": "team-a"}
    asked: list[str] = []
    clock = [1000.0]

    def workspace_of(experiment: str) -> str:
        asked.append(experiment)
        return owner.get(experiment, "")

    monkeypatch.setattr(experiments.tracking_db, "experiment_workspace", workspace_of)
    monkeypatch.setattr(experiments.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(experiments, "_owned", type(experiments._owned)())

    experiments.check_writable(target)
    experiments.check_writable(target)
    assert asked == ["7"]  # kept within the bound
    owner["7"] = "team-b"  # moved
    clock[0] += experiments.OWNER_TTL_SECONDS
    for _ in range(2):
        with pytest.raises(OwnershipError, match="experiment 7 does not belong to workspace"):
            experiments.check_writable(target)
    assert asked == ["7", "7", "7"]  # asked again after the bound, and again after a refusal
    legacy = Target(route, "legacy/7/f", "default", "")
    experiments.check_writable(legacy)  # no experiment in a legacy path: nothing asked
    assert asked == ["7", "7", "7"]
    unknown = Target(route, "workspaces/team-a/8/f", "team-a", "workspaces/team-a")
    experiments.check_writable(unknown)  # no experiment 8 anywhere: let through, as before
    experiments.check_writable(unknown)
    assert asked == ["7", "7", "7", "8", "8"]  # and never kept


def test_the_owners_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from ws_artifacts.core.targets import Target
    from ws_artifacts.serving import experiments

    config = parse_config({"workspaces": {}}, source="unit")
    route = Router(config, "s3://root").destination
    monkeypatch.setattr(experiments.tracking_db, "experiment_workspace", lambda e: "team-a")
    monkeypatch.setattr(experiments, "_owned", type(experiments._owned)())
    monkeypatch.setattr(experiments, "OWNER_CACHE_SIZE", 3)
    for experiment in range(5):
        key = f"workspaces/team-a/{experiment}/f"
        experiments.check_writable(Target(route, key, "team-a", "workspaces/team-a"))
    assert list(experiments._owned) == [("team-a", "2"), ("team-a", "3"), ("team-a", "4")]


# -- audit --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("\x1b[31m203.0.113.9\x1b[0m", "[31m203.0.113.9[0m"),
        ("a\x07b\x7fc\x9bd\x85e", "abcde"),
        ("x\u2028y\u202ez\u200b", "xyz"),
        ("\x1b\x07", None),
        ("203.0.113.9", "203.0.113.9"),
    ],
    ids=["esc-sequence", "bel-del-c1", "separators-and-format", "nothing-left", "plain"],
)
def test_header_values_lose_their_control_characters(value: str, kept: str | None) -> None:
    from ws_artifacts.serving.request_info import printable

    assert printable(value) == kept
