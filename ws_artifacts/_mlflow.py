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

#: Where ``mlflow server`` tells its workers the proxied artifact destination
#: (``mlflow.server.constants``; not imported: importing it runs ``mlflow.server``, the app).
ARTIFACTS_DESTINATION_ENV_VAR = "_MLFLOW_SERVER_ARTIFACT_DESTINATION"

__all__ = [
    "ARTIFACTS_DESTINATION_ENV_VAR",
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
    "build_proxied_repository",
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


def build_proxied_repository() -> None:
    """Build the proxied artifact repository the way MLflow's handlers do, so that MLflow caches
    it in this worker now rather than while answering the first client's ``/server-info``
    (which builds it on first use). Does nothing when the worker serves no artifacts."""
    import os

    if not os.environ.get(ARTIFACTS_DESTINATION_ENV_VAR):
        return
    import importlib

    handlers: Any = importlib.import_module("mlflow.server.handlers")
    build = getattr(handlers, "_get_artifact_repo_mlflow_artifacts", None)
    if build is not None:
        build()
