"""A batch delete that S3 answers with per-key errors raises what the store said (an
AccessDenied is an access error, not "not found"), names the workspace and the object, and
deletes nothing further."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ws_artifacts.core.errors import AccessDeniedError, NotFoundError, StorageError
from ws_artifacts.core.loading import parse_config
from ws_artifacts.core.routing import Router
from ws_artifacts.core.targets import Target
from ws_artifacts.storage.s3.backend import S3Backend

SCOPE = "workspaces/team-a"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bucket-a")
        for name in ("1/a.txt", "1/b.txt"):
            s3.put_object(Bucket="bucket-a", Key=f"{SCOPE}/{name}", Body=b"x")
        yield s3


@contextlib.contextmanager
def refused_delete(backend: S3Backend, target: Target, code: str) -> Iterator[None]:
    """Make S3 answer DeleteObjects with ``code`` for the first key (as S3 does: a 200 whose
    body lists the keys it did not delete). The route's client is cached across tests: the
    hook is taken off again."""

    def answer(**_: Any) -> tuple[Any, dict[str, Any]]:
        return SimpleNamespace(status_code=200, headers={}), {
            "Errors": [{"Key": f"{SCOPE}/1/a.txt", "Code": code, "Message": "refused"}]
        }

    events = backend.client(target).meta.events
    events.register("before-call.s3.DeleteObjects", answer)
    try:
        yield
    finally:
        events.unregister("before-call.s3.DeleteObjects", answer)


@pytest.mark.parametrize(
    ("code", "expected"),
    [("AccessDenied", AccessDeniedError), ("InternalError", StorageError)],
    ids=["access-denied", "other"],
)
def test_a_refused_batch_delete_raises_the_stores_error(
    aws: Any, code: str, expected: type[Exception]
) -> None:
    config = parse_config({"workspaces": {"team-a": {"url": "s3://bucket-a"}}})
    route = Router(config, "s3://root").route_for("team-a")
    backend = S3Backend(route)
    target = Target(route, f"{SCOPE}/1", "team-a", SCOPE)
    said = f"at s3://bucket-a/{SCOPE}/1/a.txt: {code}; 1 object\\(s\\) were not deleted"
    with (
        refused_delete(backend, target, code),
        pytest.raises(expected, match=f"delete failed for workspace 'team-a' {said}") as err,
    ):
        backend.delete(target)
    assert not isinstance(err.value, NotFoundError)
    listed = aws.list_objects_v2(Bucket="bucket-a", Prefix=SCOPE)["Contents"]
    assert sorted(o["Key"] for o in listed) == [f"{SCOPE}/1/a.txt", f"{SCOPE}/1/b.txt"]
