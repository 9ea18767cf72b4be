"""The repository's own defences, in process on local files: the server-destination rule, the
default workspace's legacy root, and symbolic links planted in a file route."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from tests.support.workspaces import in_workspace


@pytest.fixture
def stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """team-a routed to ``stores/team-a``; everything else at ``stores/destination``; a secret
    outside both."""
    stores = tmp_path / "stores"
    config = tmp_path / "ws-artifacts.yaml"
    config.write_text(
        yaml.safe_dump({"workspaces": {"team-a": {"url": f"file://{stores}/team-a"}}})
    )
    monkeypatch.setenv("WS_ARTIFACTS_CONFIG", str(config))
    for name, data in {
        "secret/secret.txt": "SECRET-outside",
        "destination/workspaces/other/1/r/artifacts/secret.txt": "SECRET-other",
        "destination/legacy/ok.txt": "legacy",
        "team-a/workspaces/team-a/1/r/artifacts/own.txt": "own",
    }.items():
        (stores / name).parent.mkdir(parents=True, exist_ok=True)
        (stores / name).write_text(data)
    return stores


@pytest.mark.parametrize(
    ("server", "uri", "workspace", "path", "expected"),
    [
        (False, "ws-file://{s}/secret", "default", "secret.txt", "SECRET-outside"),
        (True, "ws-file://{s}/destination/legacy", "default", "ok.txt", "legacy"),
        (True, "ws-file://{s}/team-a/workspaces/team-a/1/r/artifacts", "team-a", "own.txt", "own"),
        (
            True,
            "ws-file://{s}/elsewhere/workspaces/team-a/1/r/artifacts",
            "team-a",
            "own.txt",
            "own",
        ),
    ],
    ids=[
        "client-reads-with-its-own-rights",
        "server-destination-legacy",
        "server-routed",
        "server-routed-ignores-uri-location",
    ],
)
def test_reads_that_stay_inside(
    stores: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    server: bool,
    uri: str,
    workspace: str,
    path: str,
    expected: str,
) -> None:
    if server:
        monkeypatch.setenv("_MLFLOW_SERVER_ARTIFACT_DESTINATION", f"ws-file://{stores}/destination")
    repo = get_artifact_repository(uri.format(s=stores))
    with in_workspace(workspace):
        out = repo.download_artifacts(path, str(_empty(tmp_path / "dl")))
    assert Path(out).read_text() == expected


@pytest.mark.parametrize(
    ("uri", "workspace", "path"),
    [
        ("ws-file://{s}/secret", "default", "secret.txt"),
        ("ws-file://{s}", "default", "secret/secret.txt"),
        ("ws-file://{s}/secret/workspaces/other", "other", "secret.txt"),
        ("ws-file://{s}/destination/deeper/workspaces/other/1/r/artifacts", "other", "x.txt"),
    ],
    ids=["server-file", "server-file-from-a-parent", "unrouted-elsewhere", "unrouted-deeper-root"],
)
def test_a_server_reads_default_destination_paths_only_under_its_destinations(
    stores: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    uri: str,
    workspace: str,
    path: str,
) -> None:
    monkeypatch.setenv("_MLFLOW_SERVER_ARTIFACT_DESTINATION", f"ws-file://{stores}/destination")
    monkeypatch.setenv("_MLFLOW_SERVER_ARTIFACT_ROOT", "mlflow-artifacts:/")
    repo = get_artifact_repository(uri.format(s=stores))
    dst = _empty(tmp_path / "dl")
    with (
        in_workspace(workspace),
        pytest.raises(MlflowException, match="not under this server's artifact destination") as err,
    ):
        repo.download_artifacts(path, str(dst))
    assert err.value.error_code == "PERMISSION_DENIED"
    assert _files(dst) == []


def test_the_default_workspace_cannot_download_the_whole_destination(
    stores: Path, tmp_path: Path
) -> None:
    repo = get_artifact_repository(f"ws-file://{stores}/destination")
    dst = _empty(tmp_path / "dl")
    with (
        in_workspace("default"),
        pytest.raises(MlflowException, match="names a workspace's layout in a legacy path") as err,
    ):
        repo.download_artifacts("", str(dst))
    assert err.value.error_code == "PERMISSION_DENIED"
    assert _files(dst) == []  # refused while planning, before any byte moved


def test_a_symbolic_link_out_of_a_routed_workspace_is_refused(stores: Path, tmp_path: Path) -> None:
    run = stores / "team-a/workspaces/team-a/1/r/artifacts"
    (run / "link").symlink_to(stores / "secret")
    repo = get_artifact_repository(
        f"ws-file://{stores}/destination/workspaces/team-a/1/r/artifacts"
    )
    dst = _empty(tmp_path / "dl")
    with in_workspace("team-a"), pytest.raises(MlflowException, match="through a symbolic link"):
        repo.download_artifacts("link/secret.txt", str(dst))
    assert _files(dst) == []


def test_a_symbolic_link_out_of_a_legacy_path_is_refused(
    stores: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("_MLFLOW_SERVER_ARTIFACT_DESTINATION", f"ws-file://{stores}/destination")
    (stores / "destination/legacy/link").symlink_to(stores / "secret")
    repo = get_artifact_repository(f"ws-file://{stores}/destination")
    with in_workspace("default"), pytest.raises(MlflowException, match="symbolic link"):
        repo.download_artifacts("legacy/link/secret.txt", str(_empty(tmp_path / "dl")))


def test_a_remembered_decision_follows_every_input_that_changes_it(
    stores: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Routing decisions are memoised; the same repository and path must still be re-decided
    when the workspace, the configuration or the server's destination changes."""
    repo = get_artifact_repository(
        f"ws-file://{stores}/destination/workspaces/team-a/1/r/artifacts"
    )

    def read(workspace: str) -> str:
        dst = _empty(tmp_path / f"dl-{len(list(tmp_path.glob('dl-*')))}")
        with in_workspace(workspace):
            return Path(repo.download_artifacts("own.txt", str(dst))).read_text()

    assert read("team-a") == "own"
    with pytest.raises(MlflowException, match="belongs to workspace 'team-a'") as err:
        read("other")
    assert err.value.error_code == "PERMISSION_DENIED"
    assert read("team-a") == "own"

    moved = stores / "moved/workspaces/team-a/1/r/artifacts/own.txt"
    moved.parent.mkdir(parents=True)
    moved.write_text("moved")
    config = tmp_path / "moved.yaml"
    config.write_text(yaml.safe_dump({"workspaces": {"team-a": {"url": f"file://{stores}/moved"}}}))
    monkeypatch.setenv("WS_ARTIFACTS_CONFIG", str(config))
    assert read("team-a") == "moved"

    legacy = get_artifact_repository(f"ws-file://{stores}/destination/legacy")
    with in_workspace("default"):
        assert Path(legacy.download_artifacts("ok.txt", str(_empty(tmp_path / "l1")))).read_text()
        monkeypatch.setenv("_MLFLOW_SERVER_ARTIFACT_DESTINATION", f"ws-file://{stores}/elsewhere")
        with pytest.raises(MlflowException, match="not under this server's artifact destination"):
            legacy.download_artifacts("ok.txt", str(_empty(tmp_path / "l2")))
    assert _files(tmp_path / "l2") == []


def _empty(path: Path) -> Path:
    path.mkdir()
    return path


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]
