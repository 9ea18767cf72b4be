"""``ws-artifacts server``: the main job, started as a user would, on real processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.s3 import keys
from tests.support.servers import MOTO_KEY, MOTO_SECRET, Server, start_mlflow
from tests.support.workspaces import in_workspace, unique

pytestmark = pytest.mark.integration

WS_ARTIFACTS = [str(Path(sys.executable).parent / "ws-artifacts"), "server"]


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def log_one(server: Server, workspace: str, name: str, data: bytes, tmp: Path) -> tuple[str, str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=server.url)
    if workspace not in {w.name for w in client.list_workspaces()}:
        client.create_workspace(workspace)
    with in_workspace(workspace):
        exp = client.create_experiment(unique(workspace))
        run = client.create_run(exp).info.run_id
        src = tmp / unique("src")
        src.mkdir()
        (src / name).write_bytes(data)
        client.log_artifact(run, str(src / name))
        assert [f.path for f in client.list_artifacts(run)] == [name]
        out = client.download_artifacts(run, name, str(src))
        assert Path(out).read_bytes() == data
    return exp, run


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """`ws-artifacts server` with nothing but a data directory: the embedded default."""
    work = tmp_path_factory.mktemp("embedded")
    server = start_mlflow(
        work, command=[*WS_ARTIFACTS, "--data-dir", str(work / "data")], args=[], env={}, workers=2
    )
    yield server, work / "data" / "artifacts"
    server.stop()


def test_embedded_default_keeps_each_workspace_under_mlflows_layout(
    embedded: tuple[Server, Path], tmp_path: Path
) -> None:
    server, artifacts = embedded
    placed = {
        ws: log_one(server, ws, "model.txt", ws.encode(), tmp_path) for ws in ("ml-a", "ml-b")
    }
    assert files_under(artifacts) == sorted(
        f"workspaces/{ws}/{exp}/{run}/artifacts/model.txt" for ws, (exp, run) in placed.items()
    )
    log = server.log_text()
    assert f"MLflow server with workspaces at {server.url}" in log
    assert f"ws-file://{artifacts}/workspaces/<name>/..." in log


def test_embedded_server_answers_on_several_workers_with_nodelay(
    embedded: tuple[Server, Path],
) -> None:
    import requests

    with requests.Session() as session:
        statuses = {
            session.get(f"{embedded[0].url}/health", timeout=10).status_code for _ in range(20)
        }
    assert statuses == {200}


@pytest.fixture(scope="module")
def routed(
    tmp_path_factory: pytest.TempPathFactory, moto: Server, s3: Any
) -> Iterator[tuple[Server, Path, str]]:
    """A ws-file destination with routes to another directory and to S3 (boto3 and s3fs)."""
    work = tmp_path_factory.mktemp("routed")
    prefix = unique("cmd")
    config = {
        "defaults": {"endpoint_url": moto.url, "region": "us-east-1"},
        "workspaces": {
            "local-team": {"url": f"file://{work}/local-team-store"},
            "s3-team": {"url": f"s3://team-b-artifacts/{prefix}"},
            "fs-*": {
                "url": f"s3://vision-artifacts/{prefix}/{{workspace}}",
                "backend": "fsspec",
                "credentials": {
                    "access_key_id": "${MOTO_KEY}",
                    "secret_access_key": "${MOTO_SECRET}",
                },
            },
        },
    }
    (work / "ws.yaml").write_text(yaml.safe_dump(config))
    server = start_mlflow(
        work,
        command=[
            *WS_ARTIFACTS,
            "--config",
            str(work / "ws.yaml"),
            "--data-dir",
            str(work / "data"),
        ],
        args=[],
        env={
            "AWS_ACCESS_KEY_ID": MOTO_KEY,
            "AWS_SECRET_ACCESS_KEY": MOTO_SECRET,
            "MOTO_KEY": MOTO_KEY,
            "MOTO_SECRET": MOTO_SECRET,
        },
        workers=2,
    )
    yield server, work, prefix
    server.stop()


def test_file_destination_with_routes_to_other_stores(
    routed: tuple[Server, Path, str], s3: Any, tmp_path: Path
) -> None:
    server, work, prefix = routed
    a = log_one(server, "local-team", "a.txt", b"local", tmp_path)
    b = log_one(server, "s3-team", "b.txt", b"boto3", tmp_path)
    c = log_one(server, "fs-x", "c.txt", b"s3fs", tmp_path)
    d = log_one(server, "unrouted", "d.txt", b"dest", tmp_path)
    assert files_under(work / "local-team-store") == [
        f"workspaces/local-team/{a[0]}/{a[1]}/artifacts/a.txt"
    ]
    assert keys(s3, "team-b-artifacts", prefix) == [
        f"{prefix}/workspaces/s3-team/{b[0]}/{b[1]}/artifacts/b.txt"
    ]
    assert keys(s3, "vision-artifacts", prefix) == [
        f"{prefix}/fs-x/workspaces/fs-x/{c[0]}/{c[1]}/artifacts/c.txt"
    ]
    assert files_under(work / "data" / "artifacts") == [
        f"workspaces/unrouted/{d[0]}/{d[1]}/artifacts/d.txt"
    ]
    assert MOTO_SECRET not in server.log_text()


NODELAY_PROBE = textwrap.dedent(
    """
    import asyncio, socket, sys
    from ws_artifacts.serving.worker_process import enable_nodelay
    if sys.argv[1] == "on":
        enable_nodelay()
    seen = []
    async def main():
        listener = socket.socket(socket.AF_INET)  # proto 0, as uvicorn binds with workers > 1
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        async def handle(reader, writer):
            sock = writer.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()
        server = await asyncio.start_server(handle, sock=listener)
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        await reader.read()
        writer.close()
        server.close()
    asyncio.run(main())
    print(seen[0])
    """
)


@pytest.mark.parametrize(("mode", "expected"), [("off", "0"), ("on", "1")], ids=["stock", "ours"])
def test_nodelay_is_set_on_sockets_bound_like_uvicorn_workers(mode: str, expected: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", NODELAY_PROBE, mode], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == expected
