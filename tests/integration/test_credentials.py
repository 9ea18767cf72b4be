"""Per-team credentials and storage policy (issue #3), against a moto server that ENFORCES IAM.

One moto server for this module, started with ``INITIAL_NO_AUTH_ACTION_COUNT``: its first three
requests create an admin user, everything after is checked against IAM policies. The admin then
creates one bucket and one IAM user per team, each user allowed on its own bucket only, a
``server`` user (the MLflow server's default chain) allowed on the destination bucket only, and
a role for the ``vision-*`` workspaces that a ``broker`` user may assume with an external id.
Since no identity reaches two team buckets, an object in a team's bucket was written with that
team's credentials.

What moto does not enforce (checked against moto 5.2.5): session policies passed to AssumeRole
(stored, never evaluated: ``moto/iam/access_control.py`` ``AssumedRoleAccessKey.collect_policies``
collects only the role's own policies), ``ExpectedBucketOwner`` on object calls, KMS permissions
behind SSE-KMS, and presigned URLs at all while IAM is on (so proxied downloads are turned off
with ``MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD=false``). The tests below say where they stop.
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import logging
import textwrap
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.credentials
import botocore.session
import pytest
import requests
from botocore.exceptions import ClientError
from dateutil.tz import tzlocal
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from tests.support.config import ConfigFile
from tests.support.s3 import keys
from tests.support.servers import MlflowServer, Server, start_mlflow, start_moto
from tests.support.workspaces import in_workspace, unique
from ws_artifacts.core.loading import load_config
from ws_artifacts.core.routing import Router
from ws_artifacts.storage import clients, credentials
from ws_artifacts.storage.clients import ClientCache, client_for
from ws_artifacts.storage.credentials import session_policy

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
ROOT, TEAM_A, TEAM_B, VISION = "cred-root", "cred-team-a", "cred-team-b", "cred-vision"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/vision-artifacts"
EXTERNAL_ID = "vision-external-id-4711"
MIB = 1024 * 1024


# -- the IAM world ---------------------------------------------------------------------------
@dataclass
class Keys:
    key: str
    secret: str


@dataclass
class World:
    """The IAM-enforcing moto server and everything the admin created in it."""

    server: Server
    admin: Keys
    users: dict[str, Keys]
    kms_key_arn: str
    secrets_dir: Path
    extra_secrets: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, service: str, who: Keys | None = None) -> Any:
        who = who or self.admin
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=who.key,
            aws_secret_access_key=who.secret,
        )

    def secret_values(self) -> list[str]:
        """Every credential value this module handed out."""
        out = [EXTERNAL_ID, *self.extra_secrets]
        for k in (self.admin, *self.users.values()):
            out += [k.key, k.secret]
        return out


def _allow(actions: list[str], resources: list[str]) -> str:
    statement = {"Effect": "Allow", "Action": actions, "Resource": resources}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _bucket_policy(bucket: str) -> str:
    return _allow(["s3:*"], [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"])


def _build_world(server: Server, secrets_dir: Path) -> World:
    # The three unauthenticated requests: an admin user, its policy and its key.
    bootstrap = boto3.client(
        "iam",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
    )
    bootstrap.create_user(UserName="admin")
    bootstrap.put_user_policy(
        UserName="admin", PolicyName="all", PolicyDocument=_allow(["*"], ["*"])
    )
    raw = bootstrap.create_access_key(UserName="admin")["AccessKey"]
    world = World(server, Keys(raw["AccessKeyId"], raw["SecretAccessKey"]), {}, "", secrets_dir)

    s3, iam, kms = world.client("s3"), world.client("iam"), world.client("kms")
    for bucket in (ROOT, TEAM_A, TEAM_B, VISION):
        s3.create_bucket(Bucket=bucket)
    world.kms_key_arn = kms.create_key(Description="team-a artifacts")["KeyMetadata"]["Arn"]
    policies = {
        "team-a": _bucket_policy(TEAM_A),
        "team-b": _bucket_policy(TEAM_B),
        "server": _bucket_policy(ROOT),
        "broker": _allow(["sts:AssumeRole"], [ROLE]),
    }
    for user, policy in policies.items():
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="artifacts", PolicyDocument=policy)
        made = iam.create_access_key(UserName=user)["AccessKey"]
        world.users[user] = Keys(made["AccessKeyId"], made["SecretAccessKey"])
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/broker"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}},
            }
        ],
    }
    iam.create_role(RoleName="vision-artifacts", AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(
        RoleName="vision-artifacts", PolicyName="artifacts", PolicyDocument=_bucket_policy(VISION)
    )
    # Team B's keys are a mounted secret: one file per value.
    (secrets_dir / "team-b-key").write_text(world.users["team-b"].key + "\n")
    (secrets_dir / "team-b-secret").write_text(world.users["team-b"].secret + "\n")
    return world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("iam")
    server = start_moto(base / "moto", no_auth_actions=3)
    secrets = base / "secrets"
    secrets.mkdir()
    try:
        yield _build_world(server, secrets)
    finally:
        server.stop()


def config_text(world: World, **extra_routes: str) -> str:
    """The routes every test here uses: team-a (keys from ${VAR}s, SSE-KMS, STANDARD_IA,
    tags, expected owner), team-b (keys from files, SSE-S3), intruder (team B's keys pointed
    at team A's bucket) and vision-* (a role assumed per workspace, narrowed to it);
    ``extra_routes``: more routes, each as YAML text."""
    b = world.secrets_dir
    team_b_keys = {
        "access_key_id_file": f"{b}/team-b-key",
        "secret_access_key_file": f"{b / 'team-b-secret'}",
    }
    config = ConfigFile(
        defaults={"endpoint_url": world.url, "region": REGION, "addressing_style": "path"}
    ).with_defaults(
        retry_mode="standard",
        max_attempts=2,
        transfer={"multipart_threshold": 5 * MIB, "part_size": 5 * MIB, "max_concurrency": 2},
    )
    config.route(
        "team-a",
        f"s3://{TEAM_A}",
        credentials={"access_key_id": "${TEAM_A_KEY}", "secret_access_key": "${TEAM_A_SECRET}"},
        storage={
            "sse": "aws:kms",
            "kms_key_id": world.kms_key_arn,
            "storage_class": "STANDARD_IA",
            "tags": {"cost-center": "team a"},
            "expected_bucket_owner": ACCOUNT,
        },
    )
    config.route("team-b", f"s3://{TEAM_B}", credentials=team_b_keys, storage={"sse": "AES256"})
    config.route("intruder", f"s3://{TEAM_A}", credentials=team_b_keys)
    config.route(
        "vision-*",
        f"s3://{VISION}/{{workspace}}",
        credentials={
            "access_key_id": "${BROKER_KEY}",
            "secret_access_key": "${BROKER_SECRET}",
            "role_arn": ROLE,
            "external_id": "${VISION_EXTERNAL_ID}",
            "session_name": "ws-{workspace}",
            "duration_seconds": 900,
            "sts_endpoint_url": world.url,
            "restrict_to_route": True,
        },
    )
    for name, body in extra_routes.items():
        config.route_yaml(name, body)
    return config.text()


def config_env(world: World) -> dict[str, str]:
    users = world.users
    return {
        "TEAM_A_KEY": users["team-a"].key,
        "TEAM_A_SECRET": users["team-a"].secret,
        "BROKER_KEY": users["broker"].key,
        "BROKER_SECRET": users["broker"].secret,
        "VISION_EXTERNAL_ID": EXTERNAL_ID,
        # The default chain (the destination bucket) is the `server` user.
        "AWS_ACCESS_KEY_ID": users["server"].key,
        "AWS_SECRET_ACCESS_KEY": users["server"].secret,
        "AWS_DEFAULT_REGION": REGION,
    }


@pytest.fixture(scope="module")
def server(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A proxied ``mlflow server`` whose routes use the teams' credentials."""
    base = tmp_path_factory.mktemp("cred-server")
    config = base / "ws-artifacts.yaml"
    config.write_text(config_text(world))
    started = start_mlflow(
        base,
        args=[
            "--enable-workspaces",
            "--serve-artifacts",
            "--artifacts-destination",
            f"ws-s3://{ROOT}",
        ],
        env={"WS_ARTIFACTS_CONFIG": str(config), **config_env(world)},
        workers=2,
    )
    wrapped = MlflowServer(started, config)
    client = wrapped.client()
    for name in ("team-a", "team-b", "intruder", "vision-x", "vision-y"):
        client.create_workspace(name)
    yield wrapped
    started.stop()


@pytest.fixture
def no_presigned_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    # moto with IAM answers 500 to every presigned URL (no Authorization header).
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")


@pytest.fixture
def local_config(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Path]:
    """Point this process at a configuration (and the teams' environment); fresh clients."""
    for name, value in config_env(world).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(clients, "_cache", ClientCache())

    def use(**extra_routes: str) -> Path:
        path = tmp_path / f"{unique('ws')}.yaml"
        path.write_text(config_text(world, **extra_routes))
        monkeypatch.setenv("WS_ARTIFACTS_CONFIG", str(path))
        return path

    return use


@dataclass
class StsCalls:
    """AssumeRole calls seen through botocore's event hooks."""

    params: list[dict[str, Any]] = field(default_factory=list)
    credentials: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def sts_calls(monkeypatch: pytest.MonkeyPatch) -> StsCalls:
    """Record every AssumeRole request and answer of the clients ws-artifacts builds."""
    calls = StsCalls()

    def params(params: dict[str, Any], **_: Any) -> None:
        calls.params.append(dict(params))

    def answer(parsed: dict[str, Any], **_: Any) -> None:
        if "Credentials" in parsed:
            calls.credentials.append(dict(parsed["Credentials"]))

    def new_session() -> Any:
        session = botocore.session.Session()
        session.register("provide-client-params.sts.AssumeRole", params)
        session.register("after-call.sts.AssumeRole", answer)
        return session

    monkeypatch.setattr(credentials, "_new_botocore_session", new_session)
    return calls


def make_run(server: MlflowServer, workspace: str) -> tuple[str, str]:
    with in_workspace(workspace):
        client = server.client()
        exp = client.create_experiment(unique(workspace))
        return exp, client.create_run(exp).info.run_id


def put_url(server: MlflowServer, exp: str, run: str, name: str) -> str:
    return f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/{name}"


def header(workspace: str) -> dict[str, str]:
    return {"X-MLFLOW-WORKSPACE": workspace}


PLACES = {  # workspace -> (bucket, key prefix before "workspaces/")
    "team-a": (TEAM_A, ""),
    "team-b": (TEAM_B, ""),
    "vision-x": (VISION, "vision-x/"),
    "vision-y": (VISION, "vision-y/"),
}


def run_prefix(workspace: str, exp: str, run: str) -> str:
    return f"{PLACES[workspace][1]}workspaces/{workspace}/{exp}/{run}/artifacts/"


# -- the IAM world itself ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("user", "bucket"),
    [("team-b", TEAM_A), ("team-a", TEAM_B), ("server", TEAM_A), ("team-a", ROOT)],
    ids=["b-on-a", "a-on-b", "server-on-a", "a-on-root"],
)
def test_each_identity_is_refused_outside_its_own_bucket(
    world: World, user: str, bucket: str
) -> None:
    s3 = world.client("s3", world.users[user])
    with pytest.raises(ClientError, match=r"\(AccessDenied\) when calling the PutObject"):
        s3.put_object(Bucket=bucket, Key="workspaces/probe.txt", Body=b"x")


