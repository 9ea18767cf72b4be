"""What a server worker sets in its own process before it serves, called by the ``ws-artifacts``
app (:func:`ws_artifacts.serving.server.create_app`):

* Nagle's algorithm off on accepted connections (:func:`enable_nodelay`). With more than one
  worker, uvicorn binds its socket with protocol 0, and asyncio sets TCP_NODELAY only on sockets
  whose protocol is IPPROTO_TCP, so every reused-connection response with a body stalls ~40 ms
  on delayed ACKs;
* glibc's malloc thresholds pinned, so large buffers go back to the system;
* ws-artifacts' INFO and above to the worker's stderr (the server's log);
* the repository's imports and the configuration loaded before the first request.
"""

from __future__ import annotations

import importlib
import logging
import socket
import sys
from typing import Any

__all__ = ["enable_nodelay", "log_to_stderr", "return_large_buffers", "warm_up"]


def enable_nodelay() -> None:
    """Set TCP_NODELAY on every accepted TCP connection of this process (see the module doc)."""
    base_events: Any = importlib.import_module("asyncio.base_events")  # a private hook
    original = base_events._set_nodelay
    if getattr(original, "_ws_artifacts", False):
        return

    def set_nodelay(sock: socket.socket) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    set_nodelay._ws_artifacts = True  # type: ignore[attr-defined]
    base_events._set_nodelay = set_nodelay


def return_large_buffers() -> None:
    """Pin glibc's mmap threshold at 4 MiB and its trim threshold at 8 MiB in this worker.

    Left dynamic, glibc raises the mmap threshold after large buffers are freed, so later
    8 MiB buffers come from the heaps and the worker keeps that memory (measured: +190 MB that
    never went back). Pinned at 4 MiB, below S3's 5 MiB minimum part, every part-sized buffer
    is mapped and unmapped. Not lower: the 1 MiB read buffers of a download would then be
    mapped and faulted in one by one, and pinning also freezes the trim threshold at 128 KiB,
    so the heap would shrink and regrow on every free (together, measured: a 256 MiB proxied
    download took 1.8x as long). Hence the 8 MiB trim threshold.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(-3, 4 * 1024 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 8 * 1024 * 1024)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to pin
        return


def log_to_stderr() -> None:
    """Send ws-artifacts' INFO and above to this worker's stderr (the server's log): a reload
    refused or a route dropped must be seen by the operator. A library only adds a NullHandler;
    here we are the application, so the handler is ours to add (once)."""
    logger = logging.getLogger("ws_artifacts")
    if any(getattr(handler, "_ws_artifacts", False) for handler in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
    )
    handler._ws_artifacts = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def warm_up() -> None:
    """Import the repository and its backends and load the configuration now, before this
    worker accepts connections: otherwise the first request (usually the client's
    /server-info probe, with a 3 s timeout) pays for it, and a bad file fails late."""
    from ws_artifacts.serving.live_config import config_from_env

    config_from_env()
    import boto3  # noqa: F401 - the slowest import of all
