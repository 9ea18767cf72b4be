"""The storage interface: what every kind of store does for the layers above.

A backend serves one :class:`~ws_artifacts.core.targets.Route` and is handed resolved
:class:`~ws_artifacts.core.targets.Target` objects: it never decides where anything goes.

What not every store can do (presigned URLs, multipart uploads) is a :class:`Capability`: a
caller asks ``backend.supports(...)`` instead of asking which kind of store it holds, and a
store that lacks one refuses its operations with a :class:`CapabilityError` naming the
workspace and the URL.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ws_artifacts.core.errors import OwnershipError, WsArtifactsError
from ws_artifacts.core.paths import is_within, join
from ws_artifacts.core.targets import Route, Target

__all__ = [
    "TEMP_PREFIX",
    "Backend",
    "Capability",
    "CapabilityError",
    "Entry",
    "Piece",
    "is_temporary",
]

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


@dataclass(frozen=True, slots=True)
class Piece:
    """One piece of a parallel walk (:meth:`Backend.walk_split`), made and read by the backend.

    Attributes:
        prefix: The key prefix (or directory path) the piece lists.
        after: List only what sorts after this key (S3 key ranges).
        split: List by ``/`` at once (S3), or walk the whole tree below ``prefix`` (fsspec).
        rel: Where ``prefix`` lies, relative to the walked target.
    """

    prefix: str
    after: str = ""
    split: bool = False
    rel: str = ""


#: What one piece of a walk found: (name relative to the walked target, size) per file, and
#: the pieces left, each to be walked by its own call (in any thread).
Split = tuple[list[tuple[str, int]], list[Piece]]


class Capability(enum.Enum):
    """What a store may or may not do; ask with :meth:`Backend.supports`."""

    #: :meth:`Backend.presign_get`: clients download from the store directly. A route may
    #: turn it off (``transfer.presigned_downloads: false``).
    PRESIGNED_READS = "presigned reads"
    #: :meth:`Backend.presign_put`: clients upload to the store directly.
    PRESIGNED_WRITES = "presigned writes"
    #: :meth:`Backend.create_multipart` and the rest of a client-driven multipart upload.
    MULTIPART_UPLOADS = "multipart uploads"


class CapabilityError(WsArtifactsError, NotImplementedError):
    """An operation was asked of a store that lacks its :class:`Capability`."""


class Backend(abc.ABC):
    """What every store does for the repository and the lifecycle work."""

    route: Route

    # -- capabilities ---------------------------------------------------------------------
    @property
    def capabilities(self) -> frozenset[Capability]:
        """What this store can do beyond the operations every store has (none by default)."""
        return frozenset()

    def supports(self, capability: Capability) -> bool:
        """Whether this store can do ``capability``."""
        return capability in self.capabilities

    def _unsupported(self, capability: Capability, target: Target) -> CapabilityError:
        return CapabilityError(
            f"Workspace '{target.workspace}' stores its artifacts at {target.uri}, a "
            f"{self.route.scheme}:// place, which has no {capability.value}; transfer through "
            "the server instead, or route the workspace to an S3 place."
        )

    # -- writes ---------------------------------------------------------------------------
    @abc.abstractmethod
    def put_file(self, target: Target, local_path: str) -> None:
        """Upload a local file to ``target`` (the object appears whole or not at all)."""

    @abc.abstractmethod
    def put_stream(self, target: Target, stream: BinaryIO) -> None:
        """Upload everything ``stream`` yields, holding at most a few parts in memory."""

    # -- reads ----------------------------------------------------------------------------
    @abc.abstractmethod
    def get_file(self, target: Target, local_path: str) -> None:
        """Download ``target`` to ``local_path`` (written to a temporary name, then renamed)."""

    @abc.abstractmethod
    def list_dir(self, target: Target) -> list[Entry]:
        """The direct children of ``target`` (empty when it is a file or missing)."""

    @abc.abstractmethod
    def walk(self, target: Target) -> Iterator[Entry]:
        """Every file below ``target``, names relative to it, with sizes."""

    @abc.abstractmethod
    def walk_split(self, target: Target, piece: Piece | None = None) -> Split:
        """One piece of a walk of ``target`` that many threads share (usage measures big
        workspaces so): ``piece`` None is the whole target; the pieces returned are walked by
        further calls, and no file is found by two pieces. Temporary files are left out; a
        missing target is empty."""

    @abc.abstractmethod
    def subdirs(self, prefix: str) -> list[str]:
        """The names of the directories directly below ``prefix`` in the route's location (to
        discover workspaces: read with the route's whole-location credentials)."""

    @abc.abstractmethod
    def check(self, target: Target) -> None:
        """Refuse ``target`` now if reading it would be refused (a symbolic link out of the
        workspace): lets a tree download refuse before it copies anything."""

    @abc.abstractmethod
    def size(self, target: Target) -> int:
        """The object's size in bytes."""

    @abc.abstractmethod
    def look(self, target: Target) -> tuple[str, int] | None:
        """The object's (ETag, size), or None when there is no object at ``target.key`` (the
        ETag is empty where the store has none)."""

    # -- deletes --------------------------------------------------------------------------
    @abc.abstractmethod
    def remove(self, target: Target) -> None:
        """Delete exactly the object at ``target.key`` (nothing below it)."""

    @abc.abstractmethod
    def delete(self, target: Target) -> int:
        """Delete ``target`` and everything below it; return how many objects went."""

    # -- lifecycle work by key ------------------------------------------------------------
    # A workspace's quarantine lies beside its place, where no Target reaches (routing refuses
    # every key in it), so lifecycle work (quarantine, restore, purge, orphans) names keys
    # relative to the route's location, each inside an area ``base``: the key prefix the work
    # stays under (a place's base, which holds its ``workspaces/<ws>`` and its quarantine). A
    # key outside ``base`` is refused; on S3, credentials narrowed to a route are narrowed to
    # ``base``. Only the lifecycle modules name keys, each from a place the router resolved.
    def key_uri(self, key: str) -> str:
        """``scheme://location/key``, for messages (as :attr:`Target.uri`)."""
        if not self.route.location:  # file:///srv/x
            return f"{self.route.scheme}:///{key}"
        return f"{self.route.scheme}://{join(self.route.location, key)}"

    @abc.abstractmethod
    def walk_keys(self, base: str, prefix: str) -> Iterator[tuple[str, int]]:
        """Every object key below ``prefix`` (a directory-like prefix) with its size."""

    @abc.abstractmethod
    def children(self, base: str, prefix: str) -> list[str]:
        """The names directly below ``prefix`` (files and directories), sorted."""

    @abc.abstractmethod
    def key_size(self, base: str, key: str) -> int | None:
        """The object's size, None when it does not exist."""

    @abc.abstractmethod
    def newest(self, base: str, prefix: str) -> float | None:
        """When the newest object below ``prefix`` was written (seconds since the epoch);
        None when there is none, or the store does not tell."""

    @abc.abstractmethod
    def copy_key(self, base: str, src: str, dst: str, size: int, workspace: str) -> None:
        """Copy one object of ``size`` bytes within the location (server-side where the store
        can), with the route's storage policy for ``workspace``."""

    @abc.abstractmethod
    def delete_keys(self, base: str, keys: list[str], workspace: str | None = None) -> None:
        """Delete these objects (missing ones are no error)."""

    @abc.abstractmethod
    def write_bytes(self, base: str, key: str, data: bytes) -> None:
        """Write a small object."""

    @abc.abstractmethod
    def read_bytes(self, base: str, key: str) -> bytes | None:
        """Read a small object; None when it does not exist."""

    def _inside(self, base: str, *keys: str) -> None:
        """Refuse keys outside the area ``base`` (see the section's comment)."""
        for key in keys:
            if not is_within(base, key):
                raise OwnershipError(
                    f"Refused: {self.key_uri(key)} lies outside '{base}', the area this "
                    "lifecycle work was given on its route."
                )

    # -- presigned URLs (Capability.PRESIGNED_READS / PRESIGNED_WRITES) ---------------------
    def presign_get(self, target: Target, expiration: int) -> tuple[str, int]:
        """A presigned GET URL of ``target`` and the object's size."""
        raise self._unsupported(Capability.PRESIGNED_READS, target)

    def presign_put(self, target: Target, expiration: int) -> tuple[str, dict[str, str]]:
        """A presigned PUT URL of ``target`` and the headers the client must send with it."""
        raise self._unsupported(Capability.PRESIGNED_WRITES, target)

    # -- client-driven multipart uploads (Capability.MULTIPART_UPLOADS) ---------------------
    def create_multipart(self, target: Target, num_parts: int) -> tuple[str, list[str]]:
        """Start a multipart upload of ``target``: its id and one presigned URL per part."""
        raise self._unsupported(Capability.MULTIPART_UPLOADS, target)

    def check_upload(self, target: Target, upload_id: str) -> list[str]:
        """Refuse an upload id that is not a pending upload of exactly ``target.key``; return
        the key's pending uploads initiated before it."""
        raise self._unsupported(Capability.MULTIPART_UPLOADS, target)

    def parts_of(self, target: Target, upload_id: str) -> dict[int, tuple[str, int]]:
        """The uploaded parts of ``upload_id``: part number -> (ETag, size)."""
        raise self._unsupported(Capability.MULTIPART_UPLOADS, target)

    def complete_multipart(
        self,
        target: Target,
        upload_id: str,
        etags: list[tuple[int, str]],
        *,
        stale: list[str] | None = None,
    ) -> None:
        """Assemble the uploaded parts into the object (``stale``: older uploads of the same
        key to abort afterwards)."""
        raise self._unsupported(Capability.MULTIPART_UPLOADS, target)

    def abort_multipart(self, target: Target, upload_id: str) -> None:
        """Abort an upload, so no parts remain."""
        raise self._unsupported(Capability.MULTIPART_UPLOADS, target)

    def pending_uploads(self, target: Target) -> dict[str, str]:
        """Every pending upload below ``target.key``: upload id -> object key."""
        raise self._unsupported(Capability.MULTIPART_UPLOADS, target)
