"""Benchmark ws-artifacts against stock MLflow artifact serving and raw boto3.

The entry point of ``./run bench [--quick]``; the benchmark itself is the package
``benchmarks/wsbench`` (see its docstring and benchmarks/README.md)::

    .venv/bin/python benchmarks/run.py --quick            # smoke run (< 1 minute), 1 rep
    .venv/bin/python benchmarks/run.py                    # full run
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.wsbench.cli import main

if __name__ == "__main__":
    sys.exit(main())
