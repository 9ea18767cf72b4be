"""``ws-artifacts server --artifacts-presigned-only`` (MLflow 3.18+) on moto, two workers.

MLflow's own client moves every byte to and from storage through presigned URLs; the server
only signs. Each workspace's URLs are for its own route, signed with its credentials and
storage policy, admitted by its quota and written to the audit trail; a route that cannot
presign answers with an error that names the workspace and the fix.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.config import ConfigFile
from tests.support.s3 import keys
from tests.support.servers import MOTO_KEY, MOTO_SECRET, Server, start_mlflow
from tests.support.workspaces import in_workspace, unique

pytestmark = [pytest.mark.integration, pytest.mark.mlflow_min("3.18")]

WS_ARTIFACTS = [str(Path(sys.executable).parent / "ws-artifacts"), "server"]
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
MIB = 1024 * 1024
WORKSPACES = ("team-a", "team-b", "team-q", "local-x", "nodl-y")


@dataclass
class PresignedOnly:
    server: Server
    prefix: str
    local: Path
    audit: Path

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.server.url)

    def run(self, workspace: str) -> tuple[str, str]:
        """A new experiment and run in ``workspace``: (experiment id, run id)."""
        client = self.client()
        with in_workspace(workspace):
            exp = client.create_experiment(unique(workspace))
            return exp, client.create_run(exp).info.run_id

    def sign_download(self, workspace: str, path: str) -> requests.Response:
        """What the server answers a client asking for a presigned download of ``path``."""
        return requests.get(
            f"{self.server.url}/api/2.0/mlflow-artifacts/presigned/{path}",
            headers={"X-MLFLOW-WORKSPACE": workspace},
            timeout=30,
        )

    def audit_lines(self, count: int) -> list[dict[str, Any]]:
        """The trail, once it has at least ``count`` lines (lines are written as requests end)."""
        deadline = time.monotonic() + 10
        lines: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            lines = [json.loads(line) for line in self.audit.read_text().splitlines()]
            if len(lines) >= count:
                break
            time.sleep(0.05)
        return lines


@pytest.fixture(scope="module")
def presigned_only(
    tmp_path_factory: pytest.TempPathFactory, moto: Server, s3: Any
) -> Iterator[PresignedOnly]:
    work = tmp_path_factory.mktemp("presigned-only")
    prefix, local = unique("po"), work / "local-x"
    routes = ConfigFile(moto.url).route(
        "team-a",
        f"s3://team-a-artifacts/{prefix}",
        storage={"sse": "AES256", "storage_class": "STANDARD_IA", "tags": {"cost-centre": "a-1"}},
        quota={"max_objects": 100},
    )
    routes.route("team-b", f"s3://team-b-artifacts/{prefix}")
    routes.route("team-q", f"s3://team-b-artifacts/{prefix}-q", quota={"max_objects": 0})
    routes.route("local-x", f"file://{local}")
    routes.route("nodl-y", f"s3://root/{prefix}-nodl", transfer={"presigned_downloads": False})
    config = routes.write(work / "ws-artifacts.yaml")
    audit = work / "audit.jsonl"
    command = [
        *WS_ARTIFACTS,
        "--config",
        str(config),
        "--artifacts-destination",
        "ws-s3://root",
        "--artifacts-presigned-only",
        "--audit",
        str(audit),
    ]
    env = {
        "AWS_ACCESS_KEY_ID": MOTO_KEY,
        "AWS_SECRET_ACCESS_KEY": MOTO_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    server = start_mlflow(work, command=command, args=[], env=env, workers=2)
    try:
        world = PresignedOnly(server, prefix, local, audit)
        client = world.client()
        for name in WORKSPACES:
            client.create_workspace(name)
        yield world
    finally:
        server.stop()


@pytest.fixture
def no_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """No retries: a refusal must arrive on the first answer (413 is not retried; this makes a
    regression to a retried status fail at once instead of after minutes)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


