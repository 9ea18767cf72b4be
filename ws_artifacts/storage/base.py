"""The storage interface: what every kind of store does for the layers above.

A backend serves one :class:`~ws_artifacts.core.routing.Route` and is handed resolved
:class:`~ws_artifacts.core.routing.Target` objects: it never decides where anything goes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from ws_artifacts.core.routing import Target

__all__ = ["TEMP_PREFIX", "Backend", "Entry", "is_temporary"]

#: How our temporary files (uploads in flight, downloads before their rename) start. It holds a
#: backslash, which no artifact path may contain (paths.normalize refuses it), so no user file
#: can be taken for one of ours, or hidden as one (a POSIX file-system name: the servers'
#: platforms).
TEMP_PREFIX = ".ws-artifacts\\tmp-"


def is_temporary(name: str) -> bool:
    """Whether ``name`` (one path segment) is one of our temporary files."""
    return name.startswith(TEMP_PREFIX)


@dataclass(frozen=True, slots=True)
class Entry:
    """One listed item: ``name`` relative to the listed target."""

    name: str
    is_dir: bool
    size: int | None


class Backend(Protocol):
    """What every store does for the repository."""

    def put_file(self, target: Target, local_path: str) -> None:
        """Upload a local file to ``target`` (the object appears whole or not at all)."""

    def put_stream(self, target: Target, stream: BinaryIO) -> None:
        """Upload everything ``stream`` yields, holding at most a few parts in memory."""

    def get_file(self, target: Target, local_path: str) -> None:
        """Download ``target`` to ``local_path`` (written to a temporary name, then renamed)."""

    def list_dir(self, target: Target) -> list[Entry]:
        """The direct children of ``target`` (empty when it is a file or missing)."""

    def walk(self, target: Target) -> Iterator[Entry]:
        """Every file below ``target``, names relative to it."""

    def check(self, target: Target) -> None:
        """Refuse ``target`` now if reading it would be refused (a symbolic link out of the
        workspace): lets a tree download refuse before it copies anything."""

    def delete(self, target: Target) -> int:
        """Delete ``target`` and everything below it; return how many objects went."""
