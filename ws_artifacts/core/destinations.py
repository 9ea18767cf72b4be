"""The server's own destinations: the ``ws-`` locations an ``mlflow server`` worker was started
with (:func:`destinations_from_env`), and the rule that keeps a default-destination target under
one of them (:func:`check_destination`). Pure: the environment is handed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ws_artifacts.core.errors import OwnershipError, PathError
from ws_artifacts.core.paths import (
    DEFAULT_WORKSPACE,
    is_within,
    may_name_workspace,
    normalize,
    split_logical,
)
from ws_artifacts.core.targets import Target
from ws_artifacts.core.urls import split_url

__all__ = ["SERVER_DESTINATION_ENV_VARS", "check_destination", "destinations_from_env"]

#: The variables ``mlflow server`` hands its workers: ``--artifacts-destination`` and
#: ``--default-artifact-root`` (names from ``mlflow/server/constants.py``, 3.10 to 3.17).
SERVER_DESTINATION_ENV_VARS = (
    "_MLFLOW_SERVER_ARTIFACT_DESTINATION",
    "_MLFLOW_SERVER_ARTIFACT_ROOT",
)


def check_destination(target: Target, destinations: Sequence[str] | None) -> Target:
    """Keep a default-destination target under one of the server's own destinations.

    A repository takes its default destination from the URI it is built with, and some URIs
    come from requests (a model version's source, a trace's artifact location). Routed
    workspaces ignore that part, but the default workspace's legacy paths and unrouted
    workspaces use it, so on a server the URI's location and root must be a destination the
    server was started with.

    Args:
        target: The resolved target.
        destinations: The server's ``ws-`` destinations (:func:`destinations_from_env`), or None
            outside a server (a client reads with its own credentials: nothing to keep).

    Returns:
        The target; a legacy one is scoped to the destination's root, so that backends which
        resolve links (local files) keep it inside the destination.

    Raises:
        OwnershipError: The target is at a default destination the server does not serve.
    """
    route = target.route
    if destinations is None or not route.is_destination:
        return target
    for url in destinations:
        scheme, location, prefix = split_url(url.removeprefix("ws-"))
        if (scheme, location) != (route.scheme, route.location):
            continue
        try:
            root = normalize(prefix)
        except PathError:
            continue
        if target.workspace != DEFAULT_WORKSPACE or may_name_workspace(target.scope):
            if split_logical(target.scope).root == root:
                return target
        elif is_within(root, target.key):
            return Target(route, target.key, target.workspace, root)
    served = ", ".join(destinations) or "no ws- destination"
    raise OwnershipError(
        f"Refused: {target.uri} is not under this server's artifact destination ({served}), and "
        f"workspace '{target.workspace}' has no route of its own. Add a route for the workspace "
        "to the ws-artifacts configuration, or keep its artifacts under the destination."
    )


def destinations_from_env(environ: Mapping[str, str]) -> tuple[str, ...] | None:
    """The ``ws-`` locations an ``mlflow server`` worker was started with; None when the process
    is not such a worker (neither variable of :data:`SERVER_DESTINATION_ENV_VARS` is set)."""
    values = [environ.get(name, "").strip() for name in SERVER_DESTINATION_ENV_VARS]
    if not any(values):
        return None
    return tuple(value for value in values if value.startswith("ws-"))
