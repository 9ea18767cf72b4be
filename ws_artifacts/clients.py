"""boto3 clients per route identity: built once, kept in a bounded, age-limited cache.

Two routes with the same endpoint, region, client options and credentials share one client.
Entries expire after ``max_age`` seconds, so rotated credentials (a mounted secret file, a
changed environment variable in a reloaded configuration) are picked up; at most ``max_size``
clients are kept, the least recently used go first.

Assumed roles use botocore's own refreshable credentials (``AssumeRoleCredentialFetcher``):
botocore refreshes them before they expire, no timer thread of ours.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ws_artifacts.config import Credentials, Settings
from ws_artifacts.errors import CredentialsError

__all__ = ["ClientCache", "ClientKey", "client_for", "session_policy"]

_logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClientKey:
    """What makes two routes need different clients. Holds secrets: never log or print it."""

    endpoint_url: str | None
    region: str | None
    addressing_style: str | None
    retry_mode: str | None
    max_attempts: int | None
    credentials: Credentials | None
    # (bucket, key prefix) the assumed-role session is narrowed to, when restrict_to_route.
    scope: tuple[str, str] | None
    kms_key_id: str | None

    @classmethod
    def for_route(cls, settings: Settings, bucket: str, prefix: str) -> ClientKey:
        """The key of a route's client."""
        creds = settings.credentials
        narrowed = creds is not None and creds.restrict_to_route
        return cls(
            endpoint_url=settings.endpoint_url,
            region=settings.region,
            addressing_style=settings.addressing_style,
            retry_mode=settings.retry_mode,
            max_attempts=settings.max_attempts,
            credentials=creds,
            scope=(bucket, prefix) if narrowed else None,
            kms_key_id=settings.storage.kms_key_id if narrowed and settings.storage else None,
        )

    def describe(self) -> str:
        """Safe for logs: where the credentials come from, not what they are."""
        source = self.credentials.source if self.credentials else "default chain"
        return f"endpoint={self.endpoint_url or 'aws'} region={self.region} source={source}"


class ClientCache:
    """A bounded LRU of boto3 S3 clients whose entries expire after ``max_age`` seconds."""

    def __init__(self, max_size: int = 256, max_age: float = 900.0) -> None:
        self.max_size = max_size
        self.max_age = max_age
        self._entries: OrderedDict[ClientKey, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: ClientKey) -> Any:
        """The client for ``key``, built if absent or expired."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now - entry[0] < self.max_age:
                self._entries.move_to_end(key)
                return entry[1]
        client = _build_client(key)  # outside the lock: building can take tens of ms
        with self._lock:
            self._entries[key] = (now, client)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)
        return client

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every client."""
        with self._lock:
            self._entries.clear()


_cache = ClientCache()


def client_for(settings: Settings, bucket: str, prefix: str) -> Any:
    """The shared S3 client for a route's settings (bucket and prefix matter only when the
    route's assumed-role session is narrowed to them)."""
    return _cache.get(ClientKey.for_route(settings, bucket, prefix))


def session_policy(bucket: str, prefix: str, kms_key_id: str | None = None) -> str:
    """An IAM session policy allowing object access under ``bucket/prefix/`` only."""
    objects = f"arn:aws:s3:::{bucket}/{prefix}/*" if prefix else f"arn:aws:s3:::{bucket}/*"
    statements: list[dict[str, Any]] = [
        {
            "Effect": "Allow",
            "Action": [
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:GetObjectTagging",
                "s3:PutObjectTagging",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
            "Resource": objects,
        },
        {
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{bucket}",
            "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/*", prefix] if prefix else ["*"]}},
        },
    ]
    if kms_key_id:
        statements.append(
            {
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": kms_key_id if kms_key_id.startswith("arn:") else "*",
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, separators=(",", ":"))


def _build_client(key: ClientKey) -> Any:
    import botocore.config

    _logger.debug("building S3 client %s", key.describe())
    session = _session(key)
    config = botocore.config.Config(
        s3={"addressing_style": key.addressing_style or "auto"},
        retries={"mode": key.retry_mode or "standard", "max_attempts": key.max_attempts or 5},
        max_pool_connections=64,
        signature_version="s3v4",
    )
    return session.client("s3", endpoint_url=key.endpoint_url, config=config)


def _session(key: ClientKey) -> Any:
    import boto3
    import botocore.exceptions

    creds = key.credentials
    try:
        if creds is None:
            return boto3.Session(region_name=key.region)
        base = boto3.Session(
            aws_access_key_id=_secret(creds, "access_key_id"),
            aws_secret_access_key=_secret(creds, "secret_access_key"),
            aws_session_token=_secret(creds, "session_token"),
            profile_name=creds.profile,
            region_name=key.region,
        )
    except botocore.exceptions.ProfileNotFound:
        raise CredentialsError(
            f"AWS profile '{creds.profile if creds else ''}' is not in the shared AWS config "
            "files; add it there or name another profile in the route's credentials."
        ) from None
    if creds.role_arn is None:
        return base
    return _assumed_role_session(base, creds, key)


def _assumed_role_session(base: Any, creds: Credentials, key: ClientKey) -> Any:
    import boto3
    import botocore.credentials
    import botocore.session

    source = base.get_credentials()
    if source is None:
        raise CredentialsError(
            f"No credentials to assume role {creds.role_arn} with; give the route static keys, "
            "a profile, or set up the default AWS credential chain."
        )
    extra: dict[str, Any] = {
        "RoleSessionName": creds.session_name or "ws-artifacts",
        "DurationSeconds": creds.duration_seconds,
    }
    if creds.external_id is not None:
        extra["ExternalId"] = creds.external_id.get_secret_value()
    if key.scope is not None:
        extra["Policy"] = session_policy(*key.scope, kms_key_id=key.kms_key_id)
    botocore_base = base._session  # the public boto3 attribute for its botocore session

    def create_sts(service: str, **kwargs: Any) -> Any:
        return botocore_base.create_client(
            service, region_name=key.region, endpoint_url=creds.sts_endpoint_url, **kwargs
        )

    # Refresh a third of the way before expiry: with the shortest sessions (15 min) botocore's
    # fixed 15-minute advisory window would otherwise call STS on every request.
    window = min(15 * 60, creds.duration_seconds // 3)
    fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
        client_creator=create_sts,
        source_credentials=source,
        role_arn=creds.role_arn,
        extra_args=extra,
        expiry_window_seconds=window,
    )
    refreshable = botocore.credentials.DeferredRefreshableCredentials(
        method="ws-artifacts-assume-role", refresh_using=fetcher.fetch_credentials
    )
    refreshable._advisory_refresh_timeout = window
    refreshable._mandatory_refresh_timeout = window // 2
    session = botocore.session.Session()
    session._credentials = refreshable
    return boto3.Session(botocore_session=session, region_name=key.region)


def _secret(creds: Credentials, name: str) -> str | None:
    literal = getattr(creds, name)
    if literal is not None:
        return str(literal.get_secret_value())
    file: Path | None = getattr(creds, f"{name}_file")
    if file is None:
        return None
    try:
        return file.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise CredentialsError(
            f"Cannot read {name}_file {file} ({err.strerror}); mount the secret there or fix "
            "the path in the route's credentials."
        ) from None