# -- through a real MLflow server --------------------------------------------------------------
@pytest.mark.parametrize("workspace", ["team-a", "team-b", "vision-x"])
def test_artifacts_are_written_and_read_with_the_teams_credentials(
    server: MlflowServer,
    world: World,
    tmp_path: Path,
    no_presigned_downloads: None,
    workspace: str,
) -> None:
    exp, run = make_run(server, workspace)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "model.pkl").write_bytes(b"weights-" + workspace.encode())
    (src / "sub" / "conf.yaml").write_bytes(b"a: 1")
    with in_workspace(workspace):
        client = server.client()
        client.log_artifacts(run, str(src))
        out = Path(client.download_artifacts(run, "", str(tmp_path / "dl")))
    assert (out / "model.pkl").read_bytes() == b"weights-" + workspace.encode()
    bucket, _ = PLACES[workspace]
    prefix = run_prefix(workspace, exp, run)
    assert keys(world.client("s3"), bucket, prefix) == [
        f"{prefix}model.pkl",
        f"{prefix}sub/conf.yaml",
    ]
    # Nothing went to the destination, which the server's own credentials could have written.
    assert [k for k in keys(world.client("s3"), ROOT) if f"/{run}/" in k] == []


def test_team_b_keys_on_team_a_bucket_are_refused_through_the_server(
    server: MlflowServer, world: World
) -> None:
    exp, run = make_run(server, "intruder")
    response = requests.put(
        put_url(server, exp, run, "planted.txt"), data=b"x", headers=header("intruder"), timeout=30
    )
    assert response.status_code == 403
    body = response.json()
    assert body["error_code"] == "PERMISSION_DENIED"
    assert body["message"] == (
        f"upload failed for workspace 'intruder' at s3://{TEAM_A}/workspaces/intruder/{exp}/{run}"
        f"/artifacts/planted.txt with static keys from files {world.secrets_dir}/team-b-key, "
        f"{world.secrets_dir}/team-b-secret: AccessDenied; grant the route's credentials "
        f"s3:PutObject on bucket '{TEAM_A}', or fix the credentials (with "
        "storage.expected_bucket_owner set, also check the bucket's owner)."
    )
    assert keys(world.client("s3"), TEAM_A, "workspaces/intruder/") == []


