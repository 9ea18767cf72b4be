"""MLflow's artifact layout under a workspace's place: what each child is and who owns it.

The tools that judge a workspace's children one by one (``orphans``, ``usage --by``) ask this
module what a child of ``workspaces/<ws>/`` is, instead of assuming that every child is an
experiment id. The others never need to: quarantine, restore, migrate and the provider move a
workspace's whole place (whatever it holds goes along), and moves rewrite experiment ids only.
Pure: no I/O, no MLflow import; the MLflow version it is
asked about comes from the caller (:data:`ws_artifacts._mlflow.environment.MLFLOW_VERSION`).

What the supported MLflow versions write below a workspace's place (read in their sources,
``mlflow/store/tracking/sqlalchemy_store.py`` and ``.../skill_registry/artifact_paths.py``):

- ``<experiment id>/``, every version: runs (``<run id>/artifacts/...``), logged models
  (``models/<model id>/artifacts/...``) and traces (``traces/<trace id>/...``). Trace
  archives (3.18, ``<archival location>/<experiment id>/traces/<trace id>``) are below an
  experiment id too when the archival location is the workspace's place.
- ``skills/`` (3.18 on): uploaded skill content,
  ``skills/[@<organization>/]<name>/<32-hex token>/...``, one token per upload; a version's
  source names the token directory (``mlflow-artifacts:/skills/<name>/<token>``).
- Prompts, evaluation datasets, gateway secrets and jobs keep no objects of their own here
  (database rows; jobs write into experiments).

Anything else is :attr:`Kind.UNKNOWN`: never an orphan, always kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "SKILLS",
    "Kind",
    "SkillUnit",
    "kind_of",
    "kinds",
    "skill_unit",
    "skill_unit_is_live",
]

#: The child that holds uploaded skill content (MLflow 3.18 on).
SKILLS = "skills"
#: The first MLflow version that writes each kind (experiments: every supported one).
_SINCE: dict[str, tuple[int, int]] = {SKILLS: (3, 18)}
_TOKEN = re.compile(r"[0-9a-f]{32}")
# MLflow's own rules for skill and organization names (mlflow/utils/validation.py).
_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_ORGANIZATION = re.compile(r"[a-z0-9]+([-.][a-z0-9]+)*")
_MAX_NAME = 64


class Kind(StrEnum):
    """What a child of a workspace's place holds."""

    EXPERIMENT = "experiment"
    SKILLS = "skills"
    UNKNOWN = "unknown"


def _version(text: str) -> tuple[int, int]:
    parts = re.findall(r"\d+", text)[:2]
    return (int(parts[0]), int(parts[1])) if len(parts) == 2 else (0, 0)


def kinds(mlflow_version: str) -> tuple[Kind, ...]:
    """The kinds ``mlflow_version`` writes, in the order reports list them."""
    found = [Kind.EXPERIMENT]
    if _version(mlflow_version) >= _SINCE[SKILLS]:
        found.append(Kind.SKILLS)
    return (*found, Kind.UNKNOWN)


def kind_of(child: str, mlflow_version: str) -> Kind:
    """What the child ``child`` (one name directly below ``workspaces/<ws>/``) holds.

    Args:
        child: The child's name (no ``/``).
        mlflow_version: The MLflow version whose layout to apply (e.g. ``"3.18.0"``).

    Returns:
        :attr:`Kind.EXPERIMENT` for a decimal id, :attr:`Kind.SKILLS` for ``skills`` where
        that version has skills, else :attr:`Kind.UNKNOWN`.
    """
    if child.isascii() and child.isdigit():
        return Kind.EXPERIMENT
    if child == SKILLS and Kind.SKILLS in kinds(mlflow_version):
        return Kind.SKILLS
    return Kind.UNKNOWN


@dataclass(frozen=True)
class SkillUnit:
    """One upload of a skill: ``skills/[@<organization>/]<name>/<token>``."""

    organization: str
    name: str
    token: str

    @property
    def qualified_name(self) -> str:
        """``[@<organization>/]<name>``, as ``skills:/`` URIs name the skill."""
        return f"@{self.organization}/{self.name}" if self.organization else self.name

    @property
    def path(self) -> str:
        """The path relative to the workspace's place, as a version's source names it."""
        return f"{SKILLS}/{self.qualified_name}/{self.token}"


def skill_unit(relative: str) -> SkillUnit | None:
    """The upload that ``relative`` (a key relative to the workspace's place) belongs to, or
    None when it is not of the exact shape MLflow's upload flow writes (then it is unknown
    content, kept)."""
    segments = relative.split("/")
    if len(segments) < 4 or segments[0] != SKILLS:
        return None
    rest = segments[1:]
    organization = ""
    if rest[0].startswith("@"):
        organization = rest[0][1:]
        rest = rest[1:]
        if len(organization) > _MAX_NAME or not _ORGANIZATION.fullmatch(organization):
            return None
    if len(rest) < 3 or len(rest[0]) > _MAX_NAME or not _NAME.fullmatch(rest[0]):
        return None
    if not _TOKEN.fullmatch(rest[1]):
        return None
    return SkillUnit(organization, rest[0], rest[1])


def skill_unit_is_live(unit: SkillUnit, live_paths: set[str]) -> bool:
    """Whether a live skill version's source names ``unit``, a path inside it, or a path
    that contains it (``live_paths``: workspace-relative paths, without a trailing ``/``)."""
    path = unit.path
    return any(
        live == path or live.startswith(path + "/") or path.startswith(live + "/")
        for live in live_paths
    )
