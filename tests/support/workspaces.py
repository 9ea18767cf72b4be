"""Names no other test uses, and acting as a client of one workspace."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator

__all__ = ["WORKSPACES", "in_workspace", "unique"]

#: The workspaces every shared integration server creates.
WORKSPACES = ("team-a", "team-b", "vision-x", "vision-y", "other")
_counter = itertools.count()


def unique(prefix: str) -> str:
    """A name no other test in this session uses."""
    return f"{prefix}-{next(_counter)}"


@contextlib.contextmanager
def in_workspace(name: str | None) -> Iterator[None]:
    """Run the block as a client of workspace ``name`` (restores the previous one after)."""
    from mlflow.utils.workspace_context import WorkspaceContext

    with WorkspaceContext(name):
        yield
