"""One route's bucket: its client, bucket owner and error translation, which every group of S3
operations (:mod:`.multipart`, :mod:`.presign`, :mod:`.keys`, :mod:`.backend`) builds on."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from ws_artifacts.core.errors import boto_code, translate_boto_error
from ws_artifacts.core.settings import Transfer
from ws_artifacts.core.targets import Route, Target
from ws_artifacts.storage.base import Backend
from ws_artifacts.storage.clients import client_for, describe_credentials
from ws_artifacts.storage.mlflow_settings import expected_bucket_owner

__all__ = ["MISSING", "BucketBackend"]

# The S3 backend's logger, whichever module of it logs: its lines keep the name they had.
_logger = logging.getLogger("ws_artifacts.storage.s3.backend")
MISSING = ("404", "NoSuchKey", "NotFound")  # head/get of a key with no object


class BucketBackend(Backend):
    """One route's bucket and prefix: what every S3 operation needs."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.bucket = route.location
        self.transfer = route.settings.transfer or Transfer()

    @property
    def _owner(self) -> dict[str, str]:
        """``ExpectedBucketOwner`` for every call: the route's, else MLflow's variable (read
        now, so a changed environment counts)."""
        owner = expected_bucket_owner(self.route)
        return {"ExpectedBucketOwner": owner} if owner else {}

    def client(self, target: Target) -> Any:
        """The client for ``target`` (shared, cached, rebuilt after its age limit). With
        ``restrict_to_route``, its session only reaches the workspace's prefix
        (``target.scope``)."""
        return client_for(self.route.settings, self.bucket, target.scope)

    @contextlib.contextmanager
    def _errors(self, operation: str, target: Target) -> Iterator[None]:
        with self._translated(operation, target.workspace, target.uri, log=True):
            yield

    @contextlib.contextmanager
    def _translated(
        self, operation: str, workspace: str | None, location: str, *, log: bool = False
    ) -> Iterator[None]:
        """botocore's errors as ours (:func:`~ws_artifacts.core.errors.translate_boto_error`),
        naming the workspace, ``location`` and the route's credentials."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (ClientError, BotoCoreError) as err:
            if log:
                _logger.debug(
                    "%s failed for workspace=%s bucket=%s: %s",
                    operation,
                    workspace,
                    self.bucket,
                    type(err).__name__,
                )
            raise translate_boto_error(
                err,
                workspace=workspace,
                location=location,
                operation=operation,
                bucket=self.bucket,
                credentials=describe_credentials(self.route.settings),
            ) from err

    def _area(self, base: str, *keys: str) -> Any:
        """The client for work inside ``base`` (narrowed to it with ``restrict_to_route``)."""
        self._inside(base, *keys)
        return client_for(self.route.settings, self.bucket, base)

    def _key_errors(
        self, operation: str, key: str, workspace: str | None = None
    ) -> AbstractContextManager[None]:
        return self._translated(operation, workspace or self.route.workspace, self.key_uri(key))

    def _head(self, client: Any, key: str, owner: dict[str, str]) -> Any:
        """``head_object``, None when there is no object at ``key`` (other botocore errors
        are raised as they are)."""
        from botocore.exceptions import ClientError

        try:
            return client.head_object(Bucket=self.bucket, Key=key, **owner)
        except ClientError as err:
            if boto_code(err) in MISSING:
                return None
            raise
