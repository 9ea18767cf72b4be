"""The one module that imports MLflow internals.

Supported: MLflow 3.10 to 3.18. What a version lacks is handled here and nowhere else:

* ``StreamUploadMixin``, ``MultipartDownloadMixin`` and ``PresignedUploadMixin`` appeared after
  3.10; on a version without one, a private stand-in class takes its place, so the repository
  still defines the methods but the server (which cannot look for the missing class) never
  calls them.
* ``PresignedDownloadUrlResponse`` appeared with ``MultipartDownloadMixin``; where missing, a
  stand-in with the same fields is used (it is never sent to such a server).
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import mlflow
import mlflow.environment_variables as _environment_variables
from mlflow.entities import FileInfo
from mlflow.entities.multipart_upload import (
    CreateMultipartUploadResponse,
    MultipartUploadCredential,
    MultipartUploadPart,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import ErrorCode
from mlflow.store.artifact import artifact_repo as _artifact_repo
from mlflow.store.artifact.artifact_repo import ArtifactRepository, MultipartUploadMixin
from mlflow.tracing.utils.artifact_utils import TRACE_DATA_FILE_NAME
from mlflow.utils.workspace_context import get_request_workspace

#: Where ``mlflow server`` tells its workers the proxied artifact destination
#: (``mlflow.server.constants``; not imported: importing it runs ``mlflow.server``, the app).
ARTIFACTS_DESTINATION_ENV_VAR = "_MLFLOW_SERVER_ARTIFACT_DESTINATION"

__all__ = [
    "ARTIFACTS_DESTINATION_ENV_VAR",
    "HAS_PRESIGNED_ONLY",
    "HAS_PRESIGNED_UPLOADS",
    "MLFLOW_VERSION",
    "REFUSAL_STATUS",
    "TRACE_DATA_FILE_NAME",
    "ArtifactRepository",
    "CreateMultipartUploadResponse",
    "CreatePresignedUploadResponse",
    "FileInfo",
    "MlflowException",
    "MultipartDownloadMixin",
    "MultipartUploadCredential",
    "MultipartUploadMixin",
    "MultipartUploadPart",
    "PresignedDownloadUrlResponse",
    "PresignedUploadMixin",
    "Refusal",
    "StoredLocation",
    "StreamUploadMixin",
    "active_workspace",
    "build_proxied_repository",
    "presigned_only",
    "proxied_repository",
    "server_usage_error",
    "stored_locations",
    "update_locations",
]

MLFLOW_VERSION: str = mlflow.__version__
#: Whether this MLflow has presigned uploads (3.17+: ``PresignedUploadMixin`` and its endpoint).
HAS_PRESIGNED_UPLOADS: bool = hasattr(_artifact_repo, "PresignedUploadMixin")
#: Whether this MLflow has presigned-only serving (3.18+: ``--artifacts-presigned-only``).
HAS_PRESIGNED_ONLY: bool = hasattr(_environment_variables, "MLFLOW_ARTIFACTS_PRESIGNED_ONLY")


class _Absent(ABC):  # noqa: B024 - a marker base with nothing abstract
    """Stands in for a mixin this MLflow version does not have."""


StreamUploadMixin: type = getattr(_artifact_repo, "StreamUploadMixin", None) or type(
    "StreamUploadMixin", (_Absent,), {}
)
MultipartDownloadMixin: type = getattr(_artifact_repo, "MultipartDownloadMixin", None) or type(
    "MultipartDownloadMixin", (_Absent,), {}
)
PresignedUploadMixin: type = getattr(_artifact_repo, "PresignedUploadMixin", None) or type(
    "PresignedUploadMixin", (_Absent,), {}
)

try:
    from mlflow.entities.presigned_upload import CreatePresignedUploadResponse
except ImportError:  # MLflow < 3.17: no presigned uploads; never sent to such a server

    @dataclass
    class CreatePresignedUploadResponse:  # type: ignore[no-redef]
        """Stand-in for MLflow's class of the same name."""

        presigned_url: str
        headers: dict[str, str] = field(default_factory=dict)


try:
    from mlflow.entities.presigned_download import PresignedDownloadUrlResponse
