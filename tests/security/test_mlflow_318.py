"""Attacks on what MLflow 3.18 adds, through a real ``ws-artifacts server
--artifacts-presigned-only`` (guard on, two workers) on moto: presigned download and upload
signing, model-version artifacts with ``presigned=true`` (``runs:/`` sources), trace artifacts
through the per-request proxied repository, ``/server-info`` and the case-insensitive
``WORKSPACES/`` check. A team-a request (or the default workspace's) never gets a URL for
team-b's place, nor a byte of it; nothing is written outside the attacker's place.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.security.world import SECRET_FILE, World, http_json, raw_request
from tests.support.s3 import keys
from tests.support.servers import MlflowServer, server_env, start_mlflow
from tests.support.workspaces import WORKSPACES, in_workspace

pytestmark = [pytest.mark.integration, pytest.mark.mlflow_min("3.18")]

WS_ARTIFACTS = [str(Path(sys.executable).parent / "ws-artifacts"), "server"]
PRESIGNED = "/api/2.0/mlflow-artifacts/presigned"
MPU = "/api/2.0/mlflow-artifacts/mpu"
#: What would show that something was signed: a signature (only the own-workspace control gets
#: one); a URL into the victim's bucket is looked for as well (refusals may echo the attacker's
#: own ``s3://`` input, which is no leak).
SIGNED = ("X-Amz-Signature", "Signature=")


@pytest.fixture(scope="module")
def world(
    routed_config_file: Path, s3: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    work = tmp_path_factory.mktemp("sec-318")
    command = [
        *WS_ARTIFACTS,
        "--config",
        str(routed_config_file),
        "--artifacts-destination",
        "ws-s3://root",
        "--artifacts-presigned-only",
    ]
    env = server_env(routed_config_file)
    server = start_mlflow(work, command=command, args=[], env=env, workers=2)
    try:
        wrapped = MlflowServer(server, routed_config_file)
        client = wrapped.client()
        for name in WORKSPACES:
            client.create_workspace(name)
        yield World(wrapped, s3, f"SECRET-{uuid.uuid4().hex}", work / "local").build()
    finally:
        server.stop()


def _refused(world: World, status: int, body: bytes) -> None:
    assert status in (400, 403, 404), (status, body[:300])
    text = body.decode("utf-8", "replace")
    victim_url = f"{world.s3.meta.endpoint_url}/team-b-artifacts"
    for leak in (*SIGNED, victim_url):
        assert leak not in text, f"{leak!r} in {text[:300]}"
    world.assert_no_leak(body)


def _victim(world: World, spelled: str = "workspaces") -> str:
    ids = world.ids
    return f"{spelled}/team-b/{ids['b_exp']}/{ids['b_run']}/artifacts"


@pytest.mark.parametrize(
    ("attacker", "spelled"),
    [
        ("team-a", "workspaces"),
        ("team-a", "WORKSPACES"),
        ("team-a", "Workspaces"),
        ("default", "workspaces"),
        ("default", "WORKSPACES"),
        ("default", "wOrKsPaCeS"),
    ],
    ids=["a-exact", "a-upper", "a-title", "default-exact", "default-upper", "default-mixed"],
)
def test_presigned_download_of_another_workspace_yields_no_url(
    world: World, attacker: str, spelled: str
) -> None:
    path = f"{PRESIGNED}/{_victim(world, spelled)}/{SECRET_FILE}"
    status, body = raw_request(world.server, "GET", path, attacker)
    _refused(world, status, body)


@pytest.mark.parametrize(
    ("attacker", "spelled"),
    [("team-a", "workspaces"), ("team-a", "WORKSPACES"), ("default", "WORKSPACES")],
    ids=["a-exact", "a-upper", "default-upper"],
)
def test_presigned_multipart_upload_into_another_workspace_starts_nothing(
    world: World, attacker: str, spelled: str
) -> None:
    before = world.snapshot()
    path = f"{MPU}/create/{_victim(world, spelled)}"
    status, body = http_json(
        world.server, "POST", path, attacker, {"path": SECRET_FILE, "num_parts": 1}
    )
    _refused(world, status, body)
    assert world.assert_contained(before, attacker) == []
    assert world.s3.list_multipart_uploads(Bucket="team-b-artifacts").get("Uploads", []) == []


def test_presigned_upload_url_for_another_workspaces_run_is_refused(world: World) -> None:
    before = world.snapshot()
    body = {"run_id": world.ids["b_run"], "path": SECRET_FILE}
    status, answer = http_json(
        world.server, "POST", "/api/2.0/mlflow/artifacts/presigned-upload-url", "team-a", body
    )
    _refused(world, status, answer)
    assert world.assert_contained(before, "team-a") == []


def _model_version(world: World, attacker: str, source: str) -> tuple[int, bytes, str]:
    """Register ``source`` as a model version of ``attacker`` (status, body, version)."""
    name = f"sec318-{uuid.uuid4().hex[:8]}"
    status, body = http_json(
        world.server, "POST", "/api/2.0/mlflow/registered-models/create", attacker, {"name": name}
    )
    assert status == 200, body
    payload = {"name": name, "source": source}
    if source.startswith("runs:/"):
        payload["run_id"] = source.split("/")[1]
    status, created = http_json(
        world.server, "POST", "/api/2.0/mlflow/model-versions/create", attacker, payload
    )
    version = json.loads(created)["model_version"]["version"] if status == 200 else ""
    return status, created, f"name={name}&version={version}"


def _signed_model_artifact(world: World, attacker: str, query: str) -> tuple[int, bytes]:
    path = f"/model-versions/get-artifact?{query}&path={SECRET_FILE}"
    return raw_request(world.server, "GET", path + "&presigned=true", attacker)


@pytest.mark.parametrize(
    "source",
    [
        "runs:/{b_run}/",
        "runs:/{b_run}/../../",
        "mlflow-artifacts:/{B}",
        "mlflow-artifacts:/WORKSPACES/team-b/{b_exp}/{b_run}/artifacts",
        "ws-s3://root/{B}",
        "s3://team-b-artifacts/{B}",
    ],
    ids=["runs", "runs-up", "proxied", "proxied-upper", "ws-s3", "s3"],
)
def test_model_version_presigned_download_never_signs_another_workspace(
    world: World, source: str
) -> None:
    status, created, query = _model_version(world, "team-a", world.fill(source))
    if status == 200:  # not refused at creation: reading it must be
        status, body = _signed_model_artifact(world, "team-a", query)
        created += body
    _refused(world, status, created)


def test_model_version_presigned_download_signs_its_own_workspace(
    world: World, tmp_path: Path
) -> None:
    """The control: a team-a version of a team-a run gets a URL for team-a's bucket, and a
    team-b request for the same version number of a same-named model gets nothing."""
    exp, run = world.ids["a_exp"], world.ids["a_run"]
    world.put("team-a-artifacts", f"workspaces/team-a/{exp}/{run}/artifacts/{SECRET_FILE}", "own")
    status, created, query = _model_version(world, "team-a", f"runs:/{run}/")
    assert status == 200, created
    status, body = _signed_model_artifact(world, "team-a", query)
    assert status == 200, body
    url = json.loads(body)["url"]
    assert url.startswith("http")
    assert "/team-a-artifacts/workspaces/team-a/" in url
    status, body = _signed_model_artifact(world, "team-b", query)
    _refused(world, status, body)


@pytest.mark.parametrize(
    "location",
    [
        "mlflow-artifacts:/workspaces/team-b/{b_exp}/traces/{b_trace}/artifacts",
        "mlflow-artifacts:/WORKSPACES/team-b/{b_exp}/traces/{b_trace}/artifacts",
        "ws-s3://root/workspaces/team-b/{b_exp}/traces/{b_trace}/artifacts",
    ],
    ids=["proxied", "proxied-upper", "ws-s3"],
)
def test_trace_artifacts_never_come_from_another_workspace(world: World, location: str) -> None:
    status, body = world.trace_read("team-a", world.fill(location))
    _refused(world, status, body)


def test_server_info_answers_the_same_to_every_workspace_and_names_no_place(
    world: World,
) -> None:
    answers = {}
    for workspace in ("team-a", "team-b", "default"):
        status, body = raw_request(world.server, "GET", "/api/3.0/mlflow/server-info", workspace)
        assert status == 200, body
        answers[workspace] = json.loads(body)
    assert answers["team-a"] == answers["team-b"] == answers["default"]
    info = answers["team-a"]
    assert info["artifacts_presigned_only"] is True
    assert info["workspaces_enabled"] is True
    text = json.dumps(info)
    assert "s3://" not in text
    assert "-artifacts" not in text


def test_own_workspace_still_round_trips_through_presigned_urls(
    world: World, tmp_path: Path
) -> None:
    """The guard and the checks above leave the attacker's own work alone."""
    local = tmp_path / "mine.txt"
    local.write_bytes(b"team-a's own bytes")
    client = world.server.client()
    exp, run = world.ids["a_exp"], world.ids["a_run"]
    with in_workspace("team-a"):
        client.log_artifact(run, str(local), "own")
        back = client.download_artifacts(run, "own/mine.txt", str(tmp_path / "dst"))
    assert Path(back).read_bytes() == b"team-a's own bytes"
    prefix = f"workspaces/team-a/{exp}/{run}/artifacts/own/"
    assert keys(world.s3, "team-a-artifacts", prefix) == [prefix + "mine.txt"]
