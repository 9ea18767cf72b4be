"""ws-artifacts: per-workspace artifact routing for a shared MLflow server.

MLflow loads :class:`ws_artifacts.serving.repository.WorkspaceArtifactRepository` through the
``mlflow.artifact_repository`` entry point for the ``ws-s3``, ``ws-file``, ``ws-memory``,
``ws-gs`` and ``ws-abfs`` schemes. Importing this package does no I/O.
"""

from __future__ import annotations

import logging

__all__ = ["__version__"]
__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
