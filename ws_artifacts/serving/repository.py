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
from collections.abc import AsyncIterable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, ParamSpec, TypeVar

from ws_artifacts import _mlflow
from ws_artifacts._mlflow import (
    ArtifactRepository,
    CreateMultipartUploadResponse,
    FileInfo,
    MultipartDownloadMixin,
    MultipartUploadCredential,
    MultipartUploadMixin,
    MultipartUploadPart,
    PresignedDownloadUrlResponse,
    PresignedUploadMixin,
    StreamUploadMixin,
)
from ws_artifacts.core.config import CONFIG_ENV_VAR, Config, Transfer
from ws_artifacts.core.errors import (
    ConfigError,
    NotFoundError,
    PathError,
    PresignedOnlyError,
    QuotaExceededError,
    WsArtifactsError,
)
from ws_artifacts.core.paths import (
    check_mlflow_path,
    check_owner,
    is_within,
    join,
    normalize,
    split_logical,
    split_under,
)
from ws_artifacts.core.routing import (
    Router,
    Target,
    WorkspaceRoot,
    check_destination,
    destinations_from_env,
    split_url,
)
from ws_artifacts.lifecycle import fallback, roots
from ws_artifacts.serving import audit, bounds, experiments, quota, refusals
from ws_artifacts.serving.live_config import config_from_env
from ws_artifacts.storage.base import Backend
from ws_artifacts.storage.registry import backend_for

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
            raise refusals.mlflow_error(err) from err

    return wrapper


