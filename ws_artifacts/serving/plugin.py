"""The entry point MLflow loads: a factory that imports the repository only when first used.

MLflow imports every artifact-repository plugin in every process that builds a repository, and
its registry may be imported from inside our own import of MLflow; a module with nothing to
import keeps both cheap and free of import cycles.
"""

from __future__ import annotations

from typing import Any

__all__ = ["repository"]


def repository(
    artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None
) -> Any:
    """Build a :class:`~ws_artifacts.serving.repository.WorkspaceArtifactRepository`."""
    from ws_artifacts.serving.repository import WorkspaceArtifactRepository

    return WorkspaceArtifactRepository(
        artifact_uri, tracking_uri=tracking_uri, registry_uri=registry_uri
    )
