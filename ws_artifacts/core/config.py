"""The configuration file's models: the places (routes, their previous places, approved
locations) and the whole file (:class:`Config`). Reading it is :mod:`.loading`; the settings
each place may set are :mod:`.settings` (the live, re-read configuration of a running server is
:mod:`ws_artifacts.serving.live_config`).

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

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ws_artifacts.core.paths import is_valid_workspace_name
from ws_artifacts.core.settings import SECRET_FIELDS, SECRET_OPTION, Settings, StrictModel
from ws_artifacts.core.urls import url_within

__all__ = [
    "Config",
    "LocationConfig",
    "PlaceConfig",
    "RouteConfig",
    "check_store_url",
    "secret_values",
]

_GLOB_CHARS = frozenset("*?[")


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


class Config(StrictModel):
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
            if not url_within(location.url, route.url):
                raise ValueError(
                    f"workspaces.{key}.url: {route.url} is not inside location "
                    f"{route.location!r} ({location.url}); use a url below it"
                )
        return self


def secret_values(config: Config) -> list[str]:
    """Every secret value the configuration holds (for log redaction; never print them)."""
    values = []
    places = [p for route in config.workspaces.values() for p in route.previous]
    locations = config.locations.values()
    for settings in (config.defaults, *config.workspaces.values(), *places, *locations):
        creds = settings.credentials
        if creds is not None:
            for name in SECRET_FIELDS:
                value: SecretStr | None = getattr(creds, name)
                if value is not None:
                    values.append(value.get_secret_value())
        values.extend(
            str(v)
            for k, v in settings.storage_options.items()
            if SECRET_OPTION.search(k) and isinstance(v, str)
        )
    return values
