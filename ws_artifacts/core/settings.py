"""The settings a route may set, and ``defaults`` sets for every route: connection, credentials,
storage policy, transfer tuning and quota (the pydantic models below the file's places in
:mod:`ws_artifacts.core.config`). Pure: no I/O.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)

__all__ = [
    "SECRET_FIELDS",
    "SECRET_OPTION",
    "WORKSPACE_TAG",
    "Credentials",
    "Quota",
    "Settings",
    "StoragePolicy",
    "StrictModel",
    "Transfer",
    "merge_settings",
    "parse_size",
]

_MIB = 1024 * 1024
#: The tag every object gets (unless ``storage.tag_workspace: false``).
WORKSPACE_TAG = "mlflow-workspace"
#: ``storage_options`` keys whose values are secrets (masked in output, redacted in logs).
SECRET_OPTION = re.compile(r"(secret|token|password|passwd|key$|_key|credential|sas)", re.I)


class StrictModel(BaseModel):
    """The base of every model of the file: unknown keys refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Credentials(StrictModel):
    """Where a route's S3 credentials come from. Say nothing to use boto3's default chain."""

    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    access_key_id_file: Path | None = None
    secret_access_key_file: Path | None = None
    session_token_file: Path | None = None
    profile: str | None = None
    role_arn: str | None = Field(default=None, pattern=r"^arn:[^:\s]+:iam::[^:\s]*:role/.+$")
    external_id: SecretStr | None = None
    session_name: str | None = Field(default=None, pattern=r"^[\w+=,.@{}-]{2,64}$")
    duration_seconds: int = Field(default=3600, ge=900, le=43200)
    sts_endpoint_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    restrict_to_route: bool = Field(
        default=False,
        description="Attach a session policy that limits the assumed-role session to the "
        "route's bucket and the workspace's key prefix.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Credentials:
        for name in SECRET_FIELDS:
            value: SecretStr | None = getattr(self, name)
            if value is not None and not value.get_secret_value().strip():
                # boto3 would silently fall back to the server's own credentials.
                raise ValueError(
                    f"{name} is empty (did a ${{VAR}} expand to nothing?); give a value or "
                    "leave the key out"
                )
        pairs = [
            ("access_key_id", self.access_key_id, self.access_key_id_file),
            ("secret_access_key", self.secret_access_key, self.secret_access_key_file),
            ("session_token", self.session_token, self.session_token_file),
        ]
        for name, literal, file in pairs:
            if literal is not None and file is not None:
                raise ValueError(f"give {name} or {name}_file, not both")
        has_key = self.access_key_id is not None or self.access_key_id_file is not None
        has_secret = self.secret_access_key is not None or self.secret_access_key_file is not None
        if has_key != has_secret:
            raise ValueError("static credentials need both access_key_id and secret_access_key")
        if has_key and self.profile:
            raise ValueError("give static keys or a profile, not both")
        has_token = self.session_token is not None or self.session_token_file is not None
        if has_token and not has_key:
            raise ValueError("session_token needs access_key_id and secret_access_key")
        if self.role_arn is None and (self.external_id or self.session_name):
            raise ValueError("external_id and session_name only apply with role_arn")
        if self.role_arn is None and self.restrict_to_route:
            raise ValueError("restrict_to_route only applies with role_arn")
        return self

    @property
    def source(self) -> str:
        """A description of the source, safe to print (never a secret)."""
        if self.access_key_id_file or self.secret_access_key_file:
            base = "static keys from files"
        elif self.access_key_id is not None:
            base = "static keys"
        elif self.profile:
            base = f"profile '{self.profile}'"
        else:
            base = "default chain"
        if self.role_arn:
            narrowed = ", session policy on route" if self.restrict_to_route else ""
            return f"assume role {self.role_arn} (from {base}{narrowed})"
        return base


#: Credentials' fields that hold secrets.
SECRET_FIELDS = ("access_key_id", "secret_access_key", "session_token", "external_id")


class StoragePolicy(StrictModel):
    """How objects are stored: encryption, storage class, tags, expected bucket owner."""

    sse: Literal["AES256", "aws:kms"] | None = None
    kms_key_id: str | None = None
    storage_class: str | None = Field(default=None, pattern=r"^[A-Z_]+$")
    tags: dict[str, str] = Field(default_factory=dict)
    tag_workspace: bool = Field(
        default=True, description=f"Tag every object with {WORKSPACE_TAG}=<workspace name>."
    )
    expected_bucket_owner: str | None = Field(default=None, pattern=r"^\d{12}$")

    @model_validator(mode="after")
    def _kms_key_needs_kms(self) -> StoragePolicy:
        if self.kms_key_id and self.sse != "aws:kms":
            raise ValueError("kms_key_id needs sse: aws:kms")
        return self

    @model_validator(mode="after")
    def _s3_tag_limits(self) -> StoragePolicy:
        # S3 allows 10 tags per object; keys 1-128 characters, values up to 256, no "aws:".
        reserved = {WORKSPACE_TAG} if self.tag_workspace else set()
        room = 10 - len(reserved)
        if len(self.tags) > room:
            ours = f" besides {WORKSPACE_TAG}" if reserved else ""
            raise ValueError(f"at most {room} tags{ours} (S3 allows 10 per object)")
        for key, value in self.tags.items():
            if key in reserved:
                raise ValueError(f"tag {key} is set by ws-artifacts (or set tag_workspace: false)")
            if not 1 <= len(key) <= 128 or key.lower().startswith("aws:"):
                raise ValueError("tag keys are 1 to 128 characters and may not start with aws:")
            if len(value) > 256:
                raise ValueError("tag values are at most 256 characters")
        return self


class Transfer(StrictModel):
    """Transfer tuning. Parts are at least 5 MiB, S3's own minimum."""

    multipart_threshold: int = Field(
        default=16 * _MIB, ge=5 * _MIB, description="Files this large or larger go in parts."
    )
    part_size: int = Field(default=8 * _MIB, ge=5 * _MIB, le=5 * 1024 * _MIB)
    max_concurrency: int = Field(
        default=8, ge=1, le=64, description="Files transferred at once by log/download_artifacts."
    )
    parts_in_flight: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Parts of one large object transferred at once; with part_size, this "
        "bounds what one transfer holds (default 4 x 8 MiB): in memory for files, on disk "
        "(one more part) for uploads streamed through the server.",
    )
    presigned_downloads: bool = Field(
        default=True,
        description="Let proxied clients download S3 objects through presigned URLs. Turn off "
        "when clients cannot reach the store's endpoint.",
    )


