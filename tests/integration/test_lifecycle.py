"""Workspace deletion, quarantine, restore, purge, re-creation and orphans, through a real
``ws-artifacts server`` (2 workers, the ``ws+sqlite`` provider on by default) and moto."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.config import ConfigFile
from tests.support.servers import (
    MOTO_KEY,
    MOTO_SECRET,
    MlflowServer,
    Server,
    run_ws_artifacts,
    start_ws_artifacts,
)
from tests.support.workspaces import in_workspace

pytestmark = pytest.mark.integration

ROUTED, GLOB, ROOT = "life-routed", "life-glob", "life-root"
Q = ".ws-quarantine"


@dataclass
class Life(MlflowServer):
    """The module's server, its configuration and database, and moto's admin client."""

    db: Path
    s3: Any

    def cli(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = run_ws_artifacts(self.config, *args, "--destination", f"ws-s3://{ROOT}")
        if ok:
            assert done.returncode == 0, done.stderr + done.stdout
        return done

    def delete(self, name: str, mode: str) -> int:
        """DELETE the workspace over REST, without the client's two minutes of retries."""
        answer = requests.delete(
            f"{self.url}/api/3.0/mlflow/workspaces/{name}", params={"mode": mode}, timeout=60
        )
        return answer.status_code


def all_keys(s3: Any, bucket: str, prefix: str = "") -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


@pytest.fixture(scope="module")
def life(tmp_path_factory: pytest.TempPathFactory, moto: Server, s3: Any) -> Iterator[Life]:
    work = tmp_path_factory.mktemp("life")
    for bucket in (ROUTED, GLOB, ROOT):
        s3.create_bucket(Bucket=bucket)
    config = ConfigFile(moto.url).route("lc-a", f"s3://{ROUTED}")
    config.route("lc-moved", f"s3://{ROUTED}/now", previous=[f"s3://{GLOB}/before"])
    path = config.route("lcv-*", f"s3://{GLOB}/{{workspace}}").write(work / "ws.yaml")
    server = start_ws_artifacts(work, path, f"ws-s3://{ROOT}")
    yield Life(server, path, work / "mlflow.db", s3)
    server.stop()


def log_run(life: Life, workspace: str, files: dict[str, bytes], tmp: Path) -> tuple[str, str]:
    client = life.client()
    with in_workspace(workspace):
        exp = client.create_experiment(f"exp-{workspace}-{len(list(tmp.iterdir()))}")
        run = client.create_run(exp).info.run_id
        src = tmp / f"src-{run}"
        src.mkdir()
        for name, data in files.items():
            (src / name).write_bytes(data)
            client.log_artifact(run, str(src / name))
    return exp, run


def only_stamp(s3: Any, bucket: str, base: str, workspace: str) -> str:
    prefix = f"{base}{Q}/{workspace}/"
    answer = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/")
    stamps = [c["Prefix"][len(prefix) :].rstrip("/") for c in answer.get("CommonPrefixes", [])]
    assert len(stamps) == 1, stamps
    return stamps[0]


FILES = {"model.bin": b"weights" * 100, "notes.txt": b"hello"}


@pytest.mark.parametrize(
    ("workspace", "mode", "bucket", "base"),
    [
        ("lc-a", "CASCADE", ROUTED, ""),
        ("lcv-one", "CASCADE", GLOB, "lcv-one/"),
        ("lc-dest", "SET_DEFAULT", ROOT, ""),
    ],
    ids=["cascade-routed", "cascade-glob", "set-default-destination"],
)
def test_deletion_moves_everything_to_quarantine(
    life: Life, tmp_path: Path, workspace: str, mode: str, bucket: str, base: str
) -> None:
    life.client().create_workspace(workspace)
    exp, run = log_run(life, workspace, FILES, tmp_path)
    before = all_keys(life.s3, bucket, f"{base}workspaces/{workspace}/")
    assert sorted(before) == [
        f"{base}workspaces/{workspace}/{exp}/{run}/artifacts/{n}" for n in sorted(FILES)
    ]

    assert life.delete(workspace, mode) == 204

    assert all_keys(life.s3, bucket, f"{base}workspaces/{workspace}/") == {}
    stamp = only_stamp(life.s3, bucket, base, workspace)
    root = f"{base}{Q}/{workspace}/{stamp}"
    moved = all_keys(life.s3, bucket, f"{root}/")
    manifest = json.loads(moved.pop(f"{root}/ws-quarantine.json"))
    assert moved == {f"{root}/{key[len(base) :]}": data for key, data in before.items()}
    assert manifest["state"] == "quarantined"
    assert manifest["reason"] == f"delete_workspace {mode}"
    assert (manifest["objects"], manifest["bytes"]) == (2, sum(map(len, FILES.values())))
    assert manifest["deleted_at"].endswith("Z")
    assert workspace not in {w.name for w in life.client().list_workspaces()}


