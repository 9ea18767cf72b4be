"""Two ``ws-artifacts server`` processes (2 workers each) on one PostgreSQL database and one
configuration file, moto S3 behind them, and a client that alternates between them request by
request: no server holds state the other needs.

The tests run in file order; the last one kills a server.
"""

from __future__ import annotations

import importlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests

from tests.support.config import ConfigFile
from tests.support.postgres import Postgres
from tests.support.s3 import keys
from tests.support.servers import Server, server_env, start_mlflow
from tests.support.workspaces import unique
from ws_artifacts.serving.live_config import CHECK_EVERY, SETTLE_SECONDS

pytestmark = pytest.mark.integration

WS_ARTIFACTS = [str(Path(sys.executable).parent / "ws-artifacts"), "server"]
MIB = 1024 * 1024
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
# uvicorn kills a worker that misses a 5 s health ping; on a loaded 2-core machine a starting
# worker can, and is then restarted over and over.
PATIENT_WORKERS = ["--uvicorn-opts", "--timeout-worker-healthcheck 120"]
MPU = "/api/2.0/mlflow-artifacts/mpu"
WORKSPACES = ("team-a", "team-b", "vision-x", "other")
# workspace -> (bucket, key prefix before "workspaces/")
PLACES = {
    "team-a": ("team-a-artifacts", ""),
    "team-b": ("team-b-artifacts", ""),
    "vision-x": ("vision-artifacts", "vision-x/"),
    "other": ("root", ""),
}
# README: a worker takes a change on its first request once the file has been left alone for
# SETTLE_SECONDS and CHECK_EVERY has passed since the worker last looked (a look during the
# settling second keeps the old routes until the next one): at most 2 s after the write.
RELOAD_INTERVAL = SETTLE_SECONDS + CHECK_EVERY


def scale_config(endpoint: str, team_b: str = "s3://team-b-artifacts") -> str:
    config = ConfigFile(endpoint).with_defaults(
        transfer={"multipart_threshold": 5242880, "part_size": 5242880}
    )
    config.route("team-a", "s3://team-a-artifacts").route("team-b", team_b)
    return config.route("vision-*", "s3://vision-artifacts/{workspace}").text()


