"""The audit trail through a real ``ws-artifacts server --app-name basic-auth --audit PATH``:
one exact JSON line per artifact operation, with the request id, the authenticated user and
the remote address, and never a secret."""

from __future__ import annotations

import base64
import json
import re
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.s3 import keys
from tests.support.servers import AUTH_INI, MlflowServer, server_env, start_mlflow
from tests.support.workspaces import unique

pytestmark = pytest.mark.integration

WS_ARTIFACTS = [str(Path(sys.executable).parent / "ws-artifacts"), "server"]
PASSWORD = f"Adm1n-{uuid.uuid4().hex}"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
MPU = "/api/2.0/mlflow-artifacts/mpu"
# uvicorn kills a worker that misses a 5 s health ping; on a loaded 2-core machine a starting
# worker can, and is then restarted over and over.
PATIENT_WORKERS = ["--uvicorn-opts", "--timeout-worker-healthcheck 120"]
VOLATILE = ("time", "duration_ms", "pid")


class Audited:
    def __init__(self, server: MlflowServer, log: Path) -> None:
        self.server, self.log = server, log

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def new_lines(self, before: int, count: int) -> list[dict[str, Any]]:
        """The ``count`` lines after the first ``before`` (they are written as requests end)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            lines = self.lines()
            if len(lines) >= before + count:
                return lines[before:]
            time.sleep(0.05)
        return self.lines()[before:]

    def request(
        self,
        method: str,
        path: str,
        *,
        user: tuple[str, str] | None = ("admin", PASSWORD),
        request_id: str | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        headers = {"X-MLFLOW-WORKSPACE": "team-a", **kwargs.pop("headers", {})}
        headers = {name: value for name, value in headers.items() if value is not None}
        if user:
            token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        if request_id:
            headers["X-Request-ID"] = request_id
        return requests.request(
            method, self.server.url + path, headers=headers, timeout=30, **kwargs
        )


@pytest.fixture(scope="module")
def audited(session_dir: Path, routed_config_file: Path, s3: Any) -> Iterator[Audited]:
    workdir = session_dir / "audited"
    workdir.mkdir()
    ini = workdir / "auth.ini"
    ini.write_text(AUTH_INI.format(db=workdir / "auth.db", password=PASSWORD))
    log = workdir / "log" / "audit.jsonl"  # the directory is created by the server
    server = start_mlflow(
        workdir,
        command=[*WS_ARTIFACTS, "--app-name", "basic-auth", "--audit", str(log)],
        args=["--artifacts-destination", "ws-s3://root", *PATIENT_WORKERS],
        env={
            **server_env(routed_config_file),
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": uuid.uuid4().hex,
        },
        workers=2,
        startup_timeout=900,  # a shared 2-core machine under load starts slowly
    )
    try:
        wrapped = Audited(MlflowServer(server, routed_config_file), log)
        # Created outside any workspace: the guard refuses a request naming one that does
        # not exist yet.
        status = wrapped.request(
            "POST",
            "/api/3.0/mlflow/workspaces",
            json={"name": "team-a"},
            headers={"X-MLFLOW-WORKSPACE": None},
        ).status_code
        assert status in (200, 201)
        yield wrapped
    finally:
        server.stop()


def _stable(line: dict[str, Any]) -> dict[str, Any]:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", line["time"]), line
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0
    assert isinstance(line["pid"], int)
    return {k: v for k, v in line.items() if k not in VOLATILE}


def _expected(operation: str, path: str, size: int | None, request_id: str, **kw: Any) -> Any:
    return {
        "workspace": "team-a",
        "operation": operation,
        "path": f"workspaces/team-a/{path}",
        "location": f"s3://team-a-artifacts/workspaces/team-a/{path}",
        "route_source": kw.get("route_source", "file"),
        "bytes": size,
        "outcome": kw.get("outcome", "ok"),
        "error_code": kw.get("error_code"),
        "request_id": request_id,
        "user": "admin",
        "remote": kw.get("remote", "127.0.0.1"),
        "forwarded_for": kw.get("forwarded_for"),
    }


def test_each_operation_writes_one_exact_line(audited: Audited, s3: Any) -> None:
    base = f"{unique('audit')}/run1/artifacts"
    data = b"weights of team-a" * 100
    before = len(audited.lines())
    put = audited.request("PUT", f"{ARTIFACTS}/{base}/model.pkl", data=data, request_id="put-1")
    assert put.status_code == 200, put.text
    assert put.headers["X-Request-ID"] == "put-1"
    got = audited.request(
        "GET",
        f"{ARTIFACTS}/{base}/model.pkl",
        request_id="get-1",
        headers={"X-Forwarded-For": "203.0.113.7, 10.0.0.1"},
    )
    assert got.content == data
    listed = audited.request("GET", ARTIFACTS, params={"path": base}, request_id="list-1")
    assert listed.json()["files"] == [
        {"path": "model.pkl", "is_dir": False, "file_size": len(data)}
    ]
    missing = audited.request("GET", f"{ARTIFACTS}/{base}/nothing.bin", request_id="get-2")
    assert missing.status_code == 404
    deleted = audited.request("DELETE", f"{ARTIFACTS}/{base}/model.pkl", request_id="del-1")
    assert deleted.status_code == 200, deleted.text
    assert keys(s3, "team-a-artifacts", f"workspaces/team-a/{base}") == []

    lines = [_stable(line) for line in audited.new_lines(before, 5)]
    assert lines == [
        _expected("write", f"{base}/model.pkl", len(data), "put-1"),
        # uvicorn trusts X-Forwarded-For from 127.0.0.1: the client is the nearest address
        # the proxy forwarded; the first one in the header is kept beside it.
        _expected(
            "read",
            f"{base}/model.pkl",
            len(data),
            "get-1",
            remote="10.0.0.1",
            forwarded_for="203.0.113.7",
        ),
        _expected("list", base, None, "list-1"),
        _expected(
            "read",
            f"{base}/nothing.bin",
            None,
            "get-2",
            outcome="error",
            error_code="RESOURCE_DOES_NOT_EXIST",
        ),
        _expected("delete", f"{base}/model.pkl", None, "del-1"),
    ]


def test_multipart_create_complete_and_abort_each_write_one_line(audited: Audited, s3: Any) -> None:
    """The client uploads the parts to the store itself (presigned URLs): the trail has the
    server's part of it, create and complete (or abort), each under its request id."""
    base = f"{unique('audit-mpu')}/run1/artifacts"
    before = len(audited.lines())
    body = {"path": "big.bin", "num_parts": 1}
    created = audited.request("POST", f"{MPU}/create/{base}", json=body, request_id="mpu-1")
    assert created.status_code == 200, created.text
    upload = created.json()
    put = requests.put(upload["credentials"][0]["url"], data=b"one part", timeout=60)
    assert put.status_code == 200, put.text
    parts = [{"part_number": 1, "etag": put.headers["ETag"]}]
    done = audited.request(
        "POST",
        f"{MPU}/complete/{base}",
        json={"path": "big.bin", "upload_id": upload["upload_id"], "parts": parts},
        request_id="mpu-2",
    )
    assert done.status_code == 200, done.text
    other = audited.request("POST", f"{MPU}/create/{base}", json=body, request_id="mpu-3")
    aborted = audited.request(
        "POST",
        f"{MPU}/abort/{base}",
        json={"path": "big.bin", "upload_id": other.json()["upload_id"]},
        request_id="mpu-4",
    )
    assert aborted.status_code == 200, aborted.text
    key = f"workspaces/team-a/{base}/big.bin"
    assert s3.get_object(Bucket="team-a-artifacts", Key=key)["Body"].read() == b"one part"
    assert s3.list_multipart_uploads(Bucket="team-a-artifacts", Prefix=key).get("Uploads", []) == []

    lines = [_stable(line) for line in audited.new_lines(before, 4)]
    path = f"{base}/big.bin"
    assert lines == [
        _expected("multipart_create", path, None, "mpu-1"),
        _expected("multipart_complete", path, None, "mpu-2"),
        _expected("multipart_create", path, None, "mpu-3"),
        _expected("multipart_abort", path, None, "mpu-4"),
    ]