except ImportError:  # MLflow < 3.11

    @dataclass
    class PresignedDownloadUrlResponse:  # type: ignore[no-redef]
        """Stand-in for MLflow's class of the same name."""

        url: str
        headers: dict[str, str] = field(default_factory=dict)
        file_size: int | None = None

        def to_dict(self) -> dict[str, Any]:
            """The JSON form MLflow sends."""
            return {"url": self.url, "headers": self.headers, "file_size": self.file_size}


def active_workspace() -> str | None:
    """The workspace of the current request (server) or of ``mlflow.set_workspace`` (client).

    Read it in the thread that received the request: MLflow keeps it in a ContextVar that
    worker threads do not see.
    """
    workspace: str | None = get_request_workspace()
    return workspace


def authenticated_user() -> str | None:
    """The user MLflow's basic-auth authenticated for this Flask request (3.11+ keeps it in
    ``flask.g.mlflow_authenticated_user``); None outside a Flask request or without it."""
    try:
        from flask import g, has_app_context
    except ImportError:
        return None
    if not has_app_context():
        return None
    user = getattr(g, "mlflow_authenticated_user", None)
    return user if isinstance(user, str) and user else None


def presigned_only() -> bool:
    """Whether this server carries no artifact bytes (``mlflow server --artifacts-presigned-only``
    sets ``MLFLOW_ARTIFACTS_PRESIGNED_ONLY`` for its workers); always False before MLflow 3.18."""
    variable = getattr(_environment_variables, "MLFLOW_ARTIFACTS_PRESIGNED_ONLY", None)
    return bool(variable is not None and variable.get())


#: The HTTP status of a refusal whose error code MLflow maps to a status its client retries
#: (``mlflow/utils/request_utils.py`` ``_TRANSIENT_FAILURE_RESPONSE_CODES``: 408, 429, 500,
#: 502, 503, 504). Retried, a refusal re-sends the whole upload for minutes and ends as "too
#: many 429 error responses", its message lost. The JSON body keeps MLflow's error code.
REFUSAL_STATUS = {"RESOURCE_EXHAUSTED": 413, "INVALID_STATE": 409}


class Refusal(MlflowException):
    """An MlflowException answered with a status MLflow's client does not retry."""

    def __init__(self, message: str, error_code: str, status: int) -> None:
        super().__init__(message, error_code=ErrorCode.Value(error_code))
        self.http_status = status

    def get_http_status_code(self) -> int:
        return self.http_status

    @classmethod
    def of(cls, message: str, error_code: str) -> MlflowException:
        """An MlflowException for ``error_code``: a :class:`Refusal` when MLflow's own status
        for it is one its client retries (:data:`REFUSAL_STATUS`)."""
        status = REFUSAL_STATUS.get(error_code)
        if status is not None:
            return cls(message, error_code, status)
        return MlflowException(message, error_code=ErrorCode.Value(error_code))


def default_server_app() -> Any:
    """MLflow's own ASGI app (what ``mlflow server`` runs under uvicorn)."""
    from mlflow.server.fastapi_app import app

    return app


def find_server_app(name: str) -> str:
    """The ``module:attr`` of the ``mlflow.app`` entry point called ``name``."""
    from mlflow.server import _find_app

    target: str = _find_app(name)
    return target


def server_usage_error(args: list[str]) -> str | None:
    """Why ``mlflow server`` would refuse ``args`` (the arguments after ``server``), found by
    its own click command parsing them without running; None when it would take them."""
    import click
    from mlflow.cli import server

    try:
        server.make_context("mlflow server", list(args))
    except click.ClickException as err:
        return str(err.format_message())
    return None


def bootstrap_server_app(name: str) -> None:
    """Do what ``mlflow server --app-name NAME`` does before starting workers (3.17: create the
    basic-auth admin user once, instead of in every worker)."""
    import mlflow.server

    bootstrap = getattr(mlflow.server, "_bootstrap_basic_auth", None)
    if name == "basic-auth" and bootstrap is not None:
        bootstrap()


