"""The artifact repository MLflow loads for ``ws-s3://``, ``ws-file://`` and friends.

Thin on purpose: every operation resolves its target (path -> workspace -> route) in the calling
thread, checks that the path belongs to the active workspace, then hands the resolved target to
a backend. MLflow caches the proxied repository once per worker, usually before any workspace is
known, so nothing here is decided at construction.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import posixpath
import queue
import threading
from collections.abc import AsyncIterable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, ParamSpec, TypeVar

from ws_artifacts import _mlflow, quota
from ws_artifacts._mlflow import (
    ArtifactRepository,
    CreateMultipartUploadResponse,
    FileInfo,
    MultipartDownloadMixin,
    MultipartUploadCredential,
    MultipartUploadMixin,
    MultipartUploadPart,
    PresignedDownloadUrlResponse,
    StreamUploadMixin,
)
from ws_artifacts.backends import Backend, backend_for
from ws_artifacts.config import CONFIG_ENV_VAR, Config, Transfer, config_from_env
from ws_artifacts.errors import ConfigError, NotFoundError, PathError, WsArtifactsError
from ws_artifacts.paths import check_owner, join, normalize, split_under
from ws_artifacts.routing import (
    Router,
    Target,
    check_destination,
    destinations_from_env,
    split_url,
)

__all__ = ["WorkspaceArtifactRepository"]

_logger = logging.getLogger(__name__)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _boundary(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn our errors into MlflowExceptions with the right error code."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except WsArtifactsError as err:
            raise _mlflow.mlflow_error(err) from err

    return wrapper


class _Routers:
    """One Router per (configuration, destination); a reloaded file gets new ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._config: Config | None = None
        self._routers: dict[str, Router] = {}

    def get(self, config: Config, destination: str) -> Router:
        if config is not self._config:
            with self._lock:
                if config is not self._config:
                    self._config, self._routers = config, {}
        router = self._routers.get(destination)
        if router is None:
            router = self._routers.setdefault(destination, Router(config, destination))
        return router


_routers = _Routers()


@functools.lru_cache(maxsize=4096)
def _decide(
    base: str,
    path: str | None,
    operation: str,
    active: str | None,
    router: Router,
    destinations: tuple[str, ...] | None,
) -> Target:
    """The routing decision: a pure function of its arguments, so it is memoised.

    Every input that changes the outcome is in the key: the repository's base path, the
    requested path, the operation, the active workspace, the router (a reloaded configuration
    builds new routers) and the server's destinations. Refusals raise and are never cached.
    """
    logical = split_under(base, normalize(path))
    check_owner(logical, active, operation=operation)
    return check_destination(router.target(logical), destinations)


