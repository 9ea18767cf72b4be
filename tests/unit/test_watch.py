"""The live configuration: a bad or half-written edit never replaces the last good one."""

from __future__ import annotations

import logging
import os
import textwrap
import time
from pathlib import Path

import pytest

from ws_artifacts.core.config import Config
from ws_artifacts.core.errors import ConfigError
from ws_artifacts.core.loading import load_config
from ws_artifacts.serving.live_config import SETTLE_SECONDS, LiveConfig

GOOD = """
    workspaces:
      team-a: {url: "s3://team-a-artifacts"}
      team-b:
        url: s3://team-b-artifacts
        credentials: {access_key_id: AKIAKEEPME, secret_access_key: keep-me-secret}
      "vision-*": {url: "s3://vision/{workspace}"}
"""


class Clocks:
    """A monotonic clock that jumps past every check interval, and a wall clock far enough
    ahead that every file has settled (unless ``fresh`` is set)."""

    def __init__(self) -> None:
        self.ticks = 0.0
        self.fresh = False

    def clock(self) -> float:
        self.ticks += 10.0
        return self.ticks

    def wall(self) -> float:
        return time.time() if self.fresh else time.time() + 10 * SETTLE_SECONDS


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def live(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clocks: Clocks
) -> tuple[LiveConfig, Path]:
    path = tmp_path / "ws.yaml"
    path.write_text(textwrap.dedent(GOOD))
    monkeypatch.setenv("WS_ARTIFACTS_CONFIG", str(path))
    return LiveConfig(clock=clocks.clock, wall=clocks.wall), path


def edit(path: Path, text: str) -> None:
    """Write ``text`` and move the modification time on (some file systems keep 1 s stamps)."""
    before = path.stat().st_mtime_ns
    path.write_text(textwrap.dedent(text))
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_an_invalid_edit_is_logged_once_and_the_last_good_config_serves(
    live: tuple[LiveConfig, Path], caplog: pytest.LogCaptureFixture
) -> None:
    watched, path = live
    good = watched.get()
    assert good is not None
    assert set(good.workspaces) == {"team-a", "team-b", "vision-*"}
    edit(path, GOOD.replace("team-a: {", "team-a: {colour: red, "))
    with caplog.at_level(logging.INFO, logger="ws_artifacts"):
        served = [watched.get() for _ in range(5)]
    assert all(config is good for config in served)
    assert errors(caplog) == [
        "ws-artifacts configuration not reloaded, the last good one keeps serving: "
        f"{path}: workspaces.team-a.colour: unknown key (see 'ws-artifacts config schema')"
    ]
    assert "keep-me-secret" not in caplog.text
    assert "AKIAKEEPME" not in caplog.text


def test_a_second_bad_edit_is_logged_again_and_a_fix_is_taken(
    live: tuple[LiveConfig, Path], caplog: pytest.LogCaptureFixture
) -> None:
    watched, path = live
    good = watched.get()
    with caplog.at_level(logging.ERROR, logger="ws_artifacts"):
        edit(path, "workspaces: [")
        assert watched.get() is good
        edit(path, "workspaces:\n  team-a: {url: 's4://x'}\n")
        assert watched.get() is good
        assert watched.get() is good
    reasons = [message.split("serving: ", 1)[1] for message in errors(caplog)]
    assert len(reasons) == 2
    # The wording after the position is PyYAML's (C or Python loader).
    assert reasons[0].startswith(f"{path}: not valid YAML at line 2, column 1: ")
    assert reasons[1] == (
        f"{path}: workspaces.team-a.url: no store provides the scheme 's4://'; use s3://, "
        "file://, memory://, gs://, abfs:// or another fsspec protocol"
    )
    edit(path, GOOD.replace("team-a-artifacts", "team-a-new"))
    fixed = watched.get()
    assert fixed is not None
    assert fixed.workspaces["team-a"].url == "s3://team-a-new"


def test_a_file_still_being_written_is_not_taken(
    live: tuple[LiveConfig, Path], clocks: Clocks
) -> None:
    watched, path = live
    good = watched.get()
    # An editor writing in place: the first half of the file is valid YAML with one route.
    half = textwrap.dedent(GOOD).split("  team-b:")[0]
    clocks.fresh = True
    path.write_text(half)
    assert watched.get() is good  # modified just now: not settled
    clocks.fresh = False
    path.write_text(textwrap.dedent(GOOD).replace("team-a-artifacts", "team-a-next"))
    settled = watched.get()
    assert settled is not None
    assert set(settled.workspaces) == {"team-a", "team-b", "vision-*"}
    assert settled.workspaces["team-a"].url == "s3://team-a-next"