def unsupported_multipart_upload() -> MlflowException:
    """The error that makes MLflow's client fall back to a plain PUT (its message is matched)."""
    from mlflow.exceptions import _UnsupportedMultipartUploadException

    error: MlflowException = _UnsupportedMultipartUploadException()  # type: ignore[no-untyped-call]
    return error


def temporary_directory() -> str:
    """A new temporary directory, made the way MLflow's own repositories make one."""
    from mlflow.utils.file_utils import create_tmp_dir

    return str(create_tmp_dir())  # type: ignore[no-untyped-call]


# -- stored artifact locations (``ws-artifacts migrate --moved-from``) ---------------------
#: Trace tag holding a trace's artifact location (``mlflow.utils.mlflow_tags``).
TRACE_ARTIFACT_LOCATION_TAG = "mlflow.artifactLocation"


@dataclass(frozen=True)
class StoredLocation:
    """One stored artifact location in the tracking database.

    Attributes:
        kind: ``experiment``, ``run``, ``logged_model`` or ``trace``.
        key: The row's id (experiment id, run id, model id, trace request id).
        experiment_id: The experiment it belongs to.
        uri: The stored URI.
    """

    kind: str
    key: str
    experiment_id: str
    uri: str


def stored_locations(store_uri: str, workspace: str) -> list[StoredLocation]:
    """Every artifact location stored for the experiments of ``workspace``: the experiments'
    own, their runs', logged models' and traces' (read through MLflow's SQLAlchemy models)."""
    models = _models()
    engine = _engine(store_uri)
    from sqlalchemy.orm import Session

    try:
        with Session(engine) as session:
            return _read_locations(session, models, workspace)
    finally:
        engine.dispose()


def update_locations(store_uri: str, changes: dict[tuple[str, str], str]) -> int:
    """Set each ``(kind, key)``'s stored location to its new URI in ONE transaction (all or
    nothing); return how many rows changed."""
    models = _models()
    engine = _engine(store_uri)
    from sqlalchemy.orm import Session

    changed = 0
    try:
        with Session(engine) as session, session.begin():
            for (kind, key), uri in changes.items():
                changed += _update_one(session, models, kind, key, uri)
    finally:
        engine.dispose()
    return changed


def _models() -> Any:
    from mlflow.store.tracking.dbmodels import models

    return models


def _engine(store_uri: str) -> Any:
    from mlflow.store.db.utils import create_sqlalchemy_engine

    return create_sqlalchemy_engine(store_uri)  # type: ignore[no-untyped-call]


def _read_locations(session: Any, models: Any, workspace: str) -> list[StoredLocation]:
    experiments = session.query(
        models.SqlExperiment.experiment_id, models.SqlExperiment.artifact_location
    ).filter(models.SqlExperiment.workspace == workspace)
    out = [StoredLocation("experiment", str(i), str(i), uri or "") for i, uri in experiments]
    ids = [int(loc.key) for loc in out]
    if not ids:
        return out
    runs = session.query(
        models.SqlRun.run_uuid, models.SqlRun.experiment_id, models.SqlRun.artifact_uri
    ).filter(models.SqlRun.experiment_id.in_(ids))
    out += [StoredLocation("run", r, str(e), uri or "") for r, e, uri in runs]
    logged = session.query(
        models.SqlLoggedModel.model_id,
        models.SqlLoggedModel.experiment_id,
        models.SqlLoggedModel.artifact_location,
    ).filter(models.SqlLoggedModel.experiment_id.in_(ids))
    out += [StoredLocation("logged_model", m, str(e), uri or "") for m, e, uri in logged]
    traces = (
        session.query(
            models.SqlTraceTag.request_id,
            models.SqlTraceInfo.experiment_id,
            models.SqlTraceTag.value,
        )
        .join(models.SqlTraceInfo, models.SqlTraceInfo.request_id == models.SqlTraceTag.request_id)
        .filter(
            models.SqlTraceInfo.experiment_id.in_(ids),
            models.SqlTraceTag.key == TRACE_ARTIFACT_LOCATION_TAG,
        )
    )
    out += [StoredLocation("trace", t, str(e), uri or "") for t, e, uri in traces]
    return out