def test_server_info_says_presigned_only_and_proxied_bytes_are_refused(
    presigned_only: PresignedOnly, s3: Any
) -> None:
    url = presigned_only.server.url
    info = requests.get(f"{url}/api/3.0/mlflow/server-info", timeout=30).json()
    assert info["artifacts_presigned_only"] is True
    exp, run = presigned_only.run("team-a")
    path = f"{ARTIFACTS}/{exp}/{run}/artifacts/proxied.txt"
    headers = {"X-MLFLOW-WORKSPACE": "team-a"}
    put = requests.put(url + path, data=b"carried", headers=headers, timeout=30)
    assert put.status_code == 403, put.text
    assert "uploaded directly to storage" in put.json()["message"]
    assert keys(s3, "team-a-artifacts", f"{presigned_only.prefix}/workspaces/team-a/{exp}/") == []
    get = requests.get(url + path, headers=headers, timeout=30)
    assert get.status_code == 403, get.text


@pytest.mark.parametrize(
    ("workspace", "bucket", "policy"),
    [
        (
            "team-a",
            "team-a-artifacts",
            {"ServerSideEncryption": "AES256", "StorageClass": "STANDARD_IA"},
        ),
        ("team-b", "team-b-artifacts", {"ServerSideEncryption": None, "StorageClass": None}),
    ],
    ids=["team-a-with-policy", "team-b-plain"],
)
def test_each_workspace_moves_its_bytes_to_and_from_its_own_bucket(
    presigned_only: PresignedOnly,
    s3: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    workspace: str,
    bucket: str,
    policy: dict[str, str | None],
) -> None:
    """Small, empty and multipart files: MLflow's client signs through the server, then PUTs
    and GETs the workspace's bucket itself; the trail shows signing only, no bytes carried."""
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", str(5 * MIB))
    files = {
        "small.txt": f"{workspace} ".encode() * 512,
        "empty.bin": b"",
        "big.bin": bytes(range(256)) * (5 * MIB // 256) + b"end",
    }
    src = tmp_path / "src"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    exp, run = presigned_only.run(workspace)
    before = len(presigned_only.audit_lines(0))
    client = presigned_only.client()
    with in_workspace(workspace):
        client.log_artifacts(run, str(src), "out")
        listed = sorted((f.path, f.file_size) for f in client.list_artifacts(run, "out"))
        back = Path(client.download_artifacts(run, "out", str(tmp_path / "dst")))
    # MLflow's JSON leaves a size of zero out, so the empty file lists without one.
    assert listed == sorted((f"out/{n}", len(d) or None) for n, d in files.items())
    assert {p.name: p.read_bytes() for p in back.iterdir()} == files

    base = f"{presigned_only.prefix}/workspaces/{workspace}/{exp}/{run}/artifacts/out/"
    assert keys(s3, bucket, base) == sorted(base + name for name in files)
    other = "team-b-artifacts" if bucket == "team-a-artifacts" else "team-a-artifacts"
    assert keys(s3, other, f"{presigned_only.prefix}/workspaces/{workspace}/") == []
    for name in files:
        head = s3.head_object(Bucket=bucket, Key=base + name)
        assert {k: head.get(k) for k in policy} == policy
    big = s3.head_object(Bucket=bucket, Key=base + "big.bin")
    assert big["ETag"].endswith('-2"')  # two parts, PUT by the client itself
    tags = s3.get_object_tagging(Bucket=bucket, Key=base + "small.txt")["TagSet"]
    expected_tags = [{"Key": "mlflow-workspace", "Value": workspace}]
    if workspace == "team-a":
        expected_tags.insert(0, {"Key": "cost-centre", "Value": "a-1"})
    assert sorted(tags, key=lambda t: t["Key"]) == expected_tags
    assert s3.list_multipart_uploads(Bucket=bucket, Prefix=base).get("Uploads", []) == []

    lines = presigned_only.audit_lines(before + 10)[before:]
    ops = sorted((line["operation"], line["path"].rsplit("/", 1)[-1]) for line in lines)
    signed = [
        (op, name)
        for name in files
        for op in ("multipart_create", "multipart_complete", "presign_read")
    ]
    assert [o for o in ops if o[0] != "list"] == sorted(signed)
    assert {line["workspace"] for line in lines} == {workspace}
    assert {line["location"].split("/")[2] for line in lines} == {bucket}
    assert all(line["outcome"] == "ok" for line in lines)


def test_a_route_without_presigned_urls_is_refused_with_the_fix(
    presigned_only: PresignedOnly, tmp_path: Path, no_retries: None
) -> None:
    from mlflow.exceptions import MlflowException

    exp, run = presigned_only.run("local-x")
    local = tmp_path / "model.txt"
    local.write_bytes(b"never carried")
    client = presigned_only.client()
    with in_workspace("local-x"), pytest.raises(requests.HTTPError, match="local-x") as upload:
        client.log_artifact(run, str(local))
    assert "cannot be uploaded to directly" in str(upload.value)
    assert "route workspace 'local-x' to an S3 place" in str(upload.value)
    assert "--artifacts-presigned-only" in str(upload.value)
    run_dir = presigned_only.local / "workspaces" / "local-x" / exp / run
    assert not run_dir.exists()

    # A file already there (written before the switch) cannot be read through a signed URL.
    stored = run_dir / "artifacts" / "old.txt"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"old bytes")
    with in_workspace("local-x"), pytest.raises(MlflowException, match="Failed to download"):
        client.download_artifacts(run, "old.txt", str(tmp_path))
    assert not (tmp_path / "old.txt").exists()
    signed = presigned_only.sign_download("local-x", f"{exp}/{run}/artifacts/old.txt")
    assert signed.status_code == 400, signed.text
    assert "cannot be downloaded from directly" in signed.json()["message"]
    assert "route workspace 'local-x' to an S3 place" in signed.json()["message"]


