"""Clients per route identity, the session policy, the storage-policy arguments, and the
translation of botocore errors. No server: a fake builder, botocore without network, or
moto's in-process ``mock_aws``."""

from __future__ import annotations

import gc
import json
import os
import threading
import time
import urllib.parse
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, NoCredentialsError
from mlflow.exceptions import MlflowException

from ws_artifacts.core.errors import (
    AccessDeniedError,
    AuthenticationError,
    CredentialsError,
    NotFoundError,
    StorageError,
    translate_boto_error,
)
from ws_artifacts.core.loading import parse_config
from ws_artifacts.core.routing import Router
from ws_artifacts.core.settings import Credentials, Settings, StoragePolicy
from ws_artifacts.core.targets import Target
from ws_artifacts.serving import refusals
from ws_artifacts.storage import clients, credentials
from ws_artifacts.storage.clients import ClientCache, ClientKey, client_for, describe_credentials
from ws_artifacts.storage.credentials import session_policy
from ws_artifacts.storage.s3.backend import S3Backend
from ws_artifacts.storage.s3.upload_args import put_args


class Built:
    """A stand-in client (weak-referenceable, so a test can see it is freed)."""

    def __init__(self, key: ClientKey) -> None:
        self.key = key


def key(n: int, **creds: Any) -> ClientKey:
    settings = Settings(
        endpoint_url=f"http://127.0.0.1:{9000 + n}",
        credentials=Credentials(**creds) if creds else None,
    )
    return ClientKey.for_route(settings, "bucket", "workspaces/ws")


@pytest.fixture
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[ClientCache]:
    cache = ClientCache()
    monkeypatch.setattr(clients, "_cache", cache)
    return cache


# -- the cache --------------------------------------------------------------------------------
def test_cache_is_bounded_and_frees_what_it_evicts() -> None:
    cache = ClientCache(max_size=16, build=Built)
    refs = []
    for n in range(2000):
        refs.append(weakref.ref(cache.get(key(n))))
    gc.collect()
    assert len(cache) == 16
    alive = [i for i, ref in enumerate(refs) if ref() is not None]
    assert alive == list(range(1984, 2000))


def test_cache_evicts_the_least_recently_used() -> None:
    cache = ClientCache(max_size=2, build=Built)
    first = cache.get(key(1))
    cache.get(key(2))
    assert cache.get(key(1)) is first  # touch 1: 2 is now the oldest
    cache.get(key(3))
    assert cache.get(key(1)) is first
    assert cache.get(key(2)) is not None
    assert len(cache) == 2


def test_cache_entries_expire_after_max_age() -> None:
    now = [100.0]
    cache = ClientCache(max_age=60, build=Built, clock=lambda: now[0])
    first = cache.get(key(1))
    now[0] += 59.9
    assert cache.get(key(1)) is first
    now[0] += 0.2
    assert cache.get(key(1)) is not first


