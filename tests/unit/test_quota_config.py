"""The ``quota`` block: sizes, limits, unknown keys, inheritance from ``defaults``."""

from __future__ import annotations

import pytest

from ws_artifacts.cli.usage import human
from ws_artifacts.core.errors import ConfigError
from ws_artifacts.core.loading import parse_config
from ws_artifacts.core.routing import Router


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (1000, 1000),
        ("1000", 1000),
        ("10GiB", 10 * 1024**3),
        ("10 gib", 10 * 1024**3),
        ("500MB", 500_000_000),
        ("3KiB", 3072),
        ("7B", 7),
        ("2TB", 2 * 10**12),
    ],
    ids=["int", "digits", "GiB", "lowercase", "MB", "KiB", "B", "TB"],
)
def test_sizes(given: object, expected: int) -> None:
    config = parse_config({"defaults": {"quota": {"max_bytes": given}}})
    assert config.defaults.quota is not None
    assert config.defaults.quota.max_bytes == expected
    assert config.defaults.quota.remeasure_seconds == 300.0


@pytest.mark.parametrize(
    ("quota", "message"),
    [
        ({"max_bytes": "10 parsecs"}, r"defaults\.quota\.max_bytes: give bytes as an integer or "),
        ({"max_bytes": -1}, r"defaults\.quota\.max_bytes: Input should be greater than or equal"),
        ({}, r"defaults\.quota: a quota needs max_bytes, max_objects or both"),
        ({"max_objects": 1, "max_files": 2}, r"defaults\.quota\.max_files: unknown key"),
        ({"max_objects": 1, "remeasure_seconds": 0}, r"remeasure_seconds: Input should be greater"),
    ],
    ids=["bad-unit", "negative", "empty", "unknown-key", "zero-interval"],
)
def test_bad_quotas_are_refused_with_the_key_path(quota: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"defaults": {"quota": quota}})


def test_route_quota_replaces_the_default_one() -> None:
    config = parse_config(
        {
            "defaults": {"quota": {"max_bytes": "1GiB"}},
            "workspaces": {
                "team-a": {"url": "s3://bucket-a", "quota": {"max_objects": 10}},
                "team-b": {"url": "s3://bucket-b"},
            },
        }
    )
    router = Router(config, "s3://root")
    quota_a = router.route_for("team-a").settings.quota
    quota_b = router.route_for("team-b").settings.quota
    quota_other = router.route_for("other").settings.quota
    assert quota_a is not None
    assert (quota_a.max_bytes, quota_a.max_objects) == (None, 10)
    assert quota_b is not None
    assert (quota_b.max_bytes, quota_b.max_objects) == (1024**3, None)
    assert quota_other is quota_b  # the default destination's workspaces: defaults.quota


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536 * 1024, "1.5 MiB"),
        (5 * 1024**4, "5.0 TiB"),
    ],
    ids=["zero", "bytes", "KiB", "MiB", "TiB"],
)
def test_human_sizes(size: int, text: str) -> None:
    assert human(size) == text