def test_set_default_experiment_reads_nothing_of_the_quarantine(life: Life, tmp_path: Path) -> None:
    life.client().create_workspace("lc-sd")
    exp, run = log_run(life, "lc-sd", {"x.txt": b"x"}, tmp_path)
    assert life.delete("lc-sd", "SET_DEFAULT") == 204
    client = life.client()
    with in_workspace("default"):
        assert client.get_experiment(exp).name.startswith("exp-lc-sd")
        with pytest.raises(requests.HTTPError, match="targets workspace 'lc-sd' but the work"):
            client.list_artifacts(run)


def test_restrict_on_a_workspace_with_experiments_moves_nothing(life: Life, tmp_path: Path) -> None:
    life.client().create_workspace("lc-keep")
    _, run = log_run(life, "lc-keep", FILES, tmp_path)
    before = all_keys(life.s3, ROOT, "workspaces/lc-keep/")

    assert life.delete("lc-keep", "RESTRICT") >= 400

    assert all_keys(life.s3, ROOT, "workspaces/lc-keep/") == before
    assert all_keys(life.s3, ROOT, f"{Q}/lc-keep/") == {}
    with in_workspace("lc-keep"):
        assert sorted(f.path for f in life.client().list_artifacts(run)) == sorted(FILES)


def test_restrict_on_an_empty_workspace_quarantines_its_leftovers(life: Life) -> None:
    life.client().create_workspace("lc-empty")
    life.s3.put_object(Bucket=ROOT, Key="workspaces/lc-empty/7/r/artifacts/old", Body=b"old")

    assert life.delete("lc-empty", "RESTRICT") == 204

    stamp = only_stamp(life.s3, ROOT, "", "lc-empty")
    assert sorted(all_keys(life.s3, ROOT, f"{Q}/lc-empty/")) == [
        f"{Q}/lc-empty/{stamp}/workspaces/lc-empty/7/r/artifacts/old",
        f"{Q}/lc-empty/{stamp}/ws-quarantine.json",
    ]
    assert all_keys(life.s3, ROOT, "workspaces/lc-empty/") == {}


def test_recreated_workspace_with_a_reused_experiment_id_starts_empty(
    life: Life, tmp_path: Path
) -> None:
    import mlflow

    client = life.client()
    client.create_workspace("lc-re")
    old_exp, old_run = log_run(life, "lc-re", {"secret.txt": b"old owner"}, tmp_path)
    assert life.delete("lc-re", "CASCADE") == 204
    client.create_workspace("lc-re")
    with in_workspace("lc-re"):
        new_exp = client.create_experiment(f"exp-lc-re-{len(list(tmp_path.iterdir()))}")
        assert new_exp == old_exp  # SQLite reuses the id of the deleted experiment
        new_run = client.create_run(new_exp).info.run_id
        assert [f.path for f in client.list_artifacts(new_run)] == []
        listed = mlflow.artifacts.list_artifacts(
            artifact_uri=f"mlflow-artifacts:/workspaces/lc-re/{new_exp}",
            tracking_uri=life.url,
        )
        assert [f.path for f in listed or []] == []
        out = tmp_path / "out"
        out.mkdir()
        with pytest.raises(Exception, match=r"(?i)not found|does not exist|No such"):
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"mlflow-artifacts:/workspaces/lc-re/{old_exp}/{old_run}"
                "/artifacts/secret.txt",
                dst_path=str(out),
                tracking_uri=life.url,
            )
    assert list(out.iterdir()) == []


