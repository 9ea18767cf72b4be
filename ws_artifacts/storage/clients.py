"""boto3 clients per route identity: built once, kept in a bounded, age-limited cache.

Two routes with the same endpoint, region, client options and credentials share one client.
Entries expire after ``max_age`` seconds and at most ``max_size`` clients are kept, the least
recently used going first, so thousands of workspaces cost at most ``max_size`` clients.
Rotated credentials are picked up: a changed ``*_file`` secret (a re-mounted Kubernetes
secret) changes the key at once, a reloaded configuration brings new values, and anything
else (a profile, the default chain) is re-read when the entry ages out.

Assumed roles use botocore's own refreshable credentials (``AssumeRoleCredentialFetcher``
behind ``DeferredRefreshableCredentials``): botocore refreshes them before they expire, no
timer thread of ours. With ``restrict_to_route`` the session carries a session policy that
only reaches the workspace's own key prefix in the route's bucket, so a leaked session token
cannot touch another workspace.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ws_artifacts.core import redact as _redact
from ws_artifacts.core.errors import CredentialsError
from ws_artifacts.core.settings import Credentials, Settings
from ws_artifacts.storage.mlflow_settings import s3_defaults

__all__ = [
    "ClientCache",
    "ClientKey",
    "client_for",
    "describe_credentials",
    "read_secret",
    "session_policy",
]

_logger = logging.getLogger(__name__)
_FILE_FIELDS = ("access_key_id_file", "secret_access_key_file", "session_token_file")


@dataclass(frozen=True, slots=True)
class ClientKey:
    """What makes two routes need different clients. Holds secrets: never log or print it
    (its repr masks them; use :meth:`describe`)."""

    endpoint_url: str | None
    region: str | None
    addressing_style: str | None
    retry_mode: str | None
    max_attempts: int | None
    credentials: Credentials | None
    # (mtime_ns, size) of each *_file secret, so a rotated file means a new client.
    files: tuple[tuple[int, int], ...]
    # (bucket, key prefix) the assumed-role session is narrowed to, when restrict_to_route.
    scope: tuple[str, str] | None
    # Whether the narrowed session needs KMS (sse aws:kms), and the key it may use.
    kms: tuple[bool, str | None]
    # TLS certificates checked (False: MLFLOW_S3_IGNORE_TLS is true).
    verify: bool = True

    @classmethod
    def for_route(cls, settings: Settings, bucket: str, prefix: str) -> ClientKey:
        """The key of the client for ``settings``; ``bucket`` and ``prefix`` (the workspace's
        key prefix) matter only when the route's assumed-role session is narrowed to them."""
        creds = settings.credentials
        narrowed = creds is not None and creds.restrict_to_route
        storage = settings.storage
        uses_kms = bool(narrowed and storage and storage.sse == "aws:kms")
        env = s3_defaults()  # MLflow's S3 variables, under the file's own settings
        return cls(
            endpoint_url=settings.endpoint_url or env.endpoint_url,
            region=settings.region or env.region,
            addressing_style=settings.addressing_style,
            retry_mode=settings.retry_mode,
            max_attempts=settings.max_attempts,
            credentials=creds,
            files=_file_stamps(creds),
            scope=(bucket, prefix.strip("/")) if narrowed else None,
            kms=(uses_kms, storage.kms_key_id if uses_kms and storage else None),
            verify=env.verify,
        )

    def describe(self) -> str:
        """Safe for logs: where the credentials come from, not what they are."""
        source = self.credentials.source if self.credentials else "default chain"
        scope = f" scope=s3://{self.scope[0]}/{self.scope[1]}" if self.scope else ""
        return f"endpoint={self.endpoint_url or 'aws'} region={self.region} source={source}{scope}"


