"""One factory for the ws-artifacts configuration files that tests and benchmarks write.

A :class:`ConfigFile` is built up route by route and written as YAML::

    ConfigFile(moto.url).route("team-a", "s3://team-a-artifacts", quota={"max_objects": 4})
    routed(moto.url).write(tmp_path / "ws-artifacts.yaml")

A route's settings are keyword arguments (``previous=[...]``, ``storage={...}``,
``credentials={...}``) or, where a test keeps them as YAML text, :meth:`ConfigFile.route_yaml`.
"""

from __future__ import annotations

import copy
import os
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ConfigFile", "routed"]


@dataclass
class ConfigFile:
    """A configuration file: ``defaults`` (S3 on ``endpoint``), ``workspaces``, other keys.

    Attributes:
        endpoint: The S3 endpoint every route uses (path-style, us-east-1); None for none.
        defaults: More ``defaults`` keys (``max_attempts``, ``transfer``...), over those.
        workspaces: The routes, pattern -> settings, in the order they were added.
        top: Top-level keys besides ``defaults`` and ``workspaces`` (``unknown_workspaces``...).
    """

    endpoint: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    workspaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    top: dict[str, Any] = field(default_factory=dict)

    def route(self, pattern: str, url: str, **settings: Any) -> ConfigFile:
        """Route the workspaces ``pattern`` names to ``url`` (replacing an earlier route)."""
        self.workspaces[pattern] = {"url": url, **settings}
        return self

    def route_yaml(self, pattern: str, text: str) -> ConfigFile:
        """Route ``pattern`` with settings given as a YAML mapping (``url:`` included)."""
        settings = yaml.safe_load(textwrap.dedent(text))
        if not isinstance(settings, dict) or "url" not in settings:
            raise ValueError(f"route {pattern!r}: a YAML mapping with a url is needed: {text!r}")
        self.workspaces[pattern] = settings
        return self

    def with_defaults(self, **settings: Any) -> ConfigFile:
        """Add ``defaults`` keys (``max_attempts=1``, ``transfer={...}``)."""
        self.defaults.update(settings)
        return self

    def with_top(self, **settings: Any) -> ConfigFile:
        """Add top-level keys (``unknown_workspaces="deny"``...)."""
        self.top.update(settings)
        return self

    def copy(self) -> ConfigFile:
        """An independent copy to change."""
        return copy.deepcopy(self)

    def data(self) -> dict[str, Any]:
        """The file's content as the YAML loader will see it (for ``parse_config`` too);
        ``defaults`` only when there are some."""
        defaults: dict[str, Any] = {}
        if self.endpoint is not None:
            defaults = {
                "endpoint_url": self.endpoint,
                "region": "us-east-1",
                "addressing_style": "path",
            }
        defaults.update(self.defaults)
        head = {"defaults": defaults} if defaults else {}
        return {**head, "workspaces": dict(self.workspaces), **self.top}

    def text(self) -> str:
        """The file's YAML text."""
        return yaml.safe_dump(self.data(), sort_keys=False)

    def write(self, path: Path, *, age: float = 0.0) -> Path:
        """Write the file at ``path`` (in place) and return ``path``.

        Args:
            path: Where.
            age: Date the file back this many seconds. A running server takes a changed file
                only once it has stayed untouched for ``SETTLE_SECONDS``: an aged file is
                taken at the worker's next look (the clock injected through the file's mtime).
        """
        path.write_text(self.text())
        if age:
            then = time.time() - age
            os.utime(path, (then, then))
        return path


def routed(endpoint: str, *, unknown: str = "default") -> ConfigFile:
    """The routes every shared integration server uses: team-a and team-b in buckets of their
    own, ``vision-*`` under one prefix per workspace in a shared bucket."""
    return (
        ConfigFile(endpoint)
        .route("team-a", "s3://team-a-artifacts")
        .route("team-b", "s3://team-b-artifacts")
        .route("vision-*", "s3://vision-artifacts/{workspace}")
        .with_top(unknown_workspaces=unknown)
    )
