"""Fallback: reads, lists and deletes over a route's current place and its previous places.

A route that moved (``previous: [...]`` in its configuration) keeps its older objects readable
until ``ws-artifacts migrate`` has copied them over: reads look in the current place first, then
in each previous place, newest first; lists are the union (the current place wins a name
clash); deletes remove every copy, so a deleted artifact cannot reappear from an older place.
Writes are not here: they only ever go to the current place.

Every place is a :class:`~ws_artifacts.core.targets.Target` built by routing, so every one has
passed the same containment check. The quarantine area
(:func:`ws_artifacts.core.quarantine_names.in_quarantine`)
is left out of every list and walk, and a delete whose tree holds any of it is refused whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from ws_artifacts.core.errors import NotFoundError, OwnershipError
from ws_artifacts.core.quarantine_names import QUARANTINE_SEGMENT, in_quarantine
from ws_artifacts.core.targets import Target
from ws_artifacts.storage.base import Backend, Entry
from ws_artifacts.storage.registry import backend_for

__all__ = ["delete_everywhere", "list_union", "read_first", "walk_union"]

_R = TypeVar("_R")


def read_first(target: Target, action: Callable[[Backend, Target], _R]) -> _R:
    """``action(backend, place)`` on the first place where it does not raise NotFoundError.

    Raises:
        NotFoundError: The current place's error, when no place has it.
    """
    try:
        return action(backend_for(target.route), target)
    except NotFoundError:
        for place in target.places()[1:]:
            try:
                return action(backend_for(place.route), place)
            except NotFoundError:
                continue
        raise  # the current place's error: it names where the artifact belongs


def list_union(target: Target) -> list[Entry]:
    """The direct children of ``target`` in every place; the newest place wins a name."""
    places = target.places()
    if len(places) == 1:
        return _visible(backend_for(target.route).list_dir(target))
    seen: dict[str, Entry] = {}
    for place in places:
        for entry in _visible(backend_for(place.route).list_dir(place)):
            seen.setdefault(entry.name, entry)
    return list(seen.values())


def walk_union(target: Target) -> list[tuple[Target, Entry]]:
    """Every file below ``target``, each with the place it is read from (the newest that has
    it), names relative to that place."""
    places = target.places()
    seen: dict[str, tuple[Target, Entry]] = {}
    for place in places:
        for entry in _visible(backend_for(place.route).walk(place)):
            seen.setdefault(entry.name, (place, entry))
    return list(seen.values())


def delete_everywhere(target: Target) -> int:
    """Delete ``target`` (a file or a tree) in the current place and every previous one;
    return how many objects went in all."""
    places = target.places()
    for place in places:  # checked everywhere before anything is deleted anywhere
        if any(in_quarantine(e.name) for e in backend_for(place.route).walk(place)):
            raise OwnershipError(
                f"Refused to delete {place.uri} in workspace '{place.workspace}': it holds part "
                f"of the quarantine area ('{QUARANTINE_SEGMENT}'), which is nobody's place; "
                "nothing was deleted. Delete the artifacts of experiments or runs instead."
            )
    return sum(backend_for(place.route).delete(place) for place in places)


def _visible(entries: Iterable[Entry]) -> list[Entry]:
    """``entries`` without anything in the quarantine area."""
    return [entry for entry in entries if not in_quarantine(entry.name)]
