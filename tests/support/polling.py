"""Wait for a condition instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["wait_until"]

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float,
    message: str | Callable[[], str],
    every: float = 0.05,
) -> T:
    """Call ``condition`` until it returns something true, and return that.

    Args:
        condition: What to wait for (called at once, then every ``every`` seconds).
        timeout: Seconds until giving up.
        message: What failed (or a function that says it then, e.g. with a server's log).
        every: Seconds between two calls.

    Raises:
        AssertionError: ``message`` and the last value seen, when ``timeout`` seconds pass
            first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            said = message() if callable(message) else message
            raise AssertionError(f"{said} (not within {timeout} s; last: {value!r})")
        time.sleep(every)
