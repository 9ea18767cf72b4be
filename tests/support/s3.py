"""moto's S3 as an administrator sees it: a client with its credentials, a bucket's keys."""

from __future__ import annotations

from typing import Any

import boto3

from tests.support.servers import MOTO_KEY, MOTO_SECRET

__all__ = ["ROUTED_BUCKETS", "admin_client", "keys"]

#: The buckets of :func:`tests.support.config.routed` (``root`` is the servers' destination).
ROUTED_BUCKETS = ("root", "team-a-artifacts", "team-b-artifacts", "vision-artifacts")


def admin_client(endpoint: str, config: Any = None) -> Any:
    """A boto3 S3 client with moto's admin credentials (``config``: a botocore Config)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key=MOTO_SECRET,
        region_name="us-east-1",
        config=config,
    )


def keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    """Every key in ``bucket`` under ``prefix``, sorted."""
    out: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.extend(obj["Key"] for obj in page.get("Contents", []))
    return sorted(out)