class WorkspaceArtifactRepository(
    ArtifactRepository,
    MultipartUploadMixin,
    MultipartDownloadMixin,  # type: ignore[misc]  # a stand-in class on MLflow 3.10
    StreamUploadMixin,  # type: ignore[misc]
):
    """Routes each workspace's artifacts to its own store, per operation.

    Args:
        artifact_uri: ``ws-<scheme>://<location>/<path>``: the default destination (as
            ``--artifacts-destination``) or a location below it (an experiment or run).
        tracking_uri: Passed through to MLflow.
        registry_uri: Passed through to MLflow.
        workspace: The workspace this instance is pinned to (see :meth:`for_workspace`).
    """

    def __init__(
        self,
        artifact_uri: str,
        tracking_uri: str | None = None,
        registry_uri: str | None = None,
        *,
        workspace: str | None = None,
    ) -> None:
        super().__init__(artifact_uri, tracking_uri=tracking_uri, registry_uri=registry_uri)
        scheme, location, path = split_url(artifact_uri)
        if not scheme.startswith("ws-") or len(scheme) <= 3:
            raise _mlflow.mlflow_error(
                PathError(
                    f"{artifact_uri!r} is not a ws-artifacts URI; use ws-s3://bucket[/prefix] or "
                    "ws-file:///directory."
                )
            )
        self._destination = f"{scheme[3:]}://{location}"
        try:
            self._base = normalize(path)
        except PathError as err:
            raise _mlflow.mlflow_error(err) from err
        self._pinned = workspace

    def for_workspace(self, workspace: str) -> WorkspaceArtifactRepository:
        """An instance pinned to ``workspace``.

        The pinned workspace is the active one whenever the request context is not visible
        (worker threads); a live request workspace always wins, because MLflow may cache an
        instance pinned to the first request's workspace and reuse it for every request.
        """
        return type(self)(
            self.artifact_uri,
            tracking_uri=self.tracking_uri,
            registry_uri=self.registry_uri,
            workspace=workspace,
        )

    # -- resolution -----------------------------------------------------------------------
    def _active(self) -> str | None:
        return _mlflow.active_workspace() or self._pinned

    def _router(self) -> Router:
        config = config_from_env()
        if config is None:
            raise ConfigError(
                f"{CONFIG_ENV_VAR} is not set, so ws-artifacts cannot tell where each "
                f"workspace's artifacts live ({self.artifact_uri}). Point {CONFIG_ENV_VAR} at "
                "the same configuration file the MLflow server uses."
            )
        return _routers.get(config, self._destination)

    def _resolve(self, path: str | None, operation: str) -> Target:
        """Normalise, check ownership and route ``path`` (relative to this repository).

        Containment is checked when the target is built (``Target.__post_init__``); on a
        server, a default-destination target must also lie under the server's destinations.
        """
        target = _decide(
            self._base,
            path,
            operation,
            self._active(),
            self._router(),
            destinations_from_env(os.environ),
        )
        _logger.debug(
            "%s workspace=%s route=%s key=%s",
            operation,
            target.workspace,
            target.route.name,
            target.key,
        )
        return target

    # -- the repository contract ----------------------------------------------------------
    @_boundary
    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        """Upload one local file to ``artifact_path/<file name>``."""
        target = self._resolve(_file_path(artifact_path, local_file), "write")
        quota.admit(target, os.path.getsize(local_file))
        backend_for(target.route).put_file(target, local_file)

    @_boundary
    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        """Upload a directory tree, several files at a time."""
        base = self._resolve(artifact_path, "write")
        jobs = []
        for root, _dirs, files in os.walk(local_dir):
            rel_dir = os.path.relpath(root, local_dir)
            for name in files:
                rel = normalize(posixpath.join(rel_dir.replace(os.sep, "/"), name))
                jobs.append((base.child(rel), os.path.join(root, name)))
        quota.admit_files(base, [local for _, local in jobs])
        _run_all(
            [(functools.partial(backend_for(t.route).put_file, t, f), f) for t, f in jobs],
            what="upload",
            concurrency=_transfer(base).max_concurrency,
        )

    @_boundary
    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """The direct children of ``path``; a file or missing path lists as empty."""
        rel = normalize(path)
        target = self._resolve(rel, "list")
        entries = backend_for(target.route).list_dir(target)
        return sorted(
            (FileInfo(join(rel, e.name), e.is_dir, e.size) for e in entries),
            key=lambda info: info.path,
        )

    @_boundary
    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        target = self._resolve(remote_file_path, "read")
        backend_for(target.route).get_file(target, local_path)

    @_boundary
    def download_artifacts(self, artifact_path: str | None, dst_path: str | None = None) -> str:
        """Download a file or a tree. The target is resolved here, in the calling thread,
        before any work goes to the thread pool."""
        rel = normalize(artifact_path)
        target = self._resolve(rel, "read")
        backend = backend_for(target.route)
        dst = _destination_dir(dst_path)
        files = list(backend.walk(target))
        local_root = os.path.join(dst, *rel.split("/")) if rel else dst
        if not files:
            if not rel:
                return dst  # nothing at the root: MLflow returns the empty destination
            os.makedirs(os.path.dirname(local_root), exist_ok=True)
            backend.get_file(target, local_root)
            return local_root
        # Every child target is built (and so checked) before anything is created locally.
        children = [(target.child(normalize(entry.name)), normalize(entry.name)) for entry in files]
        jobs = []
        for child, name in children:
            local = os.path.join(local_root, *name.split("/"))
            os.makedirs(os.path.dirname(local), exist_ok=True)
            jobs.append((functools.partial(backend.get_file, child, local), name))
        _run_all(jobs, what="download", concurrency=_transfer(target).max_concurrency)
        return local_root

    @_boundary
    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        """Delete a file or a tree (MLflow's base class silently does nothing)."""
        target = self._resolve(artifact_path, "delete")
        if not target.key or target.key == target.scope:
            raise PathError(
                f"Refused to delete {target.uri}: it is the whole of "
                f"{'the destination' if not target.key else f'workspace {target.workspace}'}."
                " Delete experiments or runs instead."
            )
        backend_for(target.route).delete(target)
        quota.forget(target)

    # MLflow's trace readers turn every failure into "trace data not found" (HTTP 404); check
    # ownership first so that a refusal stays a refusal (HTTP 403).
    def download_trace_data(self) -> Any:
        """As MLflow's, after the ownership check."""
        self._check_readable(_mlflow.TRACE_DATA_FILE_NAME)
        return super().download_trace_data()

    def download_trace_data_to_file(self, dst_path: Any) -> Any:
        """As MLflow's (3.17+), after the ownership check."""
        self._check_readable(_mlflow.TRACE_DATA_FILE_NAME)
        return super().download_trace_data_to_file(dst_path)

    @_boundary
    def _check_readable(self, path: str) -> None:
        self._resolve(path, "read")

    def get_local_path(self, artifact_path: str) -> str | None:
        """Never a local path: every read goes through the ownership check and the backend."""
        return None

    # -- streamed uploads (the server hands us the request body) --------------------------
    @_boundary
    def log_artifact_from_stream(
        self, stream: BinaryIO, artifact_file_name: str, artifact_path: str | None = None
    ) -> None:
        """Upload a request body without a temporary file."""
        target = self._resolve(_file_path(artifact_path, artifact_file_name), "write")
        stream = quota.metered(target, stream)
        backend_for(target.route).put_stream(target, stream)

    async def log_artifact_from_async_stream(
        self,
        chunks: AsyncIterable[bytes],
        artifact_file_name: str,
        artifact_path: str | None = None,
    ) -> None:
        """Upload an ASGI request body: chunks flow through a bounded queue to a thread."""
        try:
            target = self._resolve(_file_path(artifact_path, artifact_file_name), "write")
            chunks = quota.metered_chunks(target, chunks)
        except WsArtifactsError as err:
            raise _mlflow.mlflow_error(err) from err
        reader = _QueueReader()
        backend = backend_for(target.route)
        upload = asyncio.ensure_future(asyncio.to_thread(reader.drain_into, backend, target))
        try:
            async for chunk in chunks:
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
            raise _mlflow.mlflow_error(err) from err

    # -- proxied multipart upload and presigned download ----------------------------------
    @_boundary
    def create_multipart_upload(
        self, local_file: str, num_parts: int = 1, artifact_path: str | None = None
    ) -> CreateMultipartUploadResponse:
        """Start a multipart upload in the workspace's bucket; presigned URLs for the parts."""
        target = self._resolve(_file_path(artifact_path, local_file), "write")
        quota.admit_multipart(target, num_parts)
        upload_id, urls = _s3(target).create_multipart(target, num_parts)
        return CreateMultipartUploadResponse(
            upload_id=upload_id,
            credentials=[
                MultipartUploadCredential(url=url, part_number=i, headers={})
                for i, url in enumerate(urls, start=1)
            ],
        )

    @_boundary
    def complete_multipart_upload(
        self,
        local_file: str,
        upload_id: str,
        parts: list[MultipartUploadPart],
        artifact_path: str | None = None,
    ) -> None:
        """Assemble the parts the client uploaded."""
        target = self._resolve(_file_path(artifact_path, local_file), "write")
        quota.complete_multipart(target, upload_id)
        etags = [(p.part_number, p.etag or "") for p in sorted(parts, key=lambda p: p.part_number)]
        _s3(target).complete_multipart(target, upload_id, etags)

    @_boundary
    def abort_multipart_upload(
        self, local_file: str, upload_id: str, artifact_path: str | None = None
    ) -> None:
        """Abort, leaving no parts behind."""
        target = self._resolve(_file_path(artifact_path, local_file), "write")
        _s3(target).abort_multipart(target, upload_id)

    @_boundary
    def get_download_presigned_url(
        self, artifact_path: str, expiration: int = 300
    ) -> PresignedDownloadUrlResponse:
        """A presigned GET on the workspace's own bucket. Routes that cannot presign (fsspec,
        or ``presigned_downloads: false``) answer without a size, which makes MLflow's client
        fall back to downloading through the server."""
        target = self._resolve(artifact_path, "read")
        backend = backend_for(target.route)
        from ws_artifacts.backends.s3 import S3Backend

        if isinstance(backend, S3Backend) and backend.transfer.presigned_downloads:
            url, size = backend.presign_get(target, expiration)
            return PresignedDownloadUrlResponse(url=url, headers={}, file_size=size)
        return PresignedDownloadUrlResponse(url="", headers={}, file_size=None)


