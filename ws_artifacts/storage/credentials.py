"""Where a route's credentials come from: static keys (literal or mounted files), a profile,
the default chain, or a role assumed from any of these.

Assumed roles use botocore's own refreshable credentials (``AssumeRoleCredentialFetcher``
behind ``DeferredRefreshableCredentials``): botocore refreshes them before they expire, no
timer thread of ours. With ``restrict_to_route`` the session carries a session policy that
only reaches the workspace's own key prefix in the route's bucket, so a leaked session token
cannot touch another workspace. :mod:`ws_artifacts.storage.clients` builds and caches the
clients over these sessions.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ws_artifacts.core import redact as _redact
from ws_artifacts.core.errors import CredentialsError
from ws_artifacts.core.settings import Credentials

__all__ = ["botocore_session", "read_secret", "session_policy"]

_logger = logging.getLogger(__name__)


#: What a narrowed session may do to the objects below its prefix.
_OBJECT_ACTIONS = (
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:GetObjectTagging",
    "s3:PutObjectTagging",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)


def session_policy(
    bucket: str,
    prefix: str,
    *,
    kms: bool = False,
    kms_key_id: str | None = None,
    partition: str = "aws",
) -> str:
    """An IAM session policy allowing object access under ``bucket/prefix/`` only.

    Args:
        bucket: The route's bucket.
        prefix: The key prefix (without slashes at the ends); empty for the whole bucket.
        kms: Also allow the KMS calls SSE-KMS uploads and downloads need.
        kms_key_id: Limit those to this key when it is an ARN (an id or alias cannot be a
            resource; the role's own policy then decides).
        partition: The ARN partition (``aws``, ``aws-cn``, ``aws-us-gov``).
    """
    s3 = f"arn:{partition}:s3:::{bucket}"
    objects = f"{s3}/{prefix}/*" if prefix else f"{s3}/*"
    statements: list[dict[str, Any]] = [
        {
            "Effect": "Allow",
            "Action": list(_OBJECT_ACTIONS),
            "Resource": objects,
        },
        {
            "Effect": "Allow",
            # Listing pending uploads: completing or aborting one checks it is the key's own.
            "Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads"],
            "Resource": s3,
            "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"] if prefix else "*"}},
        },
    ]
    if kms:
        statements.append(
            {
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": kms_key_id if kms_key_id and kms_key_id.startswith("arn:") else "*",
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, separators=(",", ":"))


# -- sessions -------------------------------------------------------------------------------
def _new_botocore_session() -> Any:
    """A fresh botocore session (one place, so tests can hook its events), sharing one data
    loader with every other session of this process."""
    import botocore.session

    session = botocore.session.Session()
    session.register_component("data_loader", _shared_data_loader(session))
    return session


_loader_lock = threading.Lock()
_loader: Any = None


def _shared_data_loader(session: Any) -> Any:
    """botocore's loader of service models, one per process.

    Every route identity needs its own session (credentials live there), and each session
    would otherwise parse S3's model and endpoint rules again: ~12 MB per client, so twenty
    teams' credentials cost ~240 MB in every server worker. The loader only caches what it
    read from botocore's data files, so sharing it shares nothing of a team's.
    """
    global _loader
    with _loader_lock:
        if _loader is None:
            _loader = session.get_component("data_loader")
        return _loader


def botocore_session(
    creds: Credentials | None,
    *,
    region: str | None,
    scope: tuple[str, str] | None,
    kms: tuple[bool, str | None],
) -> Any:
    """A botocore session whose credentials are the route's (or the default chain's).

    Args:
        creds: The route's credentials; None for the default chain.
        region: The region STS is called in, for an assumed role.
        scope: (bucket, key prefix) an assumed role's session is narrowed to, or None.
        kms: Whether the narrowed session needs KMS, and the key it may use.
    """
    import botocore.exceptions

    session = _new_botocore_session()
    if creds is None:
        return session
    if creds.profile:
        session.set_config_variable("profile", creds.profile)
        try:
            session.get_scoped_config()
        except botocore.exceptions.ProfileNotFound:
            raise CredentialsError(
                f"AWS profile '{creds.profile}' is not in the shared AWS config files; add it "
                "there or name another profile in the route's credentials."
            ) from None
    access_key = read_secret(creds, "access_key_id")
    if access_key is not None:
        session.set_credentials(
            access_key, read_secret(creds, "secret_access_key"), read_secret(creds, "session_token")
        )
    if creds.role_arn is None:
        return session
    return _assumed_role_session(session, creds, creds.role_arn, region, scope, kms)


def _assumed_role_session(
    source_session: Any,
    creds: Credentials,
    role_arn: str,
    region: str | None,
    scope: tuple[str, str] | None,
    kms: tuple[bool, str | None],
) -> Any:
    """A session whose credentials are refreshable credentials of ``role_arn``, obtained from
    STS with ``source_session``'s credentials."""
    import botocore.credentials

    source = source_session.get_credentials()
    if source is None:
        raise CredentialsError(
            f"No credentials to assume role {role_arn} with; give the route static keys, "
            "a profile, or set up the default AWS credential chain."
        )

    def create_sts(service: str, **kwargs: Any) -> Any:
        return source_session.create_client(
            service, region_name=region, endpoint_url=creds.sts_endpoint_url, **kwargs
        )

    # Refresh a third of the session's life before expiry (at most 15 minutes): with the
    # shortest sessions (15 min) botocore's fixed 15-minute window would otherwise call STS
    # on every request. The fetcher's own cache uses the same window, so a refresh that
    # botocore asks for really calls STS.
    window = min(15 * 60, creds.duration_seconds // 3)
    fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
        client_creator=create_sts,
        source_credentials=source,
        role_arn=role_arn,
        extra_args=_assume_role_args(creds, role_arn, scope, kms),
        expiry_window_seconds=window,
    )

    def fetch() -> dict[str, Any]:
        issued: dict[str, Any] = fetcher.fetch_credentials()
        for name in ("access_key", "secret_key", "token"):
            _redact.remember(issued.get(name))
        _logger.debug("assumed role %s (session expires %s)", role_arn, issued.get("expiry_time"))
        return issued

    role_credentials, fixed_provider = _botocore_classes()
    return _session_of(creds, fixed_provider(role_credentials(fetch, window)))