def test_create_quarantines_leftovers_of_a_deletion_made_without_the_provider(
    life: Life,
) -> None:
    # What a deletion with the provider off leaves behind: objects in the place.
    life.s3.put_object(Bucket=GLOB, Key="lcv-left/workspaces/lcv-left/3/r/artifacts/b", Body=b"b")
    life.client().create_workspace("lcv-left")

    assert all_keys(life.s3, GLOB, "lcv-left/workspaces/") == {}
    stamp = only_stamp(life.s3, GLOB, "lcv-left/", "lcv-left")
    root = f"lcv-left/{Q}/lcv-left/{stamp}"
    moved = all_keys(life.s3, GLOB, f"{root}/")
    assert json.loads(moved.pop(f"{root}/ws-quarantine.json"))["reason"] == (
        "leftovers found at create_workspace"
    )
    assert moved == {f"{root}/workspaces/lcv-left/3/r/artifacts/b": b"b"}


def test_quarantine_list_restore_and_its_refusals(life: Life, tmp_path: Path) -> None:
    client = life.client()
    client.create_workspace("lc-back")
    log_run(life, "lc-back", FILES, tmp_path)
    original = all_keys(life.s3, ROOT, "workspaces/lc-back/")
    assert life.delete("lc-back", "CASCADE") == 204

    listed = json.loads(life.cli("quarantine", "list", "--workspace", "lc-back", "--json").stdout)
    stamp = only_stamp(life.s3, ROOT, "", "lc-back")
    assert [(e["workspace"], e["stamp"], e["state"], e["objects"]) for e in listed] == [
        ("lc-back", stamp, "quarantined", 2)
    ]
    assert listed[0]["root"] == f"{Q}/lc-back/{stamp}"

    refused = life.cli("restore", "lc-back", "--tracking-uri", life.url, ok=False)
    assert refused.returncode == 1
    assert "workspace 'lc-back' does not exist; create it first" in refused.stderr

    client.create_workspace("lc-back")
    life.s3.put_object(Bucket=ROOT, Key="workspaces/lc-back/9/new", Body=b"new")
    busy = life.cli("restore", "lc-back", "--tracking-uri", life.url, ok=False)
    assert busy.returncode == 1
    assert "its place s3://life-root/workspaces/lc-back is not empty" in " ".join(
        busy.stderr.split()
    )
    life.s3.delete_object(Bucket=ROOT, Key="workspaces/lc-back/9/new")

    done = life.cli("restore", "lc-back", "--tracking-uri", life.url, "--deleted-at", stamp)
    assert "restored 2 object(s)" in done.stdout
    assert all_keys(life.s3, ROOT, "workspaces/lc-back/") == original
    assert all_keys(life.s3, ROOT, f"{Q}/lc-back/") == {}
    for key in original:  # its experiment went with the deletion: an orphan for the next test
        life.s3.delete_object(Bucket=ROOT, Key=key)


def test_purge_dry_run_then_only_older_than(life: Life, monkeypatch: pytest.MonkeyPatch) -> None:
    from ws_artifacts.core.loading import load_config
    from ws_artifacts.lifecycle.discovery import router_for
    from ws_artifacts.lifecycle.quarantine import place_of, quarantine_place

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", MOTO_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", MOTO_SECRET)
    router = router_for(load_config(life.config), f"ws-s3://{ROOT}")
    place = place_of(router, f"s3://{ROOT}", "lc-gone")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    for age, name in ((40, "old"), (5, "young")):
        life.s3.put_object(Bucket=ROOT, Key=f"workspaces/lc-gone/1/{name}", Body=name.encode())
        quarantine_place(place, "test", now=now - dt.timedelta(days=age))
    everything = all_keys(life.s3, ROOT, f"{Q}/lc-gone/")
    assert len(everything) == 4

    dry = json.loads(
        life.cli("purge", "--older-than", "30d", "--workspace", "lc-gone", "--json").stdout
    )
    assert (dry["dry_run"], dry["entries"], dry["objects_deleted"]) == (True, 1, 0)
    assert all_keys(life.s3, ROOT, f"{Q}/lc-gone/") == everything

    done = life.cli("purge", "--older-than", "30d", "--workspace", "lc-gone", "--yes")
    assert "deleted 1 object(s)" in done.stdout
    old_stamp = (now - dt.timedelta(days=40)).strftime("%Y%m%dT%H%M%SZ")
    assert all_keys(life.s3, ROOT, f"{Q}/lc-gone/") == {
        k: v for k, v in everything.items() if not k.startswith(f"{Q}/lc-gone/{old_stamp}/")
    }
    assert len(all_keys(life.s3, ROOT, f"{Q}/lc-gone/")) == 2


