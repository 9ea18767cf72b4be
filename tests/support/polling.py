"""Wait for a condition instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["wait_until"]

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], *, timeout: float, message: str, every: float = 0.05
) -> T:
    """Call ``condition`` until it returns something true, and return that.

    Raises:
        AssertionError: ``message`` (with the last value seen) when ``timeout`` seconds pass
            first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (not within {timeout} s; last: {value!r})")
        time.sleep(every)
