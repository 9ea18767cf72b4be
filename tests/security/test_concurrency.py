"""Eight workspaces, several workers each, uploading and downloading at the same time through
one proxied server (two uvicorn workers): afterwards every object is in its own workspace's
route, counted, with the bytes it was given, and nothing is missing or duplicated elsewhere.
"""

from __future__ import annotations

import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.integration.test_proxied import make_run
from tests.support.s3 import ROUTED_BUCKETS, keys
from tests.support.servers import MlflowServer

pytestmark = pytest.mark.integration

# workspace -> (bucket, prefix before workspaces/); the last two are created here.
PLACES = {
    "team-a": ("team-a-artifacts", ""),
    "team-b": ("team-b-artifacts", ""),
    "vision-x": ("vision-artifacts", "vision-x/"),
    "vision-y": ("vision-artifacts", "vision-y/"),
    "vision-c8": ("vision-artifacts", "vision-c8/"),
    "other": ("root", ""),
    "misc-c8": ("root", ""),
    "default": ("root", ""),
}
WORKERS = 3
FILES = 4


def test_concurrent_uploads_and_downloads_stay_in_their_routes(
    proxied: MlflowServer, s3: Any
) -> None:
    client = proxied.client()
    existing = {w.name for w in client.list_workspaces()}
    for name in ("vision-c8", "misc-c8"):
        if name not in existing:
            client.create_workspace(name)
    runs = {ws: make_run(proxied, ws) for ws in PLACES}
    tag = uuid.uuid4().hex[:8]
    local = threading.local()

    def url(ws: str, name: str) -> str:
        exp, run = runs[ws]
        path = f"workspaces/{ws}/{exp}/{run}/artifacts/{name}"
        return f"{proxied.url}/api/2.0/mlflow-artifacts/artifacts/{path}"

    def body(ws: str, name: str) -> bytes:
        return f"{ws}:{name}:{tag}:".encode() * random.randint(1, 300)

    def worker(job: tuple[str, int]) -> tuple[list[str], dict[str, bytes]]:
        ws, index = job
        session = local.__dict__.setdefault("session", requests.Session())
        problems, sent = [], {}
        header = {"X-MLFLOW-WORKSPACE": ws}
        for n in range(FILES):
            name = f"w{index}/f{n}.bin"
            sent[name] = body(ws, name)
            answer = session.put(url(ws, name), data=sent[name], headers=header, timeout=60)
            if answer.status_code != 200:
                problems.append(f"{ws} put {name}: {answer.status_code}")
        for name, data in sent.items():
            answer = session.get(url(ws, name), headers=header, timeout=60)
            if (answer.status_code, answer.content) != (200, data):
                problems.append(
                    f"{ws} get {name}: {answer.status_code}, {len(answer.content)} bytes"
                )
        exp, run = runs[ws]
        return problems, {f"{ws}/{exp}/{run}/artifacts/{n}": d for n, d in sent.items()}

    jobs = [(ws, i) for i in range(WORKERS) for ws in PLACES]
    random.shuffle(jobs)
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(worker, jobs))
    assert [p for found, _ in results for p in found] == []
    sent = {key: data for _, files in results for key, data in files.items()}

    expected_total = 0
    for ws, (bucket, prefix) in PLACES.items():
        exp, run = runs[ws]
        run_prefix = f"{prefix}workspaces/{ws}/{exp}/{run}/artifacts/"
        stored = keys(s3, bucket, run_prefix)
        assert stored == sorted(
            f"{run_prefix}w{i}/f{n}.bin" for i in range(WORKERS) for n in range(FILES)
        ), ws
        for key in stored:
            data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert data == sent[key.removeprefix(f"{prefix}workspaces/")], key
        expected_total += len(stored)
    assert expected_total == len(PLACES) * WORKERS * FILES
    everywhere = [
        f"{bucket}/{key}"
        for bucket in ROUTED_BUCKETS
        for key in keys(s3, bucket)
        if any(f"/{run}/artifacts/" in key for _, run in runs.values())
    ]
    assert len(everywhere) == expected_total  # no copy anywhere else
