"""A hostile client's server: ``ws-artifacts server`` with two workers, the guard on, the
quarantining ``ws+sqlite`` workspace provider and the audit trail, on moto.

Shared by the attack modules of issue 22 (quarantine, forged manifests, moved experiments,
audit headers); each module starts its own (module-scoped) server with its own buckets.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.support.s3 import keys
from tests.support.servers import MOTO_KEY, MOTO_SECRET, Server, clean_env, start_mlflow
from tests.support.workspaces import in_workspace

WS_ARTIFACTS = str(Path(sys.executable).parent / "ws-artifacts")
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
MPU = "/api/2.0/mlflow-artifacts/mpu"
Q = ".ws-quarantine"
MANIFEST = "ws-quarantine.json"


@dataclass
class Hostile:
    """The module's server, its configuration, database, destination bucket and audit file."""

    server: Server
    config: Path
    db: Path
    audit: Path
    root: str
    s3: Any

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def destination(self) -> str:
        return f"ws-s3://{self.root}"

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.url)

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
        env = clean_env(
            WS_ARTIFACTS_CONFIG=str(self.config),
            AWS_ACCESS_KEY_ID=MOTO_KEY,
            AWS_SECRET_ACCESS_KEY=MOTO_SECRET,
            AWS_DEFAULT_REGION="us-east-1",
            COLUMNS="250",
        )
        return subprocess.run(
            [WS_ARTIFACTS, *args, "--destination", self.destination],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,  # a shared 2-core machine can be very slow
            check=False,
        )

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
    config = work / "ws.yaml"
    config.write_text(
        textwrap.dedent(f"""
            defaults: {{endpoint_url: "{moto.url}", region: us-east-1, addressing_style: path}}
            workspaces:
        """)
        + textwrap.indent(textwrap.dedent(routes).strip() + "\n", "  ")
    )
    audit = work / "audit.jsonl"
    server = start_mlflow(
        work,
        command=[WS_ARTIFACTS, "server", "--config", str(config), "--audit", str(audit)],
        args=[
            "--artifacts-destination",
            f"ws-s3://{root}",
            "--uvicorn-opts",
            "--timeout-worker-healthcheck 120",
        ],
        env={"AWS_ACCESS_KEY_ID": MOTO_KEY, "AWS_SECRET_ACCESS_KEY": MOTO_SECRET},
        workers=2,
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