def test_concurrent_requests_from_several_workspaces(server: MlflowServer, world: World) -> None:
    order = ["team-a", "team-b", "vision-x", "vision-y", "intruder"] * 5
    runs = {ws: make_run(server, ws) for ws in set(order)}

    def put(job: tuple[int, str]) -> tuple[str, int]:
        index, workspace = job
        exp, run = runs[workspace]
        body = f"{workspace}-{index}".encode()
        url = put_url(server, exp, run, f"f{index}.txt")
        return workspace, requests.put(
            url, data=body, headers=header(workspace), timeout=60
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = set(pool.map(put, enumerate(order)))
    assert statuses == {
        ("team-a", 200),
        ("team-b", 200),
        ("vision-x", 200),
        ("vision-y", 200),
        ("intruder", 403),
    }
    admin = world.client("s3")
    for workspace in ("team-a", "team-b", "vision-x", "vision-y"):
        exp, run = runs[workspace]
        prefix = run_prefix(workspace, exp, run)
        mine = [i for i, w in enumerate(order) if w == workspace]
        assert keys(admin, PLACES[workspace][0], prefix) == sorted(
            f"{prefix}f{i}.txt" for i in mine
        )
        for i in mine:
            got = admin.get_object(Bucket=PLACES[workspace][0], Key=f"{prefix}f{i}.txt")
            assert got["Body"].read() == f"{workspace}-{i}".encode()
    assert keys(admin, TEAM_A, "workspaces/intruder/") == []


def _tags(s3: Any, bucket: str, key: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


@pytest.mark.parametrize("size", [1024, 6 * MIB + 7], ids=["single-part", "multipart"])
def test_storage_policy_on_every_object(server: MlflowServer, world: World, size: int) -> None:
    admin = world.client("s3")
    for workspace in ("team-a", "team-b"):
        exp, run = make_run(server, workspace)
        url = put_url(server, exp, run, "blob.bin")
        response = requests.put(url, data=b"\x01" * size, headers=header(workspace), timeout=60)
        assert response.status_code == 200, response.text
        bucket = PLACES[workspace][0]
        key = f"{run_prefix(workspace, exp, run)}blob.bin"
        head = admin.head_object(Bucket=bucket, Key=key)
        assert head["ContentLength"] == size
        # A multipart object's ETag ends in "-<parts>": 5 MiB parts, so 2 for 6 MiB.
        assert head["ETag"].endswith('-2"') is (size > 5 * MIB)
        if workspace == "team-a":
            assert head["ServerSideEncryption"] == "aws:kms"
            assert head["SSEKMSKeyId"] == world.kms_key_arn
            assert head["StorageClass"] == "STANDARD_IA"
            assert _tags(admin, bucket, key) == {
                "mlflow-workspace": "team-a",
                "cost-center": "team a",
            }
        else:
            assert head["ServerSideEncryption"] == "AES256"
            assert "SSEKMSKeyId" not in head
            assert "StorageClass" not in head  # STANDARD
            assert _tags(admin, bucket, key) == {"mlflow-workspace": "team-b"}
    assert admin.list_multipart_uploads(Bucket=TEAM_A).get("Uploads", []) == []


def test_presigned_multipart_parts_inherit_the_policy(
    moto: Server, s3: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """MLflow's proxied multipart upload: the server starts the upload with the policy, the
    client PUTs parts to presigned URLs with only the headers it is given, the server completes.
    This runs on the session's moto WITHOUT IAM: moto refuses every presigned URL when IAM is
    enforced."""
    from mlflow.entities.multipart_upload import MultipartUploadPart

    from tests.support.servers import MOTO_KEY, MOTO_SECRET

    kms = boto3.client(
        "kms",
        endpoint_url=moto.url,
        region_name=REGION,
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key=MOTO_SECRET,
    )
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    prefix = unique("presigned")
    config = tmp_path / "ws.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            defaults: {{endpoint_url: {moto.url}, region: {REGION}}}
            workspaces:
              team-a:
                url: s3://team-a-artifacts/{prefix}
                storage:
                  sse: aws:kms
                  kms_key_id: {key_arn}
                  storage_class: STANDARD_IA
                  expected_bucket_owner: "{ACCOUNT}"
            """
        )
    )
    monkeypatch.setenv("WS_ARTIFACTS_CONFIG", str(config))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", MOTO_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", MOTO_SECRET)
    local = tmp_path / "big.bin"
    local.write_bytes(b"p" * (5 * MIB + 3))
    repo = get_artifact_repository("ws-s3://root/workspaces/team-a/4/r/artifacts")
    with in_workspace("team-a"):
        started = repo.create_multipart_upload(str(local), num_parts=2)
        parts = []
        data = local.read_bytes()
        for credential, chunk in zip(
            started.credentials, (data[: 5 * MIB], data[5 * MIB :]), strict=True
        ):
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(credential.url).query)
            assert query["X-Amz-SignedHeaders"] == ["host"]
            assert credential.headers == {}
            put = requests.put(credential.url, data=chunk, headers=credential.headers, timeout=30)
            assert put.status_code == 200
            parts.append(MultipartUploadPart(credential.part_number, put.headers["ETag"]))
        repo.complete_multipart_upload(str(local), started.upload_id, parts)
    key = f"{prefix}/workspaces/team-a/4/r/artifacts/big.bin"
    head = s3.head_object(Bucket="team-a-artifacts", Key=key)
    assert (head["ContentLength"], head["ETag"][-3:]) == (5 * MIB + 3, '-2"')
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key_arn
    assert head["StorageClass"] == "STANDARD_IA"
    tags = s3.get_object_tagging(Bucket="team-a-artifacts", Key=key)["TagSet"]
    assert tags == [{"Key": "mlflow-workspace", "Value": "team-a"}]


# -- assumed roles, in this process (a controlled clock, AssumeRole seen through hooks) ---------
@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Move botocore's clock (the one its refreshable credentials and fetchers read)."""
    offset = {"seconds": 0.0}

    def now() -> datetime.datetime:
        return datetime.datetime.now(tzlocal()) + datetime.timedelta(seconds=offset["seconds"])

    monkeypatch.setattr(botocore.credentials, "_local_now", now)

    def advance(seconds: float) -> None:
        offset["seconds"] = seconds

    return advance


def _upload(workspace: str, local: Path, run_path: str) -> Any:
    repo = get_artifact_repository(f"ws-s3://{ROOT}/workspaces/{workspace}/{run_path}")
    with in_workspace(workspace):
        repo.log_artifact(str(local))
    return repo


def test_assumed_role_is_refreshed_before_it_expires(
    world: World,
    local_config: Callable[..., Path],
    sts_calls: StsCalls,
    clock: Callable[[float], None],
    tmp_path: Path,
) -> None:
    config_path = local_config()
    local = tmp_path / "f.txt"
    local.write_bytes(b"v")
    run_path = f"{unique('exp')}/r1/artifacts"
    _upload("vision-x", local, run_path)
    _upload("vision-x", local, run_path)
    assert len(sts_calls.params) == 1  # one session, reused
    # 900 s sessions refresh in the last 300 s (advisory; mandatory in the last 150 s).
    clock(900 - 300 + 30)
    _upload("vision-x", local, run_path)
    assert len(sts_calls.params) == 2
    # In the last 150 s the refresh is mandatory (every request waits for it). moto dates the
    # sessions it issues by its own clock, so the clock cannot jump past their expiry here.
    clock(900 - 100)
    _upload("vision-x", local, run_path)
    assert len(sts_calls.params) == 3
    issued = [c["AccessKeyId"] for c in sts_calls.credentials]
    assert len(set(issued)) == 3
    assert [p["RoleSessionName"] for p in sts_calls.params] == ["ws-vision-x"] * 3
    assert {p["DurationSeconds"] for p in sts_calls.params} == {900}
    assert {p["ExternalId"] for p in sts_calls.params} == {EXTERNAL_ID}
    assert keys(world.client("s3"), VISION, f"vision-x/workspaces/vision-x/{run_path}/") == [
        f"vision-x/workspaces/vision-x/{run_path}/f.txt"
    ]
    # The client that made the last upload signs with the third session's key.
    clock(0)
    route = Router(load_config(config_path), f"s3://{ROOT}").route_for("vision-x")
    client = client_for(route.settings, VISION, "vision-x/workspaces/vision-x")
    assert client._request_signer._credentials.get_frozen_credentials().access_key == issued[-1]
    assert len(sts_calls.params) == 3


def test_wrong_external_id_is_refused_by_sts(
    world: World, local_config: Callable[..., Path], tmp_path: Path
) -> None:
    local_config(
        **{
            "vision-z": f"""
                url: s3://{VISION}/vision-z
                credentials:
                  access_key_id: ${{BROKER_KEY}}
                  secret_access_key: ${{BROKER_SECRET}}
                  role_arn: {ROLE}
                  external_id: not-the-external-id
                  sts_endpoint_url: {world.url}
            """
        }
    )
    local = tmp_path / "f.txt"
    local.write_bytes(b"v")
    with pytest.raises(MlflowException, match=r"assuming the route's role") as caught:
        _upload("vision-z", local, "1/r/artifacts")
    assert caught.value.error_code == "PERMISSION_DENIED"
    assert str(caught.value.message) == (
        f"upload (assuming the route's role) failed for workspace 'vision-z' at "
        f"s3://{VISION}/vision-z/workspaces/vision-z/1/r/artifacts/f.txt with assume role {ROLE} "
        f"(session 3600 s, external id set, STS at {world.url}) from static keys: AccessDenied; "
        "the route's source credentials may not assume the role: allow sts:AssumeRole in their "
        "policy and trust them in the role's trust policy (with the external_id, if set)."
    )
    assert keys(world.client("s3"), VISION, "vision-z/") == []


# -- the session policy (restrict_to_route) -----------------------------------------------------
EXPECTED_VISION_X_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:GetObjectTagging",
                "s3:PutObjectTagging",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
            "Resource": f"arn:aws:s3:::{VISION}/vision-x/workspaces/vision-x/*",
        },
        {
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads"],
            "Resource": f"arn:aws:s3:::{VISION}",
            "Condition": {
                "StringLike": {
                    "s3:prefix": ["vision-x/workspaces/vision-x", "vision-x/workspaces/vision-x/*"]
                }
            },
        },
    ],
}


