"""boto3 clients per route identity: built once, kept in a bounded, age-limited cache.

Two routes with the same endpoint, region, client options and credentials share one client.
Entries expire after ``max_age`` seconds and at most ``max_size`` clients are kept, the least
recently used going first, so thousands of workspaces cost at most ``max_size`` clients.
Rotated credentials are picked up: a changed ``*_file`` secret (a re-mounted Kubernetes
secret) changes the key at once, a reloaded configuration brings new values, and anything
else (a profile, the default chain) is re-read when the entry ages out.

Each client's session, with the route's credentials or an assumed role, comes from
:mod:`ws_artifacts.storage.credentials`.
"""

from __future__ import annotations

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
from ws_artifacts.core.settings import Credentials, Settings
from ws_artifacts.storage.credentials import botocore_session
from ws_artifacts.storage.mlflow_settings import s3_defaults

__all__ = ["ClientCache", "ClientKey", "client_for", "describe_credentials"]

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


# -- building -------------------------------------------------------------------------------
def _build_client(key: ClientKey) -> Any:
    import botocore.config

    _redact.install()
    _logger.debug("building S3 client %s", key.describe())
    session = botocore_session(key.credentials, region=key.region, scope=key.scope, kms=key.kms)
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
