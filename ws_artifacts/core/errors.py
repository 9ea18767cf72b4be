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
    "AuthenticationError",
    "ConfigError",
    "CredentialsError",
    "InvalidRequestError",
    "NotFoundError",
    "OwnershipError",
    "PathError",
    "PresignedOnlyError",
    "QuotaExceededError",
    "RequestLimitError",
    "StorageError",
    "StorageLocationError",
    "UnroutedWorkspaceError",
    "WsArtifactsError",
    "boto_code",
    "error_class",
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


class StorageLocationError(OwnershipError):
    """A workspace's default_artifact_root is not a place it may use (outside every approved
    storage location, or overlapping another workspace's place)."""


class CredentialsError(WsArtifactsError, PermissionError):
    """A route's credentials could not be found, loaded or used."""

    mlflow_code = "PERMISSION_DENIED"


class AuthenticationError(CredentialsError):
    """The store does not know the route's key, or its signature does not match (MLflow's S3
    repository answers UNAUTHENTICATED for these)."""

    mlflow_code = "UNAUTHENTICATED"


class AccessDeniedError(WsArtifactsError, PermissionError):
    """The store refused the route's credentials for this operation."""

    mlflow_code = "PERMISSION_DENIED"


class NotFoundError(WsArtifactsError, FileNotFoundError):
    """The bucket, directory or object does not exist."""

    mlflow_code = "RESOURCE_DOES_NOT_EXIST"


class PresignedOnlyError(WsArtifactsError, NotImplementedError):
    """The server carries no artifact bytes (``--artifacts-presigned-only``) and a workspace's
    route cannot hand out presigned URLs (fsspec, local, ``presigned_downloads: false``)."""

    mlflow_code = "BAD_REQUEST"


class QuotaExceededError(WsArtifactsError, OSError):
    """An upload would take a workspace beyond its quota (answered with HTTP 413, which MLflow's
    client does not retry; MLflow's own status for RESOURCE_EXHAUSTED, 429, it retries)."""

    mlflow_code = "RESOURCE_EXHAUSTED"


class InvalidRequestError(WsArtifactsError, ValueError):
    """A request's parameters are invalid (other than its path: :class:`PathError`)."""

    mlflow_code = "INVALID_PARAMETER_VALUE"


class RequestLimitError(InvalidRequestError):
    """A request asks for more than a documented limit allows (parts of a multipart upload,
    a presigned URL's lifetime, presigned URLs or uploads outstanding)."""


class StorageError(WsArtifactsError, OSError):
    """Any other failure of the underlying store."""

    mlflow_code = "INTERNAL_ERROR"


# botocore error code -> (exception class, what to do about it). The one place that knows
# botocore's vocabulary; everything else raises our classes. "{action}" is the IAM action the
# operation needs and "{bucket}" the route's bucket (see _ACTIONS).
_GRANT = "grant the route's credentials {action} on bucket '{bucket}', or fix the credentials"
_BOTO_ERRORS: dict[str, tuple[type[WsArtifactsError], str]] = {
    "NoSuchBucket": (NotFoundError, "create bucket '{bucket}' or fix the route's url"),
    "NoSuchKey": (NotFoundError, "check the artifact path"),
    "404": (NotFoundError, "check the artifact path"),
    "NotFound": (NotFoundError, "check the artifact path"),
    "NoSuchUpload": (NotFoundError, "the multipart upload was completed or aborted already"),
    "AccessDenied": (
        AccessDeniedError,
        _GRANT + " (with storage.expected_bucket_owner set, also check the bucket's owner)",
    ),
    "403": (AccessDeniedError, _GRANT),
    "Forbidden": (AccessDeniedError, _GRANT),
    "AllAccessDisabled": (AccessDeniedError, "bucket '{bucket}' is disabled; use another bucket"),
    "InvalidAccessKeyId": (AuthenticationError, "check the route's access_key_id"),
    "SignatureDoesNotMatch": (AuthenticationError, "check the route's secret_access_key"),
    "InvalidClientTokenId": (CredentialsError, "check the route's credentials"),
    "UnrecognizedClientException": (CredentialsError, "check the route's credentials"),
    "ExpiredToken": (CredentialsError, "the session token expired; refresh the credentials"),
    "ExpiredTokenException": (CredentialsError, "the session token expired; refresh them"),
    "InvalidToken": (CredentialsError, "check the route's session_token"),
    "TokenRefreshRequired": (CredentialsError, "the session token expired; refresh them"),
    "KMS.NotFoundException": (StorageError, "check the route's storage.kms_key_id"),
    "KMS.DisabledException": (StorageError, "enable the KMS key or change storage.kms_key_id"),
    "KMS.AccessDeniedException": (
        AccessDeniedError,
        "grant the route's credentials kms:GenerateDataKey and kms:Decrypt on storage.kms_key_id",
    ),
    "InvalidStorageClass": (StorageError, "check the route's storage.storage_class"),
    "EntityTooSmall": (StorageError, "every part but the last must be at least 5 MiB"),
    "InvalidPart": (StorageError, "the parts listed do not match the uploaded parts"),
    "InvalidPartOrder": (StorageError, "list the parts in ascending order"),
}

