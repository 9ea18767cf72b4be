"""Writes under an experiment go to the workspace that owns the experiment now.

``mlflow db move-resources`` moves experiments between workspaces in the database only: their
objects stay under ``workspaces/<old>/<experiment>/...`` until ``ws-artifacts migrate
--moved-from`` copies them. Until then the old workspace could keep writing there, and the
migration would copy what it planted into the new owner's runs. So on a server every write
below ``workspaces/<ws>/<experiment id>/`` is checked: an experiment that exists must belong
to ``<ws>`` now, as MLflow's tracking database says (through :mod:`ws_artifacts._mlflow`). An id
no experiment has is let through, as before (nothing can be moved from it; ``ws-artifacts
orphans`` finds such objects).

The bound: positive answers are kept for at most :data:`OWNER_TTL_SECONDS` seconds, at most
:data:`OWNER_CACHE_SIZE` of them per worker; refusals are never kept. So a move stops writes to
the old place within ``OWNER_TTL_SECONDS`` in every worker, and a cache miss costs one
primary-key query. Deletes are checked like writes (until migrate copies them, the old place
holds the new owner's only copy). Reads and lists are not (the old owner's reads of its old
place are what the move leaves; nothing it reads is written anywhere).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from ws_artifacts._mlflow import tracking_db
from ws_artifacts.core.errors import OwnershipError
from ws_artifacts.core.paths import split_logical
from ws_artifacts.core.targets import Target

__all__ = ["OWNER_CACHE_SIZE", "OWNER_TTL_SECONDS", "check_writable", "experiment_of"]

#: How long a "the experiment belongs to this workspace" answer is trusted, in seconds.
OWNER_TTL_SECONDS = 2.0
#: How many such answers a worker keeps (least recently used go first).
OWNER_CACHE_SIZE = 4096

_lock = threading.Lock()
_owned: OrderedDict[tuple[str, str], float] = OrderedDict()


def experiment_of(target: Target) -> str | None:
    """The experiment id a target lies under (``workspaces/<ws>/<id>/...``, ``<id>`` all
    digits, as MLflow numbers experiments), or None (legacy paths, other children)."""
    layout = split_logical(target.key)
    if layout.workspace is None:
        return None
    first = layout.rest.split("/", 1)[0]
    return first if first.isascii() and first.isdigit() else None


def check_writable(target: Target) -> None:
    """Refuse a write below an experiment that belongs to another workspace now.

    Raises:
        OwnershipError: The experiment is in another workspace (moved there).
    """
    experiment = experiment_of(target)
    if experiment is None:
        return
    key = (target.workspace, experiment)
    now = time.monotonic()
    with _lock:
        since = _owned.get(key)
        if since is not None and now - since < OWNER_TTL_SECONDS:
            _owned.move_to_end(key)
            return
    owner = tracking_db.experiment_workspace(experiment)
    if not owner:  # not a server (a client writes with its own credentials), or no such id
        return
    if owner != target.workspace:
        with _lock:
            _owned.pop(key, None)
        raise OwnershipError(
            f"Refused to write or delete {target.uri}: experiment {experiment} does not belong to "
            f"workspace '{target.workspace}' now (it was moved to another workspace). Log to "
            "the experiment in the workspace that owns it now; after `mlflow db "
            "move-resources`, the operator runs `ws-artifacts migrate --moved-from "
            f"{target.workspace} --to <new workspace>`."
        )
    with _lock:
        _owned[key] = now
        _owned.move_to_end(key)
        while len(_owned) > OWNER_CACHE_SIZE:
            _owned.popitem(last=False)
