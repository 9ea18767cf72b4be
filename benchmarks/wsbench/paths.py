"""The client's access paths to the store: raw boto3, direct artifact repositories, and an
MlflowClient through a server. Each has ``setup``, ``upload``, ``list`` and ``download``."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .plan import BUCKETS, MIB, PATHS, RAW_THRESHOLD
from .stores import s3_client


class RawPath:
    """Raw boto3 against the store: ``threads`` files at a time."""

    def __init__(self, url: str, threads: int) -> None:
        self.client = s3_client(url, pool=max(10, threads * 2))
        self.threads = threads
        self.bucket = BUCKETS["raw"]

    def setup(self, tag: str) -> str:
        return tag

    def _map(self, fn: Callable[[Any], Any], items: list[Any]) -> None:
        if self.threads == 1 or len(items) == 1:
            for item in items:
                fn(item)
            return
        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(fn, items))

    def upload(self, prefix: str, src: str) -> None:
        def put(name: str) -> None:
            path, key = os.path.join(src, name), f"{prefix}/{name}"
            if os.path.getsize(path) < RAW_THRESHOLD:
                with open(path, "rb") as body:
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
            else:
                self.client.upload_file(path, self.bucket, key)

        self._map(put, sorted(os.listdir(src)))

    def list(self, prefix: str) -> int:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix + "/", Delimiter="/"
        )
        return sum(len(p.get("Contents", [])) + len(p.get("CommonPrefixes", [])) for p in pages)

    def download(self, prefix: str, dst: str) -> None:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix + "/"
        )
        objects = [(o["Key"], o["Size"]) for p in pages for o in p.get("Contents", [])]

        def get(obj: tuple[str, int]) -> None:
            key, size = obj
            local = os.path.join(dst, key[len(prefix) + 1 :])
            if size >= RAW_THRESHOLD:
                self.client.download_file(self.bucket, key, local)
                return
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            with open(local, "wb") as out:
                for chunk in body.iter_chunks(MIB):
                    out.write(chunk)

        self._map(get, objects)


class MlflowPath:
    """An MlflowClient on one server, in one workspace (WorkspaceContext around each call)."""

    def __init__(self, url: str, workspace: str) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=url)
        self.workspace = workspace
        self.experiments: dict[str, str] = {}

    def _ctx(self) -> Any:
        from mlflow.utils.workspace_context import WorkspaceContext

        return WorkspaceContext(self.workspace)

    def setup(self, tag: str) -> str:
        exp_name = tag.rsplit("/", 1)[0]
        with self._ctx():
            if exp_name not in self.experiments:
                self.experiments[exp_name] = self.client.create_experiment(exp_name)
            return str(self.client.create_run(self.experiments[exp_name]).info.run_id)

    def upload(self, run: str, src: str) -> None:
        with self._ctx():
            if os.path.isfile(src):
                self.client.log_artifact(run, src)
            else:
                self.client.log_artifacts(run, src)

    def list(self, run: str) -> int:
        with self._ctx():
            return len(self.client.list_artifacts(run))

    def download(self, run: str, dst: str) -> None:
        with self._ctx():
            self.client.download_artifacts(run, "", dst)


class RepoPath:
    """Direct artifact access: MLflow's repository for a run's artifact URI in ``root``, laid
    out as MLflow lays out a workspace's runs (``workspaces/<ws>/<experiment>/<run>``)."""

    def __init__(self, root: str, workspace: str) -> None:
        self.root = root
        self.workspace = workspace
        self.repos: dict[str, Any] = {}

    def _ctx(self) -> Any:
        from mlflow.utils.workspace_context import WorkspaceContext

        return WorkspaceContext(self.workspace)

    def _repo(self, uri: str) -> Any:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        if uri not in self.repos:
            self.repos[uri] = get_artifact_repository(uri)
        return self.repos[uri]

    def setup(self, tag: str) -> str:
        run = f"{1 + len(self.repos)}/{os.urandom(16).hex()}"  # experiment id / run id
        return f"{self.root}/workspaces/{self.workspace}/{run}/artifacts"

    def upload(self, uri: str, src: str) -> None:
        with self._ctx():
            if os.path.isfile(src):
                self._repo(uri).log_artifact(src)
            else:
                self._repo(uri).log_artifacts(src)

    def list(self, uri: str) -> int:
        with self._ctx():
            return len(self._repo(uri).list_artifacts())

    def download(self, uri: str, dst: str) -> None:
        with self._ctx():
            self._repo(uri).download_artifacts("", dst)


def make_path(name: str, spec: dict[str, Any]) -> Any:
    if name == "raw-seq":
        return RawPath(spec["store"], 1)
    if name == "raw-8":
        return RawPath(spec["store"], 8)
    if name == "stock-direct":
        return RepoPath(f"s3://{BUCKETS['stock-direct']}", spec["workspace"])
    if name == "ours-direct":
        return RepoPath(f"ws-s3://{BUCKETS['ours-direct-root']}", spec["workspace"])
    return MlflowPath(spec["servers"][PATHS[name]], spec["workspace"])
