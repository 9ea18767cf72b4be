"""Which MLflow this is, what it can do, and what ``mlflow server`` tells its workers."""

from __future__ import annotations

import mlflow
import mlflow.environment_variables as _environment_variables
from mlflow.store.artifact import artifact_repo as _artifact_repo

#: Where ``mlflow server`` tells its workers the proxied artifact destination
#: (``mlflow.server.constants``; not imported: importing it runs ``mlflow.server``, the app).
ARTIFACTS_DESTINATION_ENV_VAR = "_MLFLOW_SERVER_ARTIFACT_DESTINATION"

__all__ = [
    "ARTIFACTS_DESTINATION_ENV_VAR",
    "HAS_PRESIGNED_ONLY",
    "HAS_PRESIGNED_UPLOADS",
    "MLFLOW_VERSION",
    "presigned_only",
]


MLFLOW_VERSION: str = mlflow.__version__
#: Whether this MLflow has presigned uploads (3.17+: ``PresignedUploadMixin`` and its endpoint).
HAS_PRESIGNED_UPLOADS: bool = hasattr(_artifact_repo, "PresignedUploadMixin")
#: Whether this MLflow has presigned-only serving (3.18+: ``--artifacts-presigned-only``).
HAS_PRESIGNED_ONLY: bool = hasattr(_environment_variables, "MLFLOW_ARTIFACTS_PRESIGNED_ONLY")


def presigned_only() -> bool:
    """Whether this server carries no artifact bytes (``mlflow server --artifacts-presigned-only``
    sets ``MLFLOW_ARTIFACTS_PRESIGNED_ONLY`` for its workers); always False before MLflow 3.18."""
    variable = getattr(_environment_variables, "MLFLOW_ARTIFACTS_PRESIGNED_ONLY", None)
    return bool(variable is not None and variable.get())
