"""What a tracking server (or its database) holds, read through MLflow's client: every workspace
and its experiments, and the content its skill versions name (3.18+)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ws_artifacts._mlflow.exceptions import MlflowException

__all__ = ["experiment_names", "skill_truth", "tracking_truth", "tracking_workspaces"]


def tracking_truth(tracking_uri: str) -> dict[str, set[str]]:
    """Every workspace and the ids of all its experiments (active and deleted), read through
    MLflow's client on a server URL or a database URI.

    Returns:
        ``{workspace: {experiment_id, ...}}``.
    """
    from mlflow.utils.workspace_context import WorkspaceContext

    client = _client(tracking_uri)
    truth: dict[str, set[str]] = {}
    for workspace in client.list_workspaces():
        with WorkspaceContext(workspace.name):
            truth[workspace.name] = {str(e.experiment_id) for e in _all_experiments(client)}
    return truth


def _all_experiments(client: Any) -> list[Any]:
    """Every experiment of the current workspace, active and deleted, page after page."""
    from mlflow.entities import ViewType

    return _pages(
        lambda token: client.search_experiments(
            view_type=ViewType.ALL, max_results=1000, page_token=token
        )
    )


def _client(tracking_uri: str) -> Any:
    """An MlflowClient on a server URL or a database URI. A database of a workspace-enabled
    server can only be opened with workspaces on (MLflow refuses single-tenant mode when
    experiments live in other workspaces), so this command process turns them on."""
    import os

    from mlflow import MlflowClient

    if not tracking_uri.startswith(("http://", "https://")):
        os.environ["MLFLOW_ENABLE_WORKSPACES"] = "true"
    return MlflowClient(tracking_uri=tracking_uri)


def skill_truth(tracking_uri: str, workspaces: Iterable[str]) -> dict[str, set[str]] | None:
    """The content each workspace's skill versions name: ``{workspace: {path, ...}}``, each path
    relative to the workspace's place (``skills/<name>/<token>``, or the path a version with a
    ``subpath`` points into). Every version that still exists counts: active, draft and
    deprecated (MLflow's deleted state is final, and a deleted version cannot be pulled).

    Returns:
        None when this MLflow has no skill registry (before 3.18), or the tracking server or
        database has none (an older server): then no skill content can be judged.
    """
    from mlflow import MlflowClient
    from mlflow.utils.workspace_context import WorkspaceContext

    if not hasattr(MlflowClient, "search_skill_versions"):
        return None

    client = _client(tracking_uri)
    truth: dict[str, set[str]] = {}
    try:
        for workspace in workspaces:
            with WorkspaceContext(workspace):
                truth[workspace] = _skill_paths(client)
    except MlflowException as err:
        if err.error_code in ("ENDPOINT_NOT_FOUND", "NOT_IMPLEMENTED"):
            return None
        raise
    return truth


def _skill_paths(client: Any) -> set[str]:
    paths: set[str] = set()
    for skill in _pages(lambda token: client.search_skills(max_results=100, page_token=token)):
        versions = _pages(
            lambda token, s=skill: client.search_skill_versions(
                name=s.name, organization=s.organization, max_results=100, page_token=token
            )
        )
        for version in versions:
            source = getattr(version.source, "artifact_path", None)
            if not isinstance(source, str) or not source.startswith("mlflow-artifacts:/"):
                continue  # git, oci or zip: nothing in artifact storage
            path = source.removeprefix("mlflow-artifacts:/").strip("/")
            subpath = (getattr(version.source, "subpath", None) or "").strip("/")
            paths.add(f"{path}/{subpath}" if subpath else path)
    return paths


def _pages(search: Any) -> list[Any]:
    """Every item of a paged MLflow search (``search(page_token)``), page after page."""
    found: list[Any] = []
    token = None
    while True:
        page = search(token)
        found.extend(page)
        token = page.token
        if not token:
            return found


def tracking_workspaces(tracking_uri: str) -> list[str]:
    """The names of the workspaces a tracking server knows (for ``usage --tracking-uri``)."""
    from mlflow import MlflowClient

    return [w.name for w in MlflowClient(tracking_uri=tracking_uri).list_workspaces()]


def experiment_names(tracking_uri: str, workspace: str) -> dict[str, str]:
    """Experiment id -> name in ``workspace`` on the tracking server (deleted ones too)."""
    from mlflow import MlflowClient
    from mlflow.utils.workspace_context import WorkspaceContext

    with WorkspaceContext(workspace):
        client = MlflowClient(tracking_uri=tracking_uri)
        return {e.experiment_id: e.name for e in _all_experiments(client)}
