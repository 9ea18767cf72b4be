"""The repository contract: every backend runs these tests (in the spirit of fsspec's
abstract tests). A backend's test class inherits :class:`RepositoryContract` (and the storage
contracts of :mod:`tests.contract.storage`) and provides the ``rig`` fixture: a configuration
whose workspace ``team-a`` routes to the backend, and a way to list what physically exists there.

Every test here goes through MLflow's own door, ``get_artifact_repository("ws-...://")``.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from tests.support.workspaces import in_workspace
from ws_artifacts.storage.base import Capability

RUN = "workspaces/team-a/7/run1/artifacts"


@dataclass
class Rig:
    """What a backend's test class provides."""

    destination: str  # e.g. "ws-s3://root/contract-3"
    # Physical names under team-a's route, relative to it, sorted.
    stored: Callable[[], list[str]]
    # Physical names under team-b's route and the destination, to prove nothing lands there.
    elsewhere: Callable[[], list[str]]
    # Pending multipart uploads on team-a's route (S3 only; [] elsewhere).
    pending_uploads: Callable[[], list[str]] = lambda: []
    # What team-a's backend says it can do beyond the common operations.
    capabilities: frozenset[Capability] = frozenset()


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


class RepositoryContract:
    """Inherit and provide a ``rig`` fixture."""

    def repo(self, rig: Rig, path: str = RUN) -> Any:
        return get_artifact_repository(f"{rig.destination}/{path}")

    def test_log_artifact_lands_under_the_workspace_layout(self, rig: Rig, tmp_path: Path) -> None:
        src = write_tree(tmp_path, {"model.pkl": b"weights"})
        with in_workspace("team-a"):
            self.repo(rig).log_artifact(str(src / "model.pkl"), "sub")
        assert rig.stored() == [f"{RUN}/sub/model.pkl"]
        assert rig.elsewhere() == []

    def test_log_artifacts_uploads_the_whole_tree(self, rig: Rig, tmp_path: Path) -> None:
        files = {f"d{i % 3}/f{i}.txt": f"{i}".encode() for i in range(12)}
        src = write_tree(tmp_path / "src", files)
        with in_workspace("team-a"):
            self.repo(rig).log_artifacts(str(src))
        assert rig.stored() == sorted(f"{RUN}/{name}" for name in files)

    def test_list_artifacts_returns_direct_children(self, rig: Rig, tmp_path: Path) -> None:
        src = write_tree(tmp_path / "src", {"a.txt": b"abc", "d/b.txt": b"b", "d/e/c.txt": b""})
        with in_workspace("team-a"):
            repo = self.repo(rig)
            repo.log_artifacts(str(src))
            root = [(f.path, f.is_dir, f.file_size) for f in repo.list_artifacts()]
            sub = [(f.path, f.is_dir, f.file_size) for f in repo.list_artifacts("d")]
            assert root == [("a.txt", False, 3), ("d", True, None)]
            assert sub == [("d/b.txt", False, 1), ("d/e", True, None)]
            assert repo.list_artifacts("a.txt") == []
            assert repo.list_artifacts("missing") == []

    def test_download_file_directory_and_root(self, rig: Rig, tmp_path: Path) -> None:
        src = write_tree(tmp_path / "src", {"a.txt": b"A", "d/b.txt": b"B", "d/e/c.txt": b"C"})
        with in_workspace("team-a"):
            repo = self.repo(rig)
            repo.log_artifacts(str(src))
            one = Path(repo.download_artifacts("d/b.txt", str(_mkdir(tmp_path / "one"))))
            assert one == tmp_path / "one" / "d" / "b.txt"
            assert one.read_bytes() == b"B"
            tree = Path(repo.download_artifacts("d", str(_mkdir(tmp_path / "tree"))))
            assert sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*.txt")) == [
                "b.txt",
                "e/c.txt",
            ]
            whole = Path(repo.download_artifacts("", str(_mkdir(tmp_path / "whole"))))
            assert (whole / "d" / "e" / "c.txt").read_bytes() == b"C"
            assert (whole / "a.txt").read_bytes() == b"A"

    def test_download_of_a_missing_file_is_not_found(self, rig: Rig, tmp_path: Path) -> None:
        dst = _mkdir(tmp_path / "dst")
        with in_workspace("team-a"), pytest.raises(MlflowException, match=r"missing\.txt") as err:
            self.repo(rig).download_artifacts("missing.txt", str(dst))
        assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
        assert list(dst.iterdir()) == []  # no partial file left behind

    def test_delete_file_then_tree(self, rig: Rig, tmp_path: Path) -> None:
        src = write_tree(tmp_path / "src", {"keep.txt": b"k", "gone.txt": b"g", "d/x.txt": b"x"})
        with in_workspace("team-a"):
            repo = self.repo(rig)
            repo.log_artifacts(str(src))
            repo.delete_artifacts("gone.txt")
            assert rig.stored() == [f"{RUN}/d/x.txt", f"{RUN}/keep.txt"]
            repo.delete_artifacts("d")
            assert rig.stored() == [f"{RUN}/keep.txt"]

    def test_deleting_a_whole_workspace_is_refused(self, rig: Rig, tmp_path: Path) -> None:
        src = write_tree(tmp_path, {"keep.txt": b"k"})
        with in_workspace("team-a"):
            self.repo(rig).log_artifact(str(src / "keep.txt"))
            root = get_artifact_repository(f"{rig.destination}/workspaces/team-a")
            with pytest.raises(MlflowException, match="whole of workspace team-a"):
                root.delete_artifacts()
        assert rig.stored() == [f"{RUN}/keep.txt"]

    @pytest.mark.parametrize(
        "operation",
        ["read", "write", "list", "delete"],
    )
    def test_another_workspaces_path_is_refused(
        self, rig: Rig, tmp_path: Path, operation: str
    ) -> None:
        src = write_tree(tmp_path, {"x.txt": b"x"})
        repo = get_artifact_repository(f"{rig.destination}/workspaces/team-a/7")
        attempts = {
            "read": lambda: repo.download_artifacts("run1/artifacts/x.txt", str(tmp_path)),
            "write": lambda: repo.log_artifact(str(src / "x.txt"), "run1/artifacts"),
            "list": lambda: repo.list_artifacts("run1"),
            "delete": lambda: repo.delete_artifacts("run1"),
        }
        with (
            in_workspace("team-b"),
            pytest.raises(MlflowException, match="belongs to workspace 'team-a'") as err,
        ):
            attempts[operation]()
        assert err.value.error_code == "PERMISSION_DENIED"
        assert rig.stored() == []
        assert rig.elsewhere() == []

    @pytest.mark.parametrize(
        ("base", "path"),
        [
            (RUN, "../escape.txt"),
            (RUN, "a/../../b.txt"),
            (RUN, "a\\b.txt"),
            (RUN, "a/%2e%2e/b.txt"),
            ("", "Workspaces/team-b/x"),
            ("", "workspaces/TEAM-B/x"),
            ("", "workspaces/../workspaces/team-b/x"),
        ],
        ids=[
            "dotdot",
            "nested-dotdot",
            "backslash",
            "encoded-dotdot",
            "case-segment",
            "case-name",
            "dotdot-to-other-workspace",
        ],
    )
    def test_unsafe_paths_are_refused(self, rig: Rig, tmp_path: Path, base: str, path: str) -> None:
        src = write_tree(tmp_path, {"x.txt": b"x"})
        repo = get_artifact_repository(f"{rig.destination}/{base}".rstrip("/"))
        with in_workspace("team-a"), pytest.raises(MlflowException) as err:
            repo.log_artifact(str(src / "x.txt"), path)
        assert err.value.error_code == "INVALID_PARAMETER_VALUE"
        assert rig.stored() == []
        assert rig.elsewhere() == []

    def test_pinned_workspace_holds_in_threads_without_context(
        self, rig: Rig, tmp_path: Path
    ) -> None:
        src = write_tree(tmp_path, {"x.txt": b"x"})
        pinned = get_artifact_repository(rig.destination).for_workspace("team-a")
        outcome: dict[str, Any] = {}

        def work() -> None:  # a fresh thread: no request context, no MLFLOW_WORKSPACE
            pinned.log_artifact(str(src / "x.txt"), RUN)
            try:
                pinned.list_artifacts("workspaces/team-b/1")
            except MlflowException as err:
                outcome["refused"] = str(err)

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        assert rig.stored() == [f"{RUN}/x.txt"]
        assert "belongs to workspace 'team-b'" in outcome["refused"]

    def test_stream_upload_small_and_multipart(self, rig: Rig) -> None:
        big = bytes(range(256)) * (6 * 4096 + 7)  # ~6 MiB: more than one 5 MiB part
        with in_workspace("team-a"):
            repo = self.repo(rig)
            repo.log_artifact_from_stream(io.BytesIO(b"small"), "s.bin", "st")
            repo.log_artifact_from_stream(io.BytesIO(big), "b.bin", "st")
            out = Path(repo.download_artifacts("st/b.bin"))
            assert out.read_bytes() == big
        assert rig.stored() == [f"{RUN}/st/b.bin", f"{RUN}/st/s.bin"]

    def test_async_stream_upload(self, rig: Rig) -> None:
        chunks = [bytes([i]) * 65536 for i in range(100)]  # 6.25 MiB in 64 KiB chunks

        async def body() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        with in_workspace("team-a"):
            repo = self.repo(rig)
            asyncio.run(repo.log_artifact_from_async_stream(body(), "a.bin", "st"))
            assert Path(repo.download_artifacts("st/a.bin")).read_bytes() == b"".join(chunks)

    def test_interrupted_stream_leaves_nothing(self, rig: Rig) -> None:
        async def body() -> AsyncIterator[bytes]:
            for i in range(120):  # past the first part, then the client goes away
                yield bytes([i]) * 65536
            raise ConnectionResetError("client disconnected")

        with in_workspace("team-a"), pytest.raises(ConnectionResetError, match="disconnected"):
            asyncio.run(self.repo(rig).log_artifact_from_async_stream(body(), "cut.bin", "st"))
        assert rig.stored() == []
        assert rig.pending_uploads() == []


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
