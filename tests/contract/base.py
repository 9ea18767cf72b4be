"""The repository and storage contracts: every backend runs these tests (in the spirit of
fsspec's abstract tests). A backend's test class inherits :class:`RepositoryContract` and
:class:`StorageContract` and provides the ``rig`` fixture: a configuration whose workspace
``team-a`` routes to the backend, and a way to list what physically exists there.

The repository tests go through MLflow's own door, ``get_artifact_repository("ws-...://")``;
the storage tests hold the route's backend (``backend_for``) and ask it directly.
"""

from __future__ import annotations

import asyncio
import io
import os
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from tests.conftest import in_workspace
from ws_artifacts.core.config import load_config
from ws_artifacts.core.errors import OwnershipError
from ws_artifacts.core.paths import LogicalPath
from ws_artifacts.core.routing import Router, Target
from ws_artifacts.storage.base import Backend, Capability, CapabilityError
from ws_artifacts.storage.registry import backend_for

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


def team_a(rig: Rig, rest: str = RUN.removeprefix("workspaces/team-a/")) -> Target:
    """The target of ``rest`` in team-a's place, routed under the rig's configuration."""
    config = load_config(os.environ["WS_ARTIFACTS_CONFIG"])
    router = Router(config, rig.destination.removeprefix("ws-"))
    return router.target(LogicalPath(root="", workspace="team-a", rest=rest))


def backend_of(target: Target) -> Backend:
    return backend_for(target.route)


class StorageContract:
    """The storage interface (:class:`ws_artifacts.storage.base.Backend`) on one backend:
    inherit and provide a ``rig`` fixture."""

    def test_capabilities_are_what_the_store_can_do(self, rig: Rig) -> None:
        backend = backend_of(team_a(rig))
        assert backend.capabilities == rig.capabilities
        for capability in Capability:
            assert backend.supports(capability) == (capability in rig.capabilities)

    @pytest.mark.parametrize(
        ("capability", "call"),
        [
            (Capability.PRESIGNED_READS, lambda b, t: b.presign_get(t, 60)),
            (Capability.PRESIGNED_WRITES, lambda b, t: b.presign_put(t, 60)),
            (Capability.MULTIPART_UPLOADS, lambda b, t: b.create_multipart(t, 2)),
            (Capability.MULTIPART_UPLOADS, lambda b, t: b.check_upload(t, "u1")),
            (Capability.MULTIPART_UPLOADS, lambda b, t: b.parts_of(t, "u1")),
            (Capability.MULTIPART_UPLOADS, lambda b, t: b.complete_multipart(t, "u1", [])),
            (Capability.MULTIPART_UPLOADS, lambda b, t: b.abort_multipart(t, "u1")),
            (Capability.MULTIPART_UPLOADS, lambda b, t: b.pending_uploads(t)),
        ],
        ids=[
            "presign-get",
            "presign-put",
            "create",
            "check",
            "parts",
            "complete",
            "abort",
            "pending",
        ],
    )
    def test_a_missing_capability_is_refused_naming_workspace_and_url(
        self, rig: Rig, capability: Capability, call: Callable[[Backend, Target], object]
    ) -> None:
        if capability in rig.capabilities:
            pytest.skip(f"this store has {capability.value}")
        target = team_a(rig, "7/x.bin")
        with pytest.raises(CapabilityError, match=f"has no {capability.value}") as err:
            call(backend_of(target), target)
        assert "Workspace 'team-a'" in str(err.value)
        assert target.uri in str(err.value)
        assert rig.stored() == []

    def test_a_presigned_upload_lands_in_place(self, rig: Rig) -> None:
        if Capability.PRESIGNED_WRITES not in rig.capabilities:
            pytest.skip("this store has no presigned writes")
        import requests

        target = team_a(rig, "7/run1/artifacts/p.txt")
        url, headers = backend_of(target).presign_put(target, 60)
        requests.put(url, data=b"presigned", headers=headers, timeout=30).raise_for_status()
        assert rig.stored() == [f"{RUN}/p.txt"]
        got, size = backend_of(target).presign_get(target, 60)
        assert size == len(b"presigned")
        assert requests.get(got, timeout=30).content == b"presigned"

    def test_look_and_remove_one_object(self, rig: Rig, tmp_path: Path) -> None:
        target = team_a(rig, "7/run1/artifacts/one.txt")
        backend = backend_of(target)
        assert backend.look(target) is None
        src = write_tree(tmp_path, {"one.txt": b"12345"})
        backend.put_file(target, str(src / "one.txt"))
        seen = backend.look(target)
        assert seen is not None
        assert seen[1] == 5
        assert backend.size(target) == 5
        backend.remove(target)
        assert backend.look(target) is None
        assert rig.stored() == []


