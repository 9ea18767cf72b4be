"""The artifact repository MLflow loads for ``ws-s3://``, ``ws-file://`` and friends.

Thin on purpose: every operation resolves its target (path -> workspace -> route) in the calling
thread, checks that the path belongs to the active workspace, then hands the resolved target to
a backend. MLflow caches the proxied repository once per worker, usually before any workspace is
known, so nothing here is decided at construction.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterable
from typing import Any, BinaryIO

from ws_artifacts._mlflow import artifact_repo, environment, exceptions, request_context
from ws_artifacts._mlflow.artifact_repo import (
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
from ws_artifacts.core.destinations import destinations_from_env
from ws_artifacts.core.errors import (
    PathError,
    PresignedOnlyError,
    QuotaExceededError,
    WsArtifactsError,
)
from ws_artifacts.core.paths import check_mlflow_path, is_within, join, normalize
from ws_artifacts.core.targets import Target
from ws_artifacts.lifecycle import fallback
from ws_artifacts.serving import (
    audit,
    bounds,
    downloads,
    experiments,
    quota,
    refusals,
    resolution,
    uploads,
)
from ws_artifacts.storage.base import Backend, Capability
from ws_artifacts.storage.registry import backend_for

__all__ = ["WorkspaceArtifactRepository"]

_logger = logging.getLogger(__name__)


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
        try:
            split = resolution.split_repository_uri(artifact_uri)
        except PathError as err:
            raise refusals.mlflow_error(err) from err
        self._destination, self._base, self._local_legacy_base = split
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
        return request_context.active_workspace() or self._pinned

    def _resolve(self, path: str | None, operation: str) -> Target:
        """Normalise, check ownership and route ``path`` (relative to this repository).

        Containment is checked when the target is built (``Target.__post_init__``); on a
        server, a default-destination target must also lie under the server's destinations.
        """
        active = self._active()
        audit.note(workspace=active, base=self._base, path=path)
        router = resolution.router_for(
            self._destination, self.artifact_uri, self.tracking_uri, active
        )
        target = resolution.checked_target(
            self._base, path, operation, active, router, destinations_from_env(os.environ)
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
    @refusals.boundary
    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        """Upload one local file to ``artifact_path/<file name>``."""
        check_mlflow_path(artifact_path, kind="write")
        target = self._resolve(_file_path(artifact_path, local_file), "write")
        quota.admit(target, os.path.getsize(local_file))
        backend_for(target.route).put_file(target, local_file)
        audit.note(files=[local_file])

    @audit.audited("write")
    @refusals.boundary
    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        """Upload a directory tree, several files at a time; empty directories are kept where
        the store has directories (local routes)."""
        check_mlflow_path(artifact_path, kind="write")
        uploads.upload_tree(self._resolve(artifact_path, "write"), local_dir)

    @audit.audited("list")
    @refusals.boundary
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
    @refusals.boundary
    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        check_mlflow_path(remote_file_path, kind="read")
        target = self._resolve(remote_file_path, "read")
        fallback.read_first(target, lambda backend, place: backend.get_file(place, local_path))
        audit.note(files=[local_path])

    @audit.audited("read")
    @refusals.boundary
    def download_artifacts(self, artifact_path: str | None, dst_path: str | None = None) -> str:
        """Download a file or a tree. The target is resolved here, in the calling thread,
        before any work goes to the thread pool."""
        check_mlflow_path(artifact_path, kind="read")
        rel = normalize(artifact_path)
        target = self._resolve(rel, "read")
        return downloads.download(target, rel, dst_path, self.artifact_uri)

    @audit.audited("delete")
    @refusals.boundary
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
        self._check_readable(artifact_repo.TRACE_DATA_FILE_NAME)
        return super().download_trace_data()

    @audit.audited("read")
    def download_trace_data_to_file(self, dst_path: Any) -> Any:
        """As MLflow's (3.17+), after the ownership check."""
        self._check_readable(artifact_repo.TRACE_DATA_FILE_NAME)
        return super().download_trace_data_to_file(dst_path)

    @refusals.boundary
    def _check_readable(self, path: str) -> None:
        self._resolve(path, "read")

    def get_local_path(self, artifact_path: str) -> str | None:
        """Never a local path: every read goes through the ownership check and the backend."""
        return None

    # -- streamed uploads (the server hands us the request body) --------------------------
    @audit.audited("write")
    @refusals.boundary
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
        await uploads.upload_chunks(target, chunks)

    # -- proxied multipart upload and presigned download ----------------------------------
    @audit.audited("multipart_create")
    @refusals.boundary
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
    @refusals.boundary
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
    @refusals.boundary
    def abort_multipart_upload(
        self, local_file: str, upload_id: str, artifact_path: str | None = None
    ) -> None:
        """Abort an upload of this key only, leaving no parts behind."""
        target = self._resolve(_file_path(artifact_path, local_file), "write")
        bounds.abort(target, _s3(target), upload_id)

    @audit.audited("presign_read")
    @refusals.boundary
    def get_download_presigned_url(
        self, artifact_path: str, expiration: int = 300
    ) -> PresignedDownloadUrlResponse:
        """A presigned GET on the workspace's own bucket. Routes that cannot presign (fsspec,
        or ``presigned_downloads: false``) answer without a size, which makes MLflow's client
        fall back to downloading through the server."""
        check_mlflow_path(artifact_path, kind="read")
        target = self._resolve(artifact_path, "read")
        bounds.check_expiration(target, expiration, bounds.MAX_DOWNLOAD_URL_SECONDS)

        def presign(backend: Backend, place: Target) -> PresignedDownloadUrlResponse:
            if backend.supports(Capability.PRESIGNED_READS):
                url, size = backend.presign_get(place, expiration)
                audit.note(size=size)
                return PresignedDownloadUrlResponse(url=url, headers={}, file_size=size)
            if environment.presigned_only():
                raise _presigned_only_error(place, "downloaded from")
            return PresignedDownloadUrlResponse(url="", headers={}, file_size=None)

        return fallback.read_first(target, presign)

    @audit.audited("presign_write")
    @refusals.boundary
    def create_presigned_upload_url(self, artifact_path: str, expiration: int = 900) -> Any:
        """A presigned PUT into the workspace's own bucket, signed with the route's credentials
        and storage policy; the response's headers (type, SSE, class, tags) must be sent."""
        check_mlflow_path(artifact_path, kind="read")
        if not normalize(artifact_path):
            raise PathError("A presigned upload needs a file path, e.g. 'models/model.pkl'.")
        target = self._resolve(artifact_path, "write")
        backend = backend_for(target.route)
        presigns = backend.supports(Capability.PRESIGNED_WRITES)
        if not presigns and environment.presigned_only():
            raise _presigned_only_error(target, "uploaded to")
        if not presigns:
            raise PathError(
                f"Workspace '{target.workspace}' stores its artifacts at {target.uri}, which "
                "has no presigned uploads; upload through the server or with the route's own "
                "credentials instead."
            )
        # The size is not known: the URL holds the workspace's headroom until it is used or
        # expires, and what it stores is checked against that (see ws_artifacts.serving.bounds).
        bounds.grant_put(target, backend, expiration)
        url, headers = backend.presign_put(target, expiration)
        return artifact_repo.CreatePresignedUploadResponse(presigned_url=url, headers=headers)


def _file_path(artifact_path: str | None, file_name: str) -> str:
    name = normalize(os.path.basename(file_name))
    if not name:
        raise PathError(
            f"File name {file_name!r} names no file (it would write to the directory "
            f"'{normalize(artifact_path) or '/'}' itself); give the name of a file, such as "
            "'model.pkl'."
        )
    return join(normalize(artifact_path), name)


def _s3(target: Target, *, presigning: str = "") -> Backend:
    """The route's backend, when it has client-driven multipart uploads (S3). Elsewhere
    MLflow's client falls back to a proxied upload on the "unsupported" answer; a
    presigned-only server has no such fallback, so when ``presigning`` says what the client
    wanted, it gets an error that names the fix."""
    backend = backend_for(target.route)
    if not backend.supports(Capability.MULTIPART_UPLOADS):
        if presigning and environment.presigned_only():
            raise _presigned_only_error(target, presigning)
        raise exceptions.unsupported_multipart_upload()
    return backend


def _presigned_only_error(target: Target, action: str) -> PresignedOnlyError:
    """Why a presigned-only server cannot serve ``target``, and what to change."""
    backend = backend_for(target.route)
    if backend.supports(Capability.PRESIGNED_WRITES):  # an S3 place: presigns, reads turned off
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