def test_concurrent_misses_build_one_client() -> None:
    builds = []

    def slow(k: ClientKey) -> Built:
        builds.append(k)
        time.sleep(0.2)
        return Built(k)

    cache = ClientCache(build=slow)
    start = threading.Barrier(8)
    got: list[Any] = []

    def worker() -> None:
        start.wait()
        got.append(cache.get(key(1)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1
    assert len({id(c) for c in got}) == 1


def test_a_failed_build_reaches_every_waiter_and_is_retried() -> None:
    calls = []

    def failing(k: ClientKey) -> Built:
        calls.append(k)
        if len(calls) == 1:
            time.sleep(0.1)
            raise CredentialsError("no credentials; give the route credentials")
        return Built(k)

    cache = ClientCache(build=failing)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            cache.get(key(1))
        except CredentialsError as err:
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 4
    assert len(calls) == 1
    assert isinstance(cache.get(key(1)), Built)  # not cached as failed
    assert len(calls) == 2


# -- what identifies a client -----------------------------------------------------------------
def test_equal_settings_share_a_key_and_secrets_tell_keys_apart() -> None:
    a = key(1, access_key_id="AKIA1", secret_access_key="s3cr3t-one")
    assert a == key(1, access_key_id="AKIA1", secret_access_key="s3cr3t-one")
    assert a != key(1, access_key_id="AKIA1", secret_access_key="rotated")
    assert a != key(2, access_key_id="AKIA1", secret_access_key="s3cr3t-one")
    assert "s3cr3t" not in repr(a)


def test_the_prefix_matters_only_for_narrowed_sessions() -> None:
    plain = Settings(credentials=Credentials(role_arn="arn:aws:iam::1:role/r"))
    narrow = Settings(
        credentials=Credentials(role_arn="arn:aws:iam::1:role/r", restrict_to_route=True),
        storage=StoragePolicy(sse="aws:kms", kms_key_id="arn:aws:kms:us-east-1:1:key/k"),
    )
    assert ClientKey.for_route(plain, "b", "workspaces/x") == ClientKey.for_route(
        plain, "b", "workspaces/y"
    )
    x = ClientKey.for_route(narrow, "b", "/workspaces/x/")
    assert x.scope == ("b", "workspaces/x")
    assert x.kms == (True, "arn:aws:kms:us-east-1:1:key/k")
    assert x != ClientKey.for_route(narrow, "b", "workspaces/y")


def test_rotated_secret_files_give_a_new_client_with_the_new_keys(
    tmp_path: Path, fresh_cache: ClientCache
) -> None:
    (tmp_path / "id").write_text("AKIAFIRST0000000\n")
    (tmp_path / "secret").write_text("first-secret-value\n")
    settings = Settings(
        region="us-east-1",
        credentials=Credentials(
            access_key_id_file=tmp_path / "id", secret_access_key_file=tmp_path / "secret"
        ),
    )
    first = client_for(settings, "b", "")
    assert client_for(settings, "b", "") is first
    frozen = first._request_signer._credentials.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key) == ("AKIAFIRST0000000", "first-secret-value")

    (tmp_path / "id").write_text("AKIASECOND000000\n")  # a re-mounted secret
    (tmp_path / "secret").write_text("second-secret-value-longer\n")
    os.utime(tmp_path / "id", ns=(1, 1))
    second = client_for(settings, "b", "")
    assert second is not first
    frozen = second._request_signer._credentials.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key) == (
        "AKIASECOND000000",
        "second-secret-value-longer",
    )


@pytest.mark.parametrize(
    ("creds", "message"),
    [
        (
            {"access_key_id_file": "missing-id", "secret_access_key": "s"},
            r"Cannot read access_key_id_file .*missing-id \(No such file or directory\); mount",
        ),
        (
            {"access_key_id": "AKIA", "secret_access_key_file": "empty"},
            r"secret_access_key_file .*empty is empty; mount the secret there",
        ),
        (
            {"profile": "no-such-profile"},
            r"AWS profile 'no-such-profile' is not in the shared AWS config files",
        ),
    ],
    ids=["missing-file", "empty-file", "unknown-profile"],
)
def test_unusable_credentials_are_refused_with_the_fix(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_cache: ClientCache,
    creds: dict[str, str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(CredentialsError, match=message):
        client_for(Settings(region="us-east-1", credentials=Credentials(**creds)), "b", "")


def test_an_empty_default_chain_is_not_an_error_until_used(
    monkeypatch: pytest.MonkeyPatch, fresh_cache: ClientCache
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    client = client_for(Settings(region="us-east-1"), "b", "")
    assert client.meta.region_name == "us-east-1"


def test_client_options_come_from_the_route(fresh_cache: ClientCache) -> None:
    settings = Settings(
        endpoint_url="http://127.0.0.1:9",
        region="eu-west-1",
        addressing_style="path",
        retry_mode="adaptive",
        max_attempts=7,
        credentials=Credentials(access_key_id="AKIA1", secret_access_key="s"),
    )
    client = client_for(settings, "b", "")
    assert client.meta.endpoint_url == "http://127.0.0.1:9"
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.config.s3 == {"addressing_style": "path"}
    assert client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 7}
    assert client.meta.config.signature_version == "s3v4"


def test_clients_of_different_identities_share_the_service_models_not_the_credentials(
    fresh_cache: ClientCache,
) -> None:
    """Twenty teams' credentials must not mean twenty parsed copies of S3's model (~12 MB
    each in every worker): the sessions share one data loader, and nothing else."""
    built = [
        client_for(
            Settings(
                endpoint_url="http://127.0.0.1:9",
                region="us-east-1",
                credentials=Credentials(access_key_id=f"AKIA{n}", secret_access_key=f"s{n}"),
            ),
            "b",
            "",
        )
        for n in range(3)
    ]
    assert [c._request_signer._credentials.access_key for c in built] == ["AKIA0", "AKIA1", "AKIA2"]
    sessions = [credentials._new_botocore_session() for _ in range(2)]
    loaders = {id(s.get_component("data_loader")) for s in sessions}
    assert loaders == {id(credentials._loader)}
    assert sessions[0] is not sessions[1]


# -- the session policy -----------------------------------------------------------------------
def test_session_policy_document() -> None:
    policy = json.loads(
        session_policy(
            "vision",
            "vision-x/workspaces/vision-x",
            kms=True,
            kms_key_id="arn:aws-cn:kms:cn-north-1:1:key/k",
            partition="aws-cn",
        )
    )
    assert policy == {
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
                "Resource": "arn:aws-cn:s3:::vision/vision-x/workspaces/vision-x/*",
            },
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads"],
                "Resource": "arn:aws-cn:s3:::vision",
                "Condition": {
                    "StringLike": {
                        "s3:prefix": [
                            "vision-x/workspaces/vision-x",
                            "vision-x/workspaces/vision-x/*",
                        ]
                    }
                },
            },
            {
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": "arn:aws-cn:kms:cn-north-1:1:key/k",
            },
        ],
    }


