"""Benchmark ws-artifacts against stock MLflow artifact serving and raw boto3.

The entry point of ``./run bench [--quick]``; the benchmark itself is the package
``benchmarks/wsbench`` (see its docstring and benchmarks/README.md)::

    .venv/bin/python benchmarks/run.py --quick            # smoke run (< 1 minute), 1 rep
    .venv/bin/python benchmarks/run.py                    # full run

Scripts written against the one-file ``run.py`` find its building blocks here still; new code
imports them from ``benchmarks.wsbench.<module>``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.wsbench.cli import main
from benchmarks.wsbench.measure import memory_kb, read_peaks, reset_peaks
from benchmarks.wsbench.plan import BUCKETS, GIB, KIB, MIB, S3_ENV, WORKSPACES
from benchmarks.wsbench.processes import Processes, group_pids
from benchmarks.wsbench.servers import MlflowServer, rest, start_server, write_config
from benchmarks.wsbench.stores import (
    Store,
    create_buckets,
    find_weed,
    launch_moto,
    launch_seaweedfs,
    s3_client,
    start_moto,
    start_seaweedfs,
)

__all__ = [
    "BUCKETS",
    "GIB",
    "KIB",
    "MIB",
    "S3_ENV",
    "WORKSPACES",
    "MlflowServer",
    "Processes",
    "Store",
    "create_buckets",
    "find_weed",
    "group_pids",
    "launch_moto",
    "launch_seaweedfs",
    "main",
    "memory_kb",
    "read_peaks",
    "reset_peaks",
    "rest",
    "s3_client",
    "start_moto",
    "start_seaweedfs",
    "start_server",
    "write_config",
]

if __name__ == "__main__":
    sys.exit(main())