def test_a_route_with_presigned_downloads_off_is_refused_with_the_fix(
    presigned_only: PresignedOnly, s3: Any, tmp_path: Path, no_retries: None
) -> None:
    from mlflow.exceptions import MlflowException

    exp, run = presigned_only.run("nodl-y")
    local = tmp_path / "model.txt"
    local.write_bytes(b"uploaded directly")
    client = presigned_only.client()
    with in_workspace("nodl-y"):
        client.log_artifact(run, str(local))  # uploads can still be signed
        with pytest.raises(MlflowException, match="Failed to download"):
            client.download_artifacts(run, "model.txt", str(tmp_path / "dst"))
    assert [p for p in (tmp_path / "dst").rglob("*") if p.is_file()] == []
    signed = presigned_only.sign_download("nodl-y", f"{exp}/{run}/artifacts/model.txt")
    assert signed.status_code == 400, signed.text
    message = signed.json()["message"]
    assert "its route has transfer.presigned_downloads: false" in message
    assert "set presigned_downloads: true in the route of workspace 'nodl-y'" in message
    key = f"{presigned_only.prefix}-nodl/workspaces/nodl-y/{exp}/{run}/artifacts/model.txt"
    assert s3.get_object(Bucket="root", Key=key)["Body"].read() == b"uploaded directly"


def test_the_quota_admits_presigned_only_uploads(
    presigned_only: PresignedOnly, s3: Any, tmp_path: Path, no_retries: None
) -> None:
    """A workspace at its quota gets no upload URL: nothing is started in its bucket."""

    exp, run = presigned_only.run("team-q")
    local = tmp_path / "model.txt"
    local.write_bytes(b"over the quota")
    with (
        in_workspace("team-q"),
        pytest.raises(requests.HTTPError, match=r"^413 Client Error") as refused,
    ):
        presigned_only.client().log_artifact(run, str(local))
    # MLflow's presigned-only client raises requests' error, with our answer as its text.
    assert "would hold 1 objects (quota 0 objects)" in str(refused.value)
    created = requests.post(
        f"{presigned_only.server.url}/api/2.0/mlflow-artifacts/mpu/create/{exp}/{run}/artifacts",
        json={"path": "model.txt", "num_parts": 1},
        headers={"X-MLFLOW-WORKSPACE": "team-q"},
        timeout=30,
    )
    assert created.status_code == 413, created.text  # a status MLflow's client does not retry
    assert "team-q" in created.json()["message"]
    base = f"{presigned_only.prefix}-q/workspaces/team-q/"
    assert keys(s3, "team-b-artifacts", base) == []
    uploads = s3.list_multipart_uploads(Bucket="team-b-artifacts", Prefix=base)
    assert uploads.get("Uploads", []) == []
