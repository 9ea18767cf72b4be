"""``ws-artifacts migrate``: bad input is refused before anything is listed; the checksum rules
of the copy engine (pure, no I/O)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.config import ConfigFile
from ws_artifacts.cli.main import main
from ws_artifacts.core.loading import parse_config
from ws_artifacts.core.paths import split_logical
from ws_artifacts.core.routing import Router
from ws_artifacts.storage.copying import server_side
from ws_artifacts.storage.verify import Listed, same_content


@pytest.fixture
def config(tmp_path: Path) -> Path:
    config = ConfigFile(defaults={"endpoint_url": "http://127.0.0.1:9", "region": "us-east-1"})
    config.route("team-a", "s3://new", previous=["s3://old"])
    config.route("vision-*", "s3://vision-new/{workspace}", previous=["s3://old-v/{workspace}"])
    return config.write(tmp_path / "c.yaml")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, r"name the workspaces to migrate, or give --all"),
        (["--moved-from", "team-a"], 2, r"--moved-from needs --to, --backend-store-uri and"),
        (
            ["team-a", "--moved-from", "x-a", "--to", "y-b", "--backend-store-uri", "sqlite://",
             "--destination", "ws-s3://root"],
            2,
            r"give WORKSPACE\.\.\. \(or --all\) or --moved-from, not both",
        ),
        (["team-b"], 1, r"Workspace 'team-b' has no route of its own"),
        (
            ["--moved-from", "x-a", "--to", "x-a", "--backend-store-uri", "sqlite://",
             "--destination", "ws-s3://root"],
            1,
            r"--moved-from and --to are both 'x-a'",
        ),
    ],
    ids=["nothing", "moved-alone", "both", "unrouted", "same-workspace"],
)  # fmt: skip
def test_bad_migrate_input_is_refused(
    config: Path, args: list[str], code: int, message: str
) -> None:
    result = CliRunner().invoke(main, ["migrate", "--config", str(config), *args])
    assert result.exit_code == code
    assert re.search(message, result.stderr.replace("\n", " "))


def targets(config: Path) -> tuple[object, ...]:
    from ws_artifacts.core.loading import load_config

    router = Router(load_config(config), "s3://root")
    current = router.target(split_logical("workspaces/team-a/1/f"))
    return current.places()


@pytest.mark.parametrize(
    ("src", "dst", "expected"),
    [
        (Listed("f", 4, "a" * 32), Listed("f", 4, "a" * 32), "size+etag"),
        (Listed("f", 4, "a" * 32), Listed("f", 5, "a" * 32), None),
        (Listed("f", 4, "a" * 32), Listed("f", 4, "b" * 32), None),
        (Listed("f", 4, "a" * 32 + "-3"), Listed("f", 4, "a" * 32 + "-3"), "size+etag"),
        (Listed("f", 4, "a" * 32 + "-3"), Listed("f", 4, "b" * 32 + "-3"), None),
    ],
    ids=["same-md5", "other-size", "other-md5", "same-multipart", "other-multipart"],
)
def test_etags_are_compared_only_when_comparable(
    config: Path, src: Listed, dst: Listed, expected: str | None
) -> None:
    current, old = targets(config)
    assert same_content(old, src, current, dst, read=False) == expected  # type: ignore[arg-type]


def test_uncomparable_etags_are_not_taken_as_equal_without_reading(config: Path) -> None:
    """Not equal, not different: only reading both could tell ("unread", a dry run's
    'compare')."""
    current, old = targets(config)
    single, parts = Listed("f", 9, "a" * 32), Listed("f", 9, "c" * 32 + "-2")
    assert same_content(old, single, current, parts, read=False) == "unread"  # type: ignore[arg-type]
    assert same_content(old, parts, current, single, read=False) == "unread"  # type: ignore[arg-type]


def test_server_side_needs_one_identity() -> None:
    cfg = parse_config(
        {
            "defaults": {"endpoint_url": "http://127.0.0.1:9", "region": "us-east-1"},
            "workspaces": {
                "team-a": {
                    "url": "s3://new",
                    "previous": [
                        "s3://old",
                        {"url": "s3://other", "endpoint_url": "http://127.0.0.1:8"},
                        {"url": "s3://keys", "credentials": {"profile": "old"}},
                        "file:///srv/old",
                    ],
                }
            },
        }
    )
    route = Router(cfg, "s3://root").route_for("team-a")
    assert [server_side(p, route) for p in route.previous] == [True, False, False, False]