def test_a_file_that_changes_while_read_is_not_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clocks: Clocks
) -> None:
    path = tmp_path / "ws.yaml"
    path.write_text(textwrap.dedent(GOOD))
    monkeypatch.setenv("WS_ARTIFACTS_CONFIG", str(path))
    calls: list[str] = []

    def load_while_written(name: str) -> Config:
        config = load_config(name)
        calls.append(name)
        if len(calls) == 2:
            edit(path, "workspaces: {}\n")  # the writer goes on while we read
        return config

    watched = LiveConfig(clock=clocks.clock, wall=clocks.wall, load=load_while_written)
    first = watched.get()
    assert first is not None
    assert first.workspaces
    edit(path, GOOD.replace("team-a-artifacts", "team-a-next"))
    assert watched.get() is first  # changed during that read
    latest = watched.get()
    assert latest is not None
    assert latest.workspaces == {}


@pytest.mark.parametrize(
    ("new", "message"),
    [
        (
            GOOD,
            None,
        ),
        (
            '\n    workspaces:\n      "team-*": {url: "s3://teams/{workspace}"}\n',
            "route 'team-a' was removed; new writes of workspace(s) 'team-a' now go to route "
            "'team-*' (s3://teams/{workspace}). Artifacts already written stay at "
            "s3://team-a-artifacts.",
        ),
        (
            "\n    workspaces: {}\n",
            "route 'team-a' was removed; new writes of workspace(s) 'team-a' now go to the "
            "default destination (the server's --artifacts-destination). Artifacts already "
            "written stay at s3://team-a-artifacts.",
        ),
        (
            "\n    workspaces: {}\n    unknown_workspaces: deny\n",
            "route 'team-a' was removed; new writes of workspace(s) 'team-a' now go to nowhere: "
            "they are refused (unknown_workspaces: deny). Artifacts already written stay at "
            "s3://team-a-artifacts.",
        ),
        (
            GOOD.replace('team-a: {url: "s3://team-a-artifacts"}', 'team-a: {url: "s3://moved"}'),
            "route 'team-a' moved from s3://team-a-artifacts to s3://moved; new writes go to "
            "s3://moved. Artifacts already written stay at s3://team-a-artifacts.",
        ),
    ],
    ids=["unchanged", "to-a-pattern", "to-the-destination", "refused", "moved"],
)
def test_a_reload_that_drops_or_moves_a_route_says_where_writes_go(
    live: tuple[LiveConfig, Path], caplog: pytest.LogCaptureFixture, new: str, message: str | None
) -> None:
    watched, path = live
    watched.get()
    edit(path, new)
    with caplog.at_level(logging.WARNING, logger="ws_artifacts"):
        reloaded = watched.get()
    assert reloaded is not None
    team_a = [m for m in warnings(caplog) if "'team-a'" in m]
    assert team_a == ([f"{path}: {message}"] if message else [])


@pytest.mark.parametrize(
    ("entry", "before"),
    [
        ("vision-new", "route 'vision-*' (s3://vision/{workspace})"),
        ("team-new", "the default destination (the server's --artifacts-destination)"),
    ],
    ids=["was-a-pattern", "was-the-destination"],
)
def test_a_reload_that_adds_a_route_says_where_earlier_artifacts_stay(
    live: tuple[LiveConfig, Path], caplog: pytest.LogCaptureFixture, entry: str, before: str
) -> None:
    watched, path = live
    watched.get()
    edit(path, GOOD + f'      {entry}: {{url: "s3://{entry}-artifacts"}}\n')
    with caplog.at_level(logging.WARNING, logger="ws_artifacts"):
        assert watched.get() is not None
    assert warnings(caplog) == [
        f"{path}: route '{entry}' was added; new writes of workspace(s) '{entry}' now go to "
        f"s3://{entry}-artifacts. Artifacts already written stay where they went before: "
        f"{before}."
    ]


def test_a_deleted_file_keeps_the_last_good_config(
    live: tuple[LiveConfig, Path], caplog: pytest.LogCaptureFixture
) -> None:
    watched, path = live
    good = watched.get()
    path.unlink()
    with caplog.at_level(logging.ERROR, logger="ws_artifacts"):
        assert watched.get() is good
        assert watched.get() is good
    assert errors(caplog) == [
        "ws-artifacts configuration not reloaded, the last good one keeps serving: "
        f"{path}: cannot read it (No such file or directory)"
    ]


def test_the_first_load_of_a_bad_file_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clocks: Clocks
) -> None:
    path = tmp_path / "ws.yaml"
    path.write_text("workspaces:\n  team-a: {url: s3://team-a-artifacts, colour: red}\n")
    monkeypatch.setenv("WS_ARTIFACTS_CONFIG", str(path))
    watched = LiveConfig(clock=clocks.clock, wall=clocks.wall)
    with pytest.raises(ConfigError, match=r"workspaces\.team-a\.colour: unknown key"):
        watched.get()


def test_another_file_is_loaded_at_once(
    live: tuple[LiveConfig, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watched, _ = live
    assert watched.get() is not None
    other = tmp_path / "other.yaml"
    other.write_text("workspaces: {}\n")
    monkeypatch.setenv("WS_ARTIFACTS_CONFIG", str(other))
    config = watched.get()
    assert config is not None
    assert config.workspaces == {}
    monkeypatch.delenv("WS_ARTIFACTS_CONFIG")
    assert watched.get() is None