class ClientCache:
    """A bounded LRU of boto3 S3 clients whose entries expire after ``max_age`` seconds.

    Concurrent requests for a key that is being built wait for that one build (so a cold
    cache under load makes one client and one AssumeRole call, not one per thread).
    """

    def __init__(
        self,
        max_size: int = 256,
        max_age: float = 900.0,
        *,
        build: Callable[[ClientKey], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_size = max_size
        self.max_age = max_age
        self._build = build
        self._clock = clock
        self._entries: OrderedDict[ClientKey, tuple[float, Any]] = OrderedDict()
        self._building: dict[ClientKey, Future[Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: ClientKey) -> Any:
        """The client for ``key``, built if absent or expired."""
        with self._lock:
            now = self._clock()
            entry = self._entries.get(key)
            if entry is not None and now - entry[0] < self.max_age:
                self._entries.move_to_end(key)
                return entry[1]
            pending = self._building.get(key)
            if pending is None:
                pending = self._building[key] = Future()
                builder = True
            else:
                builder = False
        if not builder:
            return pending.result()
        try:
            client = (self._build or _build_client)(key)  # outside the lock: tens of ms
        except BaseException as err:
            with self._lock:
                del self._building[key]
            pending.set_exception(err)
            raise
        with self._lock:
            del self._building[key]
            self._entries[key] = (now, client)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)
        pending.set_result(client)
        return client

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every client."""
        with self._lock:
            self._entries.clear()


_cache = ClientCache()


def client_for(settings: Settings, bucket: str, prefix: str) -> Any:
    """The shared S3 client for a route's settings.

    Args:
        settings: The route's effective settings.
        bucket: The route's bucket.
        prefix: The key prefix the workspace owns there (``Target.scope``); only used when
            the route's assumed-role session is narrowed to it (``restrict_to_route``).
    """
    return _cache.get(ClientKey.for_route(settings, bucket, prefix))


def describe_credentials(settings: Settings) -> str:
    """Where a route's credentials come from and what they are narrowed to, safe to print.

    Names files, profiles, role ARNs and options; never a key, secret, token or external id.
    """
    creds = settings.credentials
    if creds is None:
        return "default chain"
    if creds.access_key_id_file or creds.secret_access_key_file:
        files = [str(f) for f in (creds.access_key_id_file, creds.secret_access_key_file) if f]
        if creds.session_token_file:
            files.append(str(creds.session_token_file))
        base = f"static keys from files {', '.join(files)}"
    elif creds.access_key_id is not None:
        base = "static keys" + (" with session token" if creds.session_token else "")
    elif creds.profile:
        base = f"profile '{creds.profile}'"
    else:
        base = "default chain"
    if creds.role_arn is None:
        return base
    details = [f"session {creds.duration_seconds} s"]
    if creds.session_name:
        details.append(f"session name {creds.session_name}")
    if creds.external_id is not None:
        details.append("external id set")
    if creds.restrict_to_route:
        details.append("session policy: the workspace's prefix only")
    if creds.sts_endpoint_url:
        details.append(f"STS at {creds.sts_endpoint_url}")
    return f"assume role {creds.role_arn} ({', '.join(details)}) from {base}"


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


# -- building -------------------------------------------------------------------------------
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


def _build_client(key: ClientKey) -> Any:
    import botocore.config

    _redact.install()
    _logger.debug("building S3 client %s", key.describe())
    session = _session(key)
    s3_options: Any = {"addressing_style": key.addressing_style or "auto"}
    # max_attempts counts every attempt, the first included (as AWS_MAX_ATTEMPTS does).
    retries: Any = {
        "mode": key.retry_mode or "standard",
        "total_max_attempts": key.max_attempts or 5,
    }
    config = botocore.config.Config(
        s3=s3_options,
        retries=retries,
        max_pool_connections=64,
        signature_version="s3v4",
    )
    return session.create_client(
        "s3",
        region_name=key.region,
        endpoint_url=key.endpoint_url,
        config=config,
        **({} if key.verify else {"verify": False}),
    )


def _session(key: ClientKey) -> Any:
    """A botocore session whose credentials are the route's (or the default chain's)."""
    import botocore.exceptions

    creds = key.credentials
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
    return _assumed_role_session(session, creds, creds.role_arn, key)


def _assumed_role_session(
    source_session: Any, creds: Credentials, role_arn: str, key: ClientKey
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
    extra: dict[str, Any] = {
        "RoleSessionName": creds.session_name or "ws-artifacts",
        "DurationSeconds": creds.duration_seconds,
    }
    if creds.external_id is not None:
        extra["ExternalId"] = creds.external_id.get_secret_value()
    if key.scope is not None:
        bucket, prefix = key.scope
        extra["Policy"] = session_policy(
            bucket,
            prefix,
            kms=key.kms[0],
            kms_key_id=key.kms[1],
            partition=role_arn.split(":")[1],
        )

    def create_sts(service: str, **kwargs: Any) -> Any:
        return source_session.create_client(
            service, region_name=key.region, endpoint_url=creds.sts_endpoint_url, **kwargs
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
        extra_args=extra,
        expiry_window_seconds=window,
    )

    def fetch() -> dict[str, Any]:
        issued: dict[str, Any] = fetcher.fetch_credentials()
        for name in ("access_key", "secret_key", "token"):
            _redact.remember(issued.get(name))
        _logger.debug("assumed role %s (session expires %s)", role_arn, issued.get("expiry_time"))
        return issued

    role_credentials, fixed_provider = _botocore_classes()
    provider = fixed_provider(role_credentials(fetch, window))
    # A second session: the source session's explicit credentials would shadow any provider.
    session = _new_botocore_session()
    if creds.profile:
        session.set_config_variable("profile", creds.profile)  # its region and settings
    session.register_component(
        "credential_provider", botocore.credentials.CredentialResolver([provider])
    )
    return session


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


def _file_stamps(creds: Credentials | None) -> tuple[tuple[int, int], ...]:
    if creds is None:
        return ()
    stamps = []
    for name in _FILE_FIELDS:
        file: Path | None = getattr(creds, name)
        if file is not None:
            try:
                stat = os.stat(file)
            except OSError:
                stamps.append((-1, -1))  # reported when the client is built
            else:
                stamps.append((stat.st_mtime_ns, stat.st_size))
    return tuple(stamps)


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
