"""MLflow's artifact repository API: the base class and mixins the repository implements and the
entities it returns.

* ``StreamUploadMixin``, ``MultipartDownloadMixin`` and ``PresignedUploadMixin`` appeared after
  3.10; on a version without one, a private stand-in class takes its place, so the repository
  still defines the methods but the server (which cannot look for the missing class) never
  calls them.
* ``PresignedDownloadUrlResponse`` appeared with ``MultipartDownloadMixin``; where missing, a
  stand-in with the same fields is used (it is never sent to such a server).
* ``CreatePresignedUploadResponse`` appeared with presigned uploads (3.17); likewise.
"""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import FileInfo
from mlflow.entities.multipart_upload import (
    CreateMultipartUploadResponse,
    MultipartUploadCredential,
    MultipartUploadPart,
)
from mlflow.store.artifact import artifact_repo as _artifact_repo
from mlflow.store.artifact.artifact_repo import ArtifactRepository, MultipartUploadMixin
from mlflow.tracing.utils.artifact_utils import TRACE_DATA_FILE_NAME

__all__ = [
    "TRACE_DATA_FILE_NAME",
    "ArtifactRepository",
    "CreateMultipartUploadResponse",
    "CreatePresignedUploadResponse",
    "FileInfo",
    "MultipartDownloadMixin",
    "MultipartUploadCredential",
    "MultipartUploadMixin",
    "MultipartUploadPart",
    "PresignedDownloadUrlResponse",
    "PresignedUploadMixin",
    "StreamUploadMixin",
    "temporary_directory",
]


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
    from mlflow.entities.presigned_upload import CreatePresignedUploadResponse
except ImportError:  # MLflow < 3.17: no presigned uploads; never sent to such a server

    @dataclass
    class CreatePresignedUploadResponse:  # type: ignore[no-redef]
        """Stand-in for MLflow's class of the same name."""

        presigned_url: str
        headers: dict[str, str] = field(default_factory=dict)


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


def temporary_directory() -> str:
    """A new temporary directory, made the way MLflow's own repositories make one."""
    from mlflow.utils.file_utils import create_tmp_dir

    return str(create_tmp_dir())  # type: ignore[no-untyped-call]
