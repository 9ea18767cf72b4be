"""Refusals as the caller and the operator see them: the MlflowException a refusal of ours
becomes (with a status MLflow's client does not retry; :func:`boundary` does it for a
repository method), one server log line, one count in the metrics and one audit line for each.

Imports :mod:`ws_artifacts._mlflow` (the exception types), :mod:`ws_artifacts.serving.audit` and
:mod:`ws_artifacts.serving.metrics`; nothing below it imports this module.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from ws_artifacts._mlflow import request_context
from ws_artifacts._mlflow.exceptions import REFUSAL_STATUS, MlflowException, Refusal
from ws_artifacts.core.errors import WsArtifactsError
from ws_artifacts.serving import audit

__all__ = ["REFUSAL_CODES", "as_refusal", "boundary", "log_refusal", "mlflow_error"]

_refusals = logging.getLogger("ws_artifacts.serving.refusals")
_P = ParamSpec("_P")
_R = TypeVar("_R")

#: The error codes of refusals (not of failures): logged once, counted, audited.
REFUSAL_CODES = frozenset(
    {
        *REFUSAL_STATUS,
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
        "INVALID_PARAMETER_VALUE",
        "BAD_REQUEST",  # e.g. a route that cannot presign on a presigned-only server
    }
)


def mlflow_error(
    err: WsArtifactsError,
    *,
    log: bool = True,
    operation: str | None = None,
    workspace: str | None = None,
) -> MlflowException:
    """The MlflowException to raise for one of our errors (``raise mlflow_error(e) from e``).

    A refusal is logged (one line: workspace and reason; our messages hold no secret) unless
    ``log`` is False (the caller logged it), and answered with a status the client does not
    retry (:data:`ws_artifacts._mlflow.exceptions.REFUSAL_STATUS`).
    """
    code = err.mlflow_code
    if log and code in REFUSAL_CODES:
        log_refusal(code, str(err), operation, workspace)
    return Refusal.of(str(err), code)


def boundary(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn our errors into MlflowExceptions with the right error code (a decorator for the
    repository's methods, MLflow's boundary)."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except WsArtifactsError as err:
            raise mlflow_error(err) from err

    return wrapper


def as_refusal(
    err: MlflowException, operation: str, workspace: str | None = None
) -> MlflowException:
    """``err`` (MLflow's own, e.g. INVALID_STATE from a workspace deletion) answered with a
    status the client does not retry, and logged; other errors unchanged."""
    code = str(err.error_code)
    if code not in REFUSAL_STATUS or isinstance(err, Refusal):
        return err
    log_refusal(code, err.message, operation, workspace)
    return Refusal.of(err.message, code)


def log_refusal(
    code: str, reason: str, operation: str | None = None, workspace: str | None = None
) -> None:
    """One server log line for a refusal (the request's workspace, the operation, the code
    and the reason), and one count in ``ws_artifacts_refusals_total``."""
    from ws_artifacts.serving import metrics as serving_metrics

    workspace = workspace or request_context.active_workspace()
    operation = operation or audit.current_operation() or "request"
    _refusals.warning(
        "refused %s for workspace %s (%s): %s", operation, workspace or "-", code, reason
    )
    serving_metrics.count_refusal(workspace, operation, code)
    audit.refusal(operation, workspace, code)  # inside an artifact operation: its own line
