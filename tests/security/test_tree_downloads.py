"""Tree downloads from a ws-file route: a refused child refuses the whole tree before any byte
is copied, and a copy that fails midway leaves nothing half-downloaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from tests.support.workspaces import in_workspace
from ws_artifacts.storage.fs.backend import FsspecBackend

RUN = "workspaces/team-a/1/r/artifacts"


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """team-a's run on a file route, with three plain files in it; a secret tree outside."""
    store = tmp_path / "store"
    config = tmp_path / "ws-artifacts.yaml"
    config.write_text(yaml.safe_dump({"workspaces": {"team-a": {"url": f"file://{store}"}}}))
    monkeypatch.setenv("WS_ARTIFACTS_CONFIG", str(config))
    for name in ("a.txt", "sub/b.txt", "sub/c.txt"):
        (store / RUN / name).parent.mkdir(parents=True, exist_ok=True)
        (store / RUN / name).write_text(name)
    for name in ("one.txt", "two.txt"):
        (tmp_path / "secret" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "secret" / name).write_text(f"SECRET-{name}")
    return store


def _download(tree: Path, dst: Path) -> str:
    repo = get_artifact_repository(f"ws-file://{tree}/{RUN}")
    with in_workspace("team-a"):
        return str(repo.download_artifacts("", str(dst)))


def _contents(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.mark.parametrize(
    "target", ["secret", "secret/one.txt"], ids=["to-a-directory", "to-a-file"]
)
def test_a_symbolic_link_in_the_tree_refuses_it_before_anything_is_copied(
    tree: Path, tmp_path: Path, target: str
) -> None:
    (tree / RUN / "sub" / "link").symlink_to(tmp_path / target)
    dst = tmp_path / "dl"
    dst.mkdir()
    with pytest.raises(
        MlflowException, match=r"resolves \(through a symbolic link\) outside"
    ) as err:
        _download(tree, dst)
    assert (err.value.error_code, err.value.get_http_status_code()) == ("PERMISSION_DENIED", 403)
    assert _contents(dst) == []


def test_a_copy_failing_midway_leaves_nothing_half_downloaded(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = FsspecBackend.get_file

    def failing(self: FsspecBackend, target: Any, local_path: str) -> None:
        if target.key.endswith("sub/c.txt"):
            raise OSError("disk full (injected)")
        original(self, target, local_path)

    monkeypatch.setattr(FsspecBackend, "get_file", failing)
    dst = tmp_path / "dl"
    (dst / "sub").mkdir(parents=True)
    (dst / "keep.txt").write_text("the caller's own file")
    with pytest.raises(MlflowException, match=r"1 of 3 file\(s\) failed to download: sub/c\.txt"):
        _download(tree, dst)
    assert _contents(dst) == ["keep.txt", "sub"]  # what was there before, and nothing else
    monkeypatch.setattr(FsspecBackend, "get_file", original)
    assert Path(_download(tree, dst)) == dst
    assert _contents(dst) == ["a.txt", "keep.txt", "sub", "sub/b.txt", "sub/c.txt"]
