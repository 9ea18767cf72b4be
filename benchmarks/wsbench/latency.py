"""Latency probe: sequential requests on one keep-alive session per endpoint."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from .plan import KIB
from .servers import rest


def _probe_run(url: str, files: int = 10) -> str:
    """A run in bench-a with ``files`` 4 KiB files; its artifact path as the server sees it."""
    import requests

    exp = rest(url, "bench-a", "POST", "/api/2.0/mlflow/experiments/create", name="probe")
    run = rest(
        url, "bench-a", "POST", "/api/2.0/mlflow/runs/create", experiment_id=exp["experiment_id"]
    )
    path = run["run"]["info"]["artifact_uri"].split("mlflow-artifacts:", 1)[1].lstrip("/")
    for i in range(files):
        resp = requests.put(
            f"{url}/api/2.0/mlflow-artifacts/artifacts/{path}/f{i}.bin",
            data=os.urandom(4 * KIB),
            headers={"X-MLFLOW-WORKSPACE": "bench-a"},
            timeout=60,
        )
        resp.raise_for_status()
    return path


def latency_probe(url: str, requests_count: int = 200, warm_up: int = 20) -> dict[str, Any]:
    """Median and p90 ms of proxied list, 4 KiB GET and 4 KiB PUT on one keep-alive
    connection (each in its own session, after ``warm_up`` untimed requests)."""
    import requests

    path = _probe_run(url)
    base = f"{url}/api/2.0/mlflow-artifacts/artifacts"
    body, names = os.urandom(4 * KIB), iter(range(10**9))
    calls = {
        "list": lambda s: s.get(base, params={"path": path}, timeout=60),
        "get_4k": lambda s: s.get(f"{base}/{path}/f0.bin", timeout=60),
        "put_4k": lambda s: s.put(f"{base}/{path}/put/{next(names)}.bin", data=body, timeout=60),
    }
    out: dict[str, Any] = {}
    for name, call in calls.items():
        with requests.Session() as session:
            session.headers["X-MLFLOW-WORKSPACE"] = "bench-a"
            for _ in range(warm_up):
                call(session).raise_for_status()
            times = []
            for _ in range(requests_count):
                start = time.perf_counter()
                call(session).raise_for_status()
                times.append((time.perf_counter() - start) * 1000)
        times.sort()
        out[name] = {"median_ms": statistics.median(times), "p90_ms": times[int(len(times) * 0.9)]}
    return out