def test_session_policy_for_a_legacy_destination_is_the_bucket_and_fits_sts_limits() -> None:
    text = session_policy("root", "", kms=True, kms_key_id="alias/team")
    policy = json.loads(text)
    assert policy["Statement"][0]["Resource"] == "arn:aws:s3:::root/*"
    assert policy["Statement"][1]["Condition"] == {"StringLike": {"s3:prefix": "*"}}
    assert policy["Statement"][2]["Resource"] == "*"  # an alias cannot be a resource
    assert len(session_policy("b" * 63, "p" * 200 + "/workspaces/" + "w" * 63)) < 2048


# -- safe descriptions ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("creds", "described"),
    [
        (None, "default chain"),
        ({}, "default chain"),
        ({"access_key_id": "AKIAX", "secret_access_key": "sx"}, "static keys"),
        (
            {"access_key_id": "AKIAX", "secret_access_key": "sx", "session_token": "tx"},
            "static keys with session token",
        ),
        (
            {"access_key_id_file": "/run/s/id", "secret_access_key_file": "/run/s/secret"},
            "static keys from files /run/s/id, /run/s/secret",
        ),
        ({"profile": "team-a"}, "profile 'team-a'"),
        (
            {
                "profile": "broker",
                "role_arn": "arn:aws:iam::1:role/r",
                "external_id": "ext-secret",
                "session_name": "ws-x",
                "duration_seconds": 900,
                "restrict_to_route": True,
            },
            "assume role arn:aws:iam::1:role/r (session 900 s, session name ws-x, external id "
            "set, session policy: the workspace's prefix only) from profile 'broker'",
        ),
    ],
    ids=["none", "empty", "static", "static-token", "files", "profile", "role"],
)
def test_describe_credentials(creds: dict[str, Any] | None, described: str) -> None:
    settings = Settings(credentials=Credentials(**creds) if creds is not None else None)
    assert describe_credentials(settings) == described


# -- storage policy arguments -----------------------------------------------------------------
def _route(storage: dict[str, Any] | None, workspace: str = "team-a") -> Any:
    data: dict[str, Any] = {"workspaces": {"team-a": {"url": "s3://bucket-a"}}}
    if storage is not None:
        data["workspaces"]["team-a"]["storage"] = storage
    return Router(parse_config(data), "s3://root").route_for(workspace)


def test_put_args_without_a_policy_tag_the_workspace() -> None:
    assert put_args(_route(None), "team-a") == {"Tagging": "mlflow-workspace=team-a"}


