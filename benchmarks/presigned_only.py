"""Presigned-only serving (MLflow 3.18+) against proxied serving and against raw boto3.

One run, one SeaweedFS store, two ``ws-artifacts server``s with the same routes (workspace
``bench-a`` -> bucket ``ours-bench-a``): one started with ``--artifacts-presigned-only``, one
proxied (the client's multipart/presigned transfers off, so the bytes go through the server).
Workloads 1000 x 4 KiB and 1 x 256 MiB, up (``log_artifacts``) and down (``download_artifacts``)
with MlflowClient; "direct" is raw boto3 on the same store (``put_object``/``get_object`` one
file after another, ``upload_file``/``download_file`` for the large file). For each server it
also reads, from /proc, the CPU time its processes used and the bytes they read and wrote
(sockets and files: ``rchar + wchar``) during the operation.

    .venv-mlflow-3.18/bin/python benchmarks/presigned_only.py [--reps 3] [--quick]
        [--workers 2] [--json benchmarks/results/presigned_only.json]

Prints a table and writes the JSON. The target: presigned-only throughput within 1.2x of
direct (direct seconds / presigned-only seconds >= 1/1.2).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.wsbench.plan import S3_ENV
from benchmarks.wsbench.processes import Processes, group_pids
from benchmarks.wsbench.servers import rest, start_server, write_config
from benchmarks.wsbench.stores import s3_client, start_seaweedfs

KIB, MIB, GIB = 1024, 1024 * 1024, 1024**3
BUCKET = "ours-bench-a"
WORKSPACE = "bench-a"
TARGET = 1.2
_TICKS = os.sysconf("SC_CLK_TCK")


def workloads(quick: bool) -> dict[str, tuple[int, int]]:
    """name -> (file count, file size)."""
    if quick:
        return {"50 x 4 KiB": (50, 4 * KIB), "1 x 16 MiB": (1, 16 * MIB)}
    return {"1000 x 4 KiB": (1000, 4 * KIB), "1 x 256 MiB": (1, 256 * MIB)}


def make_files(root: Path, count: int, size: int) -> Path:
    root.mkdir(parents=True)
    for i in range(count):
        (root / f"f{i:05d}.bin").write_bytes(os.urandom(size))
    return root


# -- what a server's processes used -----------------------------------------------------------
def _usage(pgid: int) -> tuple[float, int]:
    """CPU seconds and bytes read + written so far by the live processes of group ``pgid``."""
    cpu, io = 0.0, 0
    for pid in group_pids(pgid):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(stat[11]) + int(stat[12])) / _TICKS  # utime, stime
            fields = dict(
                line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines()
            )
            io += int(fields["rchar"]) + int(fields["wchar"])
        except (OSError, KeyError, IndexError, ValueError):
            continue  # a worker that just exited
    return cpu, io


def timed(pgid: int | None, work: Callable[[], Any]) -> dict[str, float]:
    before = _usage(pgid) if pgid else (0.0, 0)
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    after = _usage(pgid) if pgid else (0.0, 0)
    return {"seconds": seconds, "cpu": after[0] - before[0], "io": after[1] - before[1]}


# -- the three paths ----------------------------------------------------------------------------
def raw_case(s3: Any, src: Path, dst: Path, prefix: str, up: bool) -> Callable[[], None]:
    files = sorted(src.iterdir())

    def upload() -> None:
        for path in files:
            key = f"{prefix}/{path.name}"
            if path.stat().st_size >= 64 * MIB:
                s3.upload_file(str(path), BUCKET, key)
            else:
                s3.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())

    def download() -> None:
        dst.mkdir(parents=True, exist_ok=True)
        for path in files:
            key = f"{prefix}/{path.name}"
            if path.stat().st_size >= 64 * MIB:
                s3.download_file(BUCKET, key, str(dst / path.name))
            else:
                body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
                (dst / path.name).write_bytes(body)

    return upload if up else download


def mlflow_case(url: str, run: str, src: Path, dst: Path, up: bool) -> Callable[[], None]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url)

    def upload() -> None:
        client.log_artifacts(run, str(src))

    def download() -> None:
        dst.mkdir(parents=True, exist_ok=True)
        client.download_artifacts(run, "", str(dst))

    return upload if up else download


def new_run(url: str) -> str:
    exp = rest(url, WORKSPACE, "POST", "/api/2.0/mlflow/experiments/create", name=_name())
    run = rest(
        url,
        WORKSPACE,
        "POST",
        "/api/2.0/mlflow/runs/create",
        experiment_id=exp["experiment_id"],
    )
    return str(run["run"]["info"]["run_id"])


_serial = iter(range(10**6))


def _name() -> str:
    return f"po-bench-{os.getpid()}-{next(_serial)}"


# -- the run ----------------------------------------------------------------------------------
def measure(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    procs = Processes()
    try:
        store = start_seaweedfs(procs, work / "store", buckets=[BUCKET, "ours-root"])
        config = write_config(work / "ws-artifacts.yaml", store.url)
        env = {**S3_ENV, "WS_ARTIFACTS_CONFIG": str(config)}
        args = ["--artifacts-destination", "ws-s3://ours-root"]
        servers = {
            name: start_server(
                procs,
                name,
                work,
                [*args, *extra],
                env,
                config=config,
                workers=opts.workers,
                workspaces=(WORKSPACE,),
            )
            for name, extra in (
                ("presigned-only", ["--artifacts-presigned-only"]),
                ("proxied", []),
            )
        }
        for key, value in {**S3_ENV, "MLFLOW_WORKSPACE": WORKSPACE}.items():
            os.environ[key] = value
        # The proxied server carries the bytes both ways; presigned-only overrides these.
        os.environ["MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD"] = "false"
        os.environ["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] = "false"
        s3 = s3_client(store.url)
        # Warm-up (not reported): imports, clients, connections and each server's first
        # requests, on every path, so the first timed repetition does not pay for them.
        warm = make_files(work / "data" / "warm-up", 2, KIB)
        one_rep(opts, work, servers, s3, warm, "warm-up", 2 * KIB, -1)
        shutil.rmtree(warm)
        shutil.rmtree(work / "dst", ignore_errors=True)
        rows: list[dict[str, Any]] = []
        for workload, (count, size) in workloads(opts.quick).items():
            src = make_files(work / "data" / workload.replace(" ", ""), count, size)
            for rep in range(opts.reps):
                rows += one_rep(opts, work, servers, s3, src, workload, count * size, rep)
                shutil.rmtree(work / "dst", ignore_errors=True)
            shutil.rmtree(src)
        return {"rows": rows, "servers": {n: s.launcher for n, s in servers.items()}}
    finally:
        procs.stop_all()


def one_rep(
    opts: argparse.Namespace,
    work: Path,
    servers: dict[str, Any],
    s3: Any,
    src: Path,
    workload: str,
    payload: int,
    rep: int,
) -> list[dict[str, Any]]:
    rows = []
    runs = {name: new_run(server.url) for name, server in servers.items()}
    prefix = f"direct/{_name()}"
    for op in ("up", "down"):
        cases: dict[str, tuple[int | None, Callable[[], None]]] = {
            "direct": (None, raw_case(s3, src, work / "dst" / f"direct-{rep}", prefix, op == "up"))
        }
        for name, server in servers.items():
            dst = work / "dst" / f"{name}-{rep}"
            cases[name] = (server.pgid, mlflow_case(server.url, runs[name], src, dst, op == "up"))
        for path, (pgid, work_fn) in cases.items():
            result = timed(pgid, work_fn)
            rows.append({"workload": workload, "op": op, "path": path, "rep": rep, **result})
            rows[-1]["bytes"] = payload
            print(
                f"  {workload:>13} {op:>4} {path:>15} rep {rep}: {result['seconds']:7.2f} s",
                flush=True,
            )
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    keys = sorted({(r["workload"], r["op"]) for r in rows}, key=lambda k: (k[0], k[1] != "up"))
    for workload, op in keys:
        by_path = {}
        for path in ("direct", "presigned-only", "proxied"):
            mine = [r for r in rows if (r["workload"], r["op"], r["path"]) == (workload, op, path)]
            seconds = statistics.median(r["seconds"] for r in mine)
            payload = mine[0]["bytes"]
            by_path[path] = {
                "seconds": seconds,
                "mb_s": payload / MIB / seconds,
                "server_cpu_s_per_gib": statistics.median(r["cpu"] for r in mine) / (payload / GIB),
                "server_io_mib": statistics.median(r["io"] for r in mine) / MIB,
            }
        ratio = by_path["direct"]["seconds"] / by_path["presigned-only"]["seconds"]
        out.append(
            {
                "workload": workload,
                "op": op,
                "paths": by_path,
                "presigned_only_vs_direct": ratio,
                "met": ratio >= 1 / TARGET,
            }
        )
    return out


def print_table(summary: list[dict[str, Any]]) -> str:
    lines = [
        "| workload | op | direct MB/s | presigned-only MB/s | proxied MB/s | presigned-only "
        "vs direct (target >= 0.83) | server bytes read+written: presigned-only / proxied "
        "(MiB) | server CPU s per GiB: presigned-only / proxied |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in summary:
        p = row["paths"]
        po, px = p["presigned-only"], p["proxied"]
        lines.append(
            f"| {row['workload']} | {row['op']} | {p['direct']['mb_s']:.2f} | {po['mb_s']:.2f} "
            f"| {px['mb_s']:.2f} | {row['presigned_only_vs_direct']:.2f} "
            f"{'met' if row['met'] else 'NOT met'} | {po['server_io_mib']:.1f} / "
            f"{px['server_io_mib']:.1f} | {po['server_cpu_s_per_gib']:.1f} / "
            f"{px['server_cpu_s_per_gib']:.1f} |"
        )
    text = "\n".join(lines)
    print(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="small workloads, one repetition")
    default_json = Path(__file__).parent / "results" / "presigned_only.json"
    parser.add_argument("--json", type=Path, default=default_json)
    opts = parser.parse_args()
    if opts.quick:
        opts.reps = 1
    import mlflow

    load = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="ws-bench-presigned-"))
    try:
        measured = measure(opts, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = summarise(measured["rows"])
    table = print_table(summary)
    document = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "mlflow": mlflow.__version__,
            "store": "seaweedfs",
            "workers": opts.workers,
            "reps": opts.reps,
            "load_at_start": load,
            "load_at_end": os.getloadavg(),
            "servers": measured["servers"],
        },
        "summary": summary,
        "rows": measured["rows"],
        "table": table,
    }
    opts.json.parent.mkdir(parents=True, exist_ok=True)
    opts.json.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {opts.json}")


if __name__ == "__main__":
    main()
