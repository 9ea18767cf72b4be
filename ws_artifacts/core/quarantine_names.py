"""The quarantine area's name (:data:`QUARANTINE_SEGMENT`) and every spelling of it that this or
another layer could read as it (:func:`in_quarantine`). Pure: no I/O.
"""

from __future__ import annotations

import unicodedata

from ws_artifacts.core.path_characters import reads_as

__all__ = ["QUARANTINE_SEGMENT", "in_quarantine", "reads_as_quarantine"]

#: Where quarantined workspaces are kept, beside every place (``<base>/.ws-quarantine/...``, see
#: :mod:`ws_artifacts.lifecycle.quarantine`): nobody's place, so no artifact path may name it.
QUARANTINE_SEGMENT = ".ws-quarantine"


def in_quarantine(path: str) -> bool:
    """Whether any segment of ``path`` (a key, a prefix or a request's path, at any depth)
    could be read as the quarantine area :data:`QUARANTINE_SEGMENT` by this or another layer.

    The one rule that keeps quarantine nobody's place: routing refuses a target whose key or
    scope is in it, and listings leave it out. Spellings that count: other letter case,
    percent-escapes (also repeated), Unicode compatibility forms and dash look-alikes,
    surrounding whitespace and trailing dots (file systems that drop them).
    """
    if not path:
        return False
    if path.isascii() and "%" not in path and "ws-quarantine" not in path.lower():
        return False  # fast path: no spelling of the segment can be in it
    return any(reads_as_quarantine(segment) for segment in path.split("/") if segment)


def reads_as_quarantine(segment: str) -> bool:
    """Whether ``segment`` is :data:`QUARANTINE_SEGMENT` in any spelling (see
    :func:`in_quarantine`)."""
    return reads_as(segment, _spells_quarantine)


def _spells_quarantine(form: str) -> bool:
    folded = unicodedata.normalize("NFKC", form).casefold()
    folded = "".join("-" if unicodedata.category(ch) == "Pd" else ch for ch in folded)
    return folded.strip().rstrip(". ") == QUARANTINE_SEGMENT
