"""Uploads to a resolved target that are more than one call to its backend: a local tree,
several files at a time, and an ASGI request body, streamed to a worker thread through a
bounded queue (never buffered whole, never through a temporary file).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import posixpath
import queue
from collections.abc import AsyncIterable

from ws_artifacts.core.errors import WsArtifactsError
from ws_artifacts.core.paths import normalize
from ws_artifacts.core.targets import Target
from ws_artifacts.serving import audit, quota, refusals, transfers
from ws_artifacts.storage.base import Backend
from ws_artifacts.storage.registry import backend_for

__all__ = ["upload_chunks", "upload_tree"]


def upload_tree(base: Target, local_dir: str) -> None:
    """Upload ``local_dir`` below ``base``, admitted by the quota as one upload; empty
    directories are kept where the store has directories (local routes)."""
    jobs = []
    empty: list[Target] = []
    for root, dirs, files in os.walk(local_dir):
        rel_dir = os.path.relpath(root, local_dir)
        if not dirs and not files and rel_dir != ".":
            empty.append(base.child(normalize(rel_dir.replace(os.sep, "/"))))
        for name in files:
            rel = normalize(posixpath.join(rel_dir.replace(os.sep, "/"), name))
            jobs.append((base.child(rel), os.path.join(root, name)))
    quota.admit_files(base, [local for _, local in jobs])
    transfers.run_all(
        [(functools.partial(backend_for(t.route).put_file, t, f), f) for t, f in jobs],
        what="upload",
        concurrency=transfers.max_concurrency(base),
    )
    audit.note(files=[f for _t, f in jobs])
    for target in empty:
        make_dir = getattr(backend_for(target.route), "make_dir", None)
        if make_dir is not None:
            make_dir(target)


async def upload_chunks(target: Target, chunks: AsyncIterable[bytes]) -> None:
    """Upload an ASGI request body to ``target``: chunks flow through a bounded queue to a
    thread. An interrupted body aborts the upload, so nothing partial is kept."""
    reader = _QueueReader()
    backend = backend_for(target.route)
    upload = asyncio.ensure_future(asyncio.to_thread(reader.drain_into, backend, target))
    try:
        async for chunk in audit.counted_chunks(chunks):
            if upload.done():
                break  # the upload failed already; its error is raised below
            await reader.feed(chunk)
        await reader.feed(None)
    except BaseException as err:
        reader.fail(err)  # the uploading thread aborts: nothing partial is kept
        with contextlib.suppress(Exception):
            await upload
        raise
    try:
        await upload
    except WsArtifactsError as err:
        raise refusals.mlflow_error(err) from err


class _QueueReader:
    """A blocking file-like reader fed from the event loop through a bounded queue."""

    _DEPTH = 16

    def __init__(self) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(self._DEPTH)
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._done = False
        self._closed = False
        self._error: BaseException | None = None

    def drain_into(self, backend: Backend, target: Target) -> None:
        """Run in a worker thread: upload everything fed, then mark the reader closed."""
        try:
            backend.put_stream(target, self)  # type: ignore[arg-type]
        finally:
            self._closed = True

    async def feed(self, chunk: bytes | None) -> None:
        """Queue a chunk (None: the end), waiting in a thread only when the queue is full."""
        try:
            self._queue.put_nowait(chunk)
        except queue.Full:
            await asyncio.to_thread(self._put_blocking, chunk)

    def _put_blocking(self, chunk: bytes | None) -> None:
        while not self._closed:  # the uploading thread may have stopped reading
            try:
                self._queue.put(chunk, timeout=0.5)
                return
            except queue.Full:
                continue

    def fail(self, err: BaseException) -> None:
        """Make the reading side raise, so the upload aborts instead of completing."""
        self._error = err

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or self._buffered < size):
            if self._error is not None:
                raise OSError("the upload stream was interrupted") from self._error
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is None:
                self._done = True
            else:
                self._chunks.append(item)
                self._buffered += len(item)
        data = b"".join(self._chunks)
        if size < 0 or len(data) <= size:
            out, rest = data, b""
        else:
            out, rest = data[:size], data[size:]
        self._chunks = [rest] if rest else []
        self._buffered = len(rest)
        return out
