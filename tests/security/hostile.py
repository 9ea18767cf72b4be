"""A hostile client's server: ``ws-artifacts server`` with two workers, the guard on, the
quarantining ``ws+sqlite`` workspace provider and the audit trail, on moto.

Shared by the attack modules of issue 22 (quarantine, forged manifests, moved experiments,
audit headers); each module starts its own (module-scoped) server with its own buckets.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.support.config import ConfigFile
from tests.support.s3 import keys
from tests.support.servers import MlflowServer, Server, run_ws_artifacts, start_ws_artifacts
from tests.support.workspaces import in_workspace

ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
MPU = "/api/2.0/mlflow-artifacts/mpu"
Q = ".ws-quarantine"
MANIFEST = "ws-quarantine.json"


@dataclass
class Hostile(MlflowServer):
    """The module's server, its configuration, database, destination bucket and audit file."""

    db: Path
    audit: Path
    root: str
    s3: Any

    @property
    def destination(self) -> str:
        return f"ws-s3://{self.root}"

    def request(
        self, method: str, path: str, workspace: str | None = "default", **kwargs: Any
    ) -> requests.Response:
        """A raw request as workspace ``workspace`` (None: no workspace header)."""
        headers = dict(kwargs.pop("headers", {}))
        if workspace is not None:
            headers["X-MLFLOW-WORKSPACE"] = workspace
        return requests.request(method, self.url + path, headers=headers, timeout=60, **kwargs)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``ws-artifacts ARGS --destination <this server's>``, as the operator runs it."""
        return run_ws_artifacts(self.config, *args, "--destination", self.destination, columns=250)

    def snapshot(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """Every object under ``prefix`` with its bytes."""
        return {
            key: self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            for key in keys(self.s3, bucket, prefix)
        }

    def log_run(self, workspace: str, files: dict[str, bytes], tmp: Path) -> tuple[str, str]:
        """A new experiment and run in ``workspace`` with ``files`` logged through the server."""
        client = self.client()
        with in_workspace(workspace):
            exp = client.create_experiment(f"exp-{workspace}-{uuid.uuid4().hex[:8]}")
            run = client.create_run(exp).info.run_id
            src = tmp / f"src-{run}"
            src.mkdir()
            for name, data in files.items():
                (src / name).write_bytes(data)
                client.log_artifact(run, str(src / name))
        return exp, run

    def delete_workspace(self, name: str, mode: str = "CASCADE") -> None:
        """DELETE the workspace over REST (its artifacts go to quarantine)."""
        answer = requests.delete(
            f"{self.url}/api/3.0/mlflow/workspaces/{name}", params={"mode": mode}, timeout=120
        )
        assert answer.status_code == 204, answer.text

    def stamps(self, bucket: str, base: str, workspace: str) -> list[str]:
        """The quarantine time stamps of ``workspace`` under ``base`` (``""`` or ``x/``)."""
        prefix = f"{base}{Q}/{workspace}/"
        answer = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/")
        return sorted(
            c["Prefix"][len(prefix) :].rstrip("/") for c in answer.get("CommonPrefixes", [])
        )


def start_hostile(work: Path, moto: Server, s3: Any, root: str, routes: str) -> Hostile:
    """Start the server on bucket ``root`` with ``routes`` (YAML under ``workspaces:``)."""
    s3.create_bucket(Bucket=root)
    workspaces = yaml.safe_load(textwrap.dedent(routes))
    config = ConfigFile(moto.url, workspaces=workspaces).write(work / "ws.yaml")
    audit = work / "audit.jsonl"
    server = start_ws_artifacts(
        work,
        config,
        f"ws-s3://{root}",
        options=("--audit", str(audit)),
        args=("--uvicorn-opts", "--timeout-worker-healthcheck 120"),
        startup_timeout=900,  # a shared 2-core machine under load starts slowly
    )
    return Hostile(server, config, work / "mlflow.db", audit, root, s3)


def manifest(workspace: str, stamp: str, *, base: str, route_url: str, **changes: Any) -> bytes:
    """A manifest as ws-artifacts writes one (``changes`` forge some of its fields)."""
    moment = dt.datetime.strptime(stamp.split("-", 1)[0], "%Y%m%dT%H%M%SZ")
    fields: dict[str, Any] = {
        "workspace": workspace,
        "deleted_at": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reason": "delete_workspace CASCADE",
        "state": "quarantined",
        "route_url": route_url,
        "base": base,
        "stamp": stamp,
        "objects": 1,
        "bytes": 1,
        **changes,
    }
    return json.dumps(fields, indent=2).encode()
