"""MLflow 3.18's skills through their whole life, per workspace, through a real
``ws-artifacts server`` (2 workers, the ``ws+sqlite`` provider) on moto: uploaded content lands
in the workspace's own place, is counted by kind, is never taken by ``orphans`` while a version
names it, goes to quarantine and back with its workspace, is read from a route's previous place
and copied by ``migrate``."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.config import ConfigFile
from tests.support.servers import MlflowServer, Server, run_ws_artifacts, start_ws_artifacts
from tests.support.workspaces import in_workspace

pytestmark = [pytest.mark.integration, pytest.mark.mlflow_min("3.18")]

ROOT, TEAM_A, TEAM_B, OLD, NEW = "sk-root", "sk-team-a", "sk-team-b", "sk-old", "sk-new"
Q = ".ws-quarantine"
TOKEN = re.compile(r"[0-9a-f]{32}")


@dataclass
class Skills(MlflowServer):
    """The module's server, its configuration and database, and moto's admin client."""

    db: Path
    s3: Any

    def cli(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = run_ws_artifacts(self.config, *args)
        if ok:
            assert done.returncode == 0, done.stderr + done.stdout
        return done

    def keys(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                body = self.s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                out[obj["Key"]] = body
        return out


@pytest.fixture(scope="module")
def skills(tmp_path_factory: pytest.TempPathFactory, moto: Server, s3: Any) -> Iterator[Skills]:
    work = tmp_path_factory.mktemp("skills")
    for bucket in (ROOT, TEAM_A, TEAM_B, OLD, NEW):
        s3.create_bucket(Bucket=bucket)
    config = ConfigFile(moto.url)
    config.route("ska-*", f"s3://{TEAM_A}/{{workspace}}")
    config.route("skb-*", f"s3://{TEAM_B}/{{workspace}}")
    config.route("skm-*", f"s3://{NEW}/{{workspace}}", previous=[f"s3://{OLD}/{{workspace}}"])
    config.route("skq-*", f"s3://{TEAM_A}/{{workspace}}", quota={"max_objects": 3})
    path = config.write(work / "ws.yaml")
    server = start_ws_artifacts(work, path, f"ws-s3://{ROOT}")
    yield Skills(server, path, work / "mlflow.db", s3)
    server.stop()


@pytest.fixture
def tracking(skills: Skills, monkeypatch: pytest.MonkeyPatch) -> Iterator[Skills]:
    """MLflow's fluent APIs (register_skill, pull) talk to the module's server. Set both
    ways: a URI another module set with ``mlflow.set_tracking_uri`` wins over the variable."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", skills.url)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(skills.url)
    try:
        yield skills
    finally:
        mlflow.set_tracking_uri(previous)


def skill_dir(tmp: Path, name: str, body: str) -> Path:
    folder = tmp / f"src-{name}-{len(list(tmp.iterdir()))}"
    (folder / "scripts").mkdir(parents=True)
    (folder / "SKILL.md").write_text(f"---\nname: {name}\ndescription: {body}\n---\n{body}\n")
    (folder / "scripts" / "run.py").write_text(f"print({body!r})\n")
    return folder


def register(workspace: str, tmp: Path, name: str, body: str) -> Any:
    import mlflow

    with in_workspace(workspace):
        return mlflow.genai.register_skill(source=str(skill_dir(tmp, name, body)))


def pull(workspace: str, uri: str, tmp: Path) -> dict[str, str]:
    import mlflow

    destination = tmp / f"pulled-{len(list(tmp.iterdir()))}"
    with in_workspace(workspace):
        path = Path(mlflow.genai.pull(uri, destination=str(destination)))
    return {p.relative_to(path).as_posix(): p.read_text() for p in path.rglob("*") if p.is_file()}


def token_of(version: Any, name: str) -> str:
    source = version.source.artifact_path
    prefix = f"mlflow-artifacts:/skills/{name}/"
    assert source.startswith(prefix), source
    token = source.removeprefix(prefix)
    assert TOKEN.fullmatch(token), source
    return token


def content_keys(base: str, name: str, token: str) -> list[str]:
    return [
        f"{base}/skills/{name}/{token}/SKILL.md",
        f"{base}/skills/{name}/{token}/scripts/run.py",
    ]


