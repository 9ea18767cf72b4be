"""The copy engine (storage/copying.py) on its own, no server: the bucket owner its S3 calls
name (moto in-process, the calls seen through botocore's event hooks), as the lifecycle's calls
by key name it, and what one source object that cannot be read does to the copy of a local
tree."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ws_artifacts.core.errors import AccessDeniedError
from ws_artifacts.core.loading import parse_config
from ws_artifacts.core.paths import join
from ws_artifacts.core.routing import Router
from ws_artifacts.core.targets import Target
from ws_artifacts.storage import clients
from ws_artifacts.storage.clients import ClientCache, ClientKey
from ws_artifacts.storage.copying import copy_tree, delete_objects, list_tree, modified_after
from ws_artifacts.storage.mlflow_settings import EXPECTED_BUCKET_OWNER
from ws_artifacts.storage.registry import backend_for

ACCOUNT = "123456789012"  # moto's account, the owner of every bucket it makes
MIB = 1024 * 1024
BASE = "workspaces/team-a"
Call = tuple[str, str | None]  # an S3 operation and the ExpectedBucketOwner it carried
#: The ExpectedSourceBucketOwner of each server-side copy call, in order.
COPY_SOURCE_OWNERS: list[str | None] = []


def place(url: str, **route: Any) -> Target:
    """team-a's root at ``url`` (``route``: more of the route's settings)."""
    config = parse_config(
        {
            "defaults": {
                "region": "us-east-1",
                "transfer": {"multipart_threshold": 5 * MIB, "part_size": 5 * MIB},
            },
            "workspaces": {"team-a": {"url": url, **route}},
        }
    )
    route = Router(config, "s3://root").route_for("team-a")
    scope = join(route.prefix, BASE)
    return Target(route, scope, "team-a", scope)


# -- the bucket owner: MLflow's variable counts where the route names none ------------------
def _refuse_other_owners(params: dict[str, Any], **_: Any) -> Any:
    """Answer as S3 does a call naming another account as the bucket's owner (moto does not
    check the header)."""
    owner = params["headers"].get("x-amz-expected-bucket-owner")
    if owner is None or owner == ACCOUNT:
        return None
    error = {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}
    return SimpleNamespace(status_code=403, headers={}), error


@pytest.fixture
def s3_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Call]]:
    """moto in-process with buckets ``old`` and ``new``; every client the engine builds records
    its calls here and is refused like S3 when it names a wrong owner."""
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    for name in ("MLFLOW_S3_ENDPOINT_URL", "MLFLOW_S3_UPLOAD_EXTRA_ARGS", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    calls: list[Call] = []
    COPY_SOURCE_OWNERS.clear()

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, params.get("ExpectedBucketOwner")))
        if model.name in ("CopyObject", "UploadPartCopy"):
            COPY_SOURCE_OWNERS.append(params.get("ExpectedSourceBucketOwner"))

    def build(key: ClientKey) -> Any:
        client = clients._build_client(key)
        client.meta.events.register("provide-client-params.s3.*", record)
        client.meta.events.register("before-call.s3.*", _refuse_other_owners)
        return client

    monkeypatch.setattr(clients, "_cache", ClientCache(build=build))
    with mock_aws():
        import boto3

        admin = boto3.client("s3", region_name="us-east-1")
        for bucket in ("old", "new"):
            admin.create_bucket(Bucket=bucket)
        admin.put_object(Bucket="old", Key=f"{BASE}/1/r/artifacts/small.txt", Body=b"small")
        big = os.urandom(5 * MIB + 1)  # streamed: a multipart upload, verified by reading it
        admin.put_object(Bucket="old", Key=f"{BASE}/1/r/artifacts/big.bin", Body=big)
        yield calls


@pytest.mark.parametrize(
    "other_keys",
    [False, True],
    ids=["server-side (one identity)", "streamed (other credentials at the target)"],
)
def test_every_call_of_the_engine_names_mlflows_expected_bucket_owner(
    s3_calls: list[Call], monkeypatch: pytest.MonkeyPatch, other_keys: bool
) -> None:
    monkeypatch.setenv(EXPECTED_BUCKET_OWNER, ACCOUNT)
    keys = {"credentials": {"access_key_id": "k2", "secret_access_key": "s2"}}
    src, dst = place("s3://old"), place("s3://new", **(keys if other_keys else {}))

    outcomes = copy_tree(list_tree(src), src, dst)
    assert [(o.name, o.action, o.mode) for o in outcomes] == [
        ("1/r/artifacts/big.bin", "copied", "streamed" if other_keys else "server-side"),
        ("1/r/artifacts/small.txt", "copied", "streamed" if other_keys else "server-side"),
    ]
    assert modified_after(dst, dt.datetime(2000, 1, 1, tzinfo=dt.UTC)) == [
        "1/r/artifacts/big.bin",
        "1/r/artifacts/small.txt",
    ]
    assert delete_objects(src, ["1/r/artifacts/small.txt"]) == 1

    operations = {name for name, _ in s3_calls}
    assert {"ListObjectsV2", "HeadObject", "DeleteObjects"} <= operations
    assert ("GetObject" in operations) == other_keys  # the source streamed, the copy verified
    assert ("CopyObject" in operations) != other_keys
    assert [call for call in s3_calls if call[1] != ACCOUNT] == []


def test_a_wrong_expected_bucket_owner_from_mlflows_variable_is_refused(
    s3_calls: list[Call], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(EXPECTED_BUCKET_OWNER, "210987654321")
    src = place("s3://old")
    with pytest.raises(
        AccessDeniedError,
        match=r"^list failed for workspace 'team-a' at s3://old/workspaces/team-a.*: "
        r"AccessDenied; grant .* on bucket 'old', or fix the credentials \(with "
        r"storage\.expected_bucket_owner set, also check the bucket's owner\)\.$",
    ):
        list_tree(src)
    assert s3_calls == [("ListObjectsV2", "210987654321")]


def test_every_lifecycle_call_by_key_names_the_expected_bucket_owner(
    s3_calls: list[Call], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quarantine, restore, purge, orphans and usage reach the bucket by key (outside the
    repository's Targets): each of their calls names the owner too, and a copy names it for
    its source as well."""
    monkeypatch.setenv(EXPECTED_BUCKET_OWNER, ACCOUNT)
    root = place("s3://old")
    store = backend_for(root.route)
    small, big = f"{BASE}/1/r/artifacts/small.txt", f"{BASE}/1/r/artifacts/big.bin"
    assert sorted(k for k, _ in store.walk_keys("", BASE)) == [big, small]
    assert store.children("", f"{BASE}/1/r") == ["artifacts"]
    assert store.newest("", BASE) is not None
    assert store.key_size("", small) == len(b"small")
    store.copy_key("", small, f"{BASE}/q/small.txt", len(b"small"), "team-a")
    store.copy_key("", big, f"{BASE}/q/big.bin", 5 * MIB + 1, "team-a")  # part by part
    store.write_bytes("", f"{BASE}/q/manifest.json", b"{}")
    assert store.read_bytes("", f"{BASE}/q/manifest.json") == b"{}"
    store.delete_keys("", [f"{BASE}/q/small.txt", f"{BASE}/q/big.bin", f"{BASE}/q/manifest.json"])
    found, pieces = store.walk_split(root, None)  # usage's parallel listing, piece by piece
    while pieces:
        more, new = store.walk_split(root, pieces.pop())
        found, pieces = found + more, pieces + new
    assert sorted(name for name, _ in found) == ["1/r/artifacts/big.bin", "1/r/artifacts/small.txt"]
    assert store.subdirs("workspaces") == ["team-a"]

    operations = {name for name, _ in s3_calls}
    assert {
        "ListObjectsV2",
        "HeadObject",
        "CopyObject",
        "CreateMultipartUpload",
        "UploadPartCopy",
        "CompleteMultipartUpload",
        "PutObject",
        "GetObject",
        "DeleteObjects",
    } <= operations
    assert [call for call in s3_calls if call[1] != ACCOUNT] == []
    assert COPY_SOURCE_OWNERS == [ACCOUNT, ACCOUNT, ACCOUNT]  # one copy, two part copies


