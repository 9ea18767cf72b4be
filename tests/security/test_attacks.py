"""The attack suite: every case through a real proxied MLflow server and through direct mode
(a configured client, and a ``--no-serve-artifacts`` server reading stored locations), all on
a real S3 endpoint (moto server). Each asserts the exact refusal (or containment), that no
byte of a victim was read, and that nothing was written outside the attacker's route.
"""

from __future__ import annotations

import io
import posixpath
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from packaging.version import Version

from tests.security.cases import CASES, Case
from tests.security.world import SECRET_FILE, World, raw_request
from tests.support.servers import MlflowServer
from tests.support.workspaces import in_workspace

pytestmark = pytest.mark.integration

PLANT = f"PLANTED-{uuid.uuid4().hex}".encode()
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


@pytest.fixture(scope="module")
def proxied_world(
    proxied: MlflowServer, s3: Any, tmp_path_factory: pytest.TempPathFactory
) -> World:
    return World(proxied, s3, f"SECRET-{uuid.uuid4().hex}", tmp_path_factory.mktemp("p")).build()


@pytest.fixture(scope="module")
def direct_world(direct: MlflowServer, s3: Any, tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(direct, s3, f"SECRET-{uuid.uuid4().hex}", tmp_path_factory.mktemp("d")).build()


def _run_path(world: World, case: Case) -> str:
    ids = world.ids
    short = {"team-a": "a", "vision-x": "x", "other": "o", "default": "d"}[case.attacker]
    return f"workspaces/{case.attacker}/{ids[short + '_exp']}/{ids[short + '_run']}/artifacts"


def proxied_path(world: World, case: Case, tmp_path: Path) -> tuple[int, list[bytes]]:
    path = world.fill(case.template)
    if case.base == "run":
        path = f"{_run_path(world, case)}/{path}"
    wire = urllib.parse.quote(path, safe="/%")
    server, ws = world.server, case.attacker
    if case.kind == "list":
        status, body = raw_request(server, "GET", f"{ARTIFACTS}?path={wire}", ws)
    elif case.kind == "write":
        status, body = raw_request(server, "PUT", f"{ARTIFACTS}/{wire}", ws, PLANT)
    else:
        method = "GET" if case.kind == "read" else "DELETE"
        status, body = raw_request(server, method, f"{ARTIFACTS}/{wire}", ws)
    return status, [body]


def direct_path(world: World, case: Case, tmp_path: Path) -> tuple[str, list[bytes]]:
    path = world.fill(case.template)
    base = "ws-s3://root" if case.base == "root" else f"ws-s3://root/{_run_path(world, case)}"
    repo = get_artifact_repository(base)
    seen: list[bytes] = []
    try:
        with in_workspace(case.attacker):
            if case.kind == "read":
                out = Path(repo.download_artifacts(path, str(tmp_path)))
                seen += [p.read_bytes() for p in [out, *out.rglob("*")] if p.is_file()]
            elif case.kind == "write":
                folder, name = posixpath.split(path)
                repo.log_artifact_from_stream(io.BytesIO(PLANT), name, folder)
            elif case.kind == "list":
                seen.append(repr([f.path for f in repo.list_artifacts(path)]).encode())
            else:
                repo.delete_artifacts(path)
    except MlflowException as err:
        seen.append(str(err).encode())
        return str(err.error_code), seen
    return "ok", seen


def stored_location(world: World, case: Case, tmp_path: Path) -> tuple[int, list[bytes]]:
    location = world.fill(case.template)
    if case.kind == "model-version":
        status, body = world.model_version_read(case.attacker, location)
    else:
        status, body = world.trace_read(case.attacker, location)
    return status, [body]


# MLflow 3.10 answers two cases differently, neither leaking a byte: its Flask routes redirect
# a '//' path (308) to the path MLflow then refuses, and a server without artifact serving
# accepts an mlflow-artifacts source that it then fails to serve (500), where 3.17 refuses it
# at creation (400).
MLFLOW_3_10_STATUS = {
    ("proxied", "absolute-path"): 308,
    ("direct", "mv-mlflow-artifacts-other"): 500,
}
_OLD_MLFLOW = Version(mlflow.__version__) < Version("3.11")
# MLflow 3.18 refuses some cases itself, earlier and with another code, still leaking nothing:
# its handlers read a `Workspaces/` segment case-insensitively (the other workspace's path is
# refused, 400, where 3.17 looked for a key that does not exist, 404), and its trace-tag
# handlers refuse to set `mlflow.artifactLocation` at all (400 before any read, where 3.17
# stored it and the read was refused, 403; 500 for mlflow-artifacts on a direct server).
MLFLOW_3_18_STATUS = {
    ("proxied", "case-segment"): 400,
    **{
        (mode, case): 400
        for mode in ("proxied", "direct")
        for case in (
            "trace-ws-uri-other-workspace",
            "trace-mlflow-artifacts-other",
            "trace-ws-file-server-fs",
        )
    },
}
_NEW_MLFLOW = Version(mlflow.__version__) >= Version("3.18")


@pytest.mark.mlflow_differs
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@pytest.mark.parametrize("mode", ["proxied", "direct"])
def test_attack(mode: str, case: Case, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    world: World = request.getfixturevalue(f"{mode}_world")
    attack: Callable[[World, Case, Path], tuple[Any, list[bytes]]]
    if case.kind in ("model-version", "trace"):
        attack = stored_location
    elif mode == "direct":
        request.getfixturevalue("use_config")  # the client reads the same configuration
        attack = direct_path
    else:
        attack = proxied_path
    before = world.snapshot()
    outcome, seen = attack(world, case, tmp_path)
    world.assert_no_leak(*seen)
    if case.kind == "list":  # a listing leaks names, not bytes: no victim's file name either
        assert [out for out in seen if SECRET_FILE.encode() in out] == []
    world.assert_contained(before, case.attacker)
    expected = case.proxied if mode == "proxied" else case.direct
    if _OLD_MLFLOW:
        expected = MLFLOW_3_10_STATUS.get((mode, case.id), expected)
    if _NEW_MLFLOW:
        expected = MLFLOW_3_18_STATUS.get((mode, case.id), expected)
    assert outcome == expected, seen[-1][:400]
