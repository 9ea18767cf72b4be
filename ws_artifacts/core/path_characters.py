"""What an artifact path may hold, read the way every other layer could read it: the character,
escape and Unicode checks behind :func:`ws_artifacts.core.paths.normalize`, and
:func:`reads_as` for segments whose every spelling is reserved (``workspaces``,
``.ws-quarantine``). Pure: no I/O.
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse
from collections.abc import Callable

from ws_artifacts.core.errors import PathError

__all__ = ["check_decoded_segment", "check_segment", "check_text", "reads_as"]

# Percent-escapes that would turn into a separator, a dot or a control character if any layer
# decoded the key: refused rather than guessed at.
_DANGEROUS_ESCAPE = re.compile(r"%(?:2[ef]|5c|00|0[0-9a-f]|1[0-9a-f]|7f)", re.IGNORECASE)
# Unicode categories refused anywhere in a path: controls (C0, DEL, C1 such as NEL), line and
# paragraph separators, and lone surrogates (from broken decoding; no store can write them).
_REFUSED_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})
# Bidirectional overrides and isolates: they make a message show another path than the real one.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_DECODE_ROUNDS = 4


def check_text(path: str) -> None:
    """Refuse in the whole ``path``: backslashes, control, bidirectional, invisible and slash
    look-alike characters, percent-escapes of separators, dots or controls, non-NFC text."""
    _check_characters(path, path)
    _check_invisible_and_lookalikes(path, path)
    if _DANGEROUS_ESCAPE.search(path):
        raise PathError(
            f"Artifact path {path!r} contains a percent-escaped separator, dot or control "
            "character; use the plain character instead."
        )
    if unicodedata.normalize("NFC", path) != path:
        raise PathError(f"Artifact path {path!r} is not in Unicode NFC form.")


def check_decoded_segment(segment: str, path: str) -> None:
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
    check_segment(decoded, path)


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


def check_segment(segment: str, path: str) -> None:
    """Refuse ``..`` and a segment that Unicode compatibility folding reads as ``.``, ``..`` or a
    separator."""
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
    for _ in range(_DECODE_ROUNDS):
        decoded = urllib.parse.unquote(text) if "%" in text else text
        if decoded == text:
            return text
        text = decoded
    raise PathError(
        f"Artifact path {path!r} is percent-encoded more than {_DECODE_ROUNDS} times; use plain "
        "characters."
    )


def reads_as(segment: str, spelled: Callable[[str], bool]) -> bool:
    """Whether ``spelled`` holds for ``segment`` or for what some layer's percent-decoding (once
    or more) makes of it. A segment still encoded after every round counts: :func:`normalize`
    refuses such paths anyway."""
    form = segment
    for _ in range(_DECODE_ROUNDS + 1):
        if spelled(form):
            return True
        decoded = urllib.parse.unquote(form)
        if decoded == form:
            return False
        form = decoded
    return True
