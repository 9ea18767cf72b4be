"""The configuration file: pydantic models, ``${VAR}`` expansion and the loader (the live,
re-read configuration of a running server is :mod:`ws_artifacts.serving.live_config`).

The file is YAML, named by ``WS_ARTIFACTS_CONFIG`` (or ``--config`` on the CLI)::

    defaults:            # settings every route inherits
      endpoint_url: http://127.0.0.1:9000
      region: us-east-1
    workspaces:
      team-a:
        url: s3://team-a-artifacts
        credentials: {access_key_id: "${TEAM_A_KEY}", secret_access_key: "${TEAM_A_SECRET}"}
      "vision-*":
        url: s3://vision-artifacts/{workspace}
    unknown_workspaces: default   # or deny

Errors name the file and the key path (``workspaces.team-a.credentials.role_arn``) and never
echo a value, since values may be secrets.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from ws_artifacts.core import redact as _redact
from ws_artifacts.core.errors import ConfigError
from ws_artifacts.core.paths import is_valid_workspace_name

__all__ = [
    "CONFIG_ENV_VAR",
    "WORKSPACE_TAG",
    "Config",
    "Credentials",
    "LocationConfig",
    "PlaceConfig",
    "Quota",
    "RouteConfig",
    "Settings",
    "StoragePolicy",
    "Transfer",
    "check_store_url",
    "load_config",
    "parse_config",
    "secret_values",
]

_logger = logging.getLogger(__name__)

#: Environment variable naming the configuration file.
CONFIG_ENV_VAR = "WS_ARTIFACTS_CONFIG"
_MIB = 1024 * 1024
_GLOB_CHARS = frozenset("*?[")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
#: The tag every object gets (unless ``storage.tag_workspace: false``).
WORKSPACE_TAG = "mlflow-workspace"
_SECRET_OPTION = re.compile(r"(secret|token|password|passwd|key$|_key|credential|sas)", re.I)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Credentials(_Model):
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
        for name in _SECRET_FIELDS:
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


_SECRET_FIELDS = ("access_key_id", "secret_access_key", "session_token", "external_id")


def secret_values(config: Config) -> list[str]:
    """Every secret value the configuration holds (for log redaction; never print them)."""
    values = []
    places = [p for route in config.workspaces.values() for p in route.previous]
    locations = config.locations.values()
    for settings in (config.defaults, *config.workspaces.values(), *places, *locations):
        creds = settings.credentials
        if creds is not None:
            for name in _SECRET_FIELDS:
                value: SecretStr | None = getattr(creds, name)
                if value is not None:
                    values.append(value.get_secret_value())
        values.extend(
            str(v)
            for k, v in settings.storage_options.items()
            if _SECRET_OPTION.search(k) and isinstance(v, str)
        )
    return values


class StoragePolicy(_Model):
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


class Transfer(_Model):
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


class Quota(_Model):
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


class Settings(_Model):
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
        if _SECRET_OPTION.search(key)
        else _mask_options(value)
        if isinstance(value, dict)
        else value
        for key, value in options.items()
    }


_URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<rest>.*)", re.DOTALL)
# S3's bucket naming rules: 3-63 characters of a-z 0-9 . -, starting and ending with a letter
# or digit, no "..", not an IP address, not the reserved xn-- / sthree- / -s3alias forms.
_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_S3_RESERVED = re.compile(r"^(xn--|sthree-)|(-s3alias|--ol-s3|--x-s3)$|\.\.|^\d+\.\d+\.\d+\.\d+$")


def check_store_url(url: str) -> None:
    """Refuse a route URL that no store can serve: no scheme, a scheme no store provides
    (``s4://``, ``htps://``), a placeholder other than ``{workspace}``, or an invalid S3 bucket.

    Raises:
        ValueError: What is wrong and how to write it (pydantic adds the key path).
    """
    match = _URL.fullmatch(url)
    if match is None:
        raise ValueError(
            "url needs a scheme, e.g. s3://bucket/prefix, file:///srv/artifacts or gs://bucket"
        )
    scheme, rest = match["scheme"], match["rest"]
    stripped = url.replace("{workspace}", "")
    if "{" in stripped or "}" in stripped:
        raise ValueError("url may only use the placeholder {workspace}")
    if scheme != "s3" and scheme not in _fsspec_protocols():
        raise ValueError(
            f"no store provides the scheme '{scheme}://'; use s3://, file://, memory://, gs://, "
            "abfs:// or another fsspec protocol"
        )
    if scheme == "s3":
        bucket = rest.split("/", 1)[0].replace("{workspace}", "ws")
        if not bucket:
            raise ValueError("an s3:// url needs a bucket name")
        if not _S3_BUCKET.fullmatch(bucket) or _S3_RESERVED.search(bucket):
            raise ValueError(
                f"'{bucket}' is not a valid S3 bucket name (3 to 63 characters: lowercase "
                "letters, digits, dots and hyphens, starting and ending with a letter or digit)"
            )


def _fsspec_protocols() -> set[str]:
    """Every protocol fsspec knows, installed or not (a missing package is --probe's to find)."""
    from fsspec.registry import known_implementations, registry

    return set(known_implementations) | set(registry)


class PlaceConfig(Settings):
    """One store location: a URL and, optionally, its own connection settings."""

    url: str = Field(description="scheme://location/prefix, e.g. s3://bucket/prefix")
    backend: Literal["s3", "fsspec"] | None = None

    @field_validator("url")
    @classmethod
    def _known_store(cls, url: str) -> str:
        check_store_url(url)
        return url

    @model_validator(mode="after")
    def _check_url(self) -> PlaceConfig:
        if self.backend == "s3" and not self.url.startswith("s3://"):
            raise ValueError("backend s3 needs an s3:// url")
        return self

    @property
    def backend_kind(self) -> Literal["s3", "fsspec"]:
        """``s3`` (boto3) for s3:// URLs unless ``backend: fsspec``; fsspec for the rest."""
        if self.backend is not None:
            return self.backend
        return "s3" if self.url.startswith("s3://") else "fsspec"


def _check_entry_name(key: str) -> str:
    """A ``workspaces`` key: an exact workspace name or a glob pattern."""
    if _GLOB_CHARS & set(key):
        if not re.fullmatch(r"[a-z0-9*?\[\]!-]+", key):
            raise ValueError(f"pattern {key!r} may use only a-z 0-9 - and * ? [ ]")
    elif not is_valid_workspace_name(key):
        raise ValueError(
            f"{key!r} is not a workspace name (lowercase letters, digits and inner "
            "hyphens, 2 to 63 characters) nor a glob pattern"
        )
    return key


class RouteConfig(PlaceConfig):
    """Where one workspace (or a glob of workspaces) keeps its artifacts.

    ``previous`` names the places the route used to be, newest first: a URL (it inherits the
    route's settings) or a mapping with ``url`` and its own connection settings (``endpoint_url``,
    ``credentials``...; ``storage`` and ``transfer`` stay the route's). Each keeps the same
    layout, ``<url>/workspaces/<workspace>/...``. Reads look there after the current place;
    writes go to the current place only; deletes remove every copy.
    """

    location: str | None = Field(
        default=None,
        description="An approved storage location (a 'locations' key) whose settings this route "
        "takes instead of repeating them; the route's own settings still win, and its url must "
        "lie inside the location's url.",
    )
    previous: tuple[PlaceConfig, ...] = Field(
        default=(),
        description="Earlier places of this route, newest first: a URL or {url, credentials, "
        "endpoint_url, ...}. Read after the current place; 'ws-artifacts migrate' empties them.",
    )

    @field_validator("previous", mode="before")
    @classmethod
    def _urls_to_places(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("previous is a list of places: previous: [s3://old-bucket/prefix]")
        if isinstance(value, list | tuple):
            return [{"url": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("previous", mode="after")
    @classmethod
    def _check_previous(
        cls, places: tuple[PlaceConfig, ...], info: ValidationInfo
    ) -> tuple[PlaceConfig, ...]:
        seen = {str(info.data.get("url", "")).rstrip("/")}
        for index, place in enumerate(places):
            if place.url.rstrip("/") in seen:
                raise ValueError(
                    f"place {index} ({place.url}) is the route's url or listed twice; "
                    "each previous place must be another location"
                )
            seen.add(place.url.rstrip("/"))
            unmovable = {"storage", "transfer"} & place.model_fields_set
            if unmovable:
                raise ValueError(
                    f"place {index}: {', '.join(sorted(unmovable))} is the route's own "
                    "(objects are written only to the current place); remove it here"
                )
        return places


def _check_destination(value: str) -> str:
    if not value.startswith("ws-") or "://" not in value:
        raise ValueError(
            "must be a ws-* URI, the server's --artifacts-destination "
            "(ws-s3://bucket[/prefix] or ws-file:///dir)"
        )
    return value


_LOCATION_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


class LocationConfig(PlaceConfig):
    """An approved storage location: a URL prefix (bucket and optional prefix) that workspace
    managers may pick as their workspace's ``default_artifact_root``, with everything a route
    has (credentials, storage policy, transfer, quota default). A workspace whose root is
    ``<url>/<more>`` keeps its artifacts at ``<url>/<more>/workspaces/<workspace>/...``."""

    @field_validator("url")
    @classmethod
    def _no_placeholder(cls, url: str) -> str:
        if "{" in url:
            raise ValueError("a location's url is fixed: it may not use {workspace}")
        return url


class Config(_Model):
    """The whole file."""

    defaults: Settings = Field(default_factory=Settings)
    locations: dict[str, LocationConfig] = Field(
        default_factory=dict,
        description="Approved storage locations, by name: workspaces whose default_artifact_root "
        "lies inside one are routed there with the location's settings.",
    )
    # A key's errors are reported at its own path (workspaces.Team_A), not at the top level.
    workspaces: dict[Annotated[str, AfterValidator(_check_entry_name)], RouteConfig] = Field(
        default_factory=dict
    )
    unknown_workspaces: Literal["default", "deny"] = "default"
    # Where the server keeps artifacts (its --artifacts-destination), said once for the server
    # and every admin command; a flag or WS_ARTIFACTS_DESTINATION wins over it.
    destination: Annotated[str, AfterValidator(_check_destination)] | None = None

    @field_validator("locations", mode="after")
    @classmethod
    def _location_names(cls, locations: dict[str, LocationConfig]) -> dict[str, LocationConfig]:
        for name in locations:
            if not _LOCATION_NAME.fullmatch(name):
                raise ValueError(
                    f"location name {name!r}: use lowercase letters, digits, - and _ "
                    "(1 to 63 characters, starting with a letter or digit)"
                )
        return locations

    @model_validator(mode="after")
    def _route_locations(self) -> Config:
        for key, route in self.workspaces.items():
            if route.location is None:
                continue
            location = self.locations.get(route.location)
            if location is None:
                known = ", ".join(sorted(self.locations)) or "none are defined"
                raise ValueError(
                    f"workspaces.{key}.location: no location named {route.location!r} "
                    f"(locations: {known})"
                )
            if not _url_within(location.url, route.url):
                raise ValueError(
                    f"workspaces.{key}.url: {route.url} is not inside location "
                    f"{route.location!r} ({location.url}); use a url below it"
                )
        return self


def parse_config(
    data: Any, *, source: str = "<config>", env: dict[str, str] | None = None
) -> Config:
    """Validate already-parsed YAML data, expanding ``${VAR}`` from ``env`` (default: os.environ).

    Raises:
        ConfigError: With the source, the key path and what is wrong; never a value.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}.")
    expanded = _expand(data, env if env is not None else dict(os.environ), source, ())
    try:
        config = Config.model_validate(expanded)
    except ValidationError as err:
        problems = "; ".join(
            f"{_loc(e['loc']) or '(top level)'}: {_message(e)}"
            for e in err.errors(include_input=False, include_url=False)
        )
        raise ConfigError(f"{source}: {problems}") from None
    _redact.install()
    for value in secret_values(config):
        _redact.remember(value)
    return config


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a configuration file.

    Raises:
        ConfigError: The file is missing, is not YAML, or is invalid.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{file}: no such file. Set {CONFIG_ENV_VAR} (or --config) to your configuration "
            "file; 'ws-artifacts config schema' prints what it may contain."
        ) from None
    except OSError as err:
        raise ConfigError(f"{file}: cannot read it ({err.strerror}).") from None
    try:
        # The C loader when PyYAML has it: a 10 000-workspace file loads ~3x faster.
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None)
        raise ConfigError(
            f"{file}: not valid YAML{where}" + (f": {problem}." if problem else ".")
        ) from None
    config = parse_config(data, source=str(file))
    _logger.info(
        "loaded %s: %d workspace route(s), unknown_workspaces=%s",
        file,
        len(config.workspaces),
        config.unknown_workspaces,
    )
    return config


def _url_within(outer: str, inner: str) -> bool:
    """Whether URL ``inner`` is ``outer`` or below it (same scheme and location, segment-wise)."""
    o_scheme, _, o_rest = outer.partition("://")
    i_scheme, _, i_rest = inner.replace("{workspace}", "ws").partition("://")
    o_parts = [p for p in o_rest.split("/") if p]
    i_parts = [p for p in i_rest.split("/") if p]
    if o_rest.startswith("/"):  # file:///srv: no location, keep the leading slash's meaning
        o_parts.insert(0, "")
    if i_rest.startswith("/"):
        i_parts.insert(0, "")
    return o_scheme == i_scheme and i_parts[: len(o_parts)] == o_parts


def _expand(node: Any, env: dict[str, str], source: str, loc: tuple[str, ...]) -> Any:
    if isinstance(node, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(
                f"{source}: {_loc(loc)}: environment variable {name} is not set; set it or "
                f"write ${{{name}:-default}}."
            )

        return _VAR.sub(replace, node)
    if isinstance(node, dict):
        return {k: _expand(v, env, source, (*loc, str(k))) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, env, source, (*loc, str(i))) for i, v in enumerate(node)]
    return node


def _loc(loc: tuple[Any, ...]) -> str:
    # pydantic adds "[key]" after a mapping key whose own validation failed.
    return ".".join(str(part) for part in loc if part != "[key]")


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key (see 'ws-artifacts config schema')"
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")
