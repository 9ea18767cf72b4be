"""The arguments of every S3 upload: content type from the name, MLflow's S3 variables, then the
route's storage policy (encryption, class, owner, tags)."""

from __future__ import annotations

import urllib.parse
from typing import Any

from ws_artifacts.core.settings import WORKSPACE_TAG
from ws_artifacts.core.targets import Route
from ws_artifacts.storage.content import content_args
from ws_artifacts.storage.mlflow_settings import s3_defaults

__all__ = ["put_args"]


def put_args(route: Route, workspace: str, name: str = "") -> dict[str, Any]:
    """The arguments of every upload of an object called ``name``: ``put_object``,
    ``create_multipart_upload`` (parts inherit SSE, class and tags from it) and presigned PUTs.

    In increasing precedence: Content-Type and Content-Encoding guessed from the name (as
    MLflow's S3 repository does), ``MLFLOW_S3_UPLOAD_EXTRA_ARGS`` and
    ``MLFLOW_S3_EXPECTED_BUCKET_OWNER``, then the route's storage policy (the file wins).
    """
    policy = route.settings.storage
    env = s3_defaults()
    args: dict[str, Any] = content_args(name) if name else {}
    args.update(env.extra_args())
    if env.expected_bucket_owner:
        args["ExpectedBucketOwner"] = env.expected_bucket_owner
    tags: dict[str, str] = {}
    if policy is not None:
        if policy.sse:
            args["ServerSideEncryption"] = policy.sse
        if policy.kms_key_id:
            args["SSEKMSKeyId"] = policy.kms_key_id
        if policy.storage_class:
            args["StorageClass"] = policy.storage_class
        if policy.expected_bucket_owner:
            args["ExpectedBucketOwner"] = policy.expected_bucket_owner
        tags.update(policy.tags)
    if policy is None or policy.tag_workspace:
        tags[WORKSPACE_TAG] = workspace
    if tags:
        # x-amz-tagging is a query string; quote (not quote_plus) so a space stays a space.
        args["Tagging"] = urllib.parse.urlencode(tags, quote_via=urllib.parse.quote)
    return args