def test_a_skill_lives_in_its_workspace_bucket_and_is_counted_by_kind(
    tracking: Skills, tmp_path: Path
) -> None:
    ws = "ska-count"
    tracking.client().create_workspace(ws)
    version = register(ws, tmp_path, "reviewer", "reviews code")
    token = token_of(version, "reviewer")
    base = f"{ws}/workspaces/{ws}"
    stored = tracking.keys(TEAM_A, f"{ws}/")
    assert sorted(stored) == content_keys(base, "reviewer", token)
    assert stored[f"{base}/skills/reviewer/{token}/scripts/run.py"] == b"print('reviews code')\n"
    assert tracking.keys(ROOT) == {}
    assert tracking.keys(TEAM_B) == {}
    assert pull(ws, "skills:/reviewer/1", tmp_path) == {
        "SKILL.md": "---\nname: reviewer\ndescription: reviews code\n---\nreviews code\n",
        "scripts/run.py": "print('reviews code')\n",
    }

    size = sum(len(v) for v in stored.values())
    args = ["usage", "--destination", f"ws-s3://{ROOT}", "--json", ws]
    by_kind = json.loads(tracking.cli(*args, "--by", "kind").stdout)
    assert by_kind["workspaces"] == [
        {
            "workspace": ws,
            "route": "ska-*",
            "source": "glob",
            "url": f"s3://{TEAM_A}/{base}",
            "objects": 2,
            "bytes": size,
            "kinds": [{"kind": "skills", "objects": 2, "bytes": size}],
        }
    ]
    by_experiment = json.loads(tracking.cli(*args, "--by", "experiment").stdout)
    assert "experiments" not in by_experiment["workspaces"][0]  # "skills" is no experiment
    assert by_experiment["workspaces"][0]["kinds"] == [
        {"kind": "skills", "objects": 2, "bytes": size}
    ]


def test_orphans_take_only_content_no_version_names(tracking: Skills, tmp_path: Path) -> None:
    ws = "ska-orph"
    tracking.client().create_workspace(ws)
    first = token_of(register(ws, tmp_path, "linter", "lints v1"), "linter")
    second = token_of(register(ws, tmp_path, "linter", "lints v2"), "linter")
    kept = token_of(register(ws, tmp_path, "helper", "helps"), "helper")
    base = f"{ws}/workspaces/{ws}"
    tracking.s3.put_object(Bucket=TEAM_A, Key=f"{base}/mystery/thing.bin", Body=b"123456")
    listed = json.loads(tracking.cli(*_orphans(tracking), "--json").stdout)
    mine = [o for o in listed["orphans"] if o["workspace"] == ws]
    assert [(o["experiment"], o["kind"], o["kept"], o["reason"]) for o in mine] == [
        ("mystery", "unknown", True, "unknown, kept")
    ]
    assert mine[0]["keys"] == [{"key": f"{base}/mystery/thing.bin", "size": 6}]

    with in_workspace(ws):  # an active version is deprecated before it can be deleted
        tracking.client().update_skill_version(name="linter", version=1, status="deprecated")
        tracking.client().delete_skill_version(name="linter", version=1)
    listed = json.loads(tracking.cli(*_orphans(tracking), "--json").stdout)
    mine = [o for o in listed["orphans"] if o["workspace"] == ws]
    assert [(o["experiment"], o["kind"], o["kept"], o["reason"]) for o in mine] == [
        (
            f"skills/linter/{first}",
            "skills",
            False,
            f"no version of skill linter in workspace {ws} has it",
        ),
        ("mystery", "unknown", True, "unknown, kept"),
    ]
    assert [k["key"] for k in mine[0]["keys"]] == content_keys(base, "linter", first)

    tracking.cli(*_orphans(tracking), "--quarantine", "--yes")
    assert sorted(tracking.keys(TEAM_A, f"{base}/")) == sorted(
        [
            *content_keys(base, "linter", second),
            *content_keys(base, "helper", kept),
            f"{base}/mystery/thing.bin",
        ]
    )
    moved = tracking.keys(TEAM_A, f"{ws}/{Q}/{ws}/")
    assert sorted(k.split("/workspaces/", 1)[1] for k in moved if "/workspaces/" in k) == [
        f"{ws}/skills/linter/{first}/SKILL.md",
        f"{ws}/skills/linter/{first}/scripts/run.py",
    ]
    assert pull(ws, "skills:/linter/2", tmp_path)["scripts/run.py"] == "print('lints v2')\n"
    assert pull(ws, "skills:/helper/1", tmp_path)["scripts/run.py"] == "print('helps')\n"
    again = json.loads(tracking.cli(*_orphans(tracking), "--json").stdout)
    assert [o["kept"] for o in again["orphans"] if o["workspace"] == ws] == [True]


def _orphans(skills: Skills) -> list[str]:
    """Uploads seconds old are judged here (the default minimum age is an hour)."""
    return [
        "orphans",
        "--destination",
        f"ws-s3://{ROOT}",
        "--tracking-uri",
        skills.url,
        "--skill-min-age",
        "0",
    ]


