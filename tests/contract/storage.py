"""The storage contracts: the interface of :mod:`ws_artifacts.storage.base` asked directly of
the route's backend (``backend_for``), on every backend the repository contract runs on.
:class:`StorageContract` covers the capabilities and single objects, :class:`KeyContract` the
lifecycle work by key. A backend's test class inherits them and provides the ``rig`` fixture
(:class:`tests.contract.base.Rig`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.contract.base import RUN, Rig, write_tree
from ws_artifacts.core.errors import OwnershipError
from ws_artifacts.core.loading import load_config
from ws_artifacts.core.paths import LogicalPath
from ws_artifacts.core.routing import Router
from ws_artifacts.core.targets import Target
from ws_artifacts.storage.base import Backend, Capability, CapabilityError
from ws_artifacts.storage.registry import backend_for


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


class WithoutDirectTransfers:
    """A store without presigned URLs or client-driven multipart uploads (every fsspec store):
    each such call is refused with the workspace and the place named, and stores nothing."""

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
        assert capability not in rig.capabilities
        target = team_a(rig, "7/x.bin")
        with pytest.raises(CapabilityError, match=f"has no {capability.value}") as err:
            call(backend_of(target), target)
        assert "Workspace 'team-a'" in str(err.value)
        assert target.uri in str(err.value)
        assert rig.stored() == []


class WithDirectTransfers:
    """A store whose clients move bytes themselves (S3): presigned URLs that work."""

    def test_a_presigned_upload_lands_in_place(self, rig: Rig) -> None:
        assert Capability.PRESIGNED_WRITES in rig.capabilities
        import requests

        target = team_a(rig, "7/run1/artifacts/p.txt")
        url, headers = backend_of(target).presign_put(target, 60)
        requests.put(url, data=b"presigned", headers=headers, timeout=30).raise_for_status()
        assert rig.stored() == [f"{RUN}/p.txt"]
        got, size = backend_of(target).presign_get(target, 60)
        assert size == len(b"presigned")
        assert requests.get(got, timeout=30).content == b"presigned"
