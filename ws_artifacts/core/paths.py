"""Pure functions over logical artifact paths: normalise, split, check ownership and containment.

A *logical path* is what MLflow names: ``workspaces/<ws>/<experiment-id>/<run-id>/artifacts/...``
(or, for the default workspace's legacy artifacts, a path with no ``workspaces/`` segment).
Nothing here does I/O or imports MLflow.

Every path is read one way only. Anything that another layer (an HTTP server, a file system, a
store that folds case or Unicode) could read differently is refused rather than guessed at:
``..`` (also percent-encoded, repeatedly encoded, or spelt with Unicode look-alikes such as
``\\uff0e\\uff0e``), backslashes, control characters and line separators, non-NFC text, and
``workspaces`` spelt with other case or look-alike letters.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

from ws_artifacts.core.errors import OwnershipError, PathError
from ws_artifacts.core.path_characters import (
    check_decoded_segment,
    check_segment,
    check_text,
    reads_as,
)

__all__ = [
    "DEFAULT_WORKSPACE",
    "MAX_PATH_LENGTH",
    "WORKSPACES_SEGMENT",
    "LogicalPath",
    "check_mlflow_path",
    "check_owner",
    "is_valid_workspace_name",
    "is_within",
    "join",
    "may_name_workspace",
    "normalize",
    "reads_as_workspaces",
    "split_logical",
    "split_under",
]

#: MLflow's name for the workspace every server has (``mlflow.utils.workspace_utils``).
DEFAULT_WORKSPACE = "default"
#: The segment MLflow puts before a workspace's name in every artifact location.
WORKSPACES_SEGMENT = "workspaces"
#: Longest path accepted (Linux PATH_MAX; S3 keys stop at 1024 bytes anyway).
MAX_PATH_LENGTH = 4096

# MLflow's WorkspaceNameValidator: Kubernetes-style names, 2..63 characters. We use fullmatch
# (MLflow's re.match with "$" also accepts a trailing newline).
_WORKSPACE_NAME = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_RESERVED_NAMES = frozenset({"workspaces", "api", "ajax-api", "static-files"})


def is_valid_workspace_name(name: str) -> bool:
    """Whether ``name`` is a workspace name MLflow itself would accept (without the trailing
    newline MLflow's own check lets through)."""
    if name == DEFAULT_WORKSPACE:
        return True
    return (
        2 <= len(name) <= 63
        and name not in _RESERVED_NAMES
        and _WORKSPACE_NAME.fullmatch(name) is not None
    )


# Printable ASCII without backslash or percent sign: the characters normalize's fast path takes.
_ASCII_PLAIN = re.compile(r"[\x20-\x24\x26-\x5b\x5d-\x7e]*")


def normalize(path: str | None) -> str:
    """Normalise a relative artifact path, refusing anything that could leave its place.

    Leading, trailing and repeated slashes and ``.`` segments are dropped. ``..`` segments,
    backslashes, control characters, line separators, bidirectional controls, percent-escapes of
    separators, dots or control characters (also when encoded more than once), segments that
    Unicode compatibility folding turns into ``.``, ``..`` or a separator, non-NFC unicode and
    paths longer than :data:`MAX_PATH_LENGTH` are refused: they mean different things to
    different stores, so no single reading is safe.

    Args:
        path: A POSIX-style relative path, or None for the root.

    Returns:
        The normalised path, ``""`` for the root.

    Raises:
        PathError: The path is unsafe.
    """
    if not path:
        return ""
    if len(path) > MAX_PATH_LENGTH:
        raise PathError(
            f"Artifact path of {len(path)} characters is longer than the {MAX_PATH_LENGTH} "
            "allowed; use a shorter path."
        )
    parts = [segment for segment in path.split("/") if segment not in ("", ".")]
    if path.isascii() and _ASCII_PLAIN.fullmatch(path):
        # Fast path, same result: plain ASCII has no escapes to decode, and NFC and NFKC leave it
        # unchanged, so only empty, "." and ".." segments matter.
        if ".." in parts:
            check_segment("..", path)
        return "/".join(parts)
    check_text(path)
    for segment in parts:
        check_segment(segment, path)
        check_decoded_segment(segment, path)
    return "/".join(parts)


def check_mlflow_path(path: str | None, *, kind: str) -> None:
    """Refuse what MLflow's own repositories refuse, with their wording ("Invalid artifact
    path", "Invalid path"), before :func:`normalize` would tidy it into another path: an absolute
    path (``/``, ``//``, ``/tmp``), ``..`` segments or, for a directory to write into, one that
    names the root with dots (``.``, ``./``).

    None and ``""`` are the root and pass: MLflow's own calls use them. Trailing and doubled
    inner slashes pass, as MLflow's S3 repository lets them.

    Args:
        path: The path a caller gave, as given.
        kind: ``"write"`` for the ``artifact_path`` directory of an upload, ``"read"`` for a
            path to download (MLflow's ``validate_path_is_safe``: absolute paths only).

    Raises:
        PathError: The path is refused (MLflow's INVALID_PARAMETER_VALUE).
    """
    if not path:
        return
    label = "artifact path" if kind == "write" else "path"
    if ".." in path.split("/"):
        raise PathError(
            f"Invalid {label}: {path!r} contains '..'; paths may not go upwards out of the "
            "artifact directory."
        )
    if path.startswith("/"):
        raise PathError(
            f"Invalid {label}: {path!r} is absolute; artifact paths are relative to the "
            "artifact directory, e.g. 'models/model.pkl'."
        )
    if kind == "write" and all(segment in ("", ".") for segment in path.split("/")):
        raise PathError(
            f"Invalid artifact path: {path!r} names the artifact directory itself; pass None "
            "(or nothing) to log at the top, or name a directory such as 'models'."
        )


def join(*parts: str) -> str:
    """Join already-normalised path pieces with single slashes, skipping empty ones."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def is_within(scope: str, key: str) -> bool:
    """Whether ``key`` is ``scope`` or lies below it, segment-wise (``ab`` is not below ``a``).

    An empty scope contains every key.
    """
    return not scope or key == scope or key.startswith(scope + "/")


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
            ``workspaces`` with other letter case, Unicode look-alikes or percent-escapes (tricks
            for stores or layers that fold case, Unicode or escapes).
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
        if reads_as_workspaces(segment):
            raise PathError(
                f"Artifact path {path!r} has a segment {segment!r}: only the exact lowercase "
                "'workspaces' is allowed."
            )
    return LogicalPath(root=path, workspace=None, rest="")


def reads_as_workspaces(segment: str) -> bool:
    """Whether a store or layer that folds case, Unicode compatibility forms or percent-escapes
    could read ``segment`` as ``workspaces`` (the exact segment included)."""
    return reads_as(segment, _spells_workspaces)


def _spells_workspaces(form: str) -> bool:
    return unicodedata.normalize("NFKC", form).casefold() == WORKSPACES_SEGMENT


def split_under(base: str, path: str) -> LogicalPath:
    """Split ``base/path``, where ``base`` is where a repository points and ``path`` is relative
    to it (both normalised).

    When ``base`` names no workspace, a ``workspaces`` segment in ``path`` must be its first one,
    which is where MLflow puts it; a deeper one (``x/workspaces/<ws>/...``) would move the
    workspace's files to a root of the caller's choosing, so it is refused.

    Raises:
        PathError: As :func:`split_logical`, or ``workspaces`` sits deeper than ``base``.
    """
    if _names_workspace(base):
        return split_logical(join(base, path))
    logical = split_logical(join(base, path))
    if logical.workspace is not None and logical.root != base:
        deeper = logical.root[len(base) :].strip("/")
        raise PathError(
            f"Artifact path {path!r} has 'workspaces/' below {deeper!r}; a workspace's "
            "artifacts start at 'workspaces/<name>/' directly."
        )
    return logical


@functools.lru_cache(maxsize=4096)
def _names_workspace(base: str) -> bool:
    """Whether ``base`` names a workspace (cached: a repository's base repeats every call)."""
    return split_logical(base).workspace is not None


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


@functools.lru_cache(maxsize=65536)  # scopes repeat: one per workspace and route
def may_name_workspace(key: str) -> bool:
    """Whether ``key`` names a workspace's layout (``workspaces/<name>``), or is malformed
    there and so might: containment never takes such a key for a legacy one."""
    try:
        return split_logical(key).workspace is not None
    except PathError:
        return True
