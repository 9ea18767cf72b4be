"""Batches of file transfers (a tree's uploads or downloads), several at a time.

Every job of a batch runs, even after one fails; then one error names each that failed. The
targets are resolved before a batch starts, in the calling thread: a job only moves bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ws_artifacts.core.errors import WsArtifactsError
from ws_artifacts.core.settings import Transfer
from ws_artifacts.core.targets import Target

__all__ = ["FailedTransfers", "max_concurrency", "run_all"]

Job = tuple[Callable[[], Any], str]  # (the transfer, the name its failure is reported under)


class FailedTransfers(WsArtifactsError, OSError):
    """Some files of a batch failed; the others went through."""


def max_concurrency(target: Target) -> int:
    """How many files of a batch to ``target``'s route move at once."""
    return (target.route.settings.transfer or Transfer()).max_concurrency


def run_all(jobs: Sequence[Job], *, what: str, concurrency: int) -> None:
    """Run every job; after all have run, raise one error naming each that failed."""
    if not jobs:
        return
    if len(jobs) == 1 or concurrency == 1:
        failures = _collect((fn, name) for fn, name in jobs)
    else:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(jobs))) as pool:
            futures = [(pool.submit(fn), name) for fn, name in jobs]
            failures = _collect((f.result, name) for f, name in futures)
    if failures:
        first = failures[0][1]
        if len(failures) == 1 and isinstance(first, WsArtifactsError):
            raise first
        listed = "; ".join(f"{name}: {err}" for name, err in failures[:10])
        more = f" (and {len(failures) - 10} more)" if len(failures) > 10 else ""
        raise FailedTransfers(
            f"{len(failures)} of {len(jobs)} file(s) failed to {what}: {listed}{more}"
        )


def _collect(calls: Iterable[tuple[Callable[[], Any], str]]) -> list[tuple[str, BaseException]]:
    failures: list[tuple[str, BaseException]] = []
    for call, name in calls:
        try:
            call()
        except Exception as err:  # noqa: BLE001 - collected and re-raised together below
            failures.append((name, err))
    return failures