def test_session_policy_sent_to_sts_is_the_workspaces_prefix(
    world: World, local_config: Callable[..., Path], sts_calls: StsCalls, tmp_path: Path
) -> None:
    local_config()
    local = tmp_path / "f.txt"
    local.write_bytes(b"v")
    _upload("vision-x", local, "5/r/artifacts")
    _upload("vision-y", local, "5/r/artifacts")
    assert [json.loads(p["Policy"]) for p in sts_calls.params] == [
        EXPECTED_VISION_X_POLICY,
        json.loads(
            json.dumps(EXPECTED_VISION_X_POLICY).replace(
                "vision-x/workspaces/vision-x", "vision-y/workspaces/vision-y"
            )
        ),
    ]
    assert sts_calls.params[0]["Policy"] == session_policy(VISION, "vision-x/workspaces/vision-x")


def _evaluate(policy: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> bool:
    """A small IAM evaluator for Allow-only session policies: some statement's Action and
    Resource globs match and its StringLike / StringEquals conditions hold in ``context``."""
    for statement in policy["Statement"]:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        resources = statement["Resource"]
        resources = resources if isinstance(resources, list) else [resources]
        if not any(fnmatch.fnmatchcase(action, a) for a in actions):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in resources):
            continue
        ok = True
        for operator, conditions in statement.get("Condition", {}).items():
            for name, allowed in conditions.items():
                allowed = allowed if isinstance(allowed, list) else [allowed]
                value = context.get(name)
                if value is None:
                    ok = False
                elif operator == "StringLike":
                    ok = ok and any(fnmatch.fnmatchcase(value, a) for a in allowed)
                else:
                    ok = ok and value in allowed
        if ok and statement["Effect"] == "Allow":
            return True
    return False