def _update_one(session: Any, models: Any, kind: str, key: str, uri: str) -> int:
    if kind == "experiment":
        query = session.query(models.SqlExperiment).filter(
            models.SqlExperiment.experiment_id == int(key)
        )
        values: dict[Any, str] = {models.SqlExperiment.artifact_location: uri}
    elif kind == "run":
        query = session.query(models.SqlRun).filter(models.SqlRun.run_uuid == key)
        values = {models.SqlRun.artifact_uri: uri}
    elif kind == "logged_model":
        query = session.query(models.SqlLoggedModel).filter(models.SqlLoggedModel.model_id == key)
        values = {models.SqlLoggedModel.artifact_location: uri}
    else:
        query = session.query(models.SqlTraceTag).filter(
            models.SqlTraceTag.request_id == key,
            models.SqlTraceTag.key == TRACE_ARTIFACT_LOCATION_TAG,
        )
        values = {models.SqlTraceTag.value: uri}
    count: int = query.update(values, synchronize_session=False)
    return count


# -- workspace provider and tracking truth (lifecycle: provider.py, orphans.py) -------------
def sql_workspace_store(db_uri: str) -> Any:
    """MLflow's own SQL workspace provider on ``db_uri`` (``sqlite:///...``, ``postgresql://...``)."""
    from mlflow.store.workspace.sqlalchemy_store import SqlAlchemyStore

    return SqlAlchemyStore(db_uri)


def workspace_store_base() -> type:
    """MLflow's abstract workspace provider class (``mlflow.workspace_provider`` plugins)."""
    from mlflow.store.workspace.abstract_store import AbstractStore

    base: type = AbstractStore
    return base


def is_not_found(err: BaseException) -> bool:
    """Whether ``err`` is MLflow's RESOURCE_DOES_NOT_EXIST."""
    return isinstance(err, MlflowException) and err.error_code == "RESOURCE_DOES_NOT_EXIST"


def experiment_workspace(experiment_id: str) -> str | None:
    """The workspace that holds experiment ``experiment_id`` now, read from this server's
    tracking database (one primary-key query, whatever the request's workspace); ``""`` when
    no experiment has that id; None when this process is not an MLflow server with a database
    tracking store (nothing to ask)."""
    import os

    from mlflow.server.constants import BACKEND_STORE_URI_ENV_VAR
    from mlflow.server.handlers import _get_tracking_store

    if not os.environ.get(BACKEND_STORE_URI_ENV_VAR) or not experiment_id.isdigit():
        return None
    store: Any = _get_tracking_store()
    sessions = getattr(store, "ManagedSessionMaker", None)
    if sessions is None:
        return None
    experiment = _models().SqlExperiment
    with sessions() as session:
        row = (
            session.query(experiment.workspace)
            .filter(experiment.experiment_id == int(experiment_id))
            .one_or_none()
        )
    return "" if row is None else str(row[0])


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

    found: list[Any] = []
    token = None
    while True:
        page = client.search_experiments(view_type=ViewType.ALL, max_results=1000, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found


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


def proxied_repository() -> Any:
    """The proxied artifact repository MLflow cached in this worker (None: no artifacts
    served)."""
    import importlib
    import os

    if not os.environ.get(ARTIFACTS_DESTINATION_ENV_VAR):
        return None
    handlers: Any = importlib.import_module("mlflow.server.handlers")
    build = getattr(handlers, "_get_artifact_repo_mlflow_artifacts", None)
    return build() if build is not None else None


def build_proxied_repository() -> None:
    """Build the proxied artifact repository the way MLflow's handlers do, so that MLflow caches
    it in this worker now rather than while answering the first client's ``/server-info``
    (which builds it on first use). Does nothing when the worker serves no artifacts."""
    import os

    if not os.environ.get(ARTIFACTS_DESTINATION_ENV_VAR):
        return
    import importlib

    handlers: Any = importlib.import_module("mlflow.server.handlers")
    build = getattr(handlers, "_get_artifact_repo_mlflow_artifacts", None)
    if build is not None:
        build()


# -- workspace roots (routing.WorkspaceRoot; provider.py and roots.py) -----------------------
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