def test_put_args_with_every_policy_setting() -> None:
    route = _route(
        {
            "sse": "aws:kms",
            "kms_key_id": "arn:aws:kms:us-east-1:123456789012:key/k-1",
            "storage_class": "STANDARD_IA",
            "tags": {"cost center": "a&b=c", "team": "ä"},
            "expected_bucket_owner": "123456789012",
        }
    )
    args = put_args(route, "team-a")
    assert args == {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "arn:aws:kms:us-east-1:123456789012:key/k-1",
        "StorageClass": "STANDARD_IA",
        "ExpectedBucketOwner": "123456789012",
        "Tagging": "cost%20center=a%26b%3Dc&team=%C3%A4&mlflow-workspace=team-a",
    }
    assert urllib.parse.parse_qs(args["Tagging"]) == {
        "cost center": ["a&b=c"],
        "team": ["ä"],
        "mlflow-workspace": ["team-a"],
    }


def test_put_args_without_the_workspace_tag() -> None:
    route = _route({"sse": "AES256", "tag_workspace": False})
    assert put_args(route, "team-a") == {"ServerSideEncryption": "AES256"}


# -- every call carries the policy (moto in-process) -------------------------------------------
@pytest.fixture
def mocked_s3(monkeypatch: pytest.MonkeyPatch, fresh_cache: ClientCache) -> Iterator[Any]:
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        import boto3

        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="bucket-a")
        yield boto3.client("s3", region_name="us-east-1")


def test_every_call_names_the_expected_bucket_owner_and_presigned_urls_sign_only_host(
    mocked_s3: Any, tmp_path: Path
) -> None:
    route = Router(
        parse_config(
            {
                "defaults": {
                    "region": "us-east-1",
                    "transfer": {"multipart_threshold": 5 << 20, "part_size": 5 << 20},
                },
                "workspaces": {
                    "team-a": {
                        "url": "s3://bucket-a",
                        "storage": {
                            "sse": "aws:kms",
                            "kms_key_id": "arn:aws:kms:us-east-1:123456789012:key/k-1",
                            "expected_bucket_owner": "123456789012",
                        },
                    }
                },
            }
        ),
        "s3://root",
    ).route_for("team-a")
    backend = S3Backend(route)
    target = Target(route, "workspaces/team-a/1/r/artifacts/f.bin", "team-a", "workspaces/team-a")
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, dict(params)))

    backend.client(target).meta.events.register("provide-client-params.s3.*", record)
    small, large = tmp_path / "small", tmp_path / "large"
    small.write_bytes(b"x" * 10)
    large.write_bytes(b"y" * ((5 << 20) + 1))
    backend.put_file(target, str(small))
    backend.put_file(target.child("large"), str(large))
    backend.get_file(target, str(tmp_path / "back"))
    backend.list_dir(Target(route, "workspaces/team-a/1", "team-a", "workspaces/team-a"))
    list(backend.walk(Target(route, "workspaces/team-a/1", "team-a", "workspaces/team-a")))
    backend.size(target)
    upload_id, urls = backend.create_multipart(target.child("mp"), 2)
    backend.abort_multipart(target.child("mp"), upload_id)
    url, _ = backend.presign_get(target, 60)
    backend.delete(target)

    operations = [name for name, _ in calls]
    assert operations == [
        "PutObject",
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPart",
        "ListMultipartUploads",  # older uploads of the key, aborted once this one completes
        "CompleteMultipartUpload",
        "GetObject",
        "ListObjectsV2",
        "ListObjectsV2",
        "HeadObject",
        "CreateMultipartUpload",
        "UploadPart",  # part 1 by botocore; part 2 signed from it (the URLs are checked below)
        "AbortMultipartUpload",
        "HeadObject",
        "GetObject",
        "ListObjectsV2",
        "DeleteObjects",
    ]
    presigned = [11, 14]  # the presigned part (1) and the presigned GET
    for index, (name, params) in enumerate(calls):
        if index in presigned:
            assert "ExpectedBucketOwner" not in params, name
        else:
            assert params["ExpectedBucketOwner"] == "123456789012", name
    for name, params in calls:
        if name in ("PutObject", "CreateMultipartUpload"):
            assert params["ServerSideEncryption"] == "aws:kms"
            assert params["SSEKMSKeyId"] == "arn:aws:kms:us-east-1:123456789012:key/k-1"
            assert params["Tagging"] == "mlflow-workspace=team-a"
    for signed in [*urls, url]:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(signed).query)
        assert query["X-Amz-SignedHeaders"] == ["host"]
        assert not [k for k in query if "server-side" in k.lower() or "owner" in k.lower()]