def test_orphans_found_exactly_then_quarantined(life: Life, tmp_path: Path) -> None:
    client = life.client()
    client.create_workspace("lc-orph")
    exp, run = log_run(life, "lc-orph", {"keep.txt": b"keep"}, tmp_path)
    life.s3.put_object(Bucket=ROOT, Key="workspaces/lc-orph/99999/r/artifacts/x", Body=b"12345")
    life.s3.put_object(Bucket=GLOB, Key="lcv-dead/workspaces/lcv-dead/4/r/y", Body=b"123")
    life.s3.put_object(Bucket=GLOB, Key="lcv-dead/workspaces/lcv-dead/4/r/z", Body=b"1")
    expected = [
        {
            "workspace": "lc-orph",
            "child": "99999",
            "experiment": "99999",
            "reason": "no experiment 99999 in workspace lc-orph",
            "uri": f"s3://{ROOT}/workspaces/lc-orph/99999",
            "objects": 1,
            "bytes": 5,
            "moved_to": None,
            "kind": "experiment",
            "kept": False,
            "keys": [{"key": "workspaces/lc-orph/99999/r/artifacts/x", "size": 5}],
        },
        {
            "workspace": "lcv-dead",
            "child": "4",
            "experiment": "4",
            "reason": "workspace does not exist",
            "uri": f"s3://{GLOB}/lcv-dead/workspaces/lcv-dead/4",
            "objects": 2,
            "bytes": 4,
            "moved_to": None,
            "kind": "experiment",
            "kept": False,
            "keys": [
                {"key": "lcv-dead/workspaces/lcv-dead/4/r/y", "size": 3},
                {"key": "lcv-dead/workspaces/lcv-dead/4/r/z", "size": 1},
            ],
        },
    ]
    by_rest = json.loads(life.cli("orphans", "--tracking-uri", life.url, "--json").stdout)
    assert by_rest["orphans"] == expected
    by_db = json.loads(
        life.cli("orphans", "--backend-store-uri", f"sqlite:///{life.db}", "--json").stdout
    )
    assert by_db["orphans"] == expected

    dry = life.cli("orphans", "--tracking-uri", life.url, "--quarantine")
    assert "dry run: nothing moved" in dry.stdout
    assert (
        len(json.loads(life.cli("orphans", "--tracking-uri", life.url, "--json").stdout)["orphans"])
        == 2
    )

    life.cli("orphans", "--tracking-uri", life.url, "--quarantine", "--yes")
    after = json.loads(life.cli("orphans", "--tracking-uri", life.url, "--json").stdout)
    assert after["orphans"] == []
    assert sorted(all_keys(life.s3, ROOT, "workspaces/lc-orph/")) == [
        f"workspaces/lc-orph/{exp}/{run}/artifacts/keep.txt"
    ]
    stamp = only_stamp(life.s3, ROOT, "", "lc-orph")
    assert f"{Q}/lc-orph/{stamp}/workspaces/lc-orph/99999/r/artifacts/x" in all_keys(
        life.s3, ROOT, f"{Q}/lc-orph/"
    )


