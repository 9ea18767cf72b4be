"""Usage as Prometheus gauges (text exposition format), for ``usage --prometheus``."""

from __future__ import annotations

from collections.abc import Sequence

from ws_artifacts.lifecycle.usage_report import Row

__all__ = ["prometheus_text"]


def prometheus_text(rows: Sequence[Row]) -> str:
    """``ws_artifacts_workspace_bytes`` and ``ws_artifacts_workspace_objects`` per workspace
    and route, and the quotas that apply (``ws_artifacts_quota_bytes``/``_objects``)."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    labels = ["workspace", "route", "url"]
    size = Gauge(
        "ws_artifacts_workspace_bytes",
        "Bytes a workspace stores on a route",
        labels,
        registry=registry,
    )
    count = Gauge(
        "ws_artifacts_workspace_objects",
        "Objects a workspace stores on a route",
        labels,
        registry=registry,
    )
    max_bytes = Gauge(
        "ws_artifacts_quota_bytes",
        "The workspace's byte quota on the route",
        labels,
        registry=registry,
    )
    max_objects = Gauge(
        "ws_artifacts_quota_objects",
        "The workspace's object quota on the route",
        labels,
        registry=registry,
    )
    for row in rows:
        place = row.place
        values = (place.workspace, place.route.name, place.uri)
        size.labels(*values).set(row.total.bytes)
        count.labels(*values).set(row.total.objects)
        quota = place.route.settings.quota
        if quota is not None and quota.max_bytes is not None:
            max_bytes.labels(*values).set(quota.max_bytes)
        if quota is not None and quota.max_objects is not None:
            max_objects.labels(*values).set(quota.max_objects)
    return generate_latest(registry).decode()
