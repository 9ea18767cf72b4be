"""Presigned-only serving (MLflow 3.18+) against proxied serving and against raw boto3.

One run, one SeaweedFS store, two ``ws-artifacts server``s with the same routes (workspace
``bench-a`` -> bucket ``ours-bench-a``): one started with ``--artifacts-presigned-only``, one
proxied (the client's multipart/presigned transfers off, so the bytes go through the server).
Workloads 1000 x 4 KiB and 1 x 256 MiB, up (``log_artifacts``) and down (``download_artifacts``)
with MlflowClient; "direct" is raw boto3 on the same store (``put_object``/``get_object`` one
file after another, ``upload_file``/``download_file`` for the large file). For each server it
reads, from /proc, the CPU time its processes used during each timed operation (and their file
I/O, ``rchar + wchar``, in the JSON); the bytes each server carried to and from the client are
counted in one extra, untimed pass per workload through a counting TCP relay.

    .venv-mlflow-3.18/bin/python benchmarks/presigned_only.py [--reps 3] [--quick]
        [--workers 2] [--json benchmarks/results/presigned_only.json]

Prints a table and writes the JSON. The target: presigned-only throughput within 1.2x of
direct (direct seconds / presigned-only seconds >= 1/1.2).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import threading
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


class CountingRelay:
    """A TCP relay on 127.0.0.1 in front of a server that counts the bytes it passes (both
    directions): what the server carried to and from its clients. Only used in an extra,
    untimed pass, so it costs the timed rows nothing."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.carried = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 20):
                dst.sendall(data)
                with self._lock:
                    self.carried += len(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._listener.close()


def carried(servers: dict[str, Any], src: Path, work: Path) -> dict[str, dict[str, int]]:
    """Bytes each server carried to and from the client, per operation (one untimed pass
    through a :class:`CountingRelay`)."""
    out: dict[str, dict[str, int]] = {}
    for name, server in servers.items():
        relay = CountingRelay(int(server.url.rsplit(":", 1)[1]))
        try:
            run = new_run(relay.url)
            out[name] = {}
            for op in ("up", "down"):
                before = relay.carried
                mlflow_case(relay.url, run, src, work / "dst" / f"relay-{name}", op == "up")()
                out[name][op] = relay.carried - before
        finally:
            relay.close()
    return out


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
        through: dict[str, dict[str, dict[str, int]]] = {}
        for workload, (count, size) in workloads(opts.quick).items():
            src = make_files(work / "data" / workload.replace(" ", ""), count, size)
            for rep in range(opts.reps):
                rows += one_rep(opts, work, servers, s3, src, workload, count * size, rep)
                shutil.rmtree(work / "dst", ignore_errors=True)
            through[workload] = carried(servers, src, work)
            shutil.rmtree(work / "dst", ignore_errors=True)
            shutil.rmtree(src)
        launchers = {n: s.launcher for n, s in servers.items()}
        return {"rows": rows, "carried": through, "servers": launchers}
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


def summarise(
    rows: list[dict[str, Any]], through: dict[str, dict[str, dict[str, int]]]
) -> list[dict[str, Any]]:
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
                "server_file_io_mib": statistics.median(r["io"] for r in mine) / MIB,
            }
            if path != "direct":
                by_path[path]["server_carried_mib"] = through[workload][path][op] / MIB
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
        "vs direct (target >= 0.83) | bytes the server carried (MiB): presigned-only / proxied "
        "| server CPU s per GiB: presigned-only / proxied |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in summary:
        p = row["paths"]
        po, px = p["presigned-only"], p["proxied"]
        lines.append(
            f"| {row['workload']} | {row['op']} | {p['direct']['mb_s']:.2f} | {po['mb_s']:.2f} "
            f"| {px['mb_s']:.2f} | {row['presigned_only_vs_direct']:.2f} "
            f"{'met' if row['met'] else 'NOT met'} | {po['server_carried_mib']:.2f} / "
            f"{px['server_carried_mib']:.2f} | {po['server_cpu_s_per_gib']:.1f} / "
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
    summary = summarise(measured["rows"], measured["carried"])
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
        "carried": measured["carried"],
        "table": table,
    }
    opts.json.parent.mkdir(parents=True, exist_ok=True)
    opts.json.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {opts.json}")


if __name__ == "__main__":
    main()