@pytest.mark.parametrize(
    ("action", "resource", "context", "allowed"),
    [
        ("s3:PutObject", f"{VISION}/vision-x/workspaces/vision-x/1/r/artifacts/m.pkl", {}, True),
        ("s3:GetObject", f"{VISION}/vision-x/workspaces/vision-x/1/r/artifacts/m.pkl", {}, True),
        ("s3:DeleteObject", f"{VISION}/vision-x/workspaces/vision-x/1/m.pkl", {}, True),
        ("s3:PutObject", f"{VISION}/vision-y/workspaces/vision-y/1/r/artifacts/m.pkl", {}, False),
        ("s3:GetObject", f"{VISION}/vision-y/workspaces/vision-y/1/r/artifacts/m.pkl", {}, False),
        ("s3:GetObject", f"{VISION}/vision-x/workspaces/vision-y/m.pkl", {}, False),
        ("s3:PutObject", f"{VISION}/vision-x/other.txt", {}, False),
        ("s3:PutObject", f"{TEAM_A}/vision-x/workspaces/vision-x/m.pkl", {}, False),
        ("s3:DeleteBucket", VISION, {}, False),
        ("s3:ListBucket", VISION, {"s3:prefix": "vision-x/workspaces/vision-x/1/"}, True),
        ("s3:ListBucket", VISION, {"s3:prefix": "vision-y/workspaces/vision-y/"}, False),
        ("s3:ListBucket", VISION, {"s3:prefix": "vision-x/"}, False),
        ("s3:ListBucket", VISION, {}, False),
        (
            "s3:ListBucketMultipartUploads",
            VISION,
            {"s3:prefix": "vision-x/workspaces/vision-x/1/r/m"},
            True,
        ),
        (
            "s3:ListBucketMultipartUploads",
            VISION,
            {"s3:prefix": "vision-y/workspaces/vision-y/"},
            False,
        ),
    ],
    ids=[
        "put-own",
        "get-own",
        "delete-own",
        "put-other-ws",
        "get-other-ws",
        "get-other-ws-in-own-folder",
        "put-route-outside-workspaces",
        "put-other-bucket",
        "delete-bucket",
        "list-own",
        "list-other-ws",
        "list-route-root",
        "list-everything",
        "list-own-uploads",
        "list-other-ws-uploads",
    ],
)
def test_session_policy_denies_other_workspaces(
    action: str, resource: str, context: dict[str, str], allowed: bool
) -> None:
    from moto.iam.access_control import IAMPolicy, PermissionResult

    document = session_policy(VISION, "vision-x/workspaces/vision-x")
    assert json.loads(document) == EXPECTED_VISION_X_POLICY
    arn = f"arn:aws:s3:::{resource}"
    assert _evaluate(json.loads(document), action, arn, context) is allowed
    if not action.startswith("s3:ListBucket"):
        # moto's own evaluator agrees (it takes no condition context, hence not for List).
        moto_says = IAMPolicy(document).is_action_permitted(action, arn)
        assert (moto_says == PermissionResult.PERMITTED) is allowed


