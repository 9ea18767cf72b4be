"""Prometheus metrics of a running server, per workspace (docs/metrics.md).

Names (all with a ``workspace`` label; ``-`` when the request named none):

* ``ws_artifacts_requests_total{workspace,operation,outcome}``: artifact operations (the
  audit trail's operations: ``write``, ``read``, ``list``, ``delete``, ...), outcome ``ok`` or
  ``error``;
* ``ws_artifacts_bytes_total{workspace,operation}``: bytes written or read by them;
* ``ws_artifacts_refusals_total{workspace,operation,code}``: refusals (quota, guard, routing,
  workspace deletion), ``code`` MLflow's error code;
* ``ws_artifacts_quota_used_bytes{workspace}`` / ``_objects``: what a workspace holds as the
  quota ledgers of the workers last saw it (the largest of them);
* ``ws_artifacts_quota_limit_bytes{workspace}`` / ``_objects``: its quota.

Counting is on only in a server worker (:func:`start`, called by the ``ws-artifacts`` app);
client processes count nothing. With several workers the values go to prometheus_client's
multiprocess directory (``PROMETHEUS_MULTIPROC_DIR``, or the ``prometheus_multiproc_dir`` that
``mlflow server --expose-prometheus DIR`` sets): MLflow's own ``/metrics`` then shows them
beside its own, and without it the ``ws-artifacts`` app answers ``/metrics`` itself
(:class:`MetricsEndpoint`). Nothing happens at import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MetricsEndpoint",
    "count_refusal",
    "multiprocess_dir",
    "observe",
    "on",
    "quota_use",
    "start",
]

#: The variables prometheus_client reads for its multiprocess directory (MLflow sets the
#: lower-case one for ``--expose-prometheus``).
MULTIPROC_ENVS = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")
MLFLOW_EXPORTER_ENV = "prometheus_multiproc_dir"


@dataclass(frozen=True)
class _Metrics:
    requests: Any
    bytes: Any
    refusals: Any
    used_bytes: Any
    used_objects: Any
    limit_bytes: Any
    limit_objects: Any


_metrics: _Metrics | None = None


def multiprocess_dir() -> str | None:
    """The multiprocess directory this process writes to, if any."""
    for name in MULTIPROC_ENVS:
        value = os.environ.get(name, "")
        if value:
            return value
    return None


def start() -> None:
    """Create the metrics (once per process): from now on this process counts."""
    global _metrics
    if _metrics is not None:
        return
    directory = multiprocess_dir()
    if directory:
        os.makedirs(directory, exist_ok=True)
    from prometheus_client import Counter, Gauge

    def gauge(name: str, doc: str) -> Any:
        return Gauge(name, doc, ["workspace"], multiprocess_mode="max")

    _metrics = _Metrics(
        requests=Counter(
            "ws_artifacts_requests",
            "Artifact operations per workspace, operation and outcome",
            ["workspace", "operation", "outcome"],
        ),
        bytes=Counter(
            "ws_artifacts_bytes",
            "Bytes written or read per workspace and operation",
            ["workspace", "operation"],
        ),
        refusals=Counter(
            "ws_artifacts_refusals",
            "Refusals per workspace, operation and MLflow error code",
            ["workspace", "operation", "code"],
        ),
        used_bytes=gauge("ws_artifacts_quota_used_bytes", "Bytes a workspace holds (ledger)"),
        used_objects=gauge("ws_artifacts_quota_used_objects", "Objects a workspace holds"),
        limit_bytes=gauge("ws_artifacts_quota_limit_bytes", "A workspace's byte quota"),
        limit_objects=gauge("ws_artifacts_quota_limit_objects", "A workspace's object quota"),
    )


def on() -> bool:
    """Whether this process counts (a server worker)."""
    return _metrics is not None


def observe(workspace: str | None, operation: str, size: int | None, failed: bool) -> None:
    """Count one artifact operation that ended."""
    metrics = _metrics
    if metrics is None:
        return
    ws = workspace or "-"
    metrics.requests.labels(ws, operation, "error" if failed else "ok").inc()
    if size:
        metrics.bytes.labels(ws, operation).inc(size)


def count_refusal(workspace: str | None, operation: str, code: str) -> None:
    """Count one refusal."""
    if _metrics is not None:
        _metrics.refusals.labels(workspace or "-", operation, code).inc()


def quota_use(
    workspace: str,
    used_bytes: int,
    used_objects: int,
    max_bytes: int | None,
    max_objects: int | None,
) -> None:
    """Record a workspace's quota ledger as this worker sees it now."""
    metrics = _metrics
    if metrics is None:
        return
    metrics.used_bytes.labels(workspace).set(used_bytes)
    metrics.used_objects.labels(workspace).set(used_objects)
    if max_bytes is not None:
        metrics.limit_bytes.labels(workspace).set(max_bytes)
    if max_objects is not None:
        metrics.limit_objects.labels(workspace).set(max_objects)


def exposition() -> bytes:
    """Every worker's metrics (multiprocess directory), else this process's, as text."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

    directory = multiprocess_dir()
    if not directory:
        return bytes(generate_latest(REGISTRY))
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return bytes(generate_latest(registry))


class MetricsEndpoint:
    """ASGI middleware: answer ``GET /metrics`` with :func:`exposition` (installed only when
    MLflow's own exporter is off; with it on, MLflow's ``/metrics`` shows ours too)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("path") != "/metrics":
            await self.app(scope, receive, send)
            return
        import asyncio

        from prometheus_client import CONTENT_TYPE_LATEST

        body = await asyncio.to_thread(exposition)
        headers = [
            (b"content-type", CONTENT_TYPE_LATEST.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
