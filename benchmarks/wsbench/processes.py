"""Every process the benchmark starts: each in its own session, stopped by process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any


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