def test_the_role_policy_itself_is_enforced(
    world: World, local_config: Callable[..., Path]
) -> None:
    """What moto does enforce for assumed roles: the role's own policy (cred-vision only)."""
    config = load_config(local_config())
    route = Router(config, f"s3://{ROOT}").route_for("vision-x")
    client = client_for(route.settings, VISION, "vision-x/workspaces/vision-x")
    client.put_object(Bucket=VISION, Key="vision-x/workspaces/vision-x/ok.txt", Body=b"x")
    with pytest.raises(ClientError, match=r"\(AccessDenied\) when calling the PutObject"):
        client.put_object(Bucket=TEAM_A, Key="workspaces/vision-x/x.txt", Body=b"x")


# moto 5.2.5 does not evaluate AssumeRole session policies (AssumedRoleAccessKey.collect_policies
# reads only the role's own policies), so a narrowed session cannot be shown refused here; the
# tests above check the exact policy sent to STS and evaluate it with moto's IAMPolicy instead.


# -- secrets stay out of logs and errors ------------------------------------------------------
def _chain(err: BaseException) -> str:
    texts = []
    seen: BaseException | None = err
    while seen is not None:
        texts.append(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


def test_no_secret_in_logs_or_errors_of_failing_credentials(
    world: World,
    server: MlflowServer,
    local_config: Callable[..., Path],
    sts_calls: StsCalls,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong_secret = "Wr0ngSecretValue/abcdefghijklmnopqrstuv"
    unknown_key = "AKIAUNKNOWNKEY000001"
    (tmp_path / "stale-secret").write_text("Stale+Secret/From/A/File/0123456789abc\n")
    team_a_key = world.users["team-a"].key
    config_path = local_config(
        **{
            "bad-secret": f"""
                url: s3://{TEAM_A}
                credentials: {{access_key_id: {team_a_key}, secret_access_key: "{wrong_secret}"}}
            """,
            "bad-key": f"""
                url: s3://{TEAM_A}
                credentials: {{access_key_id: {unknown_key}, secret_access_key: "{wrong_secret}"}}
            """,
            "bad-file": f"""
                url: s3://{TEAM_A}
                credentials:
                  access_key_id_file: {world.secrets_dir}/team-b-key
                  secret_access_key_file: {tmp_path}/stale-secret
            """,
            "bad-role": f"""
                url: s3://{VISION}/bad-role
                credentials:
                  access_key_id: ${{BROKER_KEY}}
                  secret_access_key: ${{BROKER_SECRET}}
                  role_arn: {ROLE}
                  external_id: "Wrong-External-Id-9876"
                  sts_endpoint_url: {world.url}
            """,
        }
    )
    local = tmp_path / "f.txt"
    local.write_bytes(b"v")
    caplog.set_level(logging.DEBUG)
    errors = []
    # Bad keys and signatures are UNAUTHENTICATED, as MLflow's own S3 repository says.
    expected = {
        "bad-secret": ("SignatureDoesNotMatch; check the route's secret_access_key.", "UNAUTH"),
        "bad-key": ("InvalidAccessKeyId; check the route's access_key_id.", "UNAUTH"),
        "bad-file": ("SignatureDoesNotMatch; check the route's secret_access_key.", "UNAUTH"),
        "bad-role": ("AccessDenied; the route's source credentials may not assume the role", ""),
        "intruder": ("AccessDenied; grant the route's credentials s3:PutObject", ""),
    }
    for workspace, (ending, code) in expected.items():
        with pytest.raises(MlflowException, match=ending) as caught:
            _upload(workspace, local, "9/r/artifacts")
        assert caught.value.error_code == ("UNAUTHENTICATED" if code else "PERMISSION_DENIED")
        errors.append(_chain(caught.value))
        errors.append(repr(caught.value))
    _upload("vision-x", local, "9/r/artifacts")  # STS issues a key, secret and token here
    # And one refusal through the real server, whose log we read too.
    exp, run = make_run(server, "intruder")
    refused = requests.put(
        put_url(server, exp, run, "x.txt"), data=b"x", headers=header("intruder"), timeout=30
    )
    assert refused.status_code == 403
    errors.append(refused.text)

    issued = [
        v
        for c in sts_calls.credentials
        for v in (c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    ]
    assert len(issued) == 3
    secrets = [
        *world.secret_values(),
        wrong_secret,
        unknown_key,
        "Wrong-External-Id-9876",
        "Stale+Secret/From/A/File/0123456789abc",
        *issued,
    ]
    # The logs are not empty: botocore's DEBUG output was captured, and scrubbed.
    botocore_lines = [r.getMessage() for r in caplog.records if r.name.startswith("botocore")]
    assert any("Sending http request" in line for line in botocore_lines)
    assert any("**********" in line for line in botocore_lines)
    texts = {
        "caplog": caplog.text,
        "records": "\n".join(r.getMessage() for r in caplog.records),
        "errors": "\n".join(errors),
        "config repr": repr(load_config(config_path)),
        "server log": server.server.log_text(),
    }
    leaks = [
        (where, secret[:6]) for where, text in texts.items() for secret in secrets if secret in text
    ]
    assert leaks == []
