"""Route changes with ``previous``, ``ws-artifacts migrate`` and moved experiments, through a
real ``mlflow server --workers 2`` on moto (and, for faults, a fault-injecting proxy)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from mlflow.exceptions import MlflowException

from tests.support.config import ConfigFile
from tests.support.faults import FaultProxy, is_copy
from tests.support.s3 import keys
from tests.support.servers import (
    MOTO_KEY,
    MOTO_SECRET,
    MlflowServer,
    Server,
    server_env,
    start_ws_artifacts,
)
from tests.support.workspaces import in_workspace, unique
from ws_artifacts.cli.main import main
from ws_artifacts.serving.live_config import SETTLE_SECONDS

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
# mig-root, the server's own destination: orphans then sees only what this module wrote
BUCKETS = ("mig-root", "mig-old-a", "mig-new-a", "mig-mv-x", "mig-mv-y")
MOVE_WORKSPACES = ("team-a", "mv-x", "mv-y")


def write_config(path: Path, endpoint: str, team_a: str, *, age: float = 0.0) -> None:
    """The server's configuration: team-a's route as given (YAML), mv-x and mv-y fixed."""
    config = ConfigFile(endpoint).route_yaml("team-a", team_a)
    config.route("mv-x", "s3://mig-mv-x").route("mv-y", "s3://mig-mv-y").write(path, age=age)


def change_config(server: MlflowServer, endpoint: str, team_a: str, logged: str) -> None:
    """Rewrite the running server's configuration and wait until both of its workers have
    taken it (each logs ``logged``, its route change, at its first look after the change)."""
    # Dated back past SETTLE_SECONDS: each worker takes it at its next look (CHECK_EVERY).
    write_config(server.config, endpoint, team_a, age=2 * SETTLE_SECONDS)

    def poke() -> None:  # a read that makes a worker look at the file
        requests.get(
            f"{server.url}/api/2.0/mlflow-artifacts/artifacts",
            headers={"X-MLFLOW-WORKSPACE": "team-a"},
            timeout=30,
        )

    server.server.wait_logged(logged, times=2, poke=poke)


@pytest.fixture(scope="module")
def mig_server(tmp_path_factory: pytest.TempPathFactory, moto: Server, s3: Any) -> Iterator[Any]:
    """``ws-artifacts server`` (guard and quarantining workspace provider on, as shipped), 2
    workers, proxied to ``ws-s3://mig-root``."""
    for bucket in BUCKETS:
        s3.create_bucket(Bucket=bucket)
    workdir = tmp_path_factory.mktemp("migrate")
    config = workdir / "ws-artifacts.yaml"
    write_config(config, moto.url, "url: s3://mig-old-a")
    # uvicorn kills a worker that does not answer its health check within 5 s; on a loaded
    # 2-core machine a starting worker can miss it, so this server gives its workers 120 s.
    server = start_ws_artifacts(
        workdir / "server",
        config,
        "ws-s3://mig-root",
        args=("--uvicorn-opts", "--timeout-worker-healthcheck 120"),
        env=server_env(config),
    )
    try:
        wrapped = MlflowServer(server, config)
        for name in MOVE_WORKSPACES:
            wrapped.client().create_workspace(name)
        yield wrapped
    finally:
        server.stop()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", MOTO_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", MOTO_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("WS_ARTIFACTS_CONFIG", raising=False)


