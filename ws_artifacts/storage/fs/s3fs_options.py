"""The fsspec options of an ``s3://`` route served by s3fs (``backend: fsspec``)."""

from __future__ import annotations

from typing import Any

from ws_artifacts.core.errors import CredentialsError
from ws_artifacts.core.targets import Route

__all__ = ["s3fs_options"]


def s3fs_options(route: Route, options: dict[str, Any]) -> dict[str, Any]:
    """s3fs takes the route's S3 settings too, so ``backend: fsspec`` routes behave like boto3
    ones: endpoint, region and static keys (literal or from files) or a profile."""
    from ws_artifacts.storage.credentials import read_secret
    from ws_artifacts.storage.mlflow_settings import s3_defaults

    settings = route.settings
    env = s3_defaults()  # MLflow's S3 variables, under the file's own settings
    client_kwargs = dict(options.pop("client_kwargs", {}))
    if endpoint := settings.endpoint_url or env.endpoint_url:
        client_kwargs.setdefault("endpoint_url", endpoint)
    if region := settings.region or env.region:
        client_kwargs.setdefault("region_name", region)
    if not env.verify:
        client_kwargs.setdefault("verify", False)
    if client_kwargs:
        options["client_kwargs"] = client_kwargs
    creds = settings.credentials
    if creds is None:
        return options
    if creds.role_arn is not None:
        raise CredentialsError(
            f"Route '{route.name}' uses backend: fsspec with role_arn, which s3fs cannot assume "
            "with refresh; use backend: s3 (the default for s3:// urls) for assumed roles."
        )
    if creds.profile:
        options.setdefault("profile", creds.profile)
    for option, name in (
        ("key", "access_key_id"),
        ("secret", "secret_access_key"),
        ("token", "session_token"),
    ):
        value = read_secret(creds, name)
        if value is not None:
            options.setdefault(option, value)
    return options
