"""What a usage measurement reports: objects and bytes per place, with the shares of its
experiments and kinds of content, and the experiment names a tracking server gives them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ws_artifacts.core.targets import Place

__all__ = ["Row", "Usage", "experiment_names", "tracking_workspaces"]


@dataclass
class Usage:
    """Objects and bytes."""

    objects: int = 0
    bytes: int = 0

    def add(self, objects: int, size: int) -> None:
        """Count ``objects`` more objects of ``size`` bytes in all."""
        self.objects += objects
        self.bytes += size


@dataclass
class Row:
    """The measured usage of one place, with its experiments' shares."""

    place: Place
    total: Usage
    experiments: dict[str, Usage] = field(default_factory=dict)
    #: Usage by what MLflow keeps there (:class:`ws_artifacts.lifecycle.layout.Kind`: experiment,
    #: skills,
    #: unknown); with ``by_experiment``, only the kinds that are not experiments.
    kinds: dict[str, Usage] = field(default_factory=dict)

    def as_dict(self, names: dict[str, str] | None = None) -> dict[str, Any]:
        """JSON form; ``names`` maps experiment ids to names."""
        out: dict[str, Any] = {
            "workspace": self.place.workspace,
            "route": self.place.route.name,
            "source": self.place.route.source,
            "url": self.place.uri,
            "objects": self.total.objects,
            "bytes": self.total.bytes,
        }
        if self.experiments:
            out["experiments"] = [
                {
                    "experiment_id": exp,
                    "name": (names or {}).get(exp),
                    "objects": usage.objects,
                    "bytes": usage.bytes,
                }
                for exp, usage in _largest_first(self.experiments)
            ]
        if self.kinds:
            out["kinds"] = [
                {"kind": kind, "objects": usage.objects, "bytes": usage.bytes}
                for kind, usage in _largest_first(self.kinds)
            ]
        return out


def _largest_first(items: dict[str, Usage]) -> list[tuple[str, Usage]]:
    return sorted(items.items(), key=lambda kv: (-kv[1].bytes, -kv[1].objects, kv[0]))


def tracking_workspaces(tracking_uri: str) -> list[str]:
    """The names of the workspaces the tracking server knows."""
    from ws_artifacts._mlflow.tracking_client import tracking_workspaces as listed

    return listed(tracking_uri)


def experiment_names(
    tracking_uri: str, rows: Sequence[Row], known: Iterable[str]
) -> dict[str, dict[str, str]]:
    """``{workspace: {experiment id: name}}`` for the rows with experiments, from the tracking
    server. Only its own workspaces (``known``) have names there (stores may hold others)."""
    from ws_artifacts._mlflow.tracking_client import experiment_names as named

    names: dict[str, dict[str, str]] = {}
    for workspace in sorted({r.place.workspace for r in rows if r.experiments} & set(known)):
        names[workspace] = named(tracking_uri, workspace)
    return names
