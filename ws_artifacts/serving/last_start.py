"""What a restart changed: routes and the destination compared with the last start's.

A live reload warns when a route moves (:func:`ws_artifacts.serving.live_config.route_changes`); a
restart
with another file, another route URL or another destination would hide earlier artifacts
without a word. So ``ws-artifacts server`` keeps a small record of what it started with, in
``<data-dir>/ws-artifacts-last-start.json`` (beside the SQLite database: on the server's own
disk, never inside the artifact tree, so no workspace can read or write it), and at each start
warns about every route or destination that moved since, with the fix.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ws_artifacts.core.config import Config
from ws_artifacts.serving.live_config import route_changes

__all__ = ["RECORD_NAME", "changes_since", "read_record", "record", "write_record"]

_logger = logging.getLogger(__name__)

RECORD_NAME = "ws-artifacts-last-start.json"


def record(config: Config, destination: str) -> dict[str, Any]:
    """What this start routes where (URLs only: nothing secret)."""
    return {
        "destination": destination,
        "routes": {entry: route.url for entry, route in config.workspaces.items()},
    }


def read_record(data_dir: Path) -> dict[str, Any] | None:
    """The last start's record (None: first start, or an unreadable record, which is said)."""
    path = data_dir / RECORD_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        _logger.warning("%s: cannot read the last start's record (%s); not compared", path, err)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("routes"), dict):
        return None
    return data


def write_record(data_dir: Path, current: dict[str, Any]) -> None:
    """Replace the record atomically (write, then rename)."""
    path = data_dir / RECORD_NAME
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def changes_since(previous: dict[str, Any], config: Config, destination: str) -> list[str]:
    """Every route (and the destination) that moved since ``previous``, with the fix."""
    try:
        old = Config.model_validate(
            {"workspaces": {entry: {"url": url} for entry, url in previous["routes"].items()}}
        )
    except (ValueError, TypeError, AttributeError) as err:  # a record edited by hand
        _logger.warning("the last start's record holds no valid routes (%s); not compared", err)
        return []
    current = {entry: route.url for entry, route in config.workspaces.items()}
    messages = []
    for message in route_changes(old, config):
        entry = message.split("'", 2)[1]
        was = previous["routes"].get(entry) or _place_before(old, entry, previous)
        if entry in current:
            fix = (
                f'To read them, add `previous: ["{was}"]` to workspaces.{entry}; then '
                f"`ws-artifacts migrate {entry}` copies them to {current[entry]}."
            )
        else:
            fix = (
                f'To keep them readable, put the route back (with `previous: ["{was}"]` if it '
                "has a new url), then run `ws-artifacts migrate`."
            )
        messages.append(f"since the last start, {message} {fix}")
    before = previous.get("destination")
    if isinstance(before, str) and before != destination:
        messages.append(
            f"since the last start, the destination moved from {before} to {destination}: "
            "artifacts of the default workspace and of workspaces without a route that were "
            f"written before stay at {before} and are not found at the new one. Start with "
            f"--artifacts-destination {before} (or `destination: {before}` in the "
            "configuration) to keep serving them, or copy them to the new destination first."
        )
    return messages


def _place_before(old: Config, entry: str, previous: dict[str, Any]) -> str:
    """Where ``entry``'s workspaces went before it had a route of its own: the glob route that
    matched it, or the last start's destination."""
    import fnmatch

    for key, route in old.workspaces.items():
        if key != entry and fnmatch.fnmatchcase(entry, key):
            return route.url.replace("{workspace}", entry)
    return str(previous.get("destination", "")).removeprefix("ws-")