def _file_path(artifact_path: str | None, file_name: str) -> str:
    return join(normalize(artifact_path), normalize(os.path.basename(file_name)))


def _transfer(target: Target) -> Transfer:
    return target.route.settings.transfer or Transfer()


def _s3(target: Target) -> Any:
    from ws_artifacts.backends.s3 import S3Backend

    backend = backend_for(target.route)
    if not isinstance(backend, S3Backend):
        raise _mlflow.unsupported_multipart_upload()
    return backend


def _destination_dir(dst_path: str | None) -> str:
    if not dst_path:
        return _mlflow.temporary_directory()
    dst = os.path.abspath(dst_path)
    if not os.path.isdir(dst):
        raise NotFoundError(
            f"The destination path for downloaded artifacts must be an existing directory: {dst}"
        )
    return dst


def _run_all(jobs: Sequence[tuple[Callable[[], Any], str]], *, what: str, concurrency: int) -> None:
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
        raise _FailedTransfers(
            f"{len(failures)} of {len(jobs)} file(s) failed to {what}: {listed}{more}"
        )


def _collect(calls: Any) -> list[tuple[str, BaseException]]:
    failures: list[tuple[str, BaseException]] = []
    for call, name in calls:
        try:
            call()
        except Exception as err:  # noqa: BLE001 - collected and re-raised together below
            failures.append((name, err))
    return failures


class _FailedTransfers(WsArtifactsError, OSError):
    """Some files of a batch failed; the others went through."""


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