class _Routers:
    """One Router per (configuration, workspace roots, destination); a reloaded file or a
    changed root gets new ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[Config | None, Mapping[str, WorkspaceRoot] | None] = (None, None)
        self._routers: dict[str, Router] = {}

    def get(
        self, config: Config, destination: str, roots: Mapping[str, WorkspaceRoot] | None = None
    ) -> Router:
        key, routers = self._key, self._routers
        if key[0] is not config or key[1] is not roots:
            with self._lock:
                if self._key[0] is not config or self._key[1] is not roots:
                    self._key, self._routers = (config, roots), {}
                routers = self._routers
        router = routers.get(destination)
        if router is None:
            router = routers.setdefault(destination, Router(config, destination, roots))
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
    PresignedUploadMixin,  # type: ignore[misc]
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
            raise refusals.mlflow_error(
                PathError(
                    f"{artifact_uri!r} is not a ws-artifacts URI; use ws-s3://bucket[/prefix] or "
                    "ws-file:///directory."
                )
            )
        self._destination = f"{scheme[3:]}://{location}"
        try:
            self._base = normalize(path)
        except PathError as err:
            raise refusals.mlflow_error(err) from err
        self._pinned = workspace
        # A ws-file repository at a legacy (no workspaces/) location keeps links inside its own
        # directory, as MLflow's local repository does (see _resolve).
        self._local_legacy_base = (
            self._base
            if self._base
            and scheme[3:] in ("file", "local")
            and split_logical(self._base).workspace is None
            else None
        )

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

    def _router(self, active: str | None = None) -> Router:
        on_server = destinations_from_env(os.environ) is not None
        config = _server_config() if on_server else config_from_env()
        if config is None:
            raise ConfigError(
                f"{CONFIG_ENV_VAR} is not set, so ws-artifacts cannot tell where each "
                f"workspace's artifacts live ({self.artifact_uri}). Point {CONFIG_ENV_VAR} at "
                "the same configuration file the MLflow server uses."
            )
        if not config.locations:  # no workspace may have a root of its own
            return _routers.get(config, self._destination)
        cache = roots.roots_cache(self.tracking_uri, on_server=on_server)
        return _routers.get(config, self._destination, cache.snapshot(active))

    def _resolve(self, path: str | None, operation: str) -> Target:
        """Normalise, check ownership and route ``path`` (relative to this repository).

        Containment is checked when the target is built (``Target.__post_init__``); on a
        server, a default-destination target must also lie under the server's destinations.
        """
        active = self._active()
        audit.note(workspace=active, base=self._base, path=path)
        target = _decide(
            self._base,
            path,
            operation,
            active,
            self._router(active),
            destinations_from_env(os.environ),
        )
        base = self._local_legacy_base
        if base is not None and not target.scope and is_within(base, target.key):
            target = Target(target.route, target.key, target.workspace, base)
        if operation in ("write", "delete"):
            # A moved experiment's old place takes no writes, and its old owner may not delete
            # the new owner's only copy before `migrate --moved-from` has copied it.
            experiments.check_writable(target)
        audit.note(target)
        _logger.debug(
            "%s workspace=%s route=%s key=%s",
            operation,
            target.workspace,
            target.route.name,
            target.key,
        )
        return target

    def refuse_declared_upload(self, path: str, size: int) -> Any:
        """The refusal (an MlflowException) of an upload of ``size`` bytes to ``path`` that
        its workspace's quota cannot take, judged before its body is read (the server app
        calls it with the request's Content-Length); None when it may go on or cannot be
        judged here (the upload itself then decides)."""
        try:
            quota.check_declared(self._resolve(path, "write"), size)
        except QuotaExceededError as err:
            return refusals.mlflow_error(err, operation="write", workspace=self._pinned)
        except WsArtifactsError:
            return None
        return None

    # -- the repository contract ----------------------------------------------------------
    @audit.audited("write")
    @_boundary
    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        """Upload one local file to ``artifact_path/<file name>``."""
        check_mlflow_path(artifact_path, kind="write")
        target = self._resolve(_file_path(artifact_path, local_file), "write")
        quota.admit(target, os.path.getsize(local_file))
        backend_for(target.route).put_file(target, local_file)
        audit.note(files=[local_file])

    @audit.audited("write")
    @_boundary
    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        """Upload a directory tree, several files at a time; empty directories are kept where
        the store has directories (local routes)."""
        check_mlflow_path(artifact_path, kind="write")
        base = self._resolve(artifact_path, "write")
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
        _run_all(
            [(functools.partial(backend_for(t.route).put_file, t, f), f) for t, f in jobs],
            what="upload",
            concurrency=_transfer(base).max_concurrency,
        )
        audit.note(files=[f for _t, f in jobs])
        for target in empty:
            make_dir = getattr(backend_for(target.route), "make_dir", None)
            if make_dir is not None:
                make_dir(target)

    @audit.audited("list")
    @_boundary
    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """The direct children of ``path``; a file or missing path lists as empty."""
        rel = normalize(path)
        target = self._resolve(rel, "list")
        entries = fallback.list_union(target)  # the current place, then previous ones
        return sorted(
            (FileInfo(join(rel, e.name), e.is_dir, e.size) for e in entries),
            key=lambda info: info.path,
        )

    @audit.audited("read")
    @_boundary
    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        check_mlflow_path(remote_file_path, kind="read")
        target = self._resolve(remote_file_path, "read")
        fallback.read_first(target, lambda backend, place: backend.get_file(place, local_path))
        audit.note(files=[local_path])

    @audit.audited("read")
    @_boundary
    def download_artifacts(self, artifact_path: str | None, dst_path: str | None = None) -> str:
        """Download a file or a tree. The target is resolved here, in the calling thread,
        before any work goes to the thread pool."""
        check_mlflow_path(artifact_path, kind="read")
        rel = normalize(artifact_path)
        target = self._resolve(rel, "read")
        dst = _destination_dir(dst_path)
        files = fallback.walk_union(target)  # each file from the newest place that has it
        local_root = os.path.join(dst, *rel.split("/")) if rel else dst
        if files and self._serves_files_only():
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
            _run_all(jobs, what="download", concurrency=_transfer(target).max_concurrency)
        audit.note(size=sum(entry.size or 0 for _place, entry in files))
        return local_root

    def _serves_files_only(self) -> bool:
        """Whether this is the repository of the server's proxied artifact serving, built from
        its ``--artifacts-destination``: MLflow's handlers send what it downloads as one file
        (and refuse a directory only after copying the tree), and its clients fetch trees file
        by file, so a directory is refused before anything is copied."""
        destination = os.environ.get(_mlflow.ARTIFACTS_DESTINATION_ENV_VAR, "")
        return bool(destination) and destination.rstrip("/") == self.artifact_uri.rstrip("/")

    @audit.audited("delete")
    @_boundary
    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        """Delete a file or a tree (MLflow's base class silently does nothing), in the current
        place and every previous place of the route."""
        target = self._resolve(artifact_path, "delete")
        if not target.key or target.key == target.scope:
            raise PathError(
                f"Refused to delete {target.uri}: it is the whole of "
                f"{'the destination' if not target.key else f'workspace {target.workspace}'}."
                " Delete experiments or runs instead."
            )
        fallback.delete_everywhere(target)
        quota.forget(target)

    # MLflow's trace readers turn every failure into "trace data not found" (HTTP 404); check
    # ownership first so that a refusal stays a refusal (HTTP 403).
    @audit.audited("read")
    def download_trace_data(self) -> Any:
        """As MLflow's, after the ownership check."""
        self._check_readable(_mlflow.TRACE_DATA_FILE_NAME)
        return super().download_trace_data()

    @audit.audited("read")
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
    @audit.audited("write")
    @_boundary
    def log_artifact_from_stream(
        self, stream: BinaryIO, artifact_file_name: str, artifact_path: str | None = None
    ) -> None:
        """Upload a request body without a temporary file."""
        check_mlflow_path(artifact_path, kind="write")
        target = self._resolve(_file_path(artifact_path, artifact_file_name), "write")
        stream = quota.metered(target, stream)
        backend_for(target.route).put_stream(target, audit.counted(stream))

    @audit.audited("write")
    async def log_artifact_from_async_stream(
        self,
        chunks: AsyncIterable[bytes],
        artifact_file_name: str,
        artifact_path: str | None = None,
    ) -> None:
        """Upload an ASGI request body: chunks flow through a bounded queue to a thread."""
        try:
            check_mlflow_path(artifact_path, kind="write")
            target = self._resolve(_file_path(artifact_path, artifact_file_name), "write")
            chunks = quota.metered_chunks(target, chunks)
        except WsArtifactsError as err:
            raise refusals.mlflow_error(err) from err
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

    # -- proxied multipart upload and presigned download ----------------------------------
    @audit.audited("multipart_create")
    @_boundary
    def create_multipart_upload(
        self, local_file: str, num_parts: int = 1, artifact_path: str | None = None
    ) -> CreateMultipartUploadResponse:
        """Start a multipart upload in the workspace's bucket; presigned URLs for the parts.
        Bounded by :mod:`ws_artifacts.serving.bounds` (part count, pending parts, quota)."""
        check_mlflow_path(artifact_path, kind="write")
        target = self._resolve(_file_path(artifact_path, local_file), "write")
        upload_id, urls = bounds.create(target, _s3(target, presigning="uploaded to"), num_parts)
        return CreateMultipartUploadResponse(
            upload_id=upload_id,
            credentials=[
                MultipartUploadCredential(url=url, part_number=i, headers={})
                for i, url in enumerate(urls, start=1)
            ],
        )

    @audit.audited("multipart_complete")
    @_boundary
    def complete_multipart_upload(
        self,
        local_file: str,
        upload_id: str,
        parts: list[MultipartUploadPart],
        artifact_path: str | None = None,
    ) -> None:
        """Assemble the parts the client uploaded: an upload of this key only, admitting
        exactly the parts named (see :mod:`ws_artifacts.serving.bounds`)."""
        target = self._resolve(_file_path(artifact_path, local_file), "write")
        etags = [(p.part_number, p.etag or "") for p in sorted(parts, key=lambda p: p.part_number)]
        bounds.complete(target, _s3(target), upload_id, etags)

    @audit.audited("multipart_abort")
    @_boundary
    def abort_multipart_upload(
        self, local_file: str, upload_id: str, artifact_path: str | None = None
    ) -> None:
        """Abort an upload of this key only, leaving no parts behind."""
        target = self._resolve(_file_path(artifact_path, local_file), "write")
        bounds.abort(target, _s3(target), upload_id)

    @audit.audited("presign_read")
    @_boundary
    def get_download_presigned_url(
        self, artifact_path: str, expiration: int = 300
    ) -> PresignedDownloadUrlResponse:
        """A presigned GET on the workspace's own bucket. Routes that cannot presign (fsspec,
        or ``presigned_downloads: false``) answer without a size, which makes MLflow's client
        fall back to downloading through the server."""
        check_mlflow_path(artifact_path, kind="read")
        target = self._resolve(artifact_path, "read")
        bounds.check_expiration(target, expiration, bounds.MAX_DOWNLOAD_URL_SECONDS)
        from ws_artifacts.storage.s3.backend import S3Backend

        def presign(backend: Backend, place: Target) -> PresignedDownloadUrlResponse:
            if isinstance(backend, S3Backend) and backend.transfer.presigned_downloads:
                url, size = backend.presign_get(place, expiration)
                audit.note(size=size)
                return PresignedDownloadUrlResponse(url=url, headers={}, file_size=size)
            if _mlflow.presigned_only():
                raise _presigned_only_error(place, "downloaded from")
            return PresignedDownloadUrlResponse(url="", headers={}, file_size=None)

        return fallback.read_first(target, presign)

    @audit.audited("presign_write")
    @_boundary
    def create_presigned_upload_url(self, artifact_path: str, expiration: int = 900) -> Any:
        """A presigned PUT into the workspace's own bucket, signed with the route's credentials
        and storage policy; the response's headers (type, SSE, class, tags) must be sent."""
        check_mlflow_path(artifact_path, kind="read")
        if not normalize(artifact_path):
            raise PathError("A presigned upload needs a file path, e.g. 'models/model.pkl'.")
        target = self._resolve(artifact_path, "write")
        backend = backend_for(target.route)
        from ws_artifacts.storage.s3.backend import S3Backend

        if not isinstance(backend, S3Backend) and _mlflow.presigned_only():
            raise _presigned_only_error(target, "uploaded to")
        if not isinstance(backend, S3Backend):
            raise PathError(
                f"Workspace '{target.workspace}' stores its artifacts at {target.uri}, which "
                "has no presigned uploads; upload through the server or with the route's own "
                "credentials instead."
            )
        # The size is not known: the URL holds the workspace's headroom until it is used or
        # expires, and what it stores is checked against that (see ws_artifacts.serving.bounds).
        bounds.grant_put(target, backend, expiration)
        url, headers = backend.presign_put(target, expiration)
        return _mlflow.CreatePresignedUploadResponse(presigned_url=url, headers=headers)


def _server_config() -> Config | None:
    """The configuration in a server worker. Its load errors name the file and its keys: they
    go to the server's log, and the client is only told to look there."""
    try:
        return config_from_env()
    except ConfigError as err:
        _logger.error("%s", err)
        raise ConfigError(
            f"The ws-artifacts configuration of this server cannot be loaded ({CONFIG_ENV_VAR}); "
            "the server's log says which file and key, and why. Ask the server's operator to "
            "fix it."
        ) from None


def _file_path(artifact_path: str | None, file_name: str) -> str:
    name = normalize(os.path.basename(file_name))
    if not name:
        raise PathError(
            f"File name {file_name!r} names no file (it would write to the directory "
            f"'{normalize(artifact_path) or '/'}' itself); give the name of a file, such as "
            "'model.pkl'."
        )
    return join(normalize(artifact_path), name)


def _transfer(target: Target) -> Transfer:
    return target.route.settings.transfer or Transfer()


def _s3(target: Target, *, presigning: str = "") -> Any:
    """The route's S3 backend. Elsewhere MLflow's client falls back to a proxied upload on the
    "unsupported" answer; a presigned-only server has no such fallback, so when
    ``presigning`` says what the client wanted, it gets an error that names the fix."""
    from ws_artifacts.storage.s3.backend import S3Backend

    backend = backend_for(target.route)
    if not isinstance(backend, S3Backend):
        if presigning and _mlflow.presigned_only():
            raise _presigned_only_error(target, presigning)
        raise _mlflow.unsupported_multipart_upload()
    return backend


def _presigned_only_error(target: Target, action: str) -> PresignedOnlyError:
    """Why a presigned-only server cannot serve ``target``, and what to change."""
    backend = backend_for(target.route)
    from ws_artifacts.storage.s3.backend import S3Backend

    if isinstance(backend, S3Backend):
        why = "its route has transfer.presigned_downloads: false"
        fix = f"set presigned_downloads: true in the route of workspace '{target.workspace}'"
    else:
        why = "it is not an S3 place, so it has no presigned URLs"
        fix = f"route workspace '{target.workspace}' to an S3 place (url: s3://bucket[/prefix])"
    return PresignedOnlyError(
        f"Artifacts of workspace '{target.workspace}' at {target.uri} cannot be {action} "
        f"directly: {why}, and this server runs with --artifacts-presigned-only (it carries no "
        f"artifact bytes). Fix: {fix}, or run the server without --artifacts-presigned-only."
    )


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