def test_deleting_a_workspace_quarantines_its_skills_and_restore_brings_them_back(
    tracking: Skills, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CASCADE deletion takes the skill's rows and quarantines its content; the rows come
    back as from a database backup, ``restore`` brings the content back, and the skill pulls."""
    ws = "ska-gone"
    tracking.client().create_workspace(ws)
    version = register(ws, tmp_path, "planner", "plans")
    token = token_of(version, "planner")
    base = f"{ws}/workspaces/{ws}"
    original = tracking.keys(TEAM_A, f"{base}/")
    assert sorted(original) == content_keys(base, "planner", token)
    answer = requests.delete(
        f"{tracking.url}/api/3.0/mlflow/workspaces/{ws}", params={"mode": "CASCADE"}, timeout=60
    )
    assert answer.status_code == 204, answer.text
    assert tracking.keys(TEAM_A, f"{base}/") == {}
    quarantined = tracking.keys(TEAM_A, f"{ws}/{Q}/{ws}/")
    assert sorted(v for k, v in quarantined.items() if "/workspaces/" in k) == sorted(
        original.values()
    )

    tracking.client().create_workspace(ws)
    with in_workspace(ws), pytest.raises(Exception, match="not found"):
        tracking.client().get_skill_version(name="planner", version=1)
    done = tracking.cli(
        "restore", ws, "--destination", f"ws-s3://{ROOT}", "--tracking-uri", tracking.url
    )
    assert "restored 2 object(s)" in done.stdout
    assert tracking.keys(TEAM_A, f"{base}/") == original
    monkeypatch.setenv("MLFLOW_ENABLE_WORKSPACES", "true")
    _restore_rows(tracking, ws, version)
    assert pull(ws, "skills:/planner/1", tmp_path)["scripts/run.py"] == "print('plans')\n"


def _restore_rows(skills: Skills, workspace: str, version: Any) -> None:
    """Put the version's row back as a restored database backup would (MLflow's own store on
    the server's database, workspaces on as on the server)."""
    from mlflow import MlflowClient

    with in_workspace(workspace):
        store = MlflowClient(tracking_uri=f"sqlite:///{skills.db}")._tracking_client.store
        store.create_skill_version(
            name=version.name,
            source_type="mlflow",
            source=version.source.artifact_path,
            digest=version.digest,
        )


def test_a_skill_reads_from_a_previous_place_and_migrate_copies_it(
    tracking: Skills, tmp_path: Path
) -> None:
    ws = "skm-moved"
    tracking.client().create_workspace(ws)
    token = token_of(register(ws, tmp_path, "mover", "moves"), "mover")
    base = f"{ws}/workspaces/{ws}"
    written = tracking.keys(NEW, f"{base}/")
    assert sorted(written) == content_keys(base, "mover", token)
    for key, body in written.items():  # as if written before the route changed
        tracking.s3.put_object(Bucket=OLD, Key=key, Body=body)
        tracking.s3.delete_object(Bucket=NEW, Key=key)
    assert pull(ws, "skills:/mover/1", tmp_path)["scripts/run.py"] == "print('moves')\n"

    tracking.cli("migrate", ws)
    assert tracking.keys(NEW, f"{base}/") == written
    assert tracking.keys(OLD, f"{base}/") == written  # copied, not moved (no --delete-source)
    for key in written:
        tracking.s3.delete_object(Bucket=OLD, Key=key)
    assert pull(ws, "skills:/mover/1", tmp_path)["scripts/run.py"] == "print('moves')\n"


def test_a_skill_beyond_the_route_quota_is_refused_and_leaves_nothing(
    tracking: Skills, tmp_path: Path
) -> None:
    """Raw REST, to see the status: 413, which MLflow's client does not retry."""
    import io
    import tarfile

    ws = "skq-full"
    tracking.client().create_workspace(ws)
    register(ws, tmp_path, "small", "fits")  # 2 objects of the quota's 3
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(skill_dir(tmp_path, "large", "does not fit"), arcname=".")
    metadata = {"name": "large", "organization": "", "digest": None, "status": "active"}
    answer = requests.post(
        f"{tracking.url}/api/3.0/mlflow/skills/large/versions",
        files={
            "metadata": (None, json.dumps(metadata), "application/json"),
            "content": ("content.tar.gz", archive.getvalue(), "application/gzip"),
        },
        headers={"X-MLFLOW-WORKSPACE": ws},
        timeout=120,
    )
    assert answer.status_code == 413, answer.text
    assert answer.json()["error_code"] == "RESOURCE_EXHAUSTED"
    assert "would hold 4 objects (quota 3 objects)" in answer.json()["message"]
    stored = tracking.keys(TEAM_A, f"{ws}/")
    assert len(stored) == 2
    assert [k for k in stored if "/skills/large/" in k] == []
    with in_workspace(ws):
        assert [s.name for s in tracking.client().search_skills()] == ["small"]
