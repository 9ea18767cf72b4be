"""MLflow's workspace provider (``mlflow.workspace_provider``): its SQL store, its base class, its
deletion rules, and each workspace's roots: the current one in MLflow's workspaces table, the
previous ones in ws-artifacts' own table beside it (:class:`ws_artifacts.core.targets.WorkspaceRoot`
is built from them)."""

from __future__ import annotations

from typing import Any

import mlflow

from ws_artifacts._mlflow.exceptions import ErrorCode, MlflowException

__all__ = [
    "PREVIOUS_ROOTS_TABLE",
    "check_workspace_deletable",
    "client_workspace_roots",
    "database_workspace_roots",
    "deletion_mode_name",
    "ensure_previous_roots_table",
    "read_workspace_roots",
    "server_workspace_roots",
    "server_workspace_store",
    "sql_workspace_store",
    "workspace_store_base",
    "write_previous_roots",
]


def sql_workspace_store(db_uri: str) -> Any:
    """MLflow's own SQL workspace provider on ``db_uri`` (``sqlite:///...``, ``postgresql://...``)."""
    from mlflow.store.workspace.sqlalchemy_store import SqlAlchemyStore

    return SqlAlchemyStore(db_uri)


def workspace_store_base() -> type:
    """MLflow's abstract workspace provider class (``mlflow.workspace_provider`` plugins)."""
    from mlflow.store.workspace.abstract_store import AbstractStore

    base: type = AbstractStore
    return base


def check_workspace_deletable(store: Any, name: str, mode: Any) -> None:
    """Refuse, exactly as MLflow's SQL provider would and before anything is touched, a deletion
    that provider will refuse: RESTRICT on a workspace that still holds resources, SET_DEFAULT
    with names that clash with the default workspace's (MLflow 3.10 to 3.17 share this code).

    Raises:
        MlflowException: INVALID_STATE, with MLflow's own message.
    """
    from mlflow.entities.workspace import WorkspaceDeletionMode
    from mlflow.store.workspace import sqlalchemy_store as sql

    mode = WorkspaceDeletionMode(getattr(mode, "value", mode))
    with store.ManagedSessionMaker() as session:
        if mode == WorkspaceDeletionMode.RESTRICT:
            models: list[Any] = list(sql._WORKSPACE_ROOT_MODELS)
            for model in models:
                count = session.query(model).filter(model.workspace == name).count()
                if count:
                    raise MlflowException(
                        f"Cannot delete workspace '{name}': table '{model.__tablename__}' still "
                        f"contains {count} resource(s). Remove or reassign them before deleting "
                        "the workspace.",
                        error_code=ErrorCode.Value("INVALID_STATE"),
                    )
        elif mode == WorkspaceDeletionMode.SET_DEFAULT:
            store._check_set_default_conflicts(session, name)


def deletion_mode_name(mode: Any) -> str:
    """``RESTRICT``, ``CASCADE`` or ``SET_DEFAULT``."""
    return str(getattr(mode, "value", mode))


#: ws-artifacts' own table in MLflow's database: each workspace's earlier roots, newest first
#: (MLflow's workspaces table holds only the current one).
PREVIOUS_ROOTS_TABLE = "ws_artifacts_previous_roots"
_TABLE: Any = None


def _previous_roots_table() -> Any:
    global _TABLE
    if _TABLE is None:
        import sqlalchemy as sa

        _TABLE = sa.Table(
            PREVIOUS_ROOTS_TABLE,
            sa.MetaData(),
            sa.Column("workspace", sa.String(63), primary_key=True),
            sa.Column("position", sa.Integer, primary_key=True),
            sa.Column("url", sa.Text, nullable=False),
        )
    return _TABLE


def ensure_previous_roots_table(sql_store: Any) -> None:
    """Create ws-artifacts' previous-roots table in the workspace store's database if missing."""
    _previous_roots_table().create(sql_store._engine, checkfirst=True)


def read_workspace_roots(sql_store: Any) -> dict[str, tuple[str | None, tuple[str, ...]]]:
    """Every workspace's current root (MLflow's column) and previous roots (ours), in one
    read-only session: ``{name: (root or None, (previous, ...))}``."""
    import sqlalchemy as sa
    from mlflow.store.workspace.dbmodels.models import SqlWorkspace

    table = _previous_roots_table()
    with sql_store._engine.begin() as conn:  # one transaction: both tables as of one moment
        rows = conn.execute(sa.select(SqlWorkspace.name, SqlWorkspace.default_artifact_root))
        rows = rows.all()
        previous = conn.execute(table.select().order_by(table.c.workspace, table.c.position))
        previous = previous.all()
    out: dict[str, tuple[str | None, tuple[str, ...]]] = {
        str(name): (root or None, ()) for name, root in rows
    }
    for workspace, _, url in previous:
        if workspace in out:
            root, urls = out[workspace]
            out[workspace] = (root, (*urls, str(url)))
    return out


def write_previous_roots(sql_store: Any, workspace: str, urls: tuple[str, ...]) -> None:
    """Replace ``workspace``'s previous roots (newest first) in one transaction."""
    table = _previous_roots_table()
    with sql_store._engine.begin() as conn:
        conn.execute(table.delete().where(table.c.workspace == workspace))
        if urls:
            conn.execute(
                table.insert(),
                [{"workspace": workspace, "position": i, "url": u} for i, u in enumerate(urls)],
            )


def server_workspace_store() -> Any:
    """The workspace store of this server process (MLflow builds and keeps one per process)."""
    from mlflow.server.workspace_helpers import _get_workspace_store

    return _get_workspace_store()


def client_workspace_roots(
    tracking_uri: str | None,
) -> dict[str, tuple[str | None, tuple[str, ...]]]:
    """Every workspace's current root as a tracking server reports it (direct-mode clients;
    previous roots are the server's own and not reported)."""
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    return {ws.name: (ws.default_artifact_root or None, ()) for ws in client.list_workspaces()}


_TABLE_READY: set[int] = set()


def server_workspace_roots() -> dict[str, tuple[str | None, tuple[str, ...]]]:
    """Every workspace's roots, read from this server's workspace store (its database when it
    is a SQL store, ours or MLflow's; otherwise the provider's ``list_workspaces``)."""
    store = server_workspace_store()
    sql = getattr(store, "inner", store)
    if getattr(sql, "_engine", None) is None:
        return {ws.name: (ws.default_artifact_root or None, ()) for ws in store.list_workspaces()}
    if id(sql) not in _TABLE_READY:
        ensure_previous_roots_table(sql)
        _TABLE_READY.add(id(sql))
    return read_workspace_roots(sql)


def database_workspace_roots(db_uri: str) -> dict[str, tuple[str | None, tuple[str, ...]]]:
    """Every workspace's roots, read from the tracking database ``db_uri`` (the CLI's view)."""
    store = sql_workspace_store(db_uri)
    ensure_previous_roots_table(store)
    return read_workspace_roots(store)
