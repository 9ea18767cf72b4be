"""Spellings of a reserved path segment, as a hostile client would try them: one table, reused
by every surface that must keep a segment out of reach (the quarantine area first).

:meth:`Spelling.wire` is what goes into a URL path or query (``%`` kept: the HTTP server
decodes once); :meth:`Spelling.decoded` is what reaches a repository after that one decoding.
Each spelling is followed by ``/<rest>`` in the tests (so ``doubled-slashes`` gives
``.ws-quarantine//victim``).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

DENIED, INVALID = "PERMISSION_DENIED", "INVALID_PARAMETER_VALUE"


def _swap_first_letter(segment: str, replacement: Callable[[str], str]) -> str:
    index = next(i for i, ch in enumerate(segment) if ch.isalpha())
    return segment[:index] + replacement(segment[index]) + segment[index + 1 :]


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


@dataclass(frozen=True)
class Spelling:
    id: str
    spell: Callable[[str], str]
    direct: str = DENIED  # the repository's error code for the decoded path (guard off)

    def wire(self, segment: str) -> str:
        """``segment`` spelt this way, as sent."""
        return self.spell(segment)

    def decoded(self, segment: str) -> str:
        """What the repository receives after the HTTP server's one decoding."""
        return urllib.parse.unquote(self.wire(segment))


SPELLINGS = [
    Spelling("plain", lambda s: s),
    Spelling("upper-case", str.upper),
    Spelling("mixed-case", lambda s: s.title()),
    Spelling("dot-slash", lambda s: f"./{s}"),
    Spelling("doubled-slashes", lambda s: f"{s}/"),
    Spelling("dotdot", lambda s: f"x/../{s}", direct=INVALID),
    Spelling("encoded-letter", lambda s: _swap_first_letter(s, lambda c: f"%{ord(c):02x}")),
    Spelling(
        "double-encoded-letter", lambda s: _swap_first_letter(s, lambda c: f"%25{ord(c):02x}")
    ),
    Spelling("encoded-leading-dot", lambda s: s.replace(".", "%2e", 1)),
    Spelling("trailing-dot", lambda s: f"{s}."),
    Spelling("trailing-space", lambda s: f"{s}%20"),
    Spelling("fullwidth-dot", lambda s: s.replace(".", "\uff0e", 1)),
    Spelling("fullwidth-letters", lambda s: _swap_first_letter(s, _fullwidth)),
    Spelling("non-breaking-hyphen", lambda s: s.replace("-", "\u2011")),
    Spelling("below-own-workspace", lambda s: f"workspaces/default/{s}"),
    Spelling("below-a-legacy-directory", lambda s: f"legacy/{s}"),
]
IDS = [spelling.id for spelling in SPELLINGS]