_SIZE = re.compile(r"^\s*(\d+)\s*([KMGTP]i?B|B)?\s*$", re.I)
_UNITS = {"": 1, "B": 1}
for _i, _p in enumerate("KMGTP", start=1):
    _UNITS[f"{_p}B"] = 1000**_i
    _UNITS[f"{_p}IB"] = 1024**_i


def parse_size(value: Any) -> Any:
    """``10GiB`` (1024-based), ``500MB`` (1000-based), ``123B`` or a plain integer, in bytes;
    anything else is left for pydantic to refuse."""
    if isinstance(value, str) and (match := _SIZE.match(value)):
        return int(match.group(1)) * _UNITS[(match.group(2) or "").upper()]
    return value


class Quota(StrictModel):
    """How much one workspace may keep on its route (each workspace its own quota)."""

    max_bytes: int | None = Field(
        default=None,
        ge=0,
        description="Bytes the workspace may hold: an integer or a size such as 10GiB "
        "(1024-based) or 500MB (1000-based).",
    )
    max_objects: int | None = Field(default=None, ge=0, description="Objects it may hold.")
    remeasure_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Each server worker lists the workspace again after this long; between "
        "listings it counts its own writes (others' writes show at its next listing).",
    )

    @field_validator("max_bytes", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        parsed = parse_size(value)
        if isinstance(parsed, str):
            raise ValueError("give bytes as an integer or a size such as 10GiB or 500MB")
        return parsed

    @model_validator(mode="after")
    def _some_limit(self) -> Quota:
        if self.max_bytes is None and self.max_objects is None:
            raise ValueError("a quota needs max_bytes, max_objects or both")
        return self


class Settings(StrictModel):
    """Settings a route may set and ``defaults`` sets for all routes."""

    endpoint_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    region: str | None = Field(default=None, pattern=r"^[a-z0-9-]+$")
    addressing_style: Literal["auto", "path", "virtual"] | None = None
    retry_mode: Literal["legacy", "standard", "adaptive"] | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    credentials: Credentials | None = None
    storage: StoragePolicy | None = None
    transfer: Transfer | None = None
    quota: Quota | None = None
    storage_options: dict[str, Any] = Field(
        default_factory=dict, repr=False, description="Passed to the fsspec file system."
    )

    def public_storage_options(self) -> dict[str, Any]:
        """``storage_options`` with secret-looking values masked (nested ones too), for output."""
        return _mask_options(self.storage_options)

    @field_serializer("storage_options")
    def _dump_storage_options(self, options: dict[str, Any]) -> dict[str, Any]:
        # Dumps (model_dump, model_dump_json) are for output: mask like SecretStr does.
        return _mask_options(options)


def _mask_options(options: dict[str, Any]) -> dict[str, Any]:
    return {
        key: "**********"
        if SECRET_OPTION.search(key)
        else _mask_options(value)
        if isinstance(value, dict)
        else value
        for key, value in options.items()
    }


def merge_settings(route: Settings, defaults: Settings, workspace: str) -> Settings:
    """The route's settings over the defaults; nested blocks replace, not merge, except
    ``storage_options``, which merges key by key."""
    values = {name: getattr(defaults, name) for name in Settings.model_fields}
    for name in route.model_fields_set & set(Settings.model_fields):
        values[name] = getattr(route, name)
    values["storage_options"] = {**defaults.storage_options, **route.storage_options}
    credentials: Credentials | None = values["credentials"]
    if credentials is not None and (credentials.role_arn or credentials.session_name):
        values["credentials"] = credentials.model_copy(
            update={
                "role_arn": (credentials.role_arn or "").replace("{workspace}", workspace) or None,
                "session_name": (credentials.session_name or "").replace("{workspace}", workspace)
                or None,
            }
        )
    return Settings.model_construct(**values)
