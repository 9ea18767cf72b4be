"""Moves that fail midway lose nothing and leave nothing partial; a re-run finishes them.

The ``ws+sqlite`` provider runs in this process on its own database, as in a server worker;
S3 traffic goes through a fault-injecting proxy in front of moto.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.faults import FaultProxy, is_any_copy, is_delete
from tests.support.s3 import keys
from tests.support.servers import MOTO_KEY, MOTO_SECRET, Server
from tests.support.workspaces import unique

pytestmark = [
    pytest.mark.integration,
    # MLflow's own ORM models use a loader SQLAlchemy deprecates; not ours to fix.
    pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning"),
]

BUCKET = "life-faults"
Q = ".ws-quarantine"
KINDS = {"copy": is_any_copy, "delete": is_delete}


@pytest.fixture(scope="module")
def proxy(moto: Server, s3: Any) -> Iterator[FaultProxy]:
    s3.create_bucket(Bucket=BUCKET)
    with FaultProxy(moto.url) as faults:
        yield faults


@pytest.fixture
def provider(proxy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from ws_artifacts.serving.provider import create_provider

    config = tmp_path / "ws.yaml"
    config.write_text(
        textwrap.dedent(f"""
            defaults:
              endpoint_url: "{proxy.url}"
              region: us-east-1
              addressing_style: path
              retry_mode: standard
              max_attempts: 2
              transfer: {{multipart_threshold: 5242880, part_size: 5242880}}
              storage: {{storage_class: STANDARD_IA}}
        """)
    )
    for name, value in {
        "WS_ARTIFACTS_CONFIG": str(config),
        "AWS_ACCESS_KEY_ID": MOTO_KEY,
        "AWS_SECRET_ACCESS_KEY": MOTO_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "_MLFLOW_SERVER_ARTIFACT_DESTINATION": f"ws-s3://{BUCKET}",
    }.items():
        monkeypatch.setenv(name, value)
    store = create_provider(workspace_uri=f"ws+sqlite:///{tmp_path / 'mlflow.db'}")
    yield store
    proxy.clear()


def new_workspace(provider: Any, s3: Any, count: int = 6) -> tuple[str, dict[str, bytes]]:
    from mlflow.entities import Workspace

    name = unique("wf")
    provider.create_workspace(Workspace(name=name))
    objects = {
        f"workspaces/{name}/1/run/artifacts/f{i}": f"bytes of {i} ".encode() * (i + 1)
        for i in range(count)
    }
    for key, data in objects.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    return name, objects


def read_all(s3: Any, prefix: str) -> dict[str, bytes]:
    return {k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys(s3, BUCKET, prefix)}


def by_relative(found: dict[str, bytes], name: str) -> dict[str, bytes]:
    """Objects keyed by their path below ``workspaces/<name>/``, wherever they are."""
    marker = f"workspaces/{name}/"
    return {k[k.index(marker) :]: v for k, v in found.items() if marker in k}


def cascade() -> Any:
    from mlflow.entities.workspace import WorkspaceDeletionMode

    return WorkspaceDeletionMode.CASCADE


@pytest.mark.parametrize(
    ("kind", "nth"), [("copy", 4), ("delete", 1)], ids=["4th-copy", "1st-delete"]
)
def test_move_failing_midway_loses_nothing_and_a_rerun_finishes(
    provider: Any, proxy: FaultProxy, s3: Any, kind: str, nth: int
) -> None:
    from mlflow.exceptions import MlflowException

    name, objects = new_workspace(provider, s3)
    proxy.fail_from(KINDS[kind], nth)
    with pytest.raises(MlflowException, match=f"failed for workspace '{name}'"):
        provider.delete_workspace(name, cascade())
    proxy.clear()

    assert provider.get_workspace(name).name == name  # the rows are still there
    live = read_all(s3, f"workspaces/{name}/")
    held = read_all(s3, f"{Q}/{name}/")
    manifests = [k for k in held if k.endswith("ws-quarantine.json")]
    assert len(manifests) == 1
    assert json.loads(held.pop(manifests[0]))["state"] == "moving"
    # Every object is whole somewhere, nothing else exists, no upload is left open.
    assert {**by_relative(held, name), **live} == objects
    assert set(by_relative(held, name)) | set(live) == set(objects)
    if kind == "delete":
        assert live == objects  # no source deleted before its copy was verified
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []

    provider.delete_workspace(name, cascade())

    assert keys(s3, BUCKET, f"workspaces/{name}/") == []
    held = read_all(s3, f"{Q}/{name}/")
    stamp = manifests[0].split("/")[2]
    manifest = json.loads(held.pop(f"{Q}/{name}/{stamp}/ws-quarantine.json"))
    assert (manifest["state"], manifest["objects"]) == ("quarantined", len(objects))
    assert held == {f"{Q}/{name}/{stamp}/{k}": v for k, v in objects.items()}
    with pytest.raises(MlflowException, match="not found"):
        provider.get_workspace(name)


def test_failed_row_delete_moves_the_artifacts_back(
    provider: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.exceptions import MlflowException

    name, objects = new_workspace(provider, s3, count=3)

    def broken(*args: Any) -> None:
        raise MlflowException("database is locked")

    monkeypatch.setattr(provider.inner, "delete_workspace", broken)
    with pytest.raises(MlflowException, match="database is locked"):
        provider.delete_workspace(name, cascade())

    assert read_all(s3, f"workspaces/{name}/") == objects
    assert keys(s3, BUCKET, f"{Q}/{name}/") == []


def test_large_object_is_copied_in_parts_with_the_routes_policy(
    provider: Any, proxy: FaultProxy, s3: Any
) -> None:
    from mlflow.entities import Workspace

    name = unique("wf")
    provider.create_workspace(Workspace(name=name))
    data = bytes(range(256)) * (11 * 4096)  # 11 MiB: three 5 MiB parts
    s3.put_object(Bucket=BUCKET, Key=f"workspaces/{name}/2/r/artifacts/big", Body=data)
    proxy.fail_from(is_any_copy, 10**9)  # count copies, fail none
    provider.delete_workspace(name, cascade())

    assert proxy.matched(is_any_copy) == 3  # upload_part_copy x 3, no single copy_object
    (stamp,) = {k.split("/")[2] for k in keys(s3, BUCKET, f"{Q}/{name}/")}
    key = f"{Q}/{name}/{stamp}/workspaces/{name}/2/r/artifacts/big"
    got = s3.get_object(Bucket=BUCKET, Key=key)
    assert got["Body"].read() == data
    assert got["StorageClass"] == "STANDARD_IA"
    tags = s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]
    assert tags == [{"Key": "mlflow-workspace", "Value": name}]


def test_restrict_with_resources_is_refused_before_anything_moves(
    provider: Any, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.entities.workspace import WorkspaceDeletionMode
    from mlflow.exceptions import MlflowException
    from mlflow.store.tracking.sqlalchemy_workspace_store import (
        WorkspaceAwareSqlAlchemyStore,
    )
    from mlflow.utils.workspace_context import WorkspaceContext

    name, objects = new_workspace(provider, s3, count=2)
    monkeypatch.setenv("MLFLOW_ENABLE_WORKSPACES", "true")
    tracking = WorkspaceAwareSqlAlchemyStore(
        f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "a")
    )
    with WorkspaceContext(name):
        tracking.create_experiment("holds-a-row")
    with pytest.raises(MlflowException, match="still contains 1 resource"):
        provider.delete_workspace(name, WorkspaceDeletionMode.RESTRICT)
    assert read_all(s3, f"workspaces/{name}/") == objects
    assert keys(s3, BUCKET, f"{Q}/{name}/") == []


def test_provider_without_a_destination_refuses_to_delete(
    provider: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.exceptions import MlflowException

    name, objects = new_workspace(provider, s3, count=1)
    monkeypatch.delenv("_MLFLOW_SERVER_ARTIFACT_DESTINATION")
    with pytest.raises(MlflowException, match="the server has no ws- artifact destination"):
        provider.delete_workspace(name, cascade())
    assert provider.get_workspace(name).name == name
    assert read_all(s3, f"workspaces/{name}/") == objects


def test_provider_uri_must_start_with_ws_plus() -> None:
    from ws_artifacts.core.errors import ConfigError
    from ws_artifacts.serving.provider import inner_uri

    assert inner_uri("ws+postgresql://db/mlflow") == "postgresql://db/mlflow"
    with pytest.raises(ConfigError, match="use ws\\+ before the database URI"):
        inner_uri("sqlite:///mlflow.db")


def test_create_quarantines_leftovers_and_warns(
    provider: Any, s3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from mlflow.entities import Workspace

    name = unique("wf")
    s3.put_object(Bucket=BUCKET, Key=f"workspaces/{name}/3/r/old", Body=b"old owner")
    with caplog.at_level("WARNING", logger="ws_artifacts.serving.provider"):
        provider.create_workspace(Workspace(name=name))
    (stamp,) = {k.split("/")[2] for k in keys(s3, BUCKET, f"{Q}/{name}/")}
    assert keys(s3, BUCKET, f"workspaces/{name}/") == []
    assert keys(s3, BUCKET, f"{Q}/{name}/") == [
        f"{Q}/{name}/{stamp}/workspaces/{name}/3/r/old",
        f"{Q}/{name}/{stamp}/ws-quarantine.json",
    ]
    assert [r.getMessage() for r in caplog.records] == [
        f"workspace {name} is being created, but its place s3://{BUCKET}/workspaces/{name} "
        f"already held 1 object(s) (9 bytes) of an earlier owner: moved to "
        f"s3://{BUCKET}/{Q}/{name}/{stamp}"
    ]
