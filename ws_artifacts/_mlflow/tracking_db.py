"""MLflow's tracking database, read and written through MLflow's own SQLAlchemy models: the
artifact locations stored for a workspace's experiments, runs, logged models and traces
(``ws-artifacts migrate --moved-from``), and which workspace holds an experiment now."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "TRACE_ARTIFACT_LOCATION_TAG",
    "StoredLocation",
    "experiment_workspace",
    "stored_locations",
    "update_locations",
]


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