def write_atomically(path: Path, text: str) -> None:
    """What a configuration manager does: readers see the old file or the new, never half."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass
class Pair:
    """Both servers, and a client that alternates between them call by call."""

    servers: list[Server]
    config: Path
    database: str
    moto_url: str

    def __post_init__(self) -> None:
        self._next = itertools.cycle(range(len(self.servers)))

    def url(self, index: int | None = None) -> str:
        return self.servers[next(self._next) if index is None else index].url

    def call(
        self, method: str, path: str, workspace: str, *, index: int | None = None, **kw: Any
    ) -> requests.Response:
        headers = {"X-MLFLOW-WORKSPACE": workspace, **kw.pop("headers", {})}
        return requests.request(method, self.url(index) + path, headers=headers, timeout=60, **kw)

    def run(self, workspace: str) -> tuple[str, str]:
        """An experiment (made on one server) and a run in it (made on the other)."""
        exp = self.call(
            "POST", "/api/2.0/mlflow/experiments/create", workspace, json={"name": unique("so")}
        )
        assert exp.status_code == 200, exp.text
        exp_id = exp.json()["experiment_id"]
        run = self.call(
            "POST", "/api/2.0/mlflow/runs/create", workspace, json={"experiment_id": exp_id}
        )
        assert run.status_code == 200, run.text
        return exp_id, run.json()["run"]["info"]["run_id"]


#: Whether MLflow streams a proxied upload to the store as it arrives (3.11+).
_STREAMED = hasattr(
    importlib.import_module("mlflow.store.artifact.artifact_repo"), "StreamUploadMixin"
)
#: Whether `mlflow db upgrade` creates the schema of an empty database (MLflow 3.11 and later).
_DB_UPGRADE_CREATES_SCHEMA = tuple(int(p) for p in mlflow.__version__.split(".")[:2]) >= (3, 11)


def _migrate(uri: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlflow", "db", "upgrade", uri],
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,  # 20 s of CPU; far longer on a loaded shared machine
    )


@pytest.fixture(scope="module")
def pair(session_dir: Path, postgres: Postgres, moto: Server, s3: Any) -> Iterator[Pair]:
    """The database is migrated once (`mlflow db upgrade`), then both servers start on it."""
    database = unique("scale").replace("-", "_")
    uri = postgres.create_database(database)
    if not _DB_UPGRADE_CREATES_SCHEMA:
        # MLflow 3.10's `db upgrade` cannot create an empty database's schema (see
        # docs/deployment.md): there, the first server creates it, then the second starts.
        migrated = None
    else:
        migrated = _migrate(uri)
        assert migrated.returncode == 0, migrated.stderr
    config = session_dir / "scale-out.yaml"
    config.write_text(scale_config(moto.url))
    s3.create_bucket(Bucket="team-b-moved")

    def start(name: str) -> Server:
        return start_mlflow(
            session_dir / name,
            command=WS_ARTIFACTS,
            backend_store_uri=uri,
            args=["--artifacts-destination", "ws-s3://root", *PATIENT_WORKERS],
            env=server_env(config),
            workers=2,
            startup_timeout=900,  # two at once on a shared 2-core machine
        )

    if migrated is None:
        servers = [start("scale-1")]
        servers.append(start("scale-2"))
    else:
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(start, name) for name in ("scale-1", "scale-2")]
            servers = [f.result() for f in futures]
    try:
        pair = Pair(servers, config, database, moto.url)
        for workspace in WORKSPACES:  # one server creates, the other sees it at once
            created = pair.call(
                "POST", "/api/3.0/mlflow/workspaces", "default", json={"name": workspace}
            )
            assert created.status_code in (200, 201), created.text
        yield pair
    finally:
        for server in servers:
            server.stop()


def test_the_migrations_ran_on_postgresql_and_both_servers_use_it(
    pair: Pair, postgres: Postgres
) -> None:
    again = _migrate(postgres.uri(pair.database))  # idempotent
    assert again.returncode == 0, again.stderr
    assert len(postgres.query(pair.database, "SELECT version_num FROM alembic_version")) == 1
    names = postgres.query(pair.database, "SELECT name FROM workspaces ORDER BY name")
    assert [n for (n,) in names] == sorted(["default", *WORKSPACES])
    exp_id, _ = pair.run("team-a")  # made through one server, read through the other
    got = pair.call(
        "GET",
        "/api/2.0/mlflow/experiments/get",
        "team-a",
        index=1,
        params={"experiment_id": exp_id},
    )
    assert got.status_code == 200, got.text
    rows = postgres.query(
        pair.database,
        f"SELECT workspace FROM experiments WHERE experiment_id = {int(exp_id)}",  # noqa: S608
    )
    assert rows == [("team-a",)]


@pytest.mark.parametrize("workspace", WORKSPACES)
def test_alternating_requests_land_in_the_workspace_route(
    pair: Pair, s3: Any, workspace: str
) -> None:
    exp, run = pair.run(workspace)
    base = f"{exp}/{run}/artifacts"
    files = {f"f{i}.txt": f"{workspace} {i}".encode() for i in range(6)}
    for name, data in files.items():  # 3 uploads through each server
        put = pair.call("PUT", f"{ARTIFACTS}/{base}/{name}", workspace, data=data)
        assert put.status_code == 200, put.text
    bucket, prefix = PLACES[workspace]
    run_prefix = f"{prefix}workspaces/{workspace}/{base}/"
    assert keys(s3, bucket, run_prefix) == sorted(run_prefix + name for name in files)
    for other in {b for b, _ in PLACES.values()} - {bucket}:
        assert keys(s3, other, f"workspaces/{workspace}/{exp}/") == []
    for name, data in files.items():
        assert pair.call("GET", f"{ARTIFACTS}/{base}/{name}", workspace).content == data
    for index in (0, 1):
        listed = pair.call("GET", ARTIFACTS, workspace, index=index, params={"path": base})
        assert sorted(f["path"] for f in listed.json()["files"]) == sorted(files)


def test_a_multipart_upload_started_on_one_server_completes_on_the_other(
    pair: Pair, s3: Any
) -> None:
    exp, run = pair.run("team-a")
    base = f"{exp}/{run}/artifacts"
    parts = [os.urandom(5 * MIB), os.urandom(1234)]
    created = pair.call(
        "POST",
        f"{MPU}/create/{base}",
        "team-a",
        index=0,
        json={"path": "big.bin", "num_parts": len(parts)},
    )
    assert created.status_code == 200, created.text
    body = created.json()
    etags = []
    for credential, data in zip(body["credentials"], parts, strict=True):
        assert credential["url"].startswith(pair.moto_url + "/team-a-artifacts/")
        put = requests.put(credential["url"], data=data, timeout=60)
        assert put.status_code == 200, put.text
        etags.append({"part_number": credential["part_number"], "etag": put.headers["ETag"]})
    done = pair.call(
        "POST",
        f"{MPU}/complete/{base}",
        "team-a",
        index=1,
        json={"path": "big.bin", "upload_id": body["upload_id"], "parts": etags},
    )
    assert done.status_code == 200, done.text
    key = f"workspaces/team-a/{base}/big.bin"
    assert s3.get_object(Bucket="team-a-artifacts", Key=key)["Body"].read() == b"".join(parts)
    pending = s3.list_multipart_uploads(Bucket="team-a-artifacts", Prefix=key).get("Uploads", [])
    assert pending == []


def _lands_in(s3: Any, pair: Pair, index: int, base: str) -> str:
    """Upload one file to team-b through server ``index``; the bucket it landed in."""
    name = unique("probe")
    put = pair.call("PUT", f"{ARTIFACTS}/{base}/{name}", "team-b", index=index, data=b"p")
    assert put.status_code == 200, put.text
    key = f"workspaces/team-b/{base}/{name}"
    for bucket in ("team-b-artifacts", "team-b-moved"):
        if keys(s3, bucket, key) == [key]:
            return bucket
    raise AssertionError(f"{key} landed nowhere")


def test_a_configuration_change_is_picked_up_by_both_servers(pair: Pair, s3: Any) -> None:
    exp, run = pair.run("team-b")
    base = f"{exp}/{run}/artifacts"
    assert {_lands_in(s3, pair, i, base) for i in (0, 1, 0, 1)} == {"team-b-artifacts"}
    write_atomically(pair.config, scale_config(pair.moto_url, team_b="s3://team-b-moved"))
    changed = time.monotonic()
    try:
        deadline = changed + 20 * RELOAD_INTERVAL
        while True:  # poll: each server's next request after the interval reads the new file
            seen = {_lands_in(s3, pair, i, base) for i in (0, 1)}
            if seen == {"team-b-moved"} and time.monotonic() - changed > RELOAD_INTERVAL:
                break
            assert time.monotonic() < deadline, f"still routed to {seen}"
        # every worker of both servers now routes there (8 requests over 4 workers), however
        # recently a worker last looked at the file
        assert {_lands_in(s3, pair, i % 2, base) for i in range(8)} == {"team-b-moved"}
    finally:
        write_atomically(pair.config, scale_config(pair.moto_url))
    deadline = time.monotonic() + 20 * RELOAD_INTERVAL
    while {_lands_in(s3, pair, i, base) for i in (0, 1)} != {"team-b-artifacts"}:
        assert time.monotonic() < deadline, "the restored file was not picked up"


def test_a_server_killed_mid_upload_leaves_nothing_after_the_retry(pair: Pair, s3: Any) -> None:
    """SIGKILL (the whole process group) while the server has a multipart upload open: no
    object appears, and the client's retry through the other server completes the object and
    aborts the upload the dead server left pending."""
    exp, run = pair.run("team-a")
    base = f"{exp}/{run}/artifacts"
    key = f"workspaces/team-a/{base}/model.bin"
    data = os.urandom(60 * MIB)  # 12 parts of 5 MiB
    victim = pair.servers[0]

    def pending() -> list[str]:
        uploads = s3.list_multipart_uploads(Bucket="team-a-artifacts", Prefix=key)
        return [u["UploadId"] for u in uploads.get("Uploads", []) if u["Key"] == key]

    halfway = threading.Event()

    def body() -> Iterator[bytes]:
        for start in range(0, len(data), MIB):
            yield data[start : start + MIB]
            if start >= len(data) // 2:
                halfway.set()
            time.sleep(0.05)  # a client on a slow link: the upload stays open a while

    outcome: list[BaseException | int] = []

    def upload() -> None:
        try:
            response = requests.put(
                f"{victim.url}{ARTIFACTS}/{base}/model.bin",
                headers={"X-MLFLOW-WORKSPACE": "team-a"},
                data=body(),
                timeout=120,
            )
            outcome.append(response.status_code)
        except requests.RequestException as err:
            outcome.append(err)

    thread = threading.Thread(target=upload)
    thread.start()
    deadline = time.monotonic() + 120
    # MLflow 3.11+ streams the body to S3 as it arrives: the kill comes once parts are up.
    # MLflow 3.10 spools the whole body to a file first: the kill comes while it is received.
    while _STREAMED and not pending():
        assert thread.is_alive(), f"the upload ended before any part went up: {outcome}"
        assert time.monotonic() < deadline, "no multipart upload was started"
        time.sleep(0.02)
    if not _STREAMED:
        assert halfway.wait(120), "the body was not half sent"
    os.killpg(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait(timeout=30)
    thread.join(timeout=120)
    assert len(outcome) == 1, outcome
    assert isinstance(outcome[0], requests.RequestException), outcome
    assert keys(s3, "team-a-artifacts", key) == []  # no partial object
    left = pending()
    assert len(left) == (1 if _STREAMED else 0)  # what the dead server could not abort

    retry = pair.call("PUT", f"{ARTIFACTS}/{base}/model.bin", "team-a", index=1, data=data)
    assert retry.status_code == 200, retry.text
    assert s3.get_object(Bucket="team-a-artifacts", Key=key)["Body"].read() == data
    assert pending() == []