def test_quarantine_is_out_of_reach_of_requests(life: Life) -> None:
    life.client().create_workspace("lc-reach")
    life.s3.put_object(
        Bucket=ROOT, Key=f"{Q}/lc-reach/20260101T000000Z/workspaces/lc-reach/1/f", Body=b"q"
    )
    headers = {"X-MLFLOW-WORKSPACE": "lc-reach"}
    base = f"{life.url}/api/2.0/mlflow-artifacts/artifacts"
    for path in (f"{Q}/lc-reach/20260101T000000Z/workspaces/lc-reach/1", f"../../{Q}"):
        listed = requests.get(base, params={"path": path}, headers=headers, timeout=30)
        assert listed.status_code in (200, 400, 403)
        assert "files" not in listed.json() or listed.json()["files"] == []
    got = requests.get(
        f"{base}/{Q}/lc-reach/20260101T000000Z/workspaces/lc-reach/1/f", headers=headers, timeout=30
    )
    assert got.status_code != 200
    life.s3.delete_object(Bucket=ROOT, Key=f"{Q}/lc-reach/20260101T000000Z/workspaces/lc-reach/1/f")


def test_a_route_with_a_previous_place_is_emptied_everywhere_and_restored_everywhere(
    life: Life, tmp_path: Path
) -> None:
    """Reads fall back to a route's previous places, so deleting the workspace quarantines
    those too (one time stamp for the deletion); the re-created workspace reads nothing of the
    old owner from either place, and restore puts each object back where it came from."""
    import mlflow

    ws, client = "lc-moved", life.client()
    client.create_workspace(ws)
    exp, run = log_run(life, ws, {"now.txt": b"written after the route change"}, tmp_path)
    before = f"before/workspaces/{ws}/{exp}/{run}/artifacts/then.txt"
    life.s3.put_object(Bucket=GLOB, Key=before, Body=b"written before the route change")
    with in_workspace(ws):  # the old place is read through the route's fallback
        assert sorted(f.path for f in client.list_artifacts(run)) == ["now.txt", "then.txt"]
    current = all_keys(life.s3, ROUTED, f"now/workspaces/{ws}/")
    assert list(current) == [f"now/workspaces/{ws}/{exp}/{run}/artifacts/now.txt"]

    assert life.delete(ws, "CASCADE") == 204
    assert all_keys(life.s3, ROUTED, f"now/workspaces/{ws}/") == {}
    assert all_keys(life.s3, GLOB, f"before/workspaces/{ws}/") == {}
    stamp = only_stamp(life.s3, ROUTED, "now/", ws)
    assert only_stamp(life.s3, GLOB, "before/", ws) == stamp
    listed = json.loads(life.cli("quarantine", "list", "--workspace", ws, "--json").stdout)
    assert sorted((e["route_url"], e["base"], e["objects"]) for e in listed) == [
        (f"s3://{GLOB}/before", "before", 1),
        (f"s3://{ROUTED}/now", "now", 1),
    ]

    client.create_workspace(ws)
    with in_workspace(ws):
        new_exp = client.create_experiment(f"exp-{ws}-again")
        assert new_exp == exp  # SQLite reuses the id
        listed_root = mlflow.artifacts.list_artifacts(
            artifact_uri=f"mlflow-artifacts:/workspaces/{ws}/{exp}", tracking_uri=life.url
        )
        assert [f.path for f in listed_root or []] == []
        with pytest.raises(Exception, match=r"(?i)not found|does not exist|No such"):
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"mlflow-artifacts:/workspaces/{ws}/{exp}/{run}/artifacts/then.txt",
                dst_path=str(tmp_path),
                tracking_uri=life.url,
            )

    done = json.loads(life.cli("restore", ws, "--tracking-uri", life.url, "--json").stdout)
    assert done["objects"] == 2
    assert sorted(e["route_url"] for e in done["restored"]) == [
        f"s3://{GLOB}/before",
        f"s3://{ROUTED}/now",
    ]
    assert all_keys(life.s3, ROUTED, f"now/workspaces/{ws}/") == current
    assert all_keys(life.s3, GLOB, f"before/workspaces/{ws}/") == {
        before: b"written before the route change"
    }
    assert all_keys(life.s3, ROUTED, f"now/{Q}/{ws}/") == {}
    assert all_keys(life.s3, GLOB, f"before/{Q}/{ws}/") == {}
    assert life.delete(ws, "CASCADE") == 204  # leave no live objects for other tests
