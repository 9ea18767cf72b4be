"""MLflow's own S3 settings, read from the environment as defaults under the configuration.

A server moved from ``s3://`` to ``ws-s3://`` keeps its ``MLFLOW_S3_ENDPOINT_URL``,
``MLFLOW_S3_IGNORE_TLS``, ``MLFLOW_S3_UPLOAD_EXTRA_ARGS``, ``MLFLOW_S3_EXPECTED_BUCKET_OWNER``
and ``AWS_DEFAULT_REGION``. Each applies only where the route (or ``defaults``) in the
configuration file says nothing: the file wins. Read at use time, never at import.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ws_artifacts.core.errors import ConfigError
from ws_artifacts.core.targets import Route

__all__ = [
    "ENDPOINT_URL",
    "EXPECTED_BUCKET_OWNER",
    "IGNORE_TLS",
    "REGION",
    "UPLOAD_EXTRA_ARGS",
    "S3Defaults",
    "expected_bucket_owner",
    "s3_defaults",
]

ENDPOINT_URL = "MLFLOW_S3_ENDPOINT_URL"
IGNORE_TLS = "MLFLOW_S3_IGNORE_TLS"
UPLOAD_EXTRA_ARGS = "MLFLOW_S3_UPLOAD_EXTRA_ARGS"
EXPECTED_BUCKET_OWNER = "MLFLOW_S3_EXPECTED_BUCKET_OWNER"
REGION = "AWS_DEFAULT_REGION"
_NAMES = (ENDPOINT_URL, IGNORE_TLS, UPLOAD_EXTRA_ARGS, EXPECTED_BUCKET_OWNER, REGION)
_URL = re.compile(r"^https?://[^\s]+$")


@dataclass(frozen=True, slots=True)
class S3Defaults:
    """MLflow's S3 settings as found in the environment (None: not set)."""

    endpoint_url: str | None = None
    region: str | None = None
    verify: bool = True
    upload_extra_args: tuple[tuple[str, Any], ...] = ()
    expected_bucket_owner: str | None = None

    def extra_args(self) -> dict[str, Any]:
        """``MLFLOW_S3_UPLOAD_EXTRA_ARGS`` as boto3 upload arguments."""
        return dict(self.upload_extra_args)


def s3_defaults(environ: Mapping[str, str] | None = None) -> S3Defaults:
    """MLflow's S3 settings from ``environ`` (default: the process environment, now).

    Raises:
        ConfigError: A variable is set to something MLflow itself would refuse.
    """
    env = os.environ if environ is None else environ
    return _parse(tuple(env.get(name) or None for name in _NAMES))


def expected_bucket_owner(route: Route) -> str | None:
    """The account that must own ``route``'s bucket, for every S3 call on it: the route's
    ``storage.expected_bucket_owner``, else ``MLFLOW_S3_EXPECTED_BUCKET_OWNER`` (read now, so a
    changed environment counts); None when neither says.

    Raises:
        ConfigError: One of MLflow's S3 variables is set to something MLflow would refuse.
    """
    policy = route.settings.storage
    return (policy.expected_bucket_owner if policy else None) or s3_defaults().expected_bucket_owner


@functools.lru_cache(maxsize=32)
def _parse(values: tuple[str | None, ...]) -> S3Defaults:
    endpoint, ignore_tls, extra, owner, region = values
    if endpoint is not None and not _URL.match(endpoint):
        raise ConfigError(
            f"{ENDPOINT_URL}={endpoint!r} is not an http(s) URL; set it like "
            "http://127.0.0.1:9000, or unset it and give routes an endpoint_url."
        )
    return S3Defaults(
        endpoint_url=endpoint,
        region=region,
        verify=not _boolean(IGNORE_TLS, ignore_tls),
        upload_extra_args=_extra_args(extra),
        expected_bucket_owner=owner,
    )


def _boolean(name: str, value: str | None) -> bool:
    # MLflow's boolean variables: true/false/1/0 in any case; anything else is an error.
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean; use true, false, 1 or 0.")


def _extra_args(value: str | None) -> tuple[tuple[str, Any], ...]:
    if value is None:
        return ()
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"{UPLOAD_EXTRA_ARGS} is not valid JSON ({err.msg} at character {err.pos}); set it "
            'to an object such as {"ServerSideEncryption": "AES256"}.'
        ) from None
    if not isinstance(parsed, dict) or not all(isinstance(k, str) for k in parsed):
        raise ConfigError(
            f"{UPLOAD_EXTRA_ARGS} must be a JSON object of boto3 upload arguments, such as "
            '{"ServerSideEncryption": "AES256"}.'
        )
    return tuple(sorted(parsed.items()))
