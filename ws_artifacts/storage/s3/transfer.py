"""Bytes on their way through the server: a stream cut into parts (in memory or spooled to
disk), and a download written at offsets into a temporary file renamed into place."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Generator, Iterator
from typing import IO, Any, BinaryIO

from ws_artifacts.storage.base import TEMP_PREFIX

__all__ = [
    "READ_CHUNK",
    "copy_at",
    "memory_parts",
    "read_full",
    "spool_size",
    "spooled_parts",
    "temporary_beside",
    "total_size",
]

READ_CHUNK = 1024 * 1024


def spool_size(spool: IO[bytes]) -> int:
    return os.fstat(spool.fileno()).st_size


def memory_parts(body: BinaryIO, part_size: int) -> Iterator[bytes]:
    """A local file's parts, read as they are needed (``parts_in_flight`` bounds how many)."""
    while chunk := read_full(body, part_size):
        yield chunk


def spooled_parts(head: bytes, stream: BinaryIO, part_size: int) -> Generator[IO[bytes]]:
    """``head`` and then the rest of ``stream``, cut into parts of ``part_size`` bytes, each in
    its own unlinked temporary file, rewound. The next part is read only when asked for."""
    pending = head
    while True:
        spool = tempfile.TemporaryFile(prefix="ws-artifacts-part-")  # noqa: SIM115 - handed on
        try:
            spool.write(pending)
            written, pending = len(pending), b""
            while written < part_size:
                chunk = stream.read(min(READ_CHUNK, part_size - written))
                if not chunk:
                    break
                spool.write(chunk)
                written += len(chunk)
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        if written == 0:
            spool.close()
            return
        yield spool
        if written < part_size:
            return


def read_full(stream: BinaryIO, size: int) -> bytes:
    """Read exactly ``size`` bytes unless the stream ends first (raw streams return short)."""
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


@contextlib.contextmanager
def temporary_beside(local_path: str) -> Iterator[int]:
    """A file descriptor on a temporary file next to ``local_path``, renamed onto it on success
    and removed on failure (no partial file is ever left under the final name)."""
    directory = os.path.dirname(os.path.abspath(local_path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX)
    try:
        yield fd
        os.close(fd)
        fd = -1
        os.replace(tmp, local_path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def copy_at(body: Any, fd: int, offset: int) -> None:
    for chunk in body.iter_chunks(READ_CHUNK):
        os.pwrite(fd, chunk, offset)
        offset += len(chunk)


def total_size(response: dict[str, Any]) -> int:
    content_range = response.get("ContentRange")  # "bytes 0-8388607/268435456"
    if content_range and "/" in content_range:
        return int(content_range.rsplit("/", 1)[1])
    return int(response["ContentLength"])
