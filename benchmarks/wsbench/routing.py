"""Routing: the ``_resolve`` microbenchmark (in the client subprocess, which already imported
MLflow) and the objects-per-bucket check that each workspace landed in its own bucket."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.config import ConfigFile

from .plan import BUCKETS
from .stores import Store, s3_client


def _routing_config(path: Path, count: int) -> Path:
    names = [f"ws-{i:05d}" for i in range(count - 1)] + ["team-x"]
    config = ConfigFile(defaults={"endpoint_url": "http://127.0.0.1:9"})
    for i, name in enumerate(names):
        config.route(name, f"s3://bucket-{i:05d}")
    return config.write(path)


def _ns_per_call(fn: Callable[[], Any], calls: int, batch: int = 1000) -> list[float]:
    samples = []
    for _ in range(calls // batch):
        start = time.perf_counter_ns()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter_ns() - start) / batch)
    return samples


def routing_benchmark(scratch: Path, calls: int = 100_000) -> dict[str, Any]:
    """Median ns per ``_resolve`` call with 10 and 10 000 configured workspaces."""
    from mlflow.utils.workspace_context import WorkspaceContext

    from ws_artifacts.core.loading import load_config
    from ws_artifacts.serving.repository import WorkspaceArtifactRepository

    out: dict[str, Any] = {"calls": calls, "path": "workspaces/team-x/1/run/artifacts/model.pkl"}
    saved = os.environ.get("WS_ARTIFACTS_CONFIG")
    try:
        for count in (10, 10_000):
            cfg = _routing_config(scratch / f"routing-{count}.yaml", count)
            start = time.perf_counter()
            load_config(cfg)
            out[f"load_{count}_ms"] = (time.perf_counter() - start) * 1000
            os.environ["WS_ARTIFACTS_CONFIG"] = str(cfg)
            repo = WorkspaceArtifactRepository("ws-s3://ours-root")
            with WorkspaceContext("team-x"):
                resolve = lambda r=repo: r._resolve(out["path"], "read")  # noqa: E731
                resolve()  # loads the configuration, fills the route cache
                samples = _ns_per_call(resolve, calls)
            out[f"ns_{count}"] = statistics.median(samples)
            out[f"ns_{count}_p90"] = sorted(samples)[int(len(samples) * 0.9)]
    finally:
        if saved is None:
            os.environ.pop("WS_ARTIFACTS_CONFIG", None)
        else:
            os.environ["WS_ARTIFACTS_CONFIG"] = saved
    return out


def check_routing(store: Store) -> dict[str, int]:
    """Object counts per bucket: ours' workspaces must land in their own buckets."""
    client = s3_client(store.url)
    counts = {}
    for bucket in BUCKETS.values():
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        counts[bucket] = sum(p.get("KeyCount", 0) for p in pages)
    return counts


def routing_sanity(counts: dict[str, int]) -> str:
    """ours' default destinations stay empty; each routed bucket received objects."""
    empty = [BUCKETS["ours-root"], BUCKETS["ours-direct-root"]]
    used = [BUCKETS["bench-a"]] + ([BUCKETS["bench-b"]] if counts.get(BUCKETS["bench-b"]) else [])
    ok = all(counts.get(b) == 0 for b in empty) and all(counts.get(b) for b in used)
    tag = "[green]OK[/]" if ok else "[red]WRONG[/]"
    return f"{tag} routing sanity (objects per bucket): {counts}"
