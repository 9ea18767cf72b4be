"""Pure functions over logical artifact paths: normalise, split, check ownership.

A *logical path* is what MLflow names: ``workspaces/<ws>/<experiment-id>/<run-id>/artifacts/...``
(or, for the default workspace's legacy artifacts, a path with no ``workspaces/`` segment).
Nothing here does I/O or imports MLflow.
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse
from dataclasses import dataclass

from ws_artifacts.errors import OwnershipError, PathError

__all__ = [
    "DEFAULT_WORKSPACE",
    "WORKSPACES_SEGMENT",
    "LogicalPath",
    "check_owner",
    "is_valid_workspace_name",
    "join",
    "normalize",
    "split_logical",
]

#: MLflow's name for the workspace every server has (``mlflow.utils.workspace_utils``).
DEFAULT_WORKSPACE = "default"
#: The segment MLflow puts before a workspace's name in every artifact location.
WORKSPACES_SEGMENT = "workspaces"

# MLflow's WorkspaceNameValidator: Kubernetes-style names, 2..63 characters. We use fullmatch
# (MLflow's re.match with "$" also accepts a trailing newline).
_WORKSPACE_NAME = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_RESERVED_NAMES = frozenset({"workspaces", "api", "ajax-api", "static-files"})
# Percent-escapes that would turn into a separator, a dot or a control character if any layer
# decoded the key: refused rather than guessed at.
_DANGEROUS_ESCAPE = re.compile(r"%(?:2[ef]|5c|00|0[0-9a-f]|1[0-9a-f])", re.IGNORECASE)


def is_valid_workspace_name(name: str) -> bool:
    """Whether ``name`` is a workspace name MLflow itself would accept."""
    if name == DEFAULT_WORKSPACE:
        return True
    return (
        2 <= len(name) <= 63
        and name not in _RESERVED_NAMES
        and _WORKSPACE_NAME.fullmatch(name) is not None
    )


def normalize(path: str | None) -> str:
    """Normalise a relative artifact path, refusing anything that could leave its place.

    Leading, trailing and repeated slashes and ``.`` segments are dropped. ``..`` segments,
    backslashes, control characters, percent-escapes of separators or dots, and non-NFC unicode
    are refused (they mean different things to different stores, so no single reading is safe).

    Args:
        path: A POSIX-style relative path, or None for the root.

    Returns:
        The normalised path, ``""`` for the root.

    Raises:
        PathError: The path is unsafe.
    """
    if not path:
        return ""
    if "\\" in path:
        raise PathError(f"Artifact path {path!r} contains a backslash; use '/' as separator.")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path):
        raise PathError(f"Artifact path {path!r} contains a control character.")
    if _DANGEROUS_ESCAPE.search(path):
        raise PathError(
            f"Artifact path {path!r} contains a percent-escaped separator, dot or control "
            "character; use the plain character instead."
        )
    if unicodedata.normalize("NFC", path) != path:
        raise PathError(f"Artifact path {path!r} is not in Unicode NFC form.")
    parts = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == ".." or urllib.parse.unquote(segment) == "..":
            raise PathError(f"Artifact path {path!r} contains '..'; paths may not go upwards.")
        parts.append(segment)
    return "/".join(parts)


def join(*parts: str) -> str:
    """Join already-normalised path pieces with single slashes, skipping empty ones."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


@dataclass(frozen=True, slots=True)
class LogicalPath:
    """A normalised path split at MLflow's ``workspaces/<name>`` segment.

    Attributes:
        root: What comes before ``workspaces/`` (the destination's own key prefix), or the
            whole path when there is no workspace segment.
        workspace: The workspace the path names; None for a legacy default-workspace path.
        rest: What comes after ``workspaces/<name>/`` (experiment, run, file...).
    """

    root: str
    workspace: str | None
    rest: str

    @property
    def owner(self) -> str:
        """The workspace that owns the path: the named one, or the default workspace."""
        return self.workspace or DEFAULT_WORKSPACE

    @property
    def logical(self) -> str:
        """The path from ``workspaces/`` on (the part every route keeps)."""
        if self.workspace is None:
            return self.root
        return join(WORKSPACES_SEGMENT, self.workspace, self.rest)


def split_logical(path: str) -> LogicalPath:
    """Split a normalised path at its first ``workspaces/<name>`` segment.

    Raises:
        PathError: ``workspaces`` is not followed by a valid workspace name, or a segment spells
            ``workspaces`` with other letter case (a trick for case-insensitive stores).
    """
    segments = path.split("/") if path else []
    for index, segment in enumerate(segments):
        if segment == WORKSPACES_SEGMENT:
            if index + 1 >= len(segments):
                raise PathError(
                    f"Artifact path {path!r} ends at 'workspaces/' without a workspace name."
                )
            name = segments[index + 1]
            if not is_valid_workspace_name(name):
                raise PathError(
                    f"Artifact path {path!r} names {name!r}, which is not a valid workspace name "
                    "(lowercase letters, digits and inner hyphens, 2 to 63 characters)."
                )
            return LogicalPath(
                root="/".join(segments[:index]),
                workspace=name,
                rest="/".join(segments[index + 2 :]),
            )
        if segment.casefold() == WORKSPACES_SEGMENT:
            raise PathError(
                f"Artifact path {path!r} has a segment {segment!r}: only the exact lowercase "
                "'workspaces' is allowed."
            )
    return LogicalPath(root=path, workspace=None, rest="")


def check_owner(logical: LogicalPath, active: str | None, *, operation: str) -> None:
    """Refuse an operation on another workspace's path.

    Args:
        logical: The split path.
        active: The workspace the request runs in; None when no workspace is known (outside a
            request), in which case the path alone decides.
        operation: A short verb phrase for the message.

    Raises:
        OwnershipError: The path belongs to another workspace.
    """
    if active is None or logical.owner == active:
        return
    raise OwnershipError(
        f"Refused to {operation} '{logical.logical or '/'}': it belongs to workspace "
        f"'{logical.owner}', but the request runs in workspace '{active}'. Artifacts are only "
        "reachable from their own workspace."
    )
