"""The world the attack suite runs in: victims with secrets, an attacker's own runs, and probes
that prove no byte of a victim was read and nothing was written outside the attacker's route.

Every secret contains :attr:`World.mark`; any response, download or listing that contains it
is a leak, and so is a listing that shows a victim's file name.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.s3 import ROUTED_BUCKETS, keys
from tests.support.servers import MlflowServer
from tests.support.workspaces import in_workspace, unique

#: workspace -> (bucket, key prefix of its own place)
SCOPES = {
    "team-a": ("team-a-artifacts", "workspaces/team-a/"),
    "team-b": ("team-b-artifacts", "workspaces/team-b/"),
    "vision-x": ("vision-artifacts", "vision-x/workspaces/vision-x/"),
    "vision-y": ("vision-artifacts", "vision-y/workspaces/vision-y/"),
    "other": ("root", "workspaces/other/"),
    "default": ("root", "workspaces/default/"),
}
SECRET_FILE = "secret.txt"


@dataclass
class World:
    """One server's victims and attackers (IDs differ between the proxied and direct servers)."""

    server: MlflowServer
    s3: Any
    mark: str
    local: Path  # a directory on the server's file system with a secret in it
    ids: dict[str, str] = field(default_factory=dict)

    def fill(self, template: str) -> str:
        """Put the victims' IDs into a case's template: ``{b_exp}``, ``{b_run}``, ... and the
        run roots ``{B}`` (team-b), ``{Y}`` (vision-y), ``{O}`` (other), ``{A}`` (team-a)."""
        ids = self.ids
        runs = {
            key: f"workspaces/{ws}/{ids[short + '_exp']}/{ids[short + '_run']}/artifacts"
            for key, short, ws in (
                ("B", "b", "team-b"),
                ("Y", "y", "vision-y"),
                ("O", "o", "other"),
                ("A", "a", "team-a"),
            )
        }
        return template.format(**ids, **runs, local=self.local)

    # -- setup --------------------------------------------------------------------------
    def build(self) -> World:
        self.local.mkdir(parents=True, exist_ok=True)
        (self.local / SECRET_FILE).write_text(f"{self.mark}-server-file")
        (self.local / "traces.json").write_text(json.dumps({"spans": [f"{self.mark}-trace"]}))
        legacy, unmanaged = f"legacy-{uuid.uuid4().hex[:8]}", f"unmanaged-{uuid.uuid4().hex[:8]}"
        self.ids.update(legacy=legacy, unmanaged=unmanaged)
        for short, workspace in (
            ("b", "team-b"),
            ("y", "vision-y"),
            ("o", "other"),
            ("a", "team-a"),
            ("x", "vision-x"),
            ("d", "default"),
        ):
            exp, run = self.run(workspace)
            self.ids[f"{short}_exp"], self.ids[f"{short}_run"] = exp, run
        for short, workspace in (("b", "team-b"), ("y", "vision-y"), ("o", "other")):
            bucket, prefix = SCOPES[workspace]
            run_key = f"{prefix}{self.ids[short + '_exp']}/{self.ids[short + '_run']}/artifacts"
            self.put(bucket, f"{run_key}/{SECRET_FILE}", f"{self.mark}-{workspace}")
        trace = f"tr-{uuid.uuid4().hex}"
        self.ids["b_trace"] = trace
        self.put(
            "team-b-artifacts",
            f"workspaces/team-b/{self.ids['b_exp']}/traces/{trace}/artifacts/traces.json",
            json.dumps({"spans": [f"{self.mark}-team-b-trace"]}),
        )
        self.put("root", f"{legacy}/{SECRET_FILE}", f"{self.mark}-default-legacy")
        self.put("team-b-artifacts", f"{unmanaged}/{SECRET_FILE}", f"{self.mark}-unmanaged")
        self.victim_keys = self.snapshot()
        return self

    def run(self, workspace: str) -> tuple[str, str]:
        with in_workspace(workspace):
            client = self.server.client()
            exp = client.create_experiment(unique(f"sec-{workspace}"))
            return exp, client.create_run(exp).info.run_id

    def put(self, bucket: str, key: str, body: str) -> None:
        self.s3.put_object(Bucket=bucket, Key=key, Body=body.encode())

    # -- probes -------------------------------------------------------------------------
    def snapshot(self) -> dict[str, set[str]]:
        return {bucket: set(keys(self.s3, bucket)) for bucket in ROUTED_BUCKETS}

    def assert_no_leak(self, *outputs: bytes | str) -> None:
        for output in outputs:
            text = output if isinstance(output, str) else output.decode("utf-8", "replace")
            assert self.mark not in text, f"a victim's secret leaked: {text[:300]}"

    def assert_contained(self, before: dict[str, set[str]], attacker: str) -> list[str]:
        """Nothing outside the attacker's own place was written, and no victim object went.
        Returns the new keys (all inside the attacker's place)."""
        after = self.snapshot()
        bucket, prefix = SCOPES[attacker]
        new = sorted(f"{b}/{k}" for b in after for k in after[b] - before[b])
        outside = [k for k in new if not k.startswith(f"{bucket}/{prefix}")]
        assert outside == [], f"written outside {attacker}'s route: {outside}"
        gone = sorted(f"{b}/{k}" for b in self.victim_keys for k in self.victim_keys[b] - after[b])
        assert gone == [], f"victim objects deleted: {gone}"
        return new

    # -- server-side URI reads ----------------------------------------------------------
    def model_version_read(self, attacker: str, source: str) -> tuple[int, bytes]:
        """Create a model version with ``source`` (as ``attacker``), then read its secret.
        Returns the status of the first refusal (creation or read) and the bytes seen."""
        name = unique("sec-model")
        status, body = http_json(
            self.server,
            "POST",
            "/api/2.0/mlflow/registered-models/create",
            attacker,
            {"name": name},
        )
        assert status == 200, body
        payload = {"name": name, "source": source}
        if source.startswith("runs:/"):
            payload["run_id"] = source.split("/")[1]
        status, created = http_json(
            self.server, "POST", "/api/2.0/mlflow/model-versions/create", attacker, payload
        )
        if status != 200:
            return status, created
        version = json.loads(created)["model_version"]["version"]
        query = urllib.parse.urlencode({"name": name, "version": version, "path": SECRET_FILE})
        status, body = raw_request(
            self.server, "GET", f"/model-versions/get-artifact?{query}", attacker
        )
        return status, created + body

    def trace_read(self, attacker: str, location: str) -> tuple[int, bytes]:
        """Forge ``mlflow.artifactLocation`` on the attacker's own trace, then read it."""
        trace_id = self.start_trace(attacker)
        status, body = http_json(
            self.server,
            "PATCH",
            f"/api/3.0/mlflow/traces/{trace_id}/tags",
            attacker,
            {"key": "mlflow.artifactLocation", "value": location},
        )
        if status != 200:
            return status, body
        query = urllib.parse.urlencode({"request_id": trace_id})
        return raw_request(
            self.server, "GET", f"/ajax-api/2.0/mlflow/get-trace-artifact?{query}", attacker
        )

    def start_trace(self, workspace: str) -> str:
        from mlflow.entities import TraceInfo, TraceLocation, TraceState

        short = {"team-a": "a", "vision-x": "x", "default": "d"}[workspace]
        trace_id = f"tr-{uuid.uuid4().hex}"
        info = TraceInfo(
            trace_id=trace_id,
            trace_location=TraceLocation.from_experiment_id(self.ids[f"{short}_exp"]),
            request_time=int(time.time() * 1000),
            state=TraceState.OK,
        )
        with in_workspace(workspace):
            self.server.client()._tracking_client.store.start_trace(info)
        return trace_id


def raw_request(
    server: MlflowServer,
    method: str,
    path: str,
    workspace: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """Send exactly ``path`` (no client-side normalisation of ``..`` or escapes)."""
    parsed = urllib.parse.urlsplit(server.url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    try:
        conn.request(
            method, path, body=body, headers={"X-MLFLOW-WORKSPACE": workspace, **(headers or {})}
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def http_json(
    server: MlflowServer, method: str, path: str, workspace: str, payload: Any
) -> tuple[int, bytes]:
    return raw_request(
        server,
        method,
        path,
        workspace,
        json.dumps(payload).encode(),
        {"Content-Type": "application/json"},
    )
