"""A server moved from ``s3://`` keeps MLflow's S3 variables, and hands out presigned uploads.

One ``mlflow server --no-serve-artifacts --default-artifact-root ws-s3://root`` whose
configuration has no ``endpoint_url`` anywhere: it reaches moto only through
``MLFLOW_S3_ENDPOINT_URL``, as a stock ``s3://`` server would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.test_proxied import header, make_run
from tests.support.config import ConfigFile
from tests.support.servers import (
    DIRECT_ARGS,
    MOTO_KEY,
    MOTO_SECRET,
    MlflowServer,
    Server,
    running_server,
)
from tests.support.workspaces import unique
from ws_artifacts._mlflow import environment

pytestmark = pytest.mark.integration

_CONFIG = (
    ConfigFile(defaults={"region": "us-east-1", "addressing_style": "path"})
    .route(
        "team-a",
        "s3://team-a-artifacts",
        storage={"sse": "AES256", "storage_class": "STANDARD_IA", "tags": {"team": "a"}},
    )
    .route("team-b", "s3://team-b-artifacts")
)
_PRESIGN = "/api/2.0/mlflow/artifacts/presigned-upload-url"


@pytest.fixture(scope="module")
def env_server(session_dir: Path, moto: Server, s3: Any) -> Iterator[MlflowServer]:
    """A direct-access server configured without endpoint_url, MLFLOW_S3_ENDPOINT_URL set."""
    config = session_dir / "no-endpoint.yaml"
    _CONFIG.write(config)
    env = {
        "WS_ARTIFACTS_CONFIG": str(config),
        "MLFLOW_S3_ENDPOINT_URL": moto.url,
        "AWS_ACCESS_KEY_ID": MOTO_KEY,
        "AWS_SECRET_ACCESS_KEY": MOTO_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with running_server(
        session_dir / "env-server", config, DIRECT_ARGS, workers=1, env=env, startup_timeout=600
    ) as server:
        yield server


def test_server_reads_the_store_named_by_mlflow_s3_endpoint_url(
    env_server: MlflowServer, s3: Any
) -> None:
    exp, run = make_run(env_server, "team-b")
    key = f"workspaces/team-b/{exp}/{run}/artifacts/notes.txt"
    s3.put_object(Bucket="team-b-artifacts", Key=key, Body=b"from the env endpoint")
    response = requests.get(
        f"{env_server.url}/get-artifact",
        params={"run_id": run, "path": "notes.txt"},
        headers=header("team-b"),
        timeout=30,
    )
    assert (response.status_code, response.content) == (200, b"from the env endpoint")


def _presign(server: MlflowServer, workspace: str, run: str, path: str) -> requests.Response:
    return requests.post(
        server.url + _PRESIGN,
        json={"run_id": run, "path": path},
        headers=header(workspace),
        timeout=30,
    )


def test_presigned_upload_carries_the_workspace_route_and_policy(
    env_server: MlflowServer, moto: Server, s3: Any
) -> None:
    exp, run = make_run(env_server, "team-a")
    response = _presign(env_server, "team-a", run, "models/model.json")
    if not environment.HAS_PRESIGNED_UPLOADS:  # MLflow 3.10: no such endpoint, nothing advertised
        assert response.status_code == 404
        assert (
            s3.list_objects_v2(Bucket="team-a-artifacts", Prefix=f"workspaces/team-a/{exp}/")[
                "KeyCount"
            ]
            == 0
        )
        return
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["presigned_url"].startswith(
        f"{moto.url}/team-a-artifacts/workspaces/team-a/{exp}/{run}/artifacts/models/model.json?"
    )
    assert body["headers"] == {
        "Content-Type": "application/json",
        "x-amz-server-side-encryption": "AES256",
        "x-amz-storage-class": "STANDARD_IA",
        "x-amz-tagging": "team=a&mlflow-workspace=team-a",
    }
    put = requests.put(body["presigned_url"], data=b'{"w": 1}', headers=body["headers"], timeout=30)
    assert put.status_code == 200, put.text
    key = f"workspaces/team-a/{exp}/{run}/artifacts/models/model.json"
    head = s3.head_object(Bucket="team-a-artifacts", Key=key)
    assert (head["ContentType"], head["ServerSideEncryption"], head["StorageClass"]) == (
        "application/json",
        "AES256",
        "STANDARD_IA",
    )
    tags = s3.get_object_tagging(Bucket="team-a-artifacts", Key=key)["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [
        ("mlflow-workspace", "team-a"),
        ("team", "a"),
    ]
    assert s3.get_object(Bucket="team-a-artifacts", Key=key)["Body"].read() == b'{"w": 1}'


def test_presigned_upload_refuses_a_path_mlflow_refuses(env_server: MlflowServer, s3: Any) -> None:
    exp, run = make_run(env_server, "team-a")
    response = _presign(env_server, "team-a", run, "/" + unique("abs"))
    if not environment.HAS_PRESIGNED_UPLOADS:
        assert response.status_code == 404
    else:
        assert response.status_code == 400
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert (
        s3.list_objects_v2(Bucket="team-a-artifacts", Prefix=f"workspaces/team-a/{exp}/")[
            "KeyCount"
        ]
        == 0
    )
