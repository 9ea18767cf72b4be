"""``usage``: exact objects and bytes per workspace, route and experiment, measured against a
moto S3 server and fsspec routes after uploads of every kind, deletes and moves."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.usage_world import MIB, use, write, write_world
from tests.support.servers import Server
from tests.support.workspaces import in_workspace, unique
from ws_artifacts.cli.main import main
from ws_artifacts.core.loading import load_config
from ws_artifacts.lifecycle.usage import discover, measure
from ws_artifacts.lifecycle.usage_report import Row
from ws_artifacts.storage.base import TEMP_PREFIX
from ws_artifacts.storage.s3 import listing

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, moto: Server, s3: Any) -> Path:
    return write_world(tmp_path_factory.mktemp("fs-routes"), moto.url, s3)


@pytest.fixture
def config(world: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    use(monkeypatch, world)
    return world


def repo(workspace: str, exp: str, scheme: str = "ws-s3://root") -> Any:
    return get_artifact_repository(f"{scheme}/workspaces/{workspace}/{exp}/r1/artifacts")


async def chunks(data: bytes, size: int = 300) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def by_workspace(rows: list[Row]) -> dict[tuple[str, str], tuple[int, int]]:
    return {(r.place.workspace, r.place.route.name): (r.total.objects, r.total.bytes) for r in rows}


def experiments(row: Row) -> dict[str, tuple[int, int]]:
    return {exp: (u.objects, u.bytes) for exp, u in row.experiments.items()}


def test_exact_counts_after_every_kind_of_upload_delete_and_move(
    config: Path, tmp_path: Path
) -> None:
    ws, unrouted = unique("uc"), unique("zz")
    with in_workspace(ws):
        one = repo(ws, "1")
        one.log_artifact(write(tmp_path, "a.txt", 100))  # single PUT
        one.log_artifact(write(tmp_path, "big.bin", 17 * MIB))  # multipart (>= 16 MiB)
        one.log_artifact_from_stream(io.BytesIO(b"s" * (3 * MIB)), "s.bin")  # spooled stream
        two = repo(ws, "2")
        for name, size in (("d/x", 10), ("d/y", 20), ("d/z", 30)):
            write(tmp_path / "tree", name, size)
        two.log_artifacts(str(tmp_path / "tree"))
        two.delete_artifacts("d/y")
        asyncio.run(two.log_artifact_from_async_stream(chunks(b"q" * 1000), "as.bin"))
        two.log_artifact(write(tmp_path, "c.txt", 5), "old")  # moved: copied, then deleted
        two.log_artifact(write(tmp_path, "c.txt", 5), "new")
        two.delete_artifacts("old")
    with in_workspace(unrouted):
        repo(unrouted, "9").log_artifact(write(tmp_path, "u.txt", 7))

    cfg = load_config(config)
    rows = measure(discover(cfg, "ws-s3://root", [ws, unrouted]), by_experiment=True)
    assert by_workspace(rows) == {
        (ws, "uc-*"): (7, 100 + 17 * MIB + 3 * MIB + 10 + 30 + 1000 + 5),
        (unrouted, "(default destination)"): (1, 7),
    }
    assert [r.place.workspace for r in rows] == [ws, unrouted]  # largest first
    assert rows[0].place.uri == f"s3://usage-artifacts/{ws}/workspaces/{ws}"
    assert experiments(rows[0]) == {"1": (3, 100 + 20 * MIB), "2": (4, 1045)}
    assert experiments(rows[1]) == {"9": (1, 7)}

    found = by_workspace(measure(discover(cfg, "ws-s3://root")))
    assert found[(ws, "uc-*")] == (7, 100 + 20 * MIB + 1045)
    assert found[(unrouted, "(default destination)")] == (1, 7)


def test_a_big_workspace_is_split_and_every_key_counted_once(
    config: Path, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "PAGE_KEYS", 20)  # split at every level, with few objects
    ws = unique("uc")
    scope = f"{ws}/workspaces/{ws}"
    layout = [("1", f"r{i % 3}/artifacts/f{i}") for i in range(150)]
    layout += [("2", f"r0/artifacts/d{i % 4}/f{i}") for i in range(70)]
    layout += [("3", f"r9/artifacts/f{i}") for i in range(10)]
    objects = {f"{scope}/{exp}/{rest}": (i % 7) + 1 for i, (exp, rest) in enumerate(layout)}
    objects[f"{scope}/meta.txt"] = 3

    def put(item: tuple[str, int]) -> None:
        s3.put_object(Bucket="usage-artifacts", Key=item[0], Body=b"k" * item[1])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, objects.items()))
    expected: dict[str, tuple[int, int]] = {}
    for key, size in objects.items():
        rest = key[len(scope) + 1 :]
        exp = rest.split("/", 1)[0] if "/" in rest else ""
        n, b = expected.get(exp, (0, 0))
        expected[exp] = (n + 1, b + size)

    places = discover(load_config(config), "ws-s3://root", [ws])
    calls: list[tuple[int, int, int]] = []
    for parallel in (1, 16):
        (row,) = measure(
            places, by_experiment=True, parallel=parallel, progress=lambda *a: calls.append(a)
        )
        assert (row.total.objects, row.total.bytes) == (231, sum(objects.values()))
        # A file at the top of the place belongs to no experiment: the unknown kind has it.
        assert experiments(row) == {k: v for k, v in expected.items() if k}
        assert {k: (u.objects, u.bytes) for k, u in row.kinds.items()} == {"unknown": (1, 3)}
    assert calls[-1][0] == 231  # the progress callback saw every object
    assert calls[-1][1] == calls[-1][2] > 1  # the listing was split into several


def test_fsspec_routes_local_files_and_memory(config: Path, tmp_path: Path) -> None:
    on_disk, in_memory = unique("uf"), unique("um")
    with in_workspace(on_disk):
        files = repo(on_disk, "4", "ws-s3://root")
        files.log_artifact(write(tmp_path, "m.bin", 300))
        files.log_artifact_from_stream(io.BytesIO(b"z" * 200), "n.bin", "sub")
        files.log_artifact(write(tmp_path, ".ws-artifacts-mine", 7))  # a user's file: counted
    with in_workspace(in_memory):
        mem = repo(in_memory, "5")
        mem.log_artifact(write(tmp_path, "k.bin", 1234))
        mem.log_artifact(write(tmp_path, "l.bin", 66), "deep/er")
    cfg = load_config(config)
    fs_root = Path(cfg.workspaces["uf-*"].url.removeprefix("file://").replace("{workspace}", ""))
    experiment = fs_root / on_disk / "workspaces" / on_disk / "4"
    (experiment / f"{TEMP_PREFIX}inflight").write_bytes(b"an upload in flight: not counted")
    (experiment / "r1/artifacts/sub" / f"{TEMP_PREFIX}deeper").write_bytes(b"not counted either")
    rows = measure(discover(cfg, "ws-s3://root", [on_disk, in_memory]), by_experiment=True)
    assert by_workspace(rows) == {(in_memory, "um-*"): (2, 1300), (on_disk, "uf-*"): (3, 507)}
    assert [experiments(r) for r in rows] == [{"5": (2, 1300)}, {"4": (3, 507)}]


def test_cli_json_and_prometheus(config: Path, tmp_path: Path) -> None:
    ws, unrouted = unique("uc"), unique("ud")
    with in_workspace(ws):  # the larger experiment has the larger id: largest first inverts
        repo(ws, "3").log_artifact(write(tmp_path, "p.bin", 10))
        repo(ws, "4").log_artifact(write(tmp_path, "q.bin", 4096))
    with in_workspace(unrouted):  # no route: the default destination
        repo(unrouted, "7").log_artifact(write(tmp_path, "r.bin", 1024))
    args = ["usage", "--config", str(config), "--destination", "ws-s3://root", ws, unrouted]
    result = CliRunner().invoke(main, [*args, "--json", "--by", "experiment"])
    assert result.exit_code == 0, result.output
    url = f"s3://usage-artifacts/{ws}/workspaces/{ws}"
    assert json.loads(result.output) == {
        "workspaces": [
            {
                "workspace": ws,
                "route": "uc-*",
                "source": "glob",
                "url": url,
                "objects": 2,
                "bytes": 4106,
                "experiments": [
                    {"experiment_id": "4", "name": None, "objects": 1, "bytes": 4096},
                    {"experiment_id": "3", "name": None, "objects": 1, "bytes": 10},
                ],
            },
            {
                "workspace": unrouted,
                "route": "(default destination)",
                "source": "default",
                "url": f"s3://root/workspaces/{unrouted}",
                "objects": 1,
                "bytes": 1024,
                "experiments": [
                    {"experiment_id": "7", "name": None, "objects": 1, "bytes": 1024},
                ],
            },
        ],
        "total": {"objects": 3, "bytes": 5130},
        "default_destination": {"objects": 1, "bytes": 1024, "share": round(1024 / 5130, 4)},
    }
    text = CliRunner().invoke(main, [*args, "--prometheus"])
    assert text.exit_code == 0, text.output
    samples = {
        (s.name, s.labels["workspace"], s.labels["route"]): s.value
        for family in text_string_to_metric_families(text.output)
        for s in family.samples
    }
    assert samples == {
        ("ws_artifacts_workspace_bytes", ws, "uc-*"): 4106.0,
        ("ws_artifacts_workspace_objects", ws, "uc-*"): 2.0,
        ("ws_artifacts_workspace_bytes", unrouted, "(default destination)"): 1024.0,
        ("ws_artifacts_workspace_objects", unrouted, "(default destination)"): 1.0,
    }
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0, table.output
    assert "2 place(s), 3 objects, 5130 bytes (5.0 KiB); default destination's share: 20.0%" in (
        table.output.replace("\n", " ")
    )


def test_cli_names_the_fix_when_the_store_is_unreachable(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "defaults: {endpoint_url: 'http://127.0.0.1:9', region: us-east-1, max_attempts: 1}\n"
        "workspaces:\n  uc-gone:\n    url: s3://nowhere\n"
        "    credentials: {access_key_id: k, secret_access_key: s}\n"
    )
    result = CliRunner().invoke(
        main, ["usage", "--config", str(bad), "--destination", "ws-file:///nonexistent", "uc-gone"]
    )
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert (
        "list failed for workspace 'uc-gone' at s3://nowhere/workspaces/uc-gone with static "
        "keys: EndpointConnectionError; check the route's endpoint_url and that the store is "
        "reachable." in message
    )
