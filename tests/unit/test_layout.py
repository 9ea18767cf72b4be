"""The artifact layout: what a child of a workspace's place is, per MLflow version."""

from __future__ import annotations

import pytest

from ws_artifacts.lifecycle.layout import (
    Kind,
    SkillUnit,
    kind_of,
    kinds,
    skill_unit,
    skill_unit_is_live,
)

TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("child", "version", "kind"),
    [
        ("12", "3.10.1", Kind.EXPERIMENT),
        ("0", "3.18.0", Kind.EXPERIMENT),
        ("skills", "3.18.0", Kind.SKILLS),
        ("skills", "3.19.1", Kind.SKILLS),
        ("skills", "3.17.2", Kind.UNKNOWN),
        ("Skills", "3.18.0", Kind.UNKNOWN),
        ("\u0661\u0662", "3.18.0", Kind.UNKNOWN),  # Arabic-Indic digits are not an id
        ("12a", "3.18.0", Kind.UNKNOWN),
        ("", "3.18.0", Kind.UNKNOWN),
        ("traces", "3.18.0", Kind.UNKNOWN),
    ],
    ids=[
        "id-3.10",
        "id-zero",
        "skills-3.18",
        "skills-3.19",
        "skills-3.17",
        "skills-case",
        "non-ascii-digits",
        "id-like",
        "file-at-top",
        "other-name",
    ],
)
def test_kind_of(child: str, version: str, kind: Kind) -> None:
    assert kind_of(child, version) is kind


def test_kinds_per_version() -> None:
    assert kinds("3.10.1") == (Kind.EXPERIMENT, Kind.UNKNOWN)
    assert kinds("3.18.0") == (Kind.EXPERIMENT, Kind.SKILLS, Kind.UNKNOWN)
    assert kinds("3.18.0rc1") == (Kind.EXPERIMENT, Kind.SKILLS, Kind.UNKNOWN)


@pytest.mark.parametrize(
    ("relative", "unit"),
    [
        (f"skills/reviewer/{TOKEN}/SKILL.md", SkillUnit("", "reviewer", TOKEN)),
        (f"skills/@acme.io/code-review/{TOKEN}/a/b", SkillUnit("acme.io", "code-review", TOKEN)),
        (f"skills/reviewer/{TOKEN}", None),  # the token directory itself is no object
        (f"skills/reviewer/{TOKEN.upper()}/SKILL.md", None),
        (f"skills/reviewer/{TOKEN}0/SKILL.md", None),
        (f"skills/Reviewer/{TOKEN}/SKILL.md", None),
        (f"skills/@/reviewer/{TOKEN}/SKILL.md", None),
        (f"skills/@acme/{TOKEN}/SKILL.md", None),
        (f"skills/{'a' * 65}/{TOKEN}/SKILL.md", None),
        (f"other/reviewer/{TOKEN}/SKILL.md", None),
    ],
    ids=[
        "plain",
        "organization",
        "too-short",
        "upper-token",
        "long-token",
        "upper-name",
        "empty-organization",
        "organization-without-name",
        "name-too-long",
        "not-skills",
    ],
)
def test_skill_unit(relative: str, unit: SkillUnit | None) -> None:
    assert skill_unit(relative) == unit


def test_skill_unit_paths_and_liveness() -> None:
    unit = SkillUnit("acme", "reviewer", TOKEN)
    assert unit.path == f"skills/@acme/reviewer/{TOKEN}"
    assert unit.qualified_name == "@acme/reviewer"
    assert skill_unit_is_live(unit, {unit.path})
    assert skill_unit_is_live(unit, {f"{unit.path}/sub/dir"})  # a version's subpath inside it
    assert skill_unit_is_live(unit, {"skills/@acme/reviewer"})  # a path that contains it
    assert not skill_unit_is_live(unit, {f"{unit.path}0", "skills/@acme/reviewe", ""} - {""})
    assert not skill_unit_is_live(unit, set())