class KeyContract:
    """Lifecycle work by key (quarantine, restore, purge, orphans) on one backend, in the area
    of team-a's route (its prefix, which holds ``workspaces/team-a`` and the quarantine area
    beside it that no Target reaches): inherit and provide a ``rig`` fixture."""

    def area(self, rig: Rig) -> tuple[Backend, str]:
        route = team_a(rig).route
        return backend_for(route), route.prefix

    def test_small_objects_are_written_read_sized_and_listed(self, rig: Rig) -> None:
        backend, base = self.area(rig)
        top = f"{base}/.ws-quarantine/team-a"
        backend.write_bytes(base, f"{top}/s1/ws-quarantine.json", b"{}")
        backend.write_bytes(base, f"{top}/s1/workspaces/team-a/7/x.bin", b"12345")
        backend.write_bytes(base, f"{top}/s2/m.json", b"[]")
        assert backend.read_bytes(base, f"{top}/s1/ws-quarantine.json") == b"{}"
        assert backend.read_bytes(base, f"{top}/s1/missing.json") is None
        assert backend.key_size(base, f"{top}/s1/workspaces/team-a/7/x.bin") == 5
        assert backend.key_size(base, f"{top}/s1/missing.json") is None
        assert backend.children(base, top) == ["s1", "s2"]
        assert backend.children(base, f"{top}/s1") == ["workspaces", "ws-quarantine.json"]
        assert backend.children(base, f"{top}/none") == []
        assert sorted(backend.walk_keys(base, f"{top}/s1")) == [
            (f"{top}/s1/workspaces/team-a/7/x.bin", 5),
            (f"{top}/s1/ws-quarantine.json", 2),
        ]
        assert list(backend.walk_keys(base, f"{top}/none")) == []
        assert backend.key_uri(f"{top}/s2/m.json").endswith(f"{top}/s2/m.json")
        assert rig.stored() == sorted(
            k.removeprefix(f"{base}/")
            for k in (
                f"{top}/s1/ws-quarantine.json",
                f"{top}/s1/workspaces/team-a/7/x.bin",
                f"{top}/s2/m.json",
            )
        )

    def test_newest_tells_when_the_last_object_was_written(self, rig: Rig) -> None:
        import time

        backend, base = self.area(rig)
        before = time.time()
        backend.write_bytes(base, f"{base}/workspaces/team-a/skills/a/b", b"x")
        newest = backend.newest(base, f"{base}/workspaces/team-a/skills")
        assert newest is not None
        assert before - 5 <= newest <= time.time() + 5
        assert backend.newest(base, f"{base}/workspaces/team-a/none") is None

    @pytest.mark.parametrize("size", [5, 6 * 1024 * 1024], ids=["one-request", "multipart"])
    def test_copy_and_delete_keys(self, rig: Rig, tmp_path: Path, size: int) -> None:
        backend, base = self.area(rig)
        data = os.urandom(size)
        src, dst = f"{base}/workspaces/team-a/7/a.bin", f"{base}/.ws-quarantine/team-a/s/a.bin"
        (tmp_path / "a.bin").write_bytes(data)
        backend.put_file(team_a(rig, "7/a.bin"), str(tmp_path / "a.bin"))
        backend.copy_key(base, src, dst, size, "team-a")
        assert backend.key_size(base, dst) == size
        assert backend.read_bytes(base, dst) == data
        backend.delete_keys(base, [src, dst, f"{base}/workspaces/team-a/7/missing"], "team-a")
        assert rig.stored() == []

    @pytest.mark.parametrize(
        "call",
        [
            lambda b, a, k: b.write_bytes(a, k, b"x"),
            lambda b, a, k: b.read_bytes(a, k),
            lambda b, a, k: b.key_size(a, k),
            lambda b, a, k: b.children(a, k),
            lambda b, a, k: list(b.walk_keys(a, k)),
            lambda b, a, k: b.newest(a, k),
            lambda b, a, k: b.copy_key(a, f"{a}/workspaces/team-a/x", k, 1, "team-a"),
            lambda b, a, k: b.delete_keys(a, [f"{a}/workspaces/team-a/x", k]),
        ],
        ids=["write", "read", "size", "children", "walk", "newest", "copy", "delete"],
    )
    def test_a_key_outside_the_area_is_refused(
        self, rig: Rig, call: Callable[[Backend, str, str], object]
    ) -> None:
        backend, base = self.area(rig)
        with pytest.raises(OwnershipError, match="lies outside"):
            call(backend, base, f"{base}-other/workspaces/team-a/x")
        assert rig.stored() == []
        assert rig.elsewhere() == []


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
