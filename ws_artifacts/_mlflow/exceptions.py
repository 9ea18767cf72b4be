"""MLflow's exceptions and error codes: refusals its client does not retry, the error that makes
its client fall back to a plain upload, and how to tell "not found"."""

from __future__ import annotations

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import ErrorCode

__all__ = [
    "REFUSAL_STATUS",
    "ErrorCode",
    "MlflowException",
    "Refusal",
    "is_not_found",
    "unsupported_multipart_upload",
]


#: The HTTP status of a refusal whose error code MLflow maps to a status its client retries
#: (``mlflow/utils/request_utils.py`` ``_TRANSIENT_FAILURE_RESPONSE_CODES``: 408, 429, 500,
#: 502, 503, 504). Retried, a refusal re-sends the whole upload for minutes and ends as "too
#: many 429 error responses", its message lost. The JSON body keeps MLflow's error code.
REFUSAL_STATUS = {"RESOURCE_EXHAUSTED": 413, "INVALID_STATE": 409}


class Refusal(MlflowException):
    """An MlflowException answered with a status MLflow's client does not retry."""

    def __init__(self, message: str, error_code: str, status: int) -> None:
        super().__init__(message, error_code=ErrorCode.Value(error_code))
        self.http_status = status

    def get_http_status_code(self) -> int:
        return self.http_status

    @classmethod
    def of(cls, message: str, error_code: str) -> MlflowException:
        """An MlflowException for ``error_code``: a :class:`Refusal` when MLflow's own status
        for it is one its client retries (:data:`REFUSAL_STATUS`)."""
        status = REFUSAL_STATUS.get(error_code)
        if status is not None:
            return cls(message, error_code, status)
        return MlflowException(message, error_code=ErrorCode.Value(error_code))


def unsupported_multipart_upload() -> MlflowException:
    """The error that makes MLflow's client fall back to a plain PUT (its message is matched)."""
    from mlflow.exceptions import _UnsupportedMultipartUploadException

    error: MlflowException = _UnsupportedMultipartUploadException()  # type: ignore[no-untyped-call]
    return error


def is_not_found(err: BaseException) -> bool:
    """Whether ``err`` is MLflow's RESOURCE_DOES_NOT_EXIST."""
    return isinstance(err, MlflowException) and err.error_code == "RESOURCE_DOES_NOT_EXIST"
