"""What the benchmark runs: workspaces, buckets, workloads, operations and access paths."""

from __future__ import annotations

from pathlib import Path

from tests.support.servers import MOTO_KEY, MOTO_SECRET

REPO = Path(__file__).resolve().parents[2]
#: The benchmark's entry point; each repetition's client subprocess is ``RUN_PY --child SPEC``.
RUN_PY = REPO / "benchmarks" / "run.py"

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