def test_no_secret_reaches_the_trail(audited: Audited) -> None:
    """Neither the password nor the Authorization header nor a signed query string."""
    base = f"{unique('audit')}/run1/artifacts"
    audited.request("PUT", f"{ARTIFACTS}/{base}/a.txt", data=b"a")
    audited.request("GET", f"{ARTIFACTS}/{base}/a.txt?X-Amz-Signature=deadbeef")
    text = audited.log.read_text()
    token = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    for secret in (PASSWORD, token, "Basic ", "deadbeef", "X-Amz", "testing-secret"):
        assert secret not in text


def test_a_refused_login_writes_nothing_and_ids_are_generated(audited: Audited) -> None:
    base = f"{unique('audit')}/run1/artifacts"
    before = len(audited.lines())
    refused = audited.request("PUT", f"{ARTIFACTS}/{base}/x", data=b"x", user=("admin", "wrong"))
    assert refused.status_code == 401
    bad_id = audited.request(
        "PUT", f"{ARTIFACTS}/{base}/y", data=b"yy", request_id="no spaces allowed"
    )
    assert bad_id.status_code == 200
    generated = bad_id.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    lines = [_stable(line) for line in audited.new_lines(before, 1)]
    assert lines == [_expected("write", f"{base}/y", 2, generated)]
