"""Migrate through a fault-injecting proxy in front of moto: copies that fail midway lose
nothing, leave no partial object and no pending multipart upload, and a rerun completes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from boto3.s3.transfer import TransferConfig
from click.testing import CliRunner

from tests.support.config import ConfigFile
from tests.support.faults import FaultProxy, is_copy, is_get, is_part_copy, is_part_upload
from tests.support.s3 import admin_client, keys
from tests.support.servers import MOTO_KEY, MOTO_SECRET, Server, clean_env
from tests.support.workspaces import unique
from ws_artifacts.cli.main import main

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


@pytest.fixture
def proxy(moto: Server) -> Iterator[FaultProxy]:
    with FaultProxy(moto.url) as running:
        yield running


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", MOTO_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", MOTO_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("WS_ARTIFACTS_CONFIG", raising=False)


def migrate(config: Path, *extra: str, code: int = 0) -> dict[str, Any]:
    result = CliRunner().invoke(
        main, ["migrate", "team-a", "--config", str(config), "--json", *extra]
    )
    assert result.exit_code == code, result.output
    assert result.stdout.strip().startswith("{"), result.output
    place: dict[str, Any] = json.loads(result.stdout)["places"][0]
    return place


def digests(s3: Any, bucket: str) -> dict[str, str]:
    return {
        key: hashlib.md5(
            s3.get_object(Bucket=bucket, Key=key)["Body"].read(), usedforsecurity=False
        ).hexdigest()
        for key in keys(s3, bucket)
    }


def pending_uploads(s3: Any, bucket: str) -> list[str]:
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def config_file(tmp_path: Path, endpoint: str, new: str, previous: str) -> Path:
    """team-a routed to bucket ``new``, its ``previous`` places given as a YAML list."""
    config = ConfigFile(endpoint).with_defaults(
        max_attempts=1, transfer={"multipart_threshold": 5242880, "part_size": 5242880}
    )
    config.route(
        "team-a",
        f"s3://{new}",
        storage={"sse": "AES256", "tags": {"tier": "migrated"}},
        previous=yaml.safe_load(textwrap.dedent(previous)),
    )
    return config.write(tmp_path / "ws-artifacts.yaml")


def fill_old(s3: Any, bucket: str, *, multipart: bool) -> dict[str, bytes]:
    """Ten small objects and one 11 MiB object (uploaded in 5 MiB parts, or in one PUT)."""
    base = "workspaces/team-a/1/run1/artifacts"
    objects = {f"{base}/f{i:02d}.bin": os.urandom(1000 + i) for i in range(10)}
    for key, data in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    big = os.urandom(11 * MIB)
    if multipart:
        import io

        config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
        s3.upload_fileobj(io.BytesIO(big), bucket, f"{base}/big.bin", Config=config)
        assert s3.head_object(Bucket=bucket, Key=f"{base}/big.bin")["ETag"].endswith('-3"')
    else:
        s3.put_object(Bucket=bucket, Key=f"{base}/big.bin", Body=big)
    objects[f"{base}/big.bin"] = big
    return objects


def streamed_places(s3: Any, endpoint: str, tmp_path: Path, name: str) -> tuple[str, str, Path]:
    """Buckets ``<name>-old`` (filled by :func:`fill_old`, big.bin in one PUT) and
    ``<name>-new``, and a configuration whose previous place (the old bucket) has other
    credentials than the new one, so migrate streams. Returns both bucket names and the file."""
    old, new = unique(f"{name}-old"), unique(f"{name}-new")
    for bucket in (old, new):
        s3.create_bucket(Bucket=bucket)
    fill_old(s3, old, multipart=False)
    previous = f"""
        - url: s3://{old}
          credentials: {{access_key_id: other-key, secret_access_key: other-secret}}
    """
    return old, new, config_file(tmp_path, endpoint, new, previous)


def unlike_etags(s3: Any, name: str) -> tuple[str, str, str, bytes]:
    """The same 11 MiB as big.bin in buckets ``<name>-old`` (in 5 MiB parts) and ``<name>-new``
    (one PUT): their ETags cannot be compared, only reading tells them equal. Returns both
    bucket names, the key and the bytes."""
    import io

    old, new = unique(f"{name}-old"), unique(f"{name}-new")
    for bucket in (old, new):
        s3.create_bucket(Bucket=bucket)
    key = "workspaces/team-a/1/run1/artifacts/big.bin"
    data = os.urandom(11 * MIB)
    parts = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    s3.upload_fileobj(io.BytesIO(data), old, key, Config=parts)
    s3.put_object(Bucket=new, Key=key, Body=data)
    return old, new, key, data


def test_server_side_migrate_interrupted_midway_then_rerun(
    s3: Any, proxy: FaultProxy, tmp_path: Path
) -> None:
    old, new = unique("mig-f-old"), unique("mig-f-new")
    for bucket in (old, new):
        s3.create_bucket(Bucket=bucket)
    objects = fill_old(s3, old, multipart=True)
    source = digests(s3, old)
    config = config_file(tmp_path, proxy.url, new, f"- s3://{old}")

    proxy.fail(is_copy, nth={3, 7})
    proxy.fail(is_part_copy, nth={2})
    first = migrate(config, code=1)
    assert proxy.failed == 3
    assert (first["copied"], first["failed"], first["mode"]) == (8, 3, "server-side")
    failed = sorted(f["name"] for f in first["failures"])
    assert "1/run1/artifacts/big.bin" in failed
    assert len(failed) == 3
    assert all("InternalError" in f["error"] for f in first["failures"])
    copied = keys(s3, new)
    assert len(copied) == 8
    assert not {f"workspaces/team-a/{name}" for name in failed} & set(copied)  # nothing partial
    assert pending_uploads(s3, new) == []
    assert digests(s3, old) == source  # the source is untouched

    proxy.clear()
    second = migrate(config)
    assert (second["copied"], second["present"], second["failed"]) == (3, 8, 0)
    assert digests(s3, new) == source
    assert s3.head_object(Bucket=new, Key=next(iter(objects)))["ServerSideEncryption"] == "AES256"
    big = "workspaces/team-a/1/run1/artifacts/big.bin"
    assert (
        s3.head_object(Bucket=new, Key=big)["ETag"] == s3.head_object(Bucket=old, Key=big)["ETag"]
    )
    assert sorted(s3.get_object_tagging(Bucket=new, Key=big)["TagSet"], key=str) == [
        {"Key": "mlflow-workspace", "Value": "team-a"},
        {"Key": "tier", "Value": "migrated"},
    ]
    third = migrate(config, "--delete-source")
    assert (third["copied"], third["present"], third["deleted"]) == (0, 11, 11)
    assert keys(s3, old) == []
    assert digests(s3, new) == source


def test_streamed_migrate_with_other_credentials_interrupted_then_rerun(
    s3: Any, proxy: FaultProxy, tmp_path: Path
) -> None:
    old, new, config = streamed_places(s3, proxy.url, tmp_path, "mig-s")
    source = digests(s3, old)

    proxy.fail(is_part_upload, nth={2})
    first = migrate(config, code=1)
    assert (first["mode"], first["copied"], first["failed"]) == ("streamed", 10, 1)
    assert [f["name"] for f in first["failures"]] == ["1/run1/artifacts/big.bin"]
    assert "workspaces/team-a/1/run1/artifacts/big.bin" not in keys(s3, new)
    assert pending_uploads(s3, new) == []

    proxy.clear()
    plan = migrate(config, "--dry-run")
    assert (plan["planned"], plan["present"], plan["bytes_planned"]) == (1, 10, 11 * MIB)
    second = migrate(config)
    assert (second["copied"], second["present"], second["failed"]) == (1, 10, 0)
    assert digests(s3, new) == source


def test_a_local_previous_place_is_streamed_into_s3(s3: Any, moto: Server, tmp_path: Path) -> None:
    new = unique("mig-l-new")
    s3.create_bucket(Bucket=new)
    old = tmp_path / "old"
    files = {"3/r/artifacts/a.txt": b"from disk", "3/r/artifacts/d/b.bin": os.urandom(7 * MIB)}
    for name, data in files.items():
        path = old / "workspaces" / "team-a" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    config = config_file(tmp_path, moto.url, new, f"- file://{old}")
    done = migrate(config)
    assert (done["mode"], done["copied"], done["failed"]) == ("streamed", 2, 0)
    assert keys(s3, new) == [f"workspaces/team-a/{name}" for name in sorted(files)]
    for name, data in files.items():
        got = s3.get_object(Bucket=new, Key=f"workspaces/team-a/{name}")["Body"].read()
        assert got == data
    again = migrate(config, "--delete-source")
    assert (again["copied"], again["present"], again["deleted"]) == (0, 2, 2)
    assert [p for p in old.rglob("*") if p.is_file()] == []


def test_migrate_killed_during_part_copies_leaves_an_upload_the_rerun_aborts(
    s3: Any, proxy: FaultProxy, tmp_path: Path
) -> None:
    """A migrate process killed while it copies (SIGKILL: nothing can clean up) leaves only a
    pending multipart upload of the large object; the rerun copies everything, verified, and
    aborts that upload when its own upload of the same key completes."""
    old, new = unique("mig-k-old"), unique("mig-k-new")
    for bucket in (old, new):
        s3.create_bucket(Bucket=bucket)
    fill_old(s3, old, multipart=True)
    source = digests(s3, old)
    config = config_file(tmp_path, proxy.url, new, f"- s3://{old}")
    big = "workspaces/team-a/1/run1/artifacts/big.bin"

    proxy.hold(is_copy)  # every copy waits: the kill comes while all are in flight
    proxy.hold(is_part_copy)
    command = [str(Path(sys.executable).parent / "ws-artifacts"), "migrate", "team-a"]
    env = clean_env(
        AWS_ACCESS_KEY_ID=MOTO_KEY,
        AWS_SECRET_ACCESS_KEY=MOTO_SECRET,
        AWS_DEFAULT_REGION="us-east-1",
    )
    killed = subprocess.Popen(
        [*command, "--config", str(config), "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # 8 copy threads: one copies big.bin (first by name) in its 3 parts, 7 copy small files
        assert proxy.wait_held(10, timeout=300)
        killed.kill()
        assert killed.wait(timeout=60) == -signal.SIGKILL
    finally:
        proxy.release()
    assert keys(s3, new) == []  # nothing partial: no copy reached the store
    assert pending_uploads(s3, new) == [big]  # the one thing a killed run cannot clean up

    proxy.clear()
    second = migrate(config)
    assert (second["copied"], second["present"], second["failed"]) == (11, 0, 0)
    assert pending_uploads(s3, new) == []
    assert digests(s3, new) == source


def test_a_name_taken_with_other_bytes_is_shadowed_never_overwritten_nor_deleted(
    s3: Any, moto: Server, tmp_path: Path
) -> None:
    """The new place already has a.txt with other bytes (written after the route change): its
    version wins, nothing overwrites it, and --delete-source keeps the old a.txt."""
    old, new = unique("mig-sh-old"), unique("mig-sh-new")
    for bucket in (old, new):
        s3.create_bucket(Bucket=bucket)
    base = "workspaces/team-a/1/run1/artifacts"
    s3.put_object(Bucket=old, Key=f"{base}/a.txt", Body=b"the old a")
    s3.put_object(Bucket=old, Key=f"{base}/b.txt", Body=b"the old b")
    s3.put_object(Bucket=new, Key=f"{base}/a.txt", Body=b"the new a, written since")
    config = config_file(tmp_path, moto.url, new, f"- s3://{old}")

    plan = migrate(config, "--dry-run")
    assert (plan["planned"], plan["shadowed"], plan["copied"]) == (1, 1, 0)
    assert plan["shadowed_names"] == ["1/run1/artifacts/a.txt"]
    done = migrate(config, "--delete-source")
    assert (done["copied"], done["shadowed"], done["deleted"], done["failed"]) == (1, 1, 1, 0)
    read = {
        (bucket, key): s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        for bucket in (old, new)
        for key in keys(s3, bucket)
    }
    assert read == {
        (old, f"{base}/a.txt"): b"the old a",  # not verified at the new place: kept
        (new, f"{base}/a.txt"): b"the new a, written since",
        (new, f"{base}/b.txt"): b"the old b",
    }


def test_a_streamed_copy_whose_bytes_change_on_the_way_is_failed_and_removed(
    s3: Any, moto: Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    """Checksum verification: the source's bytes arrive changed (same length). An object
    stored with a CRC is caught by botocore's response check, one stored without by our MD5
    against its listed ETag: either copy is failed and nothing of it is left."""
    from botocore.config import Config

    old, new = unique("mig-c-old"), unique("mig-c-new")
    for bucket in (old, new):
        s3.create_bucket(Bucket=bucket)
    base = "workspaces/team-a/1/run1/artifacts"
    s3.put_object(Bucket=old, Key=f"{base}/crc.bin", Body=b"the real weights")  # with a CRC32
    plain = admin_client(moto.url, Config(request_checksum_calculation="when_required"))
    plain.put_object(Bucket=old, Key=f"{base}/plain.bin", Body=b"other real weights")
    assert "ChecksumCRC32" not in s3.head_object(
        Bucket=old, Key=f"{base}/plain.bin", ChecksumMode="ENABLED"
    )
    previous = f"""
        - url: s3://{old}
          credentials: {{access_key_id: other-key, secret_access_key: other-secret}}
    """
    config = config_file(tmp_path, proxy.url, new, previous)

    proxy.corrupt(lambda r: is_get(r) and r.path.split("?")[0].endswith(".bin"))
    first = migrate(config, code=1)
    assert (first["mode"], first["copied"], first["failed"]) == ("streamed", 0, 2)
    errors = {f["name"].rsplit("/", 1)[-1]: f["error"] for f in first["failures"]}
    assert "changed while it was read (size or MD5 differ from its listing)" in errors["plain.bin"]
    assert "checksum" in errors["crc.bin"].lower()
    assert keys(s3, new) == []
    assert pending_uploads(s3, new) == []
    assert keys(s3, old) == [f"{base}/crc.bin", f"{base}/plain.bin"]

    proxy.clear()
    second = migrate(config)
    assert (second["copied"], second["failed"]) == (2, 0)
    assert s3.get_object(Bucket=new, Key=f"{base}/crc.bin")["Body"].read() == b"the real weights"
    assert s3.get_object(Bucket=new, Key=f"{base}/plain.bin")["Body"].read() == (
        b"other real weights"
    )


def test_a_dry_run_says_compare_where_only_reading_can_tell(
    s3: Any, moto: Server, tmp_path: Path
) -> None:
    """The same 11 MiB at both places, multipart at the old one and one PUT at the new: their
    ETags cannot be compared. The dry run (which reads nothing) says 'compare', not
    'shadowed'; the real run reads both and finds it present."""
    old, new, key, data = unlike_etags(s3, "mig-cmp")
    config = config_file(tmp_path, moto.url, new, f"- s3://{old}")

    plan = migrate(config, "--dry-run")
    assert (plan["compare"], plan["shadowed"], plan["planned"], plan["present"]) == (1, 0, 0, 0)
    done = migrate(config, "--delete-source")
    assert (done["present"], done["shadowed"], done["copied"], done["deleted"]) == (1, 0, 0, 1)
    assert keys(s3, old) == []
    assert s3.get_object(Bucket=new, Key=key)["Body"].read() == data


def test_a_connection_dropped_while_a_copy_is_verified_fails_that_object_alone(
    s3: Any, proxy: FaultProxy, tmp_path: Path
) -> None:
    """The streamed big.bin becomes a multipart upload whose ETag is no MD5, so its copy is
    verified by reading it; that GET loses its connection mid-body. big.bin alone is failed,
    its unverified copy removed, the source kept; a rerun completes."""
    old, new, config = streamed_places(s3, proxy.url, tmp_path, "mig-v")
    source = digests(s3, old)
    big = "workspaces/team-a/1/run1/artifacts/big.bin"

    proxy.cut_once(lambda r: is_get(r) and r.path.split("?")[0] == f"/{new}/{big}")
    first = migrate(config, "--delete-source", code=1)
    assert proxy.cut_short == 1
    assert (first["mode"], first["copied"], first["failed"], first["deleted"]) == (
        "streamed",
        10,
        1,
        10,
    )
    [failure] = first["failures"]
    assert failure["name"] == "1/run1/artifacts/big.bin"
    assert failure["error"].startswith(
        f"copy failed for workspace 'team-a': s3://{new}/{big} could not be verified; it was "
        f"removed; run migrate again. download failed for workspace 'team-a' at s3://{new}/{big}"
    )
    assert big not in keys(s3, new)  # nothing unverified left at the target
    assert pending_uploads(s3, new) == []
    assert digests(s3, old) == {big: source[big]}  # the source of the failed copy is kept

    second = migrate(config, "--delete-source")
    assert (second["copied"], second["present"], second["failed"], second["deleted"]) == (
        1,
        0,
        0,
        1,
    )
    assert keys(s3, old) == []
    assert digests(s3, new) == source


def test_a_connection_dropped_while_an_object_at_the_target_is_compared_fails_it_alone(
    s3: Any, moto: Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    """The same 11 MiB at both places, multipart at the old one and one PUT at the new: only
    reading tells them equal, and that read loses its connection mid-body. That object alone
    is failed (the target's object and the source kept), the others copied; a rerun finds it
    present."""
    old, new, key, data = unlike_etags(s3, "mig-cv")
    s3.put_object(Bucket=old, Key=key.replace("big.bin", "small.txt"), Body=b"small")
    config = config_file(tmp_path, proxy.url, new, f"- s3://{old}")

    proxy.cut_once(lambda r: is_get(r) and r.path.split("?")[0].endswith("/big.bin"))
    first = migrate(config, "--delete-source", code=1)
    assert proxy.cut_short == 1
    assert (first["copied"], first["present"], first["failed"], first["deleted"]) == (1, 0, 1, 1)
    [failure] = first["failures"]
    assert failure["name"] == "1/run1/artifacts/big.bin"
    # The source (a multipart ETag) was the one read: the target's ETag is its MD5.
    assert failure["error"].startswith(
        f"download failed for workspace 'team-a' at s3://{old}/{key}"
    )
    assert keys(s3, old) == [key]
    assert s3.get_object(Bucket=new, Key=key)["Body"].read() == data

    second = migrate(config, "--delete-source")
    assert (second["copied"], second["present"], second["failed"], second["deleted"]) == (
        0,
        1,
        0,
        1,
    )
    assert keys(s3, old) == []
