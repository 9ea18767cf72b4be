"""The live configuration: the file named by ``WS_ARTIFACTS_CONFIG``, re-read when it changes.

A server keeps serving through a bad edit. When the file changes:

* a file modified less than :data:`SETTLE_SECONDS` ago, or one that changes while it is read,
  is not taken yet (editors that write in place leave a half-written file for a moment, and a
  truncated file may still be valid YAML that has lost routes); it is read again at the next
  check;
* an invalid file is logged once per change (file, key path and reason, never a value) and the
  last good configuration keeps serving;
* a valid file replaces the configuration; a route that existed and is gone, or whose URL
  changed, is logged as a warning naming the workspace entry and where its new writes go now.

Only the first load in a process (nothing good to fall back on) raises.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ws_artifacts.core.config import Config
from ws_artifacts.core.errors import ConfigError
from ws_artifacts.core.loading import CONFIG_ENV_VAR, load_config

__all__ = [
    "CHECK_EVERY",
    "SETTLE_SECONDS",
    "LiveConfig",
    "config_from_env",
    "live_config",
    "route_changes",
]

_logger = logging.getLogger(__name__)

#: How long a changed file must stay untouched before it is taken.
SETTLE_SECONDS = 1.0
#: Seconds between two looks at the file (``stat``) on the hot path.
CHECK_EVERY = 1.0


@dataclass(frozen=True, slots=True)
class _Stamp:
    path: str
    mtime_ns: int
    size: int
    inode: int


def _stamp(path: str) -> _Stamp:
    stat = os.stat(path)
    return _Stamp(path, stat.st_mtime_ns, stat.st_size, stat.st_ino)


class LiveConfig:
    """The configuration named by the environment, with a last good copy to fall back on."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        load: Callable[[str], Config] = load_config,
    ) -> None:
        self._lock = threading.Lock()
        self._clock, self._wall, self._load = clock, wall, load
        self._config: Config | None = None
        self._good: _Stamp | None = None  # the stamp of the file self._config came from
        self._refused: _Stamp | None = None  # the last change logged as invalid
        self._checked = float("-inf")

    def get(self) -> Config | None:
        """The current configuration; None when ``WS_ARTIFACTS_CONFIG`` is unset.

        Raises:
            ConfigError: The file cannot be loaded and there is no good configuration of the
                same file to keep serving.
        """
        path = os.environ.get(CONFIG_ENV_VAR, "").strip()
        if not path:
            return None
        config, good = self._config, self._good
        fresh = self._clock() - self._checked < CHECK_EVERY
        if fresh and config is not None and good is not None and good.path == path:
            return config
        with self._lock:
            return self._refresh(path)

    def _refresh(self, path: str) -> Config:
        self._checked = self._clock()
        current = self._config if self._good is not None and self._good.path == path else None
        if current is None:  # first load of this file: take it as it is, or fail
            stamp = _stamp_or_none(path)
            config = self._load(path)
            self._config, self._good, self._refused = config, stamp, None
            return config
        try:
            stamp = _stamp(path)
        except OSError as err:
            self._refuse(_Stamp(path, -1, -1, -1), f"{path}: cannot read it ({err.strerror})")
            return current
        if stamp == self._good or stamp == self._refused:
            return current
        if self._wall() - stamp.mtime_ns / 1e9 < SETTLE_SECONDS:
            return current  # still being written, perhaps: look again at the next check
        try:
            config = self._load(path)
        except ConfigError as err:
            self._refuse(stamp, str(err))
            return current
        if _stamp_or_none(path) != stamp:
            return current  # it changed while being read: look again at the next check
        for message in route_changes(current, config):
            _logger.warning("%s: %s", path, message)
        self._config, self._good, self._refused = config, stamp, None
        return config

    def _refuse(self, stamp: _Stamp, reason: str) -> None:
        if stamp != self._refused:
            _logger.error(
                "ws-artifacts configuration not reloaded, the last good one keeps serving: %s",
                reason,
            )
        self._refused = stamp


def _stamp_or_none(path: str) -> _Stamp | None:
    try:
        return _stamp(path)
    except OSError:
        return None


def route_changes(old: Config, new: Config) -> list[str]:
    """What a reload changes for workspaces that had a route: each route that is gone or whose
    URL changed, and where its workspaces' new writes go now (safe to log: URLs only)."""
    messages = []
    for entry, route in old.workspaces.items():
        kept = new.workspaces.get(entry)
        if kept is None:
            messages.append(
                f"route '{entry}' was removed; new writes of workspace(s) '{entry}' now go to "
                f"{_fallback(new, entry)}. Artifacts already written stay at {route.url}."
            )
        elif kept.url != route.url:
            messages.append(
                f"route '{entry}' moved from {route.url} to {kept.url}; new writes go to "
                f"{kept.url}. Artifacts already written stay at {route.url}."
            )
    for entry, route in new.workspaces.items():
        if entry in old.workspaces:
            continue
        before = _fallback(old, entry)
        if before.startswith("nowhere"):
            continue  # they were refused: nothing was written before
        messages.append(
            f"route '{entry}' was added; new writes of workspace(s) '{entry}' now go to "
            f"{route.url}. Artifacts already written stay where they went before: {before}."
        )
    return messages


def _fallback(config: Config, entry: str) -> str:
    """Where a workspace named (or matched by) ``entry`` is routed by ``config``."""
    for key, route in config.workspaces.items():
        if key != entry and fnmatch.fnmatchcase(entry, key):
            return f"route '{key}' ({route.url})"
    if config.unknown_workspaces == "deny":
        return "nowhere: they are refused (unknown_workspaces: deny)"
    return "the default destination (the server's --artifacts-destination)"


#: The process's live configuration (what :func:`config_from_env` returns).
live_config = LiveConfig()


def config_from_env() -> Config | None:
    """The configuration named by ``WS_ARTIFACTS_CONFIG`` (None when it is unset), re-read when
    the file changes; a bad edit keeps the last good configuration serving."""
    return live_config.get()