# Codes that mean "this object is not there" (not a missing bucket or upload).
_MISSING_OBJECT = frozenset({"NoSuchKey", "404", "NotFound"})

# Errors of the STS call that turns a route's source credentials into role credentials.
_ASSUME_ROLE_ERRORS: dict[str, tuple[type[WsArtifactsError], str]] = {
    "AccessDenied": (
        CredentialsError,
        "the route's source credentials may not assume the role: allow sts:AssumeRole in their "
        "policy and trust them in the role's trust policy (with the external_id, if set)",
    ),
    "RegionDisabledException": (CredentialsError, "activate STS in the route's region"),
    "MalformedPolicyDocument": (CredentialsError, "the session policy was refused by STS"),
    "PackedPolicyTooLarge": (
        CredentialsError,
        "the session policy is too large; shorten the "
        "bucket or prefix, or turn restrict_to_route off",
    ),
    "ValidationError": (CredentialsError, "check role_arn, session_name and duration_seconds"),
}

# botocore exceptions raised before any request is answered, by class name.
_BOTO_CLASSES: dict[str, tuple[type[WsArtifactsError], str]] = {
    "NoCredentialsError": (
        CredentialsError,
        "give the route credentials, or set up the default AWS credential chain",
    ),
    "PartialCredentialsError": (CredentialsError, "give both access_key_id and secret_access_key"),
    "CredentialRetrievalError": (CredentialsError, "check the route's credential source"),
    "ProfileNotFound": (CredentialsError, "add the profile to the shared AWS config files"),
    "NoRegionError": (StorageError, "set the route's region"),
    "EndpointConnectionError": (
        StorageError,
        "check the route's endpoint_url and that the store is reachable",
    ),
    "ConnectTimeoutError": (
        StorageError,
        "check the route's endpoint_url and that the store is reachable",
    ),
}

# Our operation names -> the IAM action they need, for the messages.
_ACTIONS = {
    "upload": "s3:PutObject",
    "create multipart upload": "s3:PutObject",
    "complete multipart upload": "s3:PutObject",
    "abort multipart upload": "s3:AbortMultipartUpload",
    "list multipart uploads": "s3:ListBucketMultipartUploads",
    "list parts": "s3:ListMultipartUploadParts",
    "download": "s3:GetObject",
    "stat": "s3:GetObject",
    "presign": "s3:GetObject",
    "list": "s3:ListBucket",
    "delete": "s3:DeleteObject",
    "copy": "s3:GetObject on the source and s3:PutObject on the target",
}


def translate_boto_error(
    err: BaseException,
    *,
    workspace: str | None,
    location: str,
    operation: str,
    bucket: str | None = None,
    credentials: str | None = None,
) -> WsArtifactsError:
    """Turn a botocore ``ClientError`` (or credentials error) into one of ours.

    Only the error *code* of the botocore error is used: its message and response are never
    copied, since stores echo request details (key ids, canonical requests) in them.

    Args:
        err: The botocore exception.
        workspace: The workspace the operation ran for.
        location: Where it went, as ``s3://bucket/key`` (no secret).
        operation: A short verb phrase, e.g. ``"upload"``.
        bucket: The route's bucket, named in the fix.
        credentials: A safe description of the route's credentials (``Credentials.source``).

    Returns:
        The translated exception; the caller raises it ``from err``.
    """
    code = boto_code(err)
    name = type(err).__name__
    if getattr(err, "operation_name", None) == "AssumeRole":
        cls, fix = _ASSUME_ROLE_ERRORS.get(code, (CredentialsError, "check the route's role_arn"))
        operation = f"{operation} (assuming the route's role)"
    elif not code and name in _BOTO_CLASSES:
        cls, fix = _BOTO_CLASSES[name]
    else:
        cls, fix = _BOTO_ERRORS.get(code, (StorageError, "see the server log for details"))
    fix = fix.format(action=_ACTIONS.get(operation, "access"), bucket=bucket or location)
    what = code or name
    using = f" with {credentials}" if credentials else ""
    # MLflow's repositories say "No such artifact: '<path>'" for a missing object; so do we.
    missing = f"No such artifact: '{location}'. " if code in _MISSING_OBJECT else ""
    return cls(
        f"{missing}{operation} failed for workspace '{workspace or '(none)'}' at {location}"
        f"{using}: {what}; {fix}."
    )


def error_class(code: str) -> type[WsArtifactsError]:
    """Our class for a store's error ``code`` when it comes without an exception (a batch
    delete's per-key errors): the same table as :func:`translate_boto_error`."""
    return _BOTO_ERRORS.get(code, (StorageError, ""))[0]


def boto_code(err: BaseException) -> str:
    """The botocore error code of ``err`` (``""`` when it has none)."""
    response: Any = getattr(err, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
