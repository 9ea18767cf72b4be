"""The exception hierarchy, and the one table that translates botocore errors into it.

Every class inherits :class:`WsArtifactsError` and the builtin it behaves like, so callers can
catch either. Messages name the workspace, the bucket or URL, and the fix; never a secret.
At the MLflow boundary :func:`to_mlflow` turns any of them into an ``MlflowException`` with the
matching error code.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AccessDeniedError",
    "ConfigError",
    "CredentialsError",
    "NotFoundError",
    "OwnershipError",
    "PathError",
    "StorageError",
    "UnroutedWorkspaceError",
    "WsArtifactsError",
    "translate_boto_error",
]


class WsArtifactsError(Exception):
    """Base class of every error ws-artifacts raises.

    ``mlflow_code`` is the MLflow error code name used when the error crosses into MLflow.
    """

    mlflow_code = "INTERNAL_ERROR"


class ConfigError(WsArtifactsError, ValueError):
    """The configuration file is missing, unreadable or invalid."""

    mlflow_code = "INVALID_PARAMETER_VALUE"


class PathError(WsArtifactsError, ValueError):
    """An artifact path is malformed or tries to leave its place (``..``, backslash, ...)."""

    mlflow_code = "INVALID_PARAMETER_VALUE"


class OwnershipError(WsArtifactsError, PermissionError):
    """An operation names another workspace's artifacts than the active workspace."""

    mlflow_code = "PERMISSION_DENIED"


class UnroutedWorkspaceError(WsArtifactsError, LookupError):
    """A workspace has no route and the configuration says ``unknown_workspaces: deny``."""

    mlflow_code = "PERMISSION_DENIED"


class CredentialsError(WsArtifactsError, PermissionError):
    """A route's credentials could not be found, loaded or used."""

    mlflow_code = "PERMISSION_DENIED"


class AccessDeniedError(WsArtifactsError, PermissionError):
    """The store refused the route's credentials for this operation."""

    mlflow_code = "PERMISSION_DENIED"


class NotFoundError(WsArtifactsError, FileNotFoundError):
    """The bucket, directory or object does not exist."""

    mlflow_code = "RESOURCE_DOES_NOT_EXIST"


class StorageError(WsArtifactsError, OSError):
    """Any other failure of the underlying store."""

    mlflow_code = "INTERNAL_ERROR"


# botocore error code -> (exception class, what to do about it). The one place that knows
# botocore's vocabulary; everything else raises our classes.
_BOTO_ERRORS: dict[str, tuple[type[WsArtifactsError], str]] = {
    "NoSuchBucket": (NotFoundError, "create the bucket or fix the route's url"),
    "NoSuchKey": (NotFoundError, "check the artifact path"),
    "404": (NotFoundError, "check the artifact path"),
    "NotFound": (NotFoundError, "check the artifact path"),
    "NoSuchUpload": (NotFoundError, "the multipart upload was completed or aborted already"),
    "AccessDenied": (AccessDeniedError, "grant the route's credentials access to the bucket"),
    "403": (AccessDeniedError, "grant the route's credentials access to the bucket"),
    "Forbidden": (AccessDeniedError, "grant the route's credentials access to the bucket"),
    "AllAccessDisabled": (AccessDeniedError, "the bucket is disabled; use another bucket"),
    "InvalidAccessKeyId": (CredentialsError, "check the route's access_key_id"),
    "SignatureDoesNotMatch": (CredentialsError, "check the route's secret_access_key"),
    "InvalidClientTokenId": (CredentialsError, "check the route's credentials"),
    "ExpiredToken": (CredentialsError, "the session token expired; refresh the credentials"),
    "ExpiredTokenException": (CredentialsError, "the session token expired; refresh them"),
    "InvalidToken": (CredentialsError, "check the route's session_token"),
    "KMS.NotFoundException": (StorageError, "check the route's storage.kms_key_id"),
    "KMS.DisabledException": (StorageError, "enable the KMS key or change storage.kms_key_id"),
    "InvalidStorageClass": (StorageError, "check the route's storage.storage_class"),
    "EntityTooSmall": (StorageError, "every part but the last must be at least 5 MiB"),
    "InvalidPart": (StorageError, "the parts listed do not match the uploaded parts"),
    "InvalidPartOrder": (StorageError, "list the parts in ascending order"),
}


def translate_boto_error(
    err: BaseException,
    *,
    workspace: str | None,
    location: str,
    operation: str,
) -> WsArtifactsError:
    """Turn a botocore ``ClientError`` (or credentials error) into one of ours.

    Args:
        err: The botocore exception.
        workspace: The workspace the operation ran for.
        location: Where it went, as ``s3://bucket/key`` (no secret).
        operation: A short verb phrase, e.g. ``"upload"``.

    Returns:
        The translated exception; the caller raises it ``from err``.
    """
    code = _boto_code(err)
    cls, fix = _BOTO_ERRORS.get(code, (StorageError, "see the server log for details"))
    if code == "" and type(err).__name__ in {"NoCredentialsError", "PartialCredentialsError"}:
        cls, fix = CredentialsError, "give the route credentials (see 'ws-artifacts route')"
    if type(err).__name__ in {"EndpointConnectionError", "ConnectTimeoutError"}:
        cls, fix = StorageError, "check the route's endpoint_url and that the store is reachable"
    what = code or type(err).__name__
    return cls(
        f"{operation} failed for workspace '{workspace or '(none)'}' at {location}: {what}; "
        f"{fix}."
    )


def _boto_code(err: BaseException) -> str:
    response: Any = getattr(err, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
