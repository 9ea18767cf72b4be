"""Attacks on the quarantine area and its manifests, and on the audit trail's headers, as a
hostile client in the default workspace would make them (issue 22).

One ``ws-artifacts server`` (two workers, guard, ``ws+sqlite`` provider, audit trail) on moto.
Two workspaces are deleted first, so quarantine entries exist at the destination
(``.ws-quarantine/hq-victim/...``) and under a route that shares the destination's bucket
(``teams/.ws-quarantine/hq-routed/...``): both lie in the default workspace's legacy layout.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.security.hostile import ARTIFACTS, MANIFEST, MPU, Hostile, Q, manifest, start_hostile
from tests.security.spellings import IDS, SPELLINGS, Spelling
from tests.support.servers import Server
from tests.support.workspaces import in_workspace

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning"),
]

ROOT = "hq-root"
MARK = f"quarantined-secret-{uuid.uuid4().hex[:8]}"
DENIED = "PERMISSION_DENIED"


@dataclass
class World:
    life: Hostile
    victim: str  # the destination entry's stamp: .ws-quarantine/hq-victim/<stamp>
    routed: str  # the route's entry: teams/.ws-quarantine/hq-routed/<stamp>

    def everything(self) -> dict[str, bytes]:
        return self.life.snapshot(ROOT)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, moto: Server, s3: Any) -> Iterator[World]:
    work = tmp_path_factory.mktemp("hostile-q")
    life = start_hostile(work, moto, s3, ROOT, f'hq-routed: {{url: "s3://{ROOT}/teams"}}')
    try:
        client = life.client()
        files = work / "files"
        files.mkdir()
        for name in ("hq-victim", "hq-routed"):
            client.create_workspace(name)
            life.log_run(name, {"secret.txt": f"{MARK}-{name}".encode()}, files)
            life.delete_workspace(name)
        s3.put_object(Bucket=ROOT, Key="teams/readme.txt", Body=b"a legacy file of default")
        (victim,) = life.stamps(ROOT, "", "hq-victim")
        (routed,) = life.stamps(ROOT, "teams/", "hq-routed")
        yield World(life, victim, routed)
    finally:
        life.server.stop()


def refused(answer: Any) -> None:
    assert answer.status_code == 403, answer.text
    assert answer.json()["error_code"] == DENIED
    assert MARK not in answer.text
    assert "deleted_at" not in answer.text


# -- every operation, every spelling, through the guard and both workers ----------------------
OPERATIONS = ["read", "list", "write", "delete", "presign-read", "multipart-create"]


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("spelling", SPELLINGS, ids=IDS)
def test_the_quarantine_is_nobodys_place(world: World, spelling: Spelling, operation: str) -> None:
    area = spelling.wire(Q)
    entry = f"{area}/hq-victim/{world.victim}"
    before = world.everything()
    life = world.life
    if operation == "read":
        answer = life.request("GET", f"{ARTIFACTS}/{entry}/{MANIFEST}")
    elif operation == "list":
        answer = life.request("GET", f"{ARTIFACTS}?path={entry}")
    elif operation == "write":  # a forged manifest for a workspace that never existed
        forged = manifest("hq-forged", "20200101T000000Z", base="", route_url=f"s3://{ROOT}")
        answer = life.request(
            "PUT", f"{ARTIFACTS}/{area}/hq-forged/20200101T000000Z/{MANIFEST}", data=forged
        )
    elif operation == "delete":
        answer = life.request("DELETE", f"{ARTIFACTS}/{entry}")
    elif operation == "presign-read":
        answer = life.request("GET", f"/api/2.0/mlflow-artifacts/presigned/{entry}/{MANIFEST}")
    else:
        body = {"path": MANIFEST, "num_parts": 1}
        answer = life.request("POST", f"{MPU}/create/{area}/hq-forged/20200101T000000Z", json=body)
    refused(answer)
    assert world.everything() == before  # nothing read away, written or deleted
    assert life.s3.list_multipart_uploads(Bucket=ROOT).get("Uploads", []) == []


def test_listing_the_destination_from_default_shows_no_quarantine(world: World) -> None:
    for path in ("", "teams"):
        answer = world.life.request("GET", ARTIFACTS, params={"path": path})
        assert answer.status_code == 200, answer.text
        names = [f["path"] for f in answer.json().get("files", [])]
        assert not any(Q in name for name in names), names


def test_a_tree_download_from_default_leaves_the_quarantine_out(
    world: World, tmp_path: Path
) -> None:
    import mlflow

    with in_workspace("default"):
        out = mlflow.artifacts.download_artifacts(
            artifact_uri="mlflow-artifacts:/teams",
            dst_path=str(tmp_path),
            tracking_uri=world.life.url,
        )
    found = sorted(str(p.relative_to(out)) for p in Path(out).rglob("*"))
    assert found == ["readme.txt"]


def test_default_cannot_delete_a_legacy_tree_that_holds_a_quarantine(world: World) -> None:
    before = world.everything()
    assert any(key.startswith(f"teams/{Q}/hq-routed/{world.routed}/") for key in before)

    refused(world.life.request("DELETE", f"{ARTIFACTS}/teams"))

    assert world.everything() == before


@pytest.mark.parametrize("scheme", ["s3", "mlflow-artifacts", "ws-s3"])
@pytest.mark.parametrize("spelling", SPELLINGS, ids=IDS)
def test_the_guard_refuses_quarantine_locations(
    world: World, spelling: Spelling, scheme: str
) -> None:
    """A model version whose source lies in the quarantine would be read with the server's
    credentials: as default, every spelling of it is refused before it is stored."""
    path = f"{spelling.wire(Q)}/hq-victim/{world.victim}"
    source = f"{scheme}:/{path}" if scheme == "mlflow-artifacts" else f"{scheme}://{ROOT}/{path}"
    name = f"hq-model-{uuid.uuid4().hex[:8]}"
    created = world.life.request(
        "POST", "/api/2.0/mlflow/registered-models/create", json={"name": name}
    )
    assert created.status_code == 200, created.text

    answer = world.life.request(
        "POST", "/api/2.0/mlflow/model-versions/create", json={"name": name, "source": source}
    )

    refused(answer)


# -- forged manifests ---------------------------------------------------------------------
def _forgeries(world: World) -> dict[str, tuple[str, bytes]]:
    """Manifests planted by whoever could write one, each claiming to be another entry: its
    key -> its contents. Each would steer purge (it says 2020) to the fresh entry named."""
    old = "20200101T000000Z"
    dest, teams = f"s3://{ROOT}", f"s3://{ROOT}/teams"
    return {
        "another-workspace-directory": (
            f"{Q}/hq-forger/{old}/{MANIFEST}",
            manifest("hq-victim", world.victim, base="", route_url=dest, deleted_at=_at(old)),
        ),
        "own-directory-other-stamp": (
            f"{Q}/hq-victim/{old}/{MANIFEST}",
            manifest("hq-victim", world.victim, base="", route_url=dest, deleted_at=_at(old)),
        ),
        "right-key-another-place": (
            f"{Q}/hq-routed/{world.routed}/{MANIFEST}",
            manifest("hq-routed", world.routed, base="teams", route_url=teams, deleted_at=_at(old)),
        ),
    }


def _at(stamp: str) -> str:
    return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}Z"


FORGERIES = [
    "another-workspace-directory",
    "own-directory-other-stamp",
    "right-key-another-place",
]


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_manifest_steers_no_purge(world: World, forgery: str) -> None:
    key, body = _forgeries(world)[forgery]
    life = world.life
    life.s3.put_object(Bucket=ROOT, Key=key, Body=body)
    try:
        before = world.everything()
        listed = life.cli("quarantine", "list", "--json")
        purged = life.cli("purge", "--older-than", "1d", "--yes", "--json")
        after = world.everything()
    finally:
        life.s3.delete_object(Bucket=ROOT, Key=key)
    assert listed.returncode == 0, listed.stderr
    assert sorted((e["workspace"], e["stamp"]) for e in json.loads(listed.stdout)) == [
        ("hq-routed", world.routed),
        ("hq-victim", world.victim),
    ]
    warning = f"suspicious quarantine manifest at s3://{ROOT}/{key}"
    assert warning in listed.stderr
    assert purged.returncode == 0, purged.stderr
    assert (json.loads(purged.stdout)["entries"], json.loads(purged.stdout)["purged"]) == (0, [])
    assert warning in purged.stderr
    assert after == before  # both fresh entries (and the forgery) are whole


# -- the audit trail ----------------------------------------------------------------------
def test_control_characters_in_headers_never_reach_the_audit_trail(world: World) -> None:
    request_id = f"esc-{uuid.uuid4().hex[:8]}"
    hostile = b"\x1b[31m203.0.113.9\x1b]0;pwned\x07\x7f\x9b2J\x85x"
    connection = http.client.HTTPConnection(urllib.parse.urlsplit(world.life.url).netloc)
    connection.putrequest("GET", f"{ARTIFACTS}?path=hq-audit")
    for name, value in (
        (b"X-MLFLOW-WORKSPACE", b"default"),
        (b"X-Request-ID", request_id.encode()),
        (b"X-Forwarded-For", hostile),
    ):
        connection.putheader(name, value)
    connection.endheaders()
    assert connection.getresponse().status == 200
    connection.close()

    raw = _audit_lines(world, request_id)
    assert len(raw) == 1
    assert json.loads(raw[0])["forwarded_for"] == "[31m203.0.113.9]0;pwned2Jx"
    assert not any(escaped in raw[0] for escaped in (b"\\u001b", b"\\u0007", b"\\u009b"))


def _audit_lines(world: World, request_id: str) -> list[bytes]:
    """The audit lines of one request, polled for (a line is written when its operation ends)."""
    import time

    deadline = time.monotonic() + 60
    found: list[bytes] = []
    while not found and time.monotonic() < deadline:
        text = world.life.audit.read_bytes() if world.life.audit.exists() else b""
        found = [line for line in text.splitlines() if request_id.encode() in line]
        time.sleep(0.05)
    return found
