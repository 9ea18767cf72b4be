"""The workloads: their data, and the upload/list/download cases the client subprocess runs
on every access path (``run.py --child SPEC``)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .measure import Channel, measure
from .paths import make_path
from .plan import GIB, KIB, MIB, PATHS, WARM_UP
from .routing import routing_benchmark


def make_data(root: Path, workloads: list[tuple[str, int, int]], huge: bool) -> dict[str, str]:
    """One directory per workload of random files; a sparse 1 GiB file when ``huge``."""
    dirs = {}
    for name, count, size in workloads:
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(count):
            with open(folder / f"f{i:05d}.bin", "wb") as out:
                left = size
                while left:
                    chunk = min(left, 8 * MIB)
                    out.write(os.urandom(chunk))
                    left -= chunk
        dirs[name] = str(folder)
    if huge:
        path = root / "huge" / "model-1GiB.bin"
        path.parent.mkdir()
        with open(path, "wb") as out:
            out.truncate(GIB)
        dirs["1x1GiB"] = str(path)
    return dirs


def _tree_stats(root: str) -> tuple[int, int]:
    files = [os.path.join(d, f) for d, _, names in os.walk(root) for f in names]
    return len(files), sum(os.path.getsize(f) for f in files)


def run_workload(chan: Channel, path: Any, meta: dict[str, Any], spec: dict[str, Any]) -> None:
    """Upload, list and download one workload on one path; check what came back."""
    count, size = spec["count"], spec["size"]
    handle = path.setup(f"{meta['path']}-r{spec['rep']}/{meta['workload']}")
    measure(
        chan,
        {**meta, "op": "upload", "bytes": count * size},
        lambda: path.upload(handle, spec["src"]),
    )
    listed = measure(chan, {**meta, "op": "list", "bytes": 0}, lambda: path.list(handle))
    if listed != count:
        chan.send("WARN", {**meta, "msg": f"list returned {listed} entries, expected {count}"})
    downloads = [("download", "false")]
    if spec.get("presigned") and meta["path"].endswith("proxied"):
        downloads.append(("download-presigned", "true"))
    for op, presigned in downloads:
        dst = tempfile.mkdtemp(dir=spec["scratch"])
        os.environ["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] = presigned
        measure(chan, {**meta, "op": op, "bytes": count * size}, lambda: path.download(handle, dst))  # noqa: B023
        os.environ["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] = "false"
        got = _tree_stats(dst)
        if got != (count, count * size):
            chan.send(
                "WARN",
                {**meta, "op": op, "msg": f"downloaded {got}, expected {(count, count * size)}"},
            )
        shutil.rmtree(dst, ignore_errors=True)


def warm_up(chan: Channel, paths: dict[str, Any], spec: dict[str, Any]) -> None:
    """Upload, list and download two 1 KiB files on every path first, so that imports and
    client construction are not in the timed operations (their rows are kept in the JSON under
    workload ``warm-up``: that is the first-call cost, imports included)."""
    src = Path(spec["scratch"]) / f"warm-up-r{spec['rep']}"
    if not src.exists():
        src.mkdir()
        for i in range(2):
            (src / f"w{i}.bin").write_bytes(os.urandom(KIB))
    for name, path in paths.items():
        meta = {"path": name, "workload": WARM_UP, "server": PATHS[name], "rep": spec["rep"]}
        run_workload(chan, path, meta, {**spec, "count": 2, "size": KIB, "src": str(src)})


def child_main(spec_file: str) -> int:
    """Entry point of the client subprocess (``run.py --child SPEC``): every workload on the
    server-less paths, then (once the parent says the servers answer) on the proxied ones."""
    spec = json.loads(Path(spec_file).read_text())
    chan = Channel()
    paths = {name: make_path(name, spec) for name in PATHS}
    for served in (False, True):
        group = {n: p for n, p in paths.items() if (PATHS[n] is not None) == served}
        if served:
            chan.need_servers()
        warm_up(chan, group, spec)
        for workload, count, size in spec["workloads"]:
            for name, path in group.items():
                meta = {"path": name, "workload": workload, "server": PATHS[name]}
                wl = {
                    **spec,
                    "count": count,
                    "size": size,
                    "src": spec["data"][workload],
                    "presigned": workload == spec["workloads"][-1][0],
                }
                run_workload(chan, path, {**meta, "rep": spec["rep"]}, wl)
    if spec.get("huge"):
        for name in ("stock-proxied", "ours-proxied"):
            meta = {"path": name, "workload": "1x1GiB", "server": name, "rep": spec["rep"]}
            run = paths[name].setup(f"{name}-huge/1x1GiB")
            measure(
                chan,
                {**meta, "op": "upload", "bytes": GIB},
                lambda p=paths[name], r=run: p.upload(r, spec["huge"]),
            )
    if spec.get("routing"):
        chan.send("ROUTING", routing_benchmark(Path(spec["scratch"]), spec["routing"]))
    return 0