# -- error translation ------------------------------------------------------------------------
def _client_error(code: str, operation: str, message: str = "denied") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def test_access_denied_names_workspace_bucket_action_and_credentials() -> None:
    err = translate_boto_error(
        _client_error("AccessDenied", "PutObject", "AKIALEAKED in message"),
        workspace="team-a",
        location="s3://bucket-a/workspaces/team-a/1/r/artifacts/m.pkl",
        operation="upload",
        bucket="bucket-a",
        credentials="static keys",
    )
    assert isinstance(err, AccessDeniedError)
    assert isinstance(err, PermissionError)
    assert str(err) == (
        "upload failed for workspace 'team-a' at s3://bucket-a/workspaces/team-a/1/r/artifacts/"
        "m.pkl with static keys: AccessDenied; grant the route's credentials s3:PutObject on "
        "bucket 'bucket-a', or fix the credentials (with storage.expected_bucket_owner set, "
        "also check the bucket's owner)."
    )
    mlflow_err = refusals.mlflow_error(err)
    assert isinstance(mlflow_err, MlflowException)
    assert mlflow_err.error_code == "PERMISSION_DENIED"
    assert mlflow_err.get_http_status_code() == 403


@pytest.mark.parametrize(
    ("err", "operation", "cls", "ending"),
    [
        (
            _client_error("AccessDenied", "AssumeRole"),
            "download",
            CredentialsError,
            "download (assuming the route's role) failed for workspace 'w' at s3://b/k: "
            "AccessDenied; the route's source credentials may not assume the role",
        ),
        (
            _client_error("403", "HeadObject"),
            "stat",
            AccessDeniedError,
            "403; grant the route's credentials s3:GetObject on bucket 'b', or fix the "
            "credentials.",
        ),
        (
            _client_error("AccessDenied", "ListObjectsV2"),
            "list",
            AccessDeniedError,
            "grant the route's credentials s3:ListBucket on bucket 'b'",
        ),
        (
            _client_error("SignatureDoesNotMatch", "PutObject"),
            "upload",
            AuthenticationError,  # MLflow: UNAUTHENTICATED
            "SignatureDoesNotMatch; check the route's secret_access_key.",
        ),
        (
            _client_error("InvalidAccessKeyId", "PutObject"),
            "upload",
            AuthenticationError,  # MLflow: UNAUTHENTICATED
            "InvalidAccessKeyId; check the route's access_key_id.",
        ),
        (
            _client_error("NoSuchBucket", "PutObject"),
            "upload",
            NotFoundError,
            "NoSuchBucket; create bucket 'b' or fix the route's url.",
        ),
        (
            _client_error("KMS.NotFoundException", "PutObject"),
            "upload",
            StorageError,
            "KMS.NotFoundException; check the route's storage.kms_key_id.",
        ),
        (
            NoCredentialsError(),
            "upload",
            CredentialsError,
            "NoCredentialsError; give the route credentials, or set up the default AWS credential "
            "chain.",
        ),
        (
            _client_error("SlowDown", "PutObject"),
            "upload",
            StorageError,
            "SlowDown; see the server log for details.",
        ),
    ],
    ids=[
        "assume-role",
        "head-403",
        "list",
        "signature",
        "key-id",
        "bucket",
        "kms",
        "no-creds",
        "other",
    ],
)
def test_translation_table(err: BaseException, operation: str, cls: type, ending: str) -> None:
    translated = translate_boto_error(
        err, workspace="w", location="s3://b/k", operation=operation, bucket="b"
    )
    assert type(translated) is cls
    assert str(translated).startswith(f"{operation}")
    assert ending in str(translated)