def run_cli(*args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return json.loads(result.stdout) if "--json" in args else result.stdout


def md5(s3: Any, bucket: str, key: str) -> str:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def policy(s3: Any, bucket: str, key: str) -> tuple[Any, Any, list[dict[str, str]]]:
    head = s3.head_object(Bucket=bucket, Key=key)
    tags = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    return (
        head.get("ServerSideEncryption"),
        head.get("StorageClass"),
        sorted(tags, key=lambda t: t["Key"]),
    )


NEW_ROUTE_A = """
    url: s3://mig-new-a
    storage: {sse: AES256, storage_class: STANDARD_IA, tags: {team: a}}
    previous: [s3://mig-old-a]
"""
NEW_POLICY = (
    "AES256",
    "STANDARD_IA",
    [{"Key": "mlflow-workspace", "Value": "team-a"}, {"Key": "team", "Value": "a"}],
)


def test_route_change_reads_previous_then_migrate_moves_everything(
    mig_server: MlflowServer, s3: Any, tmp_path: Path, cli_env: None
) -> None:
    config = mig_server.config
    moto_url = s3.meta.endpoint_url
    files = {"model.pkl": os.urandom(3000), "sub/conf.yaml": b"a: 1"}
    (tmp_path / "src" / "sub").mkdir(parents=True)
    for name, data in files.items():
        (tmp_path / "src" / name).write_bytes(data)
    with in_workspace("team-a"):
        client = mig_server.client()
        exp = client.create_experiment(unique("route-change"))
        run = client.create_run(exp).info.run_id
        client.log_artifacts(run, str(tmp_path / "src"))
    base = f"workspaces/team-a/{exp}/{run}/artifacts"
    old_keys = [f"{base}/model.pkl", f"{base}/sub/conf.yaml"]
    assert keys(s3, "mig-old-a", f"workspaces/team-a/{exp}/") == old_keys
    digests = {k: md5(s3, "mig-old-a", k) for k in old_keys}

    change_config(mig_server, moto_url, NEW_ROUTE_A, "route 'team-a' moved from s3://mig-old-a")
    with in_workspace("team-a"):
        client = mig_server.client()
        assert [f.path for f in client.list_artifacts(run)] == ["model.pkl", "sub"]
        out = Path(client.download_artifacts(run, "", str(tmp_path / "dl1")))
        assert (out / "model.pkl").read_bytes() == files["model.pkl"]
        assert (out / "sub" / "conf.yaml").read_bytes() == b"a: 1"
        (tmp_path / "new.txt").write_bytes(b"written after the change")
        client.log_artifact(run, str(tmp_path / "new.txt"))
        assert [f.path for f in client.list_artifacts(run)] == ["model.pkl", "new.txt", "sub"]
    assert keys(s3, "mig-new-a", f"workspaces/team-a/{exp}/") == [f"{base}/new.txt"]
    assert keys(s3, "mig-old-a", f"workspaces/team-a/{exp}/") == old_keys
    assert policy(s3, "mig-new-a", f"{base}/new.txt") == NEW_POLICY

    # A delete reaches every place: a copy in the old place goes too.
    s3.put_object(Bucket="mig-old-a", Key=f"{base}/tmp.txt", Body=b"old copy")
    url = f"{mig_server.url}/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/tmp.txt"
    headers = {"X-MLFLOW-WORKSPACE": "team-a"}
    assert requests.put(url, data=b"new copy", headers=headers, timeout=30).status_code == 200
    assert requests.delete(url, headers=headers, timeout=30).status_code == 200
    assert f"{base}/tmp.txt" not in keys(s3, "mig-old-a") + keys(s3, "mig-new-a")

    args = ["migrate", "team-a", "--config", str(config), "--json"]
    before = keys(s3, "mig-new-a")
    plan = run_cli(*args, "--dry-run")
    place = plan["places"][0]
    assert (place["source"], place["target"], place["mode"]) == (
        "s3://mig-old-a/workspaces/team-a",
        "s3://mig-new-a/workspaces/team-a",
        "server-side",
    )
    assert (place["planned"], place["copied"], place["present"], place["failed"]) == (2, 0, 0, 0)
    assert place["bytes_planned"] == 3000 + 4
    assert keys(s3, "mig-new-a") == before  # the dry run wrote nothing
    assert keys(s3, "mig-old-a", f"workspaces/team-a/{exp}/") == old_keys

    done = run_cli(*args)["places"][0]
    assert (done["copied"], done["failed"], done["bytes_copied"]) == (2, 0, 3004)
    assert keys(s3, "mig-new-a", f"workspaces/team-a/{exp}/") == sorted(
        [*old_keys, f"{base}/new.txt"]
    )
    for key, digest in digests.items():
        assert md5(s3, "mig-new-a", key) == digest
        assert policy(s3, "mig-new-a", key) == NEW_POLICY

    again = run_cli(*args)["places"][0]
    assert (again["copied"], again["present"], again["failed"]) == (0, 2, 0)

    report = run_cli(
        "check", "--config", str(config), "--probe", "--json", "--destination", "ws-s3://mig-root"
    )
    team_a = next(r for r in report["routes"] if r["entry"] == "team-a")
    assert (team_a["previous"], team_a["left_in_previous"]) == (1, 2)

    deleted = run_cli(*args, "--delete-source")["places"][0]
    assert (deleted["copied"], deleted["deleted"]) == (0, 2)
    assert keys(s3, "mig-old-a") == []
    with in_workspace("team-a"):
        out = Path(mig_server.client().download_artifacts(run, "", str(tmp_path / "dl2")))
    assert (out / "model.pkl").read_bytes() == files["model.pkl"]
    report = run_cli(
        "check", "--config", str(config), "--probe", "--json", "--destination", "ws-s3://mig-root"
    )
    assert next(r for r in report["routes"] if r["entry"] == "team-a")["left_in_previous"] == 0


def move_experiment(server: MlflowServer, name: str, source: str, target: str) -> None:
    """Move an experiment as `mlflow db move-resources --artifact-policy retarget` does. MLflow
    3.10 has no such command: there the same rows are changed through MLflow's own models."""
    db = f"sqlite:///{server.server.log.parent / 'mlflow.db'}"
    from mlflow.store.db import workspace_migration  # noqa: F401 - present on 3.10 and 3.17

    try:
        from mlflow.store.db import workspace_move  # noqa: F401
    except ImportError:  # MLflow 3.10
        from mlflow.store.db.utils import create_sqlalchemy_engine
        from mlflow.store.tracking.dbmodels.models import SqlExperiment
        from sqlalchemy.orm import Session

        engine = create_sqlalchemy_engine(db)
        with Session(engine) as session, session.begin():
            experiment = session.query(SqlExperiment).filter_by(name=name, workspace=source).one()
            experiment.workspace = target
            experiment.artifact_location = (
                f"mlflow-artifacts:/workspaces/{target}/{experiment.experiment_id}"
            )
        engine.dispose()
        return
    command = [sys.executable, "-m", "mlflow", "db", "move-resources", db]
    command += ["--from", source, "--to", target, "--resource-type", "experiments"]
    command += ["--name", name, "--artifact-policy", "retarget", "--yes"]
    command += ["--default-artifact-root", "mlflow-artifacts:/"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


TRACE_LOCATION_TAG = "mlflow.artifactLocation"  # MLflow's trace tag for its artifact location


def log_trace(tracking_uri: str, experiment_id: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """One trace in ``experiment_id``, logged with MLflow's fluent tracing."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
    with mlflow.start_span("moved-trace") as span:
        span.set_inputs({"x": 1})
    mlflow.flush_trace_async_logging()
    return str(span.trace_id)


def test_moved_experiment_is_copied_and_repointed_then_read_from_the_new_workspace(
    mig_server: MlflowServer,
    s3: Any,
    tmp_path: Path,
    cli_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = unique("moved")
    (tmp_path / "w.bin").write_bytes(b"run weights")
    (tmp_path / "m.bin").write_bytes(b"model weights")
    with in_workspace("mv-x"):
        client = mig_server.client()
        exp = client.create_experiment(name)
        run = client.create_run(exp).info.run_id
        client.log_artifact(run, str(tmp_path / "w.bin"))
        model = client.create_logged_model(exp, name="m")
        client.log_model_artifact(model.model_id, str(tmp_path / "m.bin"))
        trace_id = log_trace(mig_server.url, exp, monkeypatch)
        trace_tags = client.get_trace(trace_id).info.tags
    trace_location = f"workspaces/mv-x/{exp}/traces/{trace_id}/artifacts"
    assert trace_tags[TRACE_LOCATION_TAG] == f"mlflow-artifacts:/{trace_location}"
    # MLflow 3.17 also writes the spans to traces.json; 3.10 keeps them in the database only.
    trace_files = keys(s3, "mig-mv-x", f"{trace_location}/")
    assert trace_files in ([], [f"{trace_location}/traces.json"])
    old_keys = sorted(
        [
            f"workspaces/mv-x/{exp}/models/{model.model_id}/artifacts/m.bin",
            f"workspaces/mv-x/{exp}/{run}/artifacts/w.bin",
            *trace_files,
        ]
    )
    objects = len(old_keys)
    assert keys(s3, "mig-mv-x", f"workspaces/mv-x/{exp}/") == old_keys
    move_experiment(mig_server, name, "mv-x", "mv-y")
    with in_workspace("mv-y"):
        stuck = mig_server.client().get_run(run).info.artifact_uri
    assert stuck == f"mlflow-artifacts:/workspaces/mv-x/{exp}/{run}/artifacts"

    db = f"sqlite:///{mig_server.server.log.parent / 'mlflow.db'}"
    # orphans sees X's objects of an experiment that now lives in Y: listed, held back.
    where = ["--destination", "ws-s3://mig-root", "--config", str(mig_server.config), "--json"]
    found = run_cli("orphans", "--backend-store-uri", db, "--quarantine", "--yes", *where)
    assert [(o["workspace"], o["experiment"], o["moved_to"]) for o in found["orphans"]] == [
        ("mv-x", exp, "mv-y")
    ]
    assert found["held_back"] == found["objects"] == objects
    assert "--moved-from mv-x --to mv-y" in found["orphans"][0]["reason"]
    assert keys(s3, "mig-mv-x", f"workspaces/mv-x/{exp}/") == old_keys  # nothing was moved
    plan_all = run_cli(
        "orphans", "--backend-store-uri", db, "--quarantine", "--include-moved", *where
    )
    assert (plan_all["dry_run"], plan_all["held_back"]) == (True, 0)  # would take them
    args = ["migrate", "--moved-from", "mv-x", "--to", "mv-y", "--backend-store-uri", db]
    args += where
    plan = run_cli(*args, "--dry-run")
    assert plan["experiments"] == [exp]
    assert plan["locations"] == {"experiment": 0, "run": 1, "logged_model": 1, "trace": 1}
    assert [(p["source"], p["target"], p["planned"]) for p in plan["places"]] == [
        (f"s3://mig-mv-x/workspaces/mv-x/{exp}", f"s3://mig-mv-y/workspaces/mv-y/{exp}", objects)
    ]
    assert keys(s3, "mig-mv-y", f"workspaces/mv-y/{exp}/") == []  # the dry run copied nothing
    with in_workspace("mv-y"):
        assert mig_server.client().get_run(run).info.artifact_uri == stuck

    done = run_cli(*args, "--delete-source")
    assert (done["updated"], done["deleted"], done["places"][0]["copied"]) == (3, objects, objects)
    assert keys(s3, "mig-mv-y", f"workspaces/mv-y/{exp}/") == [
        k.replace("workspaces/mv-x/", "workspaces/mv-y/") for k in old_keys
    ]
    assert keys(s3, "mig-mv-x", f"workspaces/mv-x/{exp}/") == []
    with in_workspace("mv-y"):
        client = mig_server.client()
        assert client.get_run(run).info.artifact_uri == (
            f"mlflow-artifacts:/workspaces/mv-y/{exp}/{run}/artifacts"
        )
        assert client.get_logged_model(model.model_id).artifact_location == (
            f"mlflow-artifacts:/workspaces/mv-y/{exp}/models/{model.model_id}/artifacts"
        )
        out = client.download_artifacts(run, "w.bin", str(tmp_path))
        assert Path(out).read_bytes() == b"run weights"
        trace = client.get_trace(trace_id)
        assert trace.info.tags[TRACE_LOCATION_TAG] == (
            f"mlflow-artifacts:/workspaces/mv-y/{exp}/traces/{trace_id}/artifacts"
        )
        assert [span.name for span in trace.data.spans] == ["moved-trace"]
    # The old location is refused from the new workspace, and the run is gone from the old one.
    refused = requests.get(
        f"{mig_server.url}/api/2.0/mlflow-artifacts/artifacts/workspaces/mv-x/{exp}/{run}/artifacts/w.bin",
        headers={"X-MLFLOW-WORKSPACE": "mv-y"},
        timeout=30,
    )
    assert refused.status_code == 400
    with in_workspace("mv-x"), pytest.raises(MlflowException, match=r"not found|does not exist"):
        mig_server.client().get_run(run)
    again = run_cli(*args)
    assert (again["experiments"], again["updated"]) == ([], 0)


def test_direct_clients_read_previous_places_and_delete_everywhere(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_env: None
) -> None:
    """Direct access: the client's own repository for ``ws-s3://root/...`` run URIs, built by
    MLflow's registry as MlflowClient builds it (the tracking server plays no part)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    before, after = tmp_path / "before.yaml", tmp_path / "after.yaml"
    endpoint = s3.meta.endpoint_url
    common = f"defaults: {{endpoint_url: {endpoint}, region: us-east-1, addressing_style: path}}"
    before.write_text(f"{common}\nworkspaces:\n  other: {{url: s3://mig-dir-old}}\n")
    after.write_text(
        f"{common}\nworkspaces:\n  other: {{url: s3://mig-dir-new, previous: [s3://mig-dir-old]}}\n"
    )
    for bucket in ("mig-dir-old", "mig-dir-new"):
        s3.create_bucket(Bucket=bucket)
    (tmp_path / "a.txt").write_bytes(b"old place")
    (tmp_path / "b.txt").write_bytes(b"doomed")
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    exp, run = "7", unique("run")
    base = f"workspaces/other/{exp}/{run}/artifacts"
    uri = f"ws-s3://root/{base}"
    monkeypatch.setenv("WS_ARTIFACTS_CONFIG", str(before))
    with in_workspace("other"):
        repo = get_artifact_repository(uri)
        repo.log_artifact(str(tmp_path / "a.txt"))
        repo.log_artifact(str(tmp_path / "b.txt"), "d")
    assert keys(s3, "mig-dir-old", f"workspaces/other/{exp}/{run}/") == [
        f"{base}/a.txt",
        f"{base}/d/b.txt",
    ]

    monkeypatch.setenv("WS_ARTIFACTS_CONFIG", str(after))
    with in_workspace("other"):
        repo = get_artifact_repository(uri)
        assert [f.path for f in repo.list_artifacts()] == ["a.txt", "d"]
        out = Path(repo.download_artifacts("", str(tmp_path / "x")))
        assert (out / "a.txt").read_bytes() == b"old place"
        assert (out / "d" / "b.txt").read_bytes() == b"doomed"
        (tmp_path / "c.txt").write_bytes(b"new place")
        repo.log_artifact(str(tmp_path / "c.txt"))
        repo.delete_artifacts("d")
        assert [f.path for f in repo.list_artifacts()] == ["a.txt", "c.txt"]
    assert keys(s3, "mig-dir-old", f"workspaces/other/{exp}/{run}/") == [f"{base}/a.txt"]
    assert keys(s3, "mig-dir-new", f"workspaces/other/{exp}/{run}/") == [f"{base}/c.txt"]
    done = run_cli("migrate", "other", "--config", str(after), "--json", "--delete-source")
    place = done["places"][0]
    assert (place["copied"], place["deleted"], place["failed"]) == (1, 1, 0)
    assert keys(s3, "mig-dir-new", f"workspaces/other/{exp}/{run}/") == [
        f"{base}/a.txt",
        f"{base}/c.txt",
    ]
    assert keys(s3, "mig-dir-old", f"workspaces/other/{exp}/{run}/") == []
    with in_workspace("other"):
        out = Path(get_artifact_repository(uri).download_artifacts("a.txt", str(tmp_path / "y")))
    assert out.read_bytes() == b"old place"


def test_glob_route_with_previous_places_is_found_by_all_and_counted_by_check(
    s3: Any, tmp_path: Path, cli_env: None
) -> None:
    """`migrate --all` and `check --probe` find a glob route's workspaces by listing its
    previous place: exactly the names the glob matches and routes, nothing else there."""
    old, new = unique("glob-old"), unique("glob-new")
    for bucket in (old, new):
        s3.create_bucket(Bucket=bucket)
    held = {
        "gl-a": ["1/r/artifacts/a.txt", "1/r/artifacts/b.txt"],
        "gl-b": ["2/r/artifacts/c.txt"],
        "other": ["3/r/artifacts/not-ours.txt"],  # in the old bucket, but not the glob's
    }
    for ws, names in held.items():
        for name in names:
            s3.put_object(Bucket=old, Key=f"{ws}/workspaces/{ws}/{name}", Body=name.encode())
    config = tmp_path / "glob.yaml"
    config.write_text(
        textwrap.dedent(f"""
            defaults: {{endpoint_url: "{s3.meta.endpoint_url}", region: us-east-1,
                        addressing_style: path}}
            workspaces:
              "gl-*":
                url: "s3://{new}/{{workspace}}"
                previous: ["s3://{old}/{{workspace}}"]
        """)
    )
    common = ["--config", str(config), "--json"]
    dest = ["--destination", "ws-s3://root"]

    def left() -> int | None:
        reports = run_cli("check", "--probe", *common, *dest)["routes"]
        (glob,) = [r for r in reports if r["entry"] == "gl-*"]
        assert (glob["ok"], glob["previous"]) == (True, 1), glob
        return glob["left_in_previous"]

    assert left() == 3
    plan = run_cli("migrate", "--all", "--dry-run", *common)["places"]
    assert [(p["workspace"], p["planned"]) for p in plan] == [("gl-a", 2), ("gl-b", 1)]
    done = run_cli("migrate", "--all", "--delete-source", *common)["places"]
    assert [(p["workspace"], p["copied"], p["deleted"]) for p in done] == [
        ("gl-a", 2, 2),
        ("gl-b", 1, 1),
    ]
    assert keys(s3, new) == [
        f"{ws}/workspaces/{ws}/{name}" for ws in ("gl-a", "gl-b") for name in held[ws]
    ]
    assert keys(s3, old) == ["other/workspaces/other/3/r/artifacts/not-ours.txt"]
    assert left() == 0


def test_a_moved_experiment_whose_copy_fails_leaves_the_database_unchanged(
    mig_server: MlflowServer, s3: Any, tmp_path: Path, cli_env: None
) -> None:
    """The copy comes first and the rewrite is one transaction after it: a copy that fails
    midway changes no stored location, and the rerun finishes both."""
    name = unique("moved-f")
    with in_workspace("mv-x"):
        client = mig_server.client()
        exp = client.create_experiment(name)
        run = client.create_run(exp).info.run_id
        for file in ("a.bin", "b.bin"):
            (tmp_path / file).write_bytes(file.encode() * 100)
            client.log_artifact(run, str(tmp_path / file))
    move_experiment(mig_server, name, "mv-x", "mv-y")
    stuck = f"mlflow-artifacts:/workspaces/mv-x/{exp}/{run}/artifacts"
    config = tmp_path / "through-faults.yaml"
    db = f"sqlite:///{mig_server.server.log.parent / 'mlflow.db'}"
    with FaultProxy(s3.meta.endpoint_url) as proxy:
        config.write_text(
            mig_server.config.read_text().replace(
                f"endpoint_url: {s3.meta.endpoint_url}",
                f"endpoint_url: {proxy.url}\n  max_attempts: 1",
            )
        )
        args = ["migrate", "--moved-from", "mv-x", "--to", "mv-y", "--backend-store-uri", db]
        args += ["--destination", "ws-s3://mig-root", "--config", str(config)]
        proxy.fail(is_copy, nth={2})
        failed = CliRunner().invoke(main, [*args, "--delete-source"])
        assert failed.exit_code == 1, failed.output
        assert "the database was not changed" in " ".join(failed.output.split())
        assert proxy.failed == 1
        with in_workspace("mv-y"):
            assert mig_server.client().get_run(run).info.artifact_uri == stuck
        assert len(keys(s3, "mig-mv-x", f"workspaces/mv-x/{exp}/")) == 2  # nothing deleted

        proxy.clear()
        done = run_cli(*args, "--delete-source", "--json")
    assert (done["updated"], done["deleted"]) == (1, 2)
    assert (done["places"][0]["copied"], done["places"][0]["present"]) == (1, 1)
    with in_workspace("mv-y"):
        assert mig_server.client().get_run(run).info.artifact_uri == stuck.replace("mv-x", "mv-y")
    assert keys(s3, "mig-mv-x", f"workspaces/mv-x/{exp}/") == []
