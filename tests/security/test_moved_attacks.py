"""Attacks by the old owner of a moved experiment (issue 22): after ``mlflow db move-resources``
moves an experiment from X to Y, X plants files under its old place, hoping that ``ws-artifacts
migrate --moved-from X --to Y`` copies them into Y's runs.

One ``ws-artifacts server`` (two workers, guard, ``ws+sqlite`` provider) on moto; X and Y have
no route, so both live at the destination.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.security.hostile import ARTIFACTS, MPU, Hostile, start_hostile
from tests.support.s3 import keys
from tests.support.servers import Server
from tests.support.workspaces import in_workspace

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning"),
]

ROOT = "hm-root"
X, Y = "hm-x", "hm-y"


@pytest.fixture(scope="module")
def life(tmp_path_factory: pytest.TempPathFactory, moto: Server, s3: Any) -> Iterator[Hostile]:
    work = tmp_path_factory.mktemp("hostile-moves")
    server = start_hostile(work, moto, s3, ROOT, "{}")
    try:
        for name in (X, Y):
            server.client().create_workspace(name)
        yield server
    finally:
        server.server.stop()


def move(life: Hostile, experiment_name: str) -> None:
    """``mlflow db move-resources`` of one experiment from X to Y, as an operator runs it."""
    command = [sys.executable, "-m", "mlflow", "db", "move-resources", f"sqlite:///{life.db}"]
    command += ["--from", X, "--to", Y, "--resource-type", "experiments"]
    command += ["--name", experiment_name, "--artifact-policy", "retarget", "--yes"]
    command += ["--default-artifact-root", "mlflow-artifacts:/"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr


def _experiment_name(life: Hostile, experiment: str) -> str:
    with in_workspace(X):
        return str(life.client().get_experiment(experiment).name)


@pytest.mark.mlflow_min("3.17")  # `mlflow db move-resources`
def test_the_old_owner_cannot_plant_files_after_the_move(life: Hostile, tmp_path: Path) -> None:
    exp, run = life.log_run(X, {"w.bin": b"X's weights before the move"}, tmp_path)
    kept, kept_run = life.log_run(X, {"k.bin": b"X keeps this one"}, tmp_path)
    move(life, _experiment_name(life, exp))
    old = f"workspaces/{X}/{exp}/{run}/artifacts"
    before = keys(life.s3, ROOT)

    # New connections each time, so both workers are asked.
    answers = [
        life.request("PUT", f"{ARTIFACTS}/{old}/planted-{i}.txt", workspace=X, data=b"planted")
        for i in range(4)
    ]
    answers.append(
        life.request(
            "POST", f"{MPU}/create/{old}", workspace=X, json={"path": "big.bin", "num_parts": 1}
        )
    )
    answers.append(
        life.request(
            "PUT", f"{ARTIFACTS}/workspaces/{X}/{exp}/traces/tr-1/artifacts/t.json", workspace=X
        )
    )
    # Nor may it delete the new owner's only copy before migrate has copied it.
    answers.append(life.request("DELETE", f"{ARTIFACTS}/{old}/w.bin", workspace=X))
    answers.append(life.request("DELETE", f"{ARTIFACTS}/{old}", workspace=X))

    for answer in answers:
        assert answer.status_code == 403, answer.text
        assert answer.json()["error_code"] == "PERMISSION_DENIED"
        assert f"experiment {exp} does not belong to workspace '{X}'" in answer.json()["message"]
    assert keys(life.s3, ROOT) == before
    assert life.s3.list_multipart_uploads(Bucket=ROOT).get("Uploads", []) == []
    # X's own experiments and Y's place of the moved one still take writes.
    mine = f"{ARTIFACTS}/workspaces/{X}/{kept}/{kept_run}/artifacts/more.txt"
    assert life.request("PUT", mine, workspace=X, data=b"more").status_code == 200
    theirs = f"{ARTIFACTS}/workspaces/{Y}/{exp}/{run}/artifacts/new.txt"
    assert life.request("PUT", theirs, workspace=Y, data=b"new").status_code == 200


@pytest.mark.mlflow_min("3.17")
def test_migrate_refuses_what_was_written_after_the_move(life: Hostile, tmp_path: Path) -> None:
    exp, run = life.log_run(X, {"w.bin": b"X's weights before the move"}, tmp_path)
    old = f"workspaces/{X}/{exp}/{run}/artifacts"
    moved_at = dt.datetime.now(dt.UTC)
    move(life, _experiment_name(life, exp))
    # What a write in the owners' cache window, or a direct client, leaves behind.
    life.s3.put_object(Bucket=ROOT, Key=f"{old}/planted.txt", Body=b"planted")
    planted = life.s3.head_object(Bucket=ROOT, Key=f"{old}/planted.txt")["LastModified"]
    assert planted > moved_at  # moto keeps whole seconds; the move itself takes longer

    done = life.cli(
        "migrate",
        "--moved-from",
        X,
        "--to",
        Y,
        "--backend-store-uri",
        f"sqlite:///{life.db}",
        "--moved-at",
        moved_at.isoformat(),
        "--delete-source",
        "--config",
        str(life.config),
        "--json",
    )

    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads(done.stdout)
    assert result["refused_newer_than_move"] == [f"s3://{ROOT}/{old}/planted.txt"]
    assert keys(life.s3, ROOT, f"workspaces/{Y}/{exp}/") == [
        f"workspaces/{Y}/{exp}/{run}/artifacts/w.bin"
    ]
    # The refused object is left where it was, even with --delete-source.
    assert keys(life.s3, ROOT, f"workspaces/{X}/{exp}/") == [f"{old}/planted.txt"]
