"""The repository keeps the quarantine out of reach on its own (no guard in front of it): the
spelling table of ``tests/security/spellings.py``, as the repository receives each spelling after
the HTTP server's one decoding, for every operation, in the default workspace on a server.

A memory store stands in for the destination; ``test_quarantine_attacks.py`` runs the same table
through a real server with the guard on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.security.spellings import IDS, SPELLINGS, Spelling
from tests.support.config import ConfigFile
from tests.support.workspaces import in_workspace

ROOT = "hq-unit-root"
STAMP = "20260101T000000Z"
ENTRY = f".ws-quarantine/hq-victim/{STAMP}"
FILES = {
    f"/{ROOT}/{ENTRY}/ws-quarantine.json": b'{"workspace": "hq-victim"}',
    f"/{ROOT}/{ENTRY}/workspaces/hq-victim/1/r/artifacts/secret.txt": b"secret",
    f"/{ROOT}/legacy/model.txt": b"a legacy file of default",
    f"/{ROOT}/teams/.ws-quarantine/hq-routed/{STAMP}/ws-quarantine.json": b"{}",
}


@pytest.fixture
def repo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    import fsspec

    from ws_artifacts.serving.repository import WorkspaceArtifactRepository

    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{ROOT}"):
        fs.rm(f"/{ROOT}", recursive=True)
    for path, data in FILES.items():
        fs.pipe_file(path, data)
    config = ConfigFile().write(tmp_path / "c.yaml")
    monkeypatch.setenv("WS_ARTIFACTS_CONFIG", str(config))
    monkeypatch.setenv("_MLFLOW_SERVER_ARTIFACT_DESTINATION", f"ws-memory://{ROOT}")
    with in_workspace("default"):
        yield WorkspaceArtifactRepository(f"ws-memory://{ROOT}")


def store() -> dict[str, bytes]:
    import fsspec

    fs = fsspec.filesystem("memory")
    return {path: fs.cat_file(path) for path in sorted(fs.find(f"/{ROOT}"))}


def _operations(tmp_path: Path) -> dict[str, Callable[[Any, str], object]]:
    local = tmp_path / "ws-quarantine.json"
    local.write_bytes(b'{"workspace": "forged"}')
    out = tmp_path / "out"
    out.mkdir()
    return {
        "read": lambda r, p: r.download_artifacts(f"{p}/ws-quarantine.json", str(out)),
        "tree-read": lambda r, p: r.download_artifacts(p, str(out)),
        "list": lambda r, p: r.list_artifacts(p),
        "write": lambda r, p: r.log_artifact(str(local), p),
        "write-tree": lambda r, p: r.log_artifacts(str(tmp_path), p),
        "delete": lambda r, p: r.delete_artifacts(p),
        "presign-read": lambda r, p: r.get_download_presigned_url(f"{p}/ws-quarantine.json"),
        "presign-write": lambda r, p: r.create_presigned_upload_url(f"{p}/x.json"),
        "multipart": lambda r, p: r.create_multipart_upload(str(local), 1, p),
    }


OPERATIONS = [
    "read",
    "tree-read",
    "list",
    "write",
    "write-tree",
    "delete",
    "presign-read",
    "presign-write",
    "multipart",
]


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("spelling", SPELLINGS, ids=IDS)
def test_every_spelling_is_refused_by_the_repository(
    repo: Any, tmp_path: Path, spelling: Spelling, operation: str
) -> None:
    from mlflow.exceptions import MlflowException

    path = f"{spelling.decoded('.ws-quarantine')}/hq-victim/{STAMP}"
    before = store()
    message = "quarantine area" if spelling.direct == "PERMISSION_DENIED" else r"'\.\.'"

    with pytest.raises(MlflowException, match=message) as raised:
        _operations(tmp_path)[operation](repo, path)

    assert raised.value.error_code == spelling.direct
    assert store() == before
    assert not list((tmp_path / "out").rglob("*"))


def test_listings_leave_the_quarantine_out(repo: Any) -> None:
    assert sorted(f.path for f in repo.list_artifacts("")) == ["legacy", "teams"]
    assert [f.path for f in repo.list_artifacts("teams")] == []


def test_a_legacy_tree_holding_a_quarantine_is_not_deleted(repo: Any) -> None:
    from mlflow.exceptions import MlflowException

    before = store()
    with pytest.raises(MlflowException, match="holds part of the quarantine area") as raised:
        repo.delete_artifacts("teams")
    assert raised.value.error_code == "PERMISSION_DENIED"
    assert store() == before
    repo.delete_artifacts("legacy")  # a tree without any is deleted as before
    assert f"/{ROOT}/legacy/model.txt" not in store()
