"""Files on a local file system (``file://`` routes and downloads): written to a temporary
name beside their place, then renamed, so no partial file ever has the final name."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from typing import BinaryIO

from ws_artifacts.storage.base import TEMP_PREFIX

__all__ = ["CHUNK", "copy_times", "write_local"]

CHUNK = 1024 * 1024


def write_local(path: str, stream: BinaryIO, times_of: str | None = None) -> None:
    """Write to a temporary name beside ``path``, then rename; with ``times_of``, the new
    file keeps that file's access and modification times (as MLflow's copy does)."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    # Not mkstemp: its 0600 mode would stay on the artifact; "x" still never overwrites.
    tmp = os.path.join(directory, f"{TEMP_PREFIX}{uuid.uuid4().hex}")
    try:
        with open(tmp, "xb") as out:
            shutil.copyfileobj(stream, out, CHUNK)
        if times_of is not None:
            copy_times(times_of, tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def copy_times(source: str, path: str) -> None:
    """Give ``path`` the access and modification times of ``source``."""
    stat = os.stat(source)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
