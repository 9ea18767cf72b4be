"""Quarantine on an fsspec store, the server's provider flag, retention spans, and the
quarantine's containment, without servers."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from ws_artifacts.core.errors import ConfigError
from ws_artifacts.core.loading import parse_config
from ws_artifacts.lifecycle.discovery import discover_places, router_for
from ws_artifacts.lifecycle.orphans import SKILL_MIN_AGE, find_orphans
from ws_artifacts.lifecycle.quarantine import (
    entries_of,
    parse_age,
    place_of,
    purge,
    quarantine_place,
    restore,
)
from ws_artifacts.serving.server import plan_command
from ws_artifacts.storage.registry import backend_for


def plan(tmp_path: Path, **kwargs: object) -> list[str]:
    options: dict[str, object] = {
        "config_path": tmp_path / "c.yaml",
        "data_dir": tmp_path,
        "backend_store_uri": None,
        "artifacts_destination": None,
        "host": "127.0.0.1",
        "port": 5000,
        "workers": 2,
        "inner_app": None,
        "guard": False,
        "nodelay": True,
    }
    options.update(kwargs)
    return plan_command(**options).argv  # type: ignore[arg-type]


def test_server_turns_the_provider_on_by_default(tmp_path: Path) -> None:
    argv = plan(tmp_path)
    at = argv.index("--workspace-store-uri")
    assert argv[at + 1] == f"ws+sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    pg = plan(tmp_path, backend_store_uri="postgresql+psycopg2://db/mlflow")
    assert pg[pg.index("--workspace-store-uri") + 1] == "ws+postgresql+psycopg2://db/mlflow"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"workspace_provider": False},
        {"extra": ("--workspace-store-uri", "sqlite:///other.db")},
        {"backend_store_uri": "file:///srv/mlruns"},
    ],
    ids=["opted-out", "given-explicitly", "not-a-database"],
)
def test_server_leaves_the_provider_off(tmp_path: Path, kwargs: dict[str, object]) -> None:
    argv = plan(tmp_path, **kwargs)
    assert argv.count("--workspace-store-uri") == (1 if "extra" in kwargs else 0)
    assert not any(a.startswith("ws+") for a in argv)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * 86400), ("12h", 43200), ("2w", 14 * 86400), ("1d12h", 129600), ("45s", 45)],
    ids=["days", "hours", "weeks", "combined", "seconds"],
)
def test_age_spans(text: str, seconds: int) -> None:
    assert parse_age(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["30", "thirty days", "5y", "-1d", ""], ids=repr)
def test_bad_age_spans_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match=r"is not a time span; use e\.g\. 30d"):
        parse_age(text)


@pytest.fixture
def memory_router(tmp_path: Path) -> object:
    import fsspec

    fs = fsspec.filesystem("memory")
    for path in fs.ls("/", detail=False):
        if "lifecycle-unit" in path:
            fs.rm(path, recursive=True)
    config = parse_config(
        {"workspaces": {"team-m": {"url": "memory://lifecycle-unit-routed"}}}, source="unit"
    )
    return router_for(config, "ws-memory://lifecycle-unit-root")


def test_fsspec_quarantine_restore_and_purge(memory_router: object) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    place = place_of(memory_router, "memory://lifecycle-unit-routed", "team-m")  # type: ignore[arg-type]
    assert place.scope == "workspaces/team-m"
    fs.pipe_file("/lifecycle-unit-routed/workspaces/team-m/1/r/artifacts/a", b"abc")
    fs.pipe_file("/lifecycle-unit-routed/workspaces/team-m/2/b", b"de")
    moment = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

    entry = quarantine_place(place, "test", now=moment)

    assert entry is not None
    root = "/lifecycle-unit-routed/.ws-quarantine/team-m/20260102T030405Z"
    assert sorted(fs.find("/lifecycle-unit-routed")) == [
        f"{root}/workspaces/team-m/1/r/artifacts/a",
        f"{root}/workspaces/team-m/2/b",
        f"{root}/ws-quarantine.json",
    ]
    manifest = json.loads(fs.cat_file(f"{root}/ws-quarantine.json"))
    assert (manifest["state"], manifest["objects"], manifest["bytes"]) == ("quarantined", 2, 5)
    assert quarantine_place(place, "test") is None  # nothing left to move

    assert restore(entry, place) == 2
    assert fs.cat_file("/lifecycle-unit-routed/workspaces/team-m/1/r/artifacts/a") == b"abc"
    assert entries_of(place) == []

    again = quarantine_place(place, "test", now=moment)
    assert again is not None
    fs.pipe_file("/lifecycle-unit-routed/workspaces/team-m/9/new", b"n")
    with pytest.raises(ConfigError, match="its place memory://lifecycle-unit-routed/workspaces/"):
        restore(again, place)
    assert purge(again, backend_for(place.route)) == 2
    assert sorted(fs.find("/lifecycle-unit-routed")) == [
        "/lifecycle-unit-routed/workspaces/team-m/9/new"
    ]


def test_orphans_on_fsspec(memory_router: object) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe_file("/lifecycle-unit-root/workspaces/gone-ws/5/f", b"12")
    fs.pipe_file("/lifecycle-unit-routed/workspaces/team-m/3/g", b"1")
    fs.pipe_file("/lifecycle-unit-routed/workspaces/team-m/4/h", b"1")
    places = discover_places(memory_router, "ws-memory://lifecycle-unit-root", ["default"])  # type: ignore[arg-type]
    found = find_orphans(places, {"default": set(), "team-m": {"4"}})
    assert [(o.workspace, o.child, o.reason, o.keys) for o in found] == [
        ("gone-ws", "5", "workspace does not exist", [("workspaces/gone-ws/5/f", 2)]),
        ("team-m", "3", "no experiment 3 in workspace team-m", [("workspaces/team-m/3/g", 1)]),
    ]


LIVE = "0123456789abcdef0123456789abcdef"
DEAD = "fedcba9876543210fedcba9876543210"


@pytest.mark.parametrize("version", ["3.18.0", "3.17.2"], ids=["mlflow-3.18", "mlflow-3.17"])
def test_orphans_never_take_unknown_or_live_skill_content(
    memory_router: object, version: str
) -> None:
    """An unknown child, live or ill-shaped skill content, and every skill content where the
    MLflow version has no skills: listed as kept with their sizes, never orphans; only the
    upload no skill version names is one."""
    import fsspec

    fs = fsspec.filesystem("memory")
    top = "/lifecycle-unit-routed/workspaces/team-m"
    fs.pipe_file(f"{top}/prompts/p/1.json", b"12345")
    fs.pipe_file(f"{top}/notes.txt", b"12")
    fs.pipe_file(f"{top}/skills/reviewer/{LIVE}/SKILL.md", b"live")
    fs.pipe_file(f"{top}/skills/@acme/reviewer/{DEAD}/SKILL.md", b"dead!")
    fs.pipe_file(f"{top}/skills/@acme/reviewer/{DEAD}/a/b.py", b"d")
    fs.pipe_file(f"{top}/skills/reviewer/not-a-token/x", b"xyz")
    places = discover_places(memory_router, "ws-memory://lifecycle-unit-root", ["default"])  # type: ignore[arg-type]
    reads: list[int] = []

    def skills() -> dict[str, set[str]]:
        reads.append(1)
        return {"team-m": {f"skills/reviewer/{LIVE}"}}

    found = find_orphans(
        places, {"default": set(), "team-m": set()}, skills, mlflow_version=version, skill_min_age=0
    )
    got = [(o.child, o.kind, o.kept, o.reason, o.keys) for o in found]
    w = "workspaces/team-m"
    unknown = [
        ("notes.txt", "unknown", True, "unknown, kept", [(f"{w}/notes.txt", 2)]),
        ("prompts", "unknown", True, "unknown, kept", [(f"{w}/prompts/p/1.json", 5)]),
    ]
    if version == "3.17.2":  # no skills in that layout: all of it unknown, kept, not read
        all_skills = sorted(k for k in fs.find(f"{top}/skills"))
        assert reads == []
        assert got == sorted(
            [
                *unknown,
                (
                    "skills",
                    "unknown",
                    True,
                    "unknown, kept",
                    [
                        (k.lstrip("/").removeprefix("lifecycle-unit-routed/"), fs.size(k))
                        for k in all_skills
                    ],
                ),
            ],
            key=lambda t: (t[2], t[0]),
        )
        return
    assert reads == [1]
    assert got == [
        (
            f"skills/@acme/reviewer/{DEAD}",
            "skills",
            False,
            "no version of skill @acme/reviewer in workspace team-m has it",
            [
                (f"{w}/skills/@acme/reviewer/{DEAD}/SKILL.md", 5),
                (f"{w}/skills/@acme/reviewer/{DEAD}/a/b.py", 1),
            ],
        ),
        *unknown,
        ("skills", "skills", True, "unknown, kept", [(f"{w}/skills/reviewer/not-a-token/x", 3)]),
    ]


def test_a_skill_upload_younger_than_the_minimum_age_is_kept(memory_router: object) -> None:
    """MLflow writes a version's content before its row: an upload no version names yet may be
    a registration in progress, so it is kept until it is SKILL_MIN_AGE old."""
    import fsspec

    fs = fsspec.filesystem("memory")
    top = "/lifecycle-unit-routed/workspaces/team-m"
    fs.pipe_file(f"{top}/skills/fresh/{DEAD}/SKILL.md", b"new")
    places = discover_places(memory_router, "ws-memory://lifecycle-unit-root", ["default"])  # type: ignore[arg-type]
    written = float(fs.find(top, detail=True)[f"{top}/skills/fresh/{DEAD}/SKILL.md"]["created"])

    def judge(seconds_later: float) -> list[tuple[str, bool, str]]:
        found = find_orphans(
            places,
            {"team-m": set()},
            lambda: {"team-m": set()},
            mlflow_version="3.18.0",
            now=lambda: written + seconds_later,
        )
        return [(o.child, o.kept, o.reason) for o in found if o.workspace == "team-m"]

    assert SKILL_MIN_AGE == 3600
    assert judge(3599) == [
        (
            f"skills/fresh/{DEAD}",
            True,
            "uploaded less than 3600 s ago (a registration of skill fresh may be in progress), "
            "kept",
        )
    ]
    assert judge(3600) == [
        (f"skills/fresh/{DEAD}", False, "no version of skill fresh in workspace team-m has it")
    ]


def test_orphans_keep_all_skill_content_when_no_skill_truth(memory_router: object) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe_file(f"/lifecycle-unit-routed/workspaces/team-m/skills/r/{DEAD}/SKILL.md", b"s")
    places = discover_places(memory_router, "ws-memory://lifecycle-unit-root", ["default"])  # type: ignore[arg-type]
    found = find_orphans(places, {"team-m": set()}, lambda: None, mlflow_version="3.18.0")
    assert [(o.child, o.kept, o.reason) for o in found] == [("skills", True, "unknown, kept")]


def test_quarantine_only_takes_the_named_skill_upload(memory_router: object) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    top = "/lifecycle-unit-routed/workspaces/team-m"
    fs.pipe_file(f"{top}/skills/r/{LIVE}/SKILL.md", b"live")
    fs.pipe_file(f"{top}/skills/r/{DEAD}/SKILL.md", b"dead")
    fs.pipe_file(f"{top}/skills/r/{DEAD}x/SKILL.md", b"sibling with the same start")
    place = place_of(memory_router, "memory://lifecycle-unit-routed", "team-m")  # type: ignore[arg-type]
    entry = quarantine_place(place, "orphans", only=[f"skills/r/{DEAD}"])
    assert entry is not None
    assert sorted(fs.find(top)) == [
        f"{top}/skills/r/{LIVE}/SKILL.md",
        f"{top}/skills/r/{DEAD}x/SKILL.md",
    ]
    assert (entry.objects, entry.bytes) == (1, 4)


def test_quarantine_is_refused_to_a_repository_on_a_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from mlflow.exceptions import MlflowException

    from tests.support.workspaces import in_workspace
    from ws_artifacts.serving.repository import WorkspaceArtifactRepository

    config = tmp_path / "c.yaml"
    config.write_text("workspaces: {}\n")
    monkeypatch.setenv("WS_ARTIFACTS_CONFIG", str(config))
    monkeypatch.setenv("_MLFLOW_SERVER_ARTIFACT_DESTINATION", "ws-memory://lifecycle-unit-root")
    stamp = "20260101T000000Z"
    with in_workspace("team-q"):
        rooted = WorkspaceArtifactRepository(
            f"ws-memory://lifecycle-unit-root/.ws-quarantine/team-q/{stamp}"
        )
        with pytest.raises(MlflowException, match=r"lies in the quarantine area '\.ws-quarantine'"):
            rooted.list_artifacts("workspaces/team-q")
        top = WorkspaceArtifactRepository("ws-memory://lifecycle-unit-root")
        with pytest.raises(MlflowException, match="has 'workspaces/' below"):
            top.list_artifacts(f".ws-quarantine/team-q/{stamp}/workspaces/team-q")


@pytest.mark.parametrize(
    ("flag", "expected"),
    [("--workspace-provider", 1), ("--no-workspace-provider", 0)],
    ids=["on", "off"],
)
def test_server_command_flag(tmp_path: Path, flag: str, expected: int) -> None:
    from click.testing import CliRunner

    from ws_artifacts.cli.main import main

    config = tmp_path / "c.yaml"
    config.write_text("workspaces: {}\n")
    args = ["server", "--config", str(config), "--data-dir", str(tmp_path), flag, "--dry-run"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    command = result.output.strip().splitlines()[-1].split(" ")
    assert command.count("--workspace-store-uri") == expected
    if expected:
        at = command.index("--workspace-store-uri")
        assert command[at + 1] == f"ws+sqlite:///{tmp_path.resolve()}/mlflow.db"


def test_experiments_are_read_page_after_page() -> None:
    """Names and ids come from every page of search_experiments, not only the first."""
    from types import SimpleNamespace

    from mlflow.store.entities.paged_list import PagedList

    from ws_artifacts._mlflow.tracking_client import _all_experiments

    pages = {
        None: PagedList([SimpleNamespace(experiment_id=str(i)) for i in range(1000)], "p2"),
        "p2": PagedList([SimpleNamespace(experiment_id="1000")], None),
    }
    calls: list[tuple[int, str | None]] = []

    class Client:
        def search_experiments(self, view_type: int, max_results: int, page_token: Any) -> Any:
            calls.append((max_results, page_token))
            return pages[page_token]

    found = _all_experiments(Client())
    assert [e.experiment_id for e in found] == [str(i) for i in range(1001)]
    assert calls == [(1000, None), (1000, "p2")]
