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
import urllib.parse
from dataclasses import dataclass

from ws_artifacts.core.errors import OwnershipError, PathError

__all__ = [
    "DECODE_ROUNDS",
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
# Percent-escapes that would turn into a separator, a dot or a control character if any layer
# decoded the key: refused rather than guessed at.
_DANGEROUS_ESCAPE = re.compile(r"%(?:2[ef]|5c|00|0[0-9a-f]|1[0-9a-f]|7f)", re.IGNORECASE)
# Unicode categories refused anywhere in a path: controls (C0, DEL, C1 such as NEL), line and
# paragraph separators, and lone surrogates (from broken decoding; no store can write them).
_REFUSED_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})
# Bidirectional overrides and isolates: they make a message show another path than the real one.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: How many rounds of percent-decoding a path is read through (deeper encodings are refused).
DECODE_ROUNDS = 4


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
    _check_length(path)
    parts = [segment for segment in path.split("/") if segment not in ("", ".")]
    if path.isascii() and _ASCII_PLAIN.fullmatch(path):
        # Fast path, same result: plain ASCII has no escapes to decode, and NFC and NFKC leave it
        # unchanged, so only empty, "." and ".." segments matter.
        if ".." in parts:
            _check_segment("..", path)
        return "/".join(parts)
    _check_text(path)
    for segment in parts:
        _check_segment(segment, path)
        _check_decoded(segment, path)
    return "/".join(parts)


def _check_length(path: str) -> None:
    if len(path) > MAX_PATH_LENGTH:
        raise PathError(
            f"Artifact path of {len(path)} characters is longer than the {MAX_PATH_LENGTH} "
            "allowed; use a shorter path."
        )


def _check_text(path: str) -> None:
    """The checks on the whole path: characters, escapes of separators, NFC form."""
    _check_characters(path, path)
    _check_invisible_and_lookalikes(path, path)
    if _DANGEROUS_ESCAPE.search(path):
        raise PathError(
            f"Artifact path {path!r} contains a percent-escaped separator, dot or control "
            "character; use the plain character instead."
        )
    if unicodedata.normalize("NFC", path) != path:
        raise PathError(f"Artifact path {path!r} is not in Unicode NFC form.")


def _check_decoded(segment: str, path: str) -> None:
    """Check ``segment`` as a layer that decodes percent-escapes (once or more) would see it."""
    decoded = _unquote_fully(segment, path)
    if decoded == segment:
        return
    _check_characters(decoded, path)
    _check_invisible_and_lookalikes(decoded, path)
    if decoded in (".", "..") or "/" in decoded:
        raise PathError(
            f"Artifact path {path!r} has a segment {segment!r} that decodes to "
            f"{decoded!r}; use plain characters instead of percent-escapes."
        )
    _check_segment(decoded, path)


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


def _check_characters(text: str, path: str) -> None:
    if "\\" in text:
        raise PathError(f"Artifact path {path!r} contains a backslash; use '/' as separator.")
    for ch in text:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES or ch in _BIDI_CONTROLS:
            raise PathError(
                f"Artifact path {path!r} contains a control, line-separator or bidirectional "
                f"character (U+{ord(ch):04X}); remove it."
            )


# Characters drawn like a slash or a backslash that are neither (Unicode's confusables of
# U+002F and U+005C among symbols and punctuation; letters such as KATAKANA NO are left alone).
# Unicode compatibility folding leaves these as they are, so a console shows a key such as
# "workspaces\u2215team-b" as if it were another workspace's. (The fullwidth and small solidi
# fold to "/" and "\\" and are refused by _check_segment.)
_SLASH_LOOKALIKES = frozenset(
    "\u1735\u2041\u2044\u2215\u2571\u27cb\u29f8\u2f03\u3033\U0001d23a"  # like "/"
    "\u2216\u2572\u27cd\u29f5\u29f9"  # like "\\"
)


def _check_invisible_and_lookalikes(text: str, path: str) -> None:
    """Refuse invisible format characters (category Cf: U+200B, U+FEFF, U+2060, ...) and slash
    look-alikes: either makes a key read in a console as another key (another workspace's)."""
    for ch in text:
        if ch in _SLASH_LOOKALIKES:
            raise PathError(
                f"Artifact path {path!r} contains U+{ord(ch):04X} "
                f"({unicodedata.name(ch, 'unnamed')}), which looks like a slash but is not one; "
                "use '/' between directories and other characters in names."
            )
        if unicodedata.category(ch) == "Cf":
            raise PathError(
                f"Artifact path {path!r} contains the invisible character U+{ord(ch):04X} "
                f"({unicodedata.name(ch, 'unnamed')}); remove it."
            )


def _check_segment(segment: str, path: str) -> None:
    if segment == "..":
        raise PathError(f"Artifact path {path!r} contains '..'; paths may not go upwards.")
    folded = unicodedata.normalize("NFKC", segment)
    if folded in (".", "..") or "/" in folded or "\\" in folded:
        raise PathError(
            f"Artifact path {path!r} has a segment {segment!r} that reads as {folded!r} after "
            "Unicode compatibility folding; use plain ASCII dots and slashes."
        )


def _unquote_fully(segment: str, path: str) -> str:
    text = segment
    for _ in range(DECODE_ROUNDS):
        decoded = urllib.parse.unquote(text) if "%" in text else text
        if decoded == text:
            return text
        text = decoded
    raise PathError(
        f"Artifact path {path!r} is percent-encoded more than {DECODE_ROUNDS} times; use plain "
        "characters."
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
    form = segment
    for _ in range(DECODE_ROUNDS + 1):
        if unicodedata.normalize("NFKC", form).casefold() == WORKSPACES_SEGMENT:
            return True
        decoded = urllib.parse.unquote(form)
        if decoded == form:
            return False
        form = decoded
    return True  # still encoded after every round: normalize() refuses such paths anyway


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