def _session_of(creds: Credentials, provider: Any) -> Any:
    """A new session whose only credential provider is ``provider`` (a second session: the
    source session's explicit credentials would shadow any provider)."""
    import botocore.credentials

    session = _new_botocore_session()
    if creds.profile:
        session.set_config_variable("profile", creds.profile)  # its region and settings
    session.register_component(
        "credential_provider", botocore.credentials.CredentialResolver([provider])
    )
    return session


def _assume_role_args(
    creds: Credentials,
    role_arn: str,
    scope: tuple[str, str] | None,
    kms: tuple[bool, str | None],
) -> dict[str, Any]:
    """AssumeRole's arguments beyond the role: session name and life, external id, and the
    session policy that narrows the session to ``scope``."""
    extra: dict[str, Any] = {
        "RoleSessionName": creds.session_name or "ws-artifacts",
        "DurationSeconds": creds.duration_seconds,
    }
    if creds.external_id is not None:
        extra["ExternalId"] = creds.external_id.get_secret_value()
    if scope is not None:
        bucket, prefix = scope
        extra["Policy"] = session_policy(
            bucket,
            prefix,
            kms=kms[0],
            kms_key_id=kms[1],
            partition=role_arn.split(":")[1],
        )
    return extra


def _now() -> Any:
    """botocore's clock, looked up on each call (so one patch moves every expiry check)."""
    import botocore.credentials

    return botocore.credentials._local_now()  # type: ignore[attr-defined]


@functools.cache
def _botocore_classes() -> tuple[type, type]:
    """Our two botocore subclasses, defined on first use (botocore is not imported at ours)."""
    import botocore.credentials

    class RoleCredentials(botocore.credentials.DeferredRefreshableCredentials):
        """Deferred refreshable credentials with refresh windows scaled to the session."""

        def __init__(self, refresh: Callable[[], Any], window: int) -> None:
            super().__init__(refresh, "ws-artifacts-assume-role", time_fetcher=_now)
            self._advisory_refresh_timeout = window
            self._mandatory_refresh_timeout = window // 2

    class FixedProvider(botocore.credentials.CredentialProvider):
        """A credential provider that always answers the same credentials object."""

        METHOD = "ws-artifacts"
        CANONICAL_NAME = "custom-ws-artifacts"

        def __init__(self, credentials: Any) -> None:
            super().__init__()
            self._credentials = credentials

        def load(self) -> Any:
            return self._credentials

    return RoleCredentials, FixedProvider


def read_secret(creds: Credentials, name: str) -> str | None:
    """The value of the secret `name` (literal or `<name>_file`), remembered for log scrubbing."""
    literal = getattr(creds, name)
    if literal is not None:
        value = str(literal.get_secret_value())
        _redact.remember(value)
        return value
    file: Path | None = getattr(creds, f"{name}_file")
    if file is None:
        return None
    try:
        value = file.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise CredentialsError(
            f"Cannot read {name}_file {file} ({err.strerror}); mount the secret there or fix "
            "the path in the route's credentials."
        ) from None
    if not value:
        raise CredentialsError(
            f"{name}_file {file} is empty; mount the secret there or fix the path in the "
            "route's credentials."
        )
    _redact.remember(value)
    return value
