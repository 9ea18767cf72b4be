"""Downloads of a resolved target to a local directory: one file, or a tree file by file.

Each file comes from the newest place that has it (the current place, then previous ones). A
tree's children are all built and checked before anything is created locally, and a download
that fails takes the files and directories it created with it.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator

from ws_artifacts._mlflow import artifact_repo, environment
from ws_artifacts.core.errors import NotFoundError, PathError
from ws_artifacts.core.paths import normalize
from ws_artifacts.core.targets import Target
from ws_artifacts.lifecycle import fallback
from ws_artifacts.serving import audit, transfers
from ws_artifacts.storage.base import Entry
from ws_artifacts.storage.registry import backend_for

__all__ = ["download", "serves_files_only"]


def download(target: Target, rel: str, dst_path: str | None, artifact_uri: str) -> str:
    """Download ``target`` (``rel`` below the repository) into ``dst_path`` (a temporary
    directory when None); the local path of what was downloaded.

    Args:
        target: The resolved target.
        rel: Its normalised path relative to the repository: where it lands below ``dst_path``.
        dst_path: An existing directory, or None.
        artifact_uri: The repository's URI: the server's proxied artifact serving refuses a
            directory before anything is copied (see :func:`serves_files_only`).
    """
    dst = _destination_dir(dst_path)
    files = fallback.walk_union(target)  # each file from the newest place that has it
    local_root = os.path.join(dst, *rel.split("/")) if rel else dst
    if files and serves_files_only(artifact_uri):
        raise PathError(
            f"Artifact path refers to a directory, not a file: '{rel or '/'}' in workspace "
            f"'{target.workspace}'; list it (GET .../artifacts?path=...) and download its "
            "files one by one."
        )
    empty = getattr(backend_for(target.route), "empty_dirs", None)  # local routes keep them
    empty_dirs = [normalize(name) for name in (empty(target) if empty is not None else [])]
    if not files and not empty_dirs:
        if not rel:
            return dst  # nothing at the root: MLflow returns the empty destination
        os.makedirs(os.path.dirname(local_root), exist_ok=True)
        fallback.read_first(target, lambda backend, place: backend.get_file(place, local_root))
        audit.note(files=[local_root])
        return local_root
    _download_tree(target, files, empty_dirs, local_root)
    return local_root


def serves_files_only(artifact_uri: str) -> bool:
    """Whether a repository at ``artifact_uri`` is the server's proxied artifact serving, built
    from its ``--artifacts-destination``: MLflow's handlers send what it downloads as one file
    (and refuse a directory only after copying the tree), and its clients fetch trees file by
    file, so a directory is refused before anything is copied."""
    destination = os.environ.get(environment.ARTIFACTS_DESTINATION_ENV_VAR, "")
    return bool(destination) and destination.rstrip("/") == artifact_uri.rstrip("/")


def _download_tree(
    target: Target, files: list[tuple[Target, Entry]], empty_dirs: list[str], local_root: str
) -> None:
    # Every child is built and checked (containment, symbolic links) before anything is
    # created locally; a copy that fails later takes the tree's other new files with it.
    children = [(place.child(normalize(e.name)), normalize(e.name)) for place, e in files]
    for child, _name in children:
        backend_for(child.route).check(child)
    jobs, created = [], _Created(local_root)
    for name in empty_dirs:
        created.makedirs(os.path.join(local_root, *name.split("/")))
    for child, name in children:
        local = os.path.join(local_root, *name.split("/"))
        created.makedirs(os.path.dirname(local))
        created.file(local)
        get = backend_for(child.route).get_file
        jobs.append((functools.partial(get, child, local), name))
    with created.removed_on_failure():
        transfers.run_all(jobs, what="download", concurrency=transfers.max_concurrency(target))
    audit.note(size=sum(entry.size or 0 for _place, entry in files))


def _destination_dir(dst_path: str | None) -> str:
    if not dst_path:
        return artifact_repo.temporary_directory()
    dst = os.path.abspath(dst_path)
    if not os.path.isdir(dst):
        raise NotFoundError(
            f"The destination path for downloaded artifacts must be an existing directory: {dst}"
        )
    return dst


class _Created:
    """What a tree download creates below its local root, removed again if the download fails
    (files and directories that were there before are left alone)."""

    def __init__(self, root: str) -> None:
        self._files: list[str] = []
        self._dirs: list[str] = []
        self.makedirs(root)

    def makedirs(self, path: str) -> None:
        missing = []
        while path and not os.path.isdir(path):
            missing.append(path)
            path = os.path.dirname(path)
        for directory in reversed(missing):
            os.makedirs(directory, exist_ok=True)
            self._dirs.append(directory)

    def file(self, path: str) -> None:
        if not os.path.lexists(path):
            self._files.append(path)

    @contextlib.contextmanager
    def removed_on_failure(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            for path in self._files:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            for directory in reversed(self._dirs):
                with contextlib.suppress(OSError):
                    os.rmdir(directory)  # only if empty
            raise
