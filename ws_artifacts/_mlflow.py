"""The one module that imports MLflow internals.

Supported: MLflow 3.10 to 3.17. What a version lacks is handled here and nowhere else:

* ``StreamUploadMixin``, ``MultipartDownloadMixin`` and ``PresignedUploadMixin`` appeared after
  3.10; on a version without one, a private stand-in class takes its place, so the repository
  still defines the methods but the server (which cannot look for the missing class) never
  calls them.
* ``PresignedDownloadUrlResponse`` appeared with ``MultipartDownloadMixin``; where missing, a
  stand-in with the same fields is used (it is never sent to such a server).
"""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass, field
from typing import Any

import mlflow
from mlflow.entities import FileInfo
from mlflow.entities.multipart_upload import (
    CreateMultipartUploadResponse,
    MultipartUploadCredential,
    MultipartUploadPart,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import ErrorCode
from mlflow.store.artifact import artifact_repo as _artifact_repo
from mlflow.store.artifact.artifact_repo import ArtifactRepository, MultipartUploadMixin
from mlflow.tracing.utils.artifact_utils import TRACE_DATA_FILE_NAME
from mlflow.utils.workspace_context import get_request_workspace

from ws_artifacts.errors import WsArtifactsError

__all__ = [
    "MLFLOW_VERSION",
    "TRACE_DATA_FILE_NAME",
    "ArtifactRepository",
    "CreateMultipartUploadResponse",
    "FileInfo",
    "MlflowException",
    "MultipartDownloadMixin",
    "MultipartUploadCredential",
    "MultipartUploadMixin",
    "MultipartUploadPart",
    "PresignedDownloadUrlResponse",
    "PresignedUploadMixin",
    "StreamUploadMixin",
    "active_workspace",
    "mlflow_error",
]

MLFLOW_VERSION: str = mlflow.__version__


class _Absent(ABC):  # noqa: B024 - a marker base with nothing abstract
    """Stands in for a mixin this MLflow version does not have."""


StreamUploadMixin: type = getattr(_artifact_repo, "StreamUploadMixin", None) or type(
    "StreamUploadMixin", (_Absent,), {}
)
MultipartDownloadMixin: type = getattr(_artifact_repo, "MultipartDownloadMixin", None) or type(
    "MultipartDownloadMixin", (_Absent,), {}
)
PresignedUploadMixin: type = getattr(_artifact_repo, "PresignedUploadMixin", None) or type(
    "PresignedUploadMixin", (_Absent,), {}
)

try:
    from mlflow.entities.presigned_download import PresignedDownloadUrlResponse
except ImportError:  # MLflow < 3.11

    @dataclass
    class PresignedDownloadUrlResponse:  # type: ignore[no-redef]
        """Stand-in for MLflow's class of the same name."""

        url: str
        headers: dict[str, str] = field(default_factory=dict)
        file_size: int | None = None

        def to_dict(self) -> dict[str, Any]:
            """The JSON form MLflow sends."""
            return {"url": self.url, "headers": self.headers, "file_size": self.file_size}


def active_workspace() -> str | None:
    """The workspace of the current request (server) or of ``mlflow.set_workspace`` (client).

    Read it in the thread that received the request: MLflow keeps it in a ContextVar that
    worker threads do not see.
    """
    workspace: str | None = get_request_workspace()
    return workspace


def mlflow_error(err: WsArtifactsError) -> MlflowException:
    """The MlflowException to raise for one of our errors (``raise mlflow_error(e) from e``)."""
    return MlflowException(str(err), error_code=ErrorCode.Value(err.mlflow_code))


def default_server_app() -> Any:
    """MLflow's own ASGI app (what ``mlflow server`` runs under uvicorn)."""
    from mlflow.server.fastapi_app import app

    return app


def find_server_app(name: str) -> str:
    """The ``module:attr`` of the ``mlflow.app`` entry point called ``name``."""
    from mlflow.server import _find_app

    target: str = _find_app(name)
    return target


def bootstrap_server_app(name: str) -> None:
    """Do what ``mlflow server --app-name NAME`` does before starting workers (3.17: create the
    basic-auth admin user once, instead of in every worker)."""
    import mlflow.server

    bootstrap = getattr(mlflow.server, "_bootstrap_basic_auth", None)
    if name == "basic-auth" and bootstrap is not None:
        bootstrap()


def unsupported_multipart_upload() -> MlflowException:
    """The error that makes MLflow's client fall back to a plain PUT (its message is matched)."""
    from mlflow.exceptions import _UnsupportedMultipartUploadException

    error: MlflowException = _UnsupportedMultipartUploadException()  # type: ignore[no-untyped-call]
    return error


def temporary_directory() -> str:
    """A new temporary directory, made the way MLflow's own repositories make one."""
    from mlflow.utils.file_utils import create_tmp_dir

    return str(create_tmp_dir())  # type: ignore[no-untyped-call]


def tracking_workspaces(tracking_uri: str) -> list[str]:
    """The names of the workspaces a tracking server knows (for ``usage --tracking-uri``)."""
    from mlflow import MlflowClient

    return [w.name for w in MlflowClient(tracking_uri=tracking_uri).list_workspaces()]


def experiment_names(tracking_uri: str, workspace: str) -> dict[str, str]:
    """Experiment id -> name in ``workspace`` on the tracking server (deleted ones too)."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType
    from mlflow.utils.workspace_context import WorkspaceContext

    with WorkspaceContext(workspace):
        client = MlflowClient(tracking_uri=tracking_uri)
        return {e.experiment_id: e.name for e in client.search_experiments(ViewType.ALL)}
