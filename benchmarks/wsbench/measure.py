"""Measuring one operation: timing, and peak RSS from /proc (reset before, read after).

The client subprocess times each operation and tells the parent over a line protocol
(``BEGIN``/``GO`` around it, then ``END``), so that the parent can reset and read the server's
peaks around exactly that operation.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from .plan import KIB


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