# -- an unreadable file of a local source fails alone ------------------------------------------
def _removed(path: Path) -> None:
    path.unlink()


def _directory_in_its_place(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "inside.txt").write_bytes(b"not the file")


@pytest.mark.parametrize(
    ("spoil", "error"),
    [
        (
            _removed,
            "No such artifact: '{uri}'. download failed for workspace 'team-a'; check the "
            "artifact path.",
        ),
        (
            _directory_in_its_place,
            "download failed for workspace 'team-a' at {uri}: IsADirectoryError: Is a directory.",
        ),
    ],
    ids=["removed after the listing", "a directory where the file was"],
)
def test_a_local_source_file_unreadable_midway_fails_alone(
    tmp_path: Path, spoil: Callable[[Path], None], error: str
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    names = [f"1/r/artifacts/f{i}.txt" for i in range(4)]
    for name in names:
        path = old / BASE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())
    src, dst = place(f"file://{old}"), place(f"file://{new}")
    sources = list_tree(src)
    spoil(old / BASE / names[1])

    outcomes = copy_tree(sources, src, dst)
    assert [(o.name, o.action) for o in outcomes] == [
        (names[0], "copied"),
        (names[1], "failed"),
        (names[2], "copied"),
        (names[3], "copied"),
    ]
    assert outcomes[1].error == error.format(uri=f"file://{old}/{BASE}/{names[1]}")
    assert sorted(str(p.relative_to(new / BASE)) for p in new.rglob("*") if p.is_file()) == [
        names[0],
        names[2],
        names[3],
    ]
    assert [(old / BASE / n).read_bytes() for n in (names[0], names[2], names[3])] == [
        n.encode() for n in (names[0], names[2], names[3])
    ]
