"""What MLflow's own S3 and local repositories do, ws-artifacts does too (issue 14).

Each test names the MLflow behaviour it pins; the README's "Compatibility with MLflow's
repositories" section lists what differs on purpose.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import pytest
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from tests.support.config import ConfigFile
from tests.support.s3 import keys
from tests.support.workspaces import unique
from ws_artifacts.core.errors import AuthenticationError, ConfigError
from ws_artifacts.core.settings import Settings
from ws_artifacts.serving import refusals
from ws_artifacts.storage.base import TEMP_PREFIX
from ws_artifacts.storage.clients import ClientKey, client_for
from ws_artifacts.storage.content import content_args
from ws_artifacts.storage.mlflow_settings import s3_defaults

pytestmark = pytest.mark.integration


@pytest.fixture
def file_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = ConfigFile(defaults={"region": "us-east-1"}).write(tmp_path / "ws.yaml")
    monkeypatch.setenv("WS_ARTIFACTS_CONFIG", str(path))
    return path


def _tree(root: Path) -> Path:
    """a.txt, b.tar.gz, nested/c.csv, model.pkl and an empty directory."""
    src = root / "src"
    (src / "nested").mkdir(parents=True)
    (src / "empty" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "b.tar.gz").write_bytes(gzip.compress(b"tar"))
    (src / "nested" / "c.csv").write_text("x,y\n1,2\n")
    (src / "model.pkl").write_bytes(b"\x80\x04")
    return src


# -- Content-Type and Content-Encoding (s3_artifact_repo._upload_file) --------------------------
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.txt", {"ContentType": "text/plain"}),
        ("b.tar.gz", {"ContentType": "application/x-tar", "ContentEncoding": "gzip"}),
        ("dir/c.csv", {"ContentType": "text/csv"}),
        ("model.pkl", {}),
        ("MLmodel", {}),
    ],
    ids=["txt", "tar-gz", "csv", "pkl", "no-extension"],
)
def test_content_args_guess_like_mlflow(name: str, expected: dict[str, str]) -> None:
    assert content_args(name) == expected


def _head(s3: Any, key: str) -> tuple[str, str | None]:
    head = s3.head_object(Bucket="root", Key=key)
    return head["ContentType"], head.get("ContentEncoding")


def test_every_s3_upload_path_sets_the_content_type(
    use_config: Path, s3: Any, tmp_path: Path
) -> None:
    base = unique("ctype")
    repo = get_artifact_repository(f"ws-s3://root/{base}")
    repo.log_artifacts(str(_tree(tmp_path)))
    big = tmp_path / "big.json"
    big.write_bytes(b"{" + b" " * (17 * 1024 * 1024) + b"}")  # over the multipart threshold
    repo.log_artifact(str(big), "multi")
    with open(tmp_path / "src" / "a.txt", "rb") as stream:
        repo.log_artifact_from_stream(stream, "streamed.html", "s")
    upload = repo.create_multipart_upload("presigned.csv", 1, "mpu")
    assert [
        (k, _head(s3, k)) for k in keys(s3, "root", base + "/") if not k.endswith("model.pkl")
    ] == [
        (f"{base}/a.txt", ("text/plain", None)),
        (f"{base}/b.tar.gz", ("application/x-tar", "gzip")),
        (f"{base}/multi/big.json", ("application/json", None)),
        (f"{base}/nested/c.csv", ("text/csv", None)),
        (f"{base}/s/streamed.html", ("text/html", None)),
    ]
    assert _head(s3, f"{base}/model.pkl") == ("binary/octet-stream", None)  # nothing guessed
    pending = s3.list_multipart_uploads(Bucket="root", Prefix=f"{base}/mpu/")["Uploads"]
    assert [u["UploadId"] for u in pending] == [upload.upload_id]
    repo.abort_multipart_upload("presigned.csv", upload.upload_id, "mpu")


def test_fsspec_s3_routes_set_the_content_type_too(
    monkeypatch: pytest.MonkeyPatch, use_config: Path, s3: Any, tmp_path: Path
) -> None:
    config = tmp_path / "fsspec.yaml"
    config.write_text(
        use_config.read_text().replace(
            "    url: s3://team-b-artifacts\n",
            "    url: s3://team-b-artifacts\n    backend: fsspec\n",
        )
    )
    monkeypatch.setenv("WS_ARTIFACTS_CONFIG", str(config))
    exp = unique("fsspec")
    repo = get_artifact_repository(f"ws-s3://root/workspaces/team-b/{exp}")
    repo.log_artifact(str(_tree(tmp_path) / "b.tar.gz"))
    with open(tmp_path / "src" / "a.txt", "rb") as stream:
        repo.log_artifact_from_stream(stream, "page.html")
    heads = {
        k.rsplit("/", 1)[1]: s3.head_object(Bucket="team-b-artifacts", Key=k)
        for k in keys(s3, "team-b-artifacts", f"workspaces/team-b/{exp}/")
    }
    assert {n: (h["ContentType"], h.get("ContentEncoding")) for n, h in heads.items()} == {
        "b.tar.gz": ("application/x-tar", "gzip"),
        "page.html": ("text/html", None),
    }


# -- MLflow's S3 variables as defaults under the file ---------------------------------------------
def test_upload_extra_args_apply_under_the_route_policy(
    monkeypatch: pytest.MonkeyPatch, use_config: Path, tmp_path: Path, s3: Any
) -> None:
    config = tmp_path / "policy.yaml"
    config.write_text(
        use_config.read_text().replace(
            "    url: s3://team-b-artifacts\n",
            "    url: s3://team-b-artifacts\n    storage: {storage_class: ONEZONE_IA}\n",
        )
    )
    monkeypatch.setenv("WS_ARTIFACTS_CONFIG", str(config))
    monkeypatch.setenv(
        "MLFLOW_S3_UPLOAD_EXTRA_ARGS",
        '{"ServerSideEncryption": "AES256", "StorageClass": "STANDARD_IA"}',
    )
    exp = unique("extra")
    (tmp_path / "m.txt").write_text("m")
    get_artifact_repository(f"ws-s3://root/workspaces/team-b/{exp}").log_artifact(
        str(tmp_path / "m.txt")
    )
    head = s3.head_object(Bucket="team-b-artifacts", Key=f"workspaces/team-b/{exp}/m.txt")
    # SSE from MLflow's variable; the storage class from the file, which wins.
    assert (head["ServerSideEncryption"], head["StorageClass"], head["ContentType"]) == (
        "AES256",
        "ONEZONE_IA",
        "text/plain",
    )


@pytest.mark.parametrize(
    ("value", "verify"),
    [("0", True), ("1", False), ("true", False), ("false", True), ("TRUE", False)],
    ids=["0", "1", "true", "false", "upper"],
)
def test_ignore_tls_turns_certificate_checks_off(
    monkeypatch: pytest.MonkeyPatch, value: str, verify: bool
) -> None:
    monkeypatch.setenv("MLFLOW_S3_IGNORE_TLS", value)
    settings = Settings(endpoint_url="https://127.0.0.1:1", region="us-east-1")
    assert ClientKey.for_route(settings, "b", "").verify is verify
    client = client_for(settings, "b", "")
    # Checked: True or a CA bundle path; off: exactly False.
    assert (client._endpoint.http_session._verify is False) is (not verify)


def test_endpoint_and_region_come_from_mlflow_variables_only_when_the_file_is_silent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    silent = ClientKey.for_route(Settings(), "b", "")
    assert (silent.endpoint_url, silent.region) == ("http://127.0.0.1:9", "eu-west-3")
    said = ClientKey.for_route(Settings(endpoint_url="http://h:1", region="us-east-2"), "b", "")
    assert (said.endpoint_url, said.region) == ("http://h:1", "us-east-2")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MLFLOW_S3_UPLOAD_EXTRA_ARGS", '"SSE": 1}', "is not valid JSON"),
        ("MLFLOW_S3_UPLOAD_EXTRA_ARGS", '["AES256"]', "must be a JSON object"),
        ("MLFLOW_S3_IGNORE_TLS", "maybe", "is not a boolean; use true, false, 1 or 0"),
        ("MLFLOW_S3_ENDPOINT_URL", "127.0.0.1:9000", "is not an http"),
    ],
    ids=["bad-json", "not-object", "bad-bool", "bad-url"],
)
def test_bad_mlflow_variables_are_clear_errors(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"{name}.*{message}"):
        s3_defaults({name: value})


def test_a_bad_variable_fails_the_upload_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, use_config: Path, s3: Any, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLFLOW_S3_UPLOAD_EXTRA_ARGS", "{not json")
    base = unique("badenv")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(MlflowException, match="MLFLOW_S3_UPLOAD_EXTRA_ARGS is not valid JSON"):
        get_artifact_repository(f"ws-s3://root/{base}").log_artifact(str(tmp_path / "x.txt"))
    assert keys(s3, "root", base + "/") == []


# -- Invalid paths (artifact_repo.verify_artifact_path, uri.validate_path_is_safe) ---------------
@pytest.mark.parametrize(
    "bad", ["/", "//", "/tmp", "/bad_path", ".", "./", "../terrible_path"], ids=str
)
@pytest.mark.parametrize("scheme", ["ws-s3://root", "ws-file"], ids=["s3", "file"])
def test_log_refuses_what_mlflow_refuses(
    use_config: Path, s3: Any, tmp_path: Path, bad: str, scheme: str
) -> None:
    base = unique("bad")
    uri = f"ws-s3://root/{base}" if scheme.startswith("ws-s3") else f"ws-file://{tmp_path}/st"
    (tmp_path / "f.txt").write_text("f")
    repo = get_artifact_repository(uri)
    for call in (
        lambda: repo.log_artifact(str(tmp_path / "f.txt"), bad),
        lambda: repo.log_artifacts(str(_tree(tmp_path / unique("t"))), bad),
    ):
        with pytest.raises(MlflowException, match="Invalid artifact path") as info:
            call()
        assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert keys(s3, "root", base + "/") == []
    assert not (tmp_path / "st").exists()


def test_download_refuses_an_absolute_path_and_accepts_the_root(
    file_config: Path, tmp_path: Path
) -> None:
    repo = get_artifact_repository(f"ws-file://{tmp_path}/st")
    with pytest.raises(MlflowException, match="Invalid path") as info:
        repo.download_artifacts("/absolute/path/to/file")
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    (tmp_path / "f.txt").write_text("f")
    repo.log_artifact(str(tmp_path / "f.txt"), None)  # None and "" are the root
    repo.log_artifact(str(tmp_path / "f.txt"), "")
    assert [f.path for f in repo.list_artifacts("")] == ["f.txt"]


# -- Local stores: empty directories and modification times (local_artifact_repo) ---------------
def test_local_store_keeps_empty_dirs_and_mtimes(file_config: Path, tmp_path: Path) -> None:
    src = _tree(tmp_path)
    os.utime(src / "a.txt", ns=(1_600_000_000_000_000_000, 1_500_000_000_123_456_789))
    store = tmp_path / "store"
    repo = get_artifact_repository(f"ws-file://{store}")
    repo.log_artifacts(str(src))
    assert (store / "empty" / "deeper").is_dir()
    assert os.stat(store / "a.txt").st_mtime_ns == 1_500_000_000_123_456_789
    single = tmp_path / "single"
    single.mkdir()
    repo.log_artifact(str(src / "a.txt"), "one")
    assert os.stat(store / "one" / "a.txt").st_mtime_ns == 1_500_000_000_123_456_789
    (tmp_path / "dst").mkdir()
    out = Path(repo.download_artifacts("", str(tmp_path / "dst")))
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [
        "a.txt",
        "b.tar.gz",
        "empty",
        "empty/deeper",
        "model.pkl",
        "nested",
        "nested/c.csv",
        "one",
        "one/a.txt",
    ]
    assert os.stat(out / "a.txt").st_mtime_ns == 1_500_000_000_123_456_789


# -- Files of any name (our temporary names cannot clash) ----------------------------------------
@pytest.mark.parametrize("kind", ["file", "memory"])
def test_files_named_like_our_old_temp_prefix_stay_visible(
    file_config: Path, tmp_path: Path, kind: str
) -> None:
    uri = f"ws-file://{tmp_path}/store" if kind == "file" else f"ws-memory://{unique('mem')}"
    repo = get_artifact_repository(uri)
    src = tmp_path / "src"
    src.mkdir()
    (src / ".ws-artifacts-weights").write_bytes(b"mine")
    (src / ".artifact.uploading.x").write_bytes(b"also mine")
    repo.log_artifacts(str(src), "d")
    with open(src / ".ws-artifacts-weights", "rb") as stream:
        repo.log_artifact_from_stream(stream, ".ws-artifacts-streamed", "d")
    assert [f.path for f in repo.list_artifacts("d")] == [
        "d/.artifact.uploading.x",
        "d/.ws-artifacts-streamed",
        "d/.ws-artifacts-weights",
    ]
    (tmp_path / "dst").mkdir()
    out = Path(repo.download_artifacts("d", str(tmp_path / "dst")))
    assert sorted(p.name for p in out.iterdir()) == [
        ".artifact.uploading.x",
        ".ws-artifacts-streamed",
        ".ws-artifacts-weights",
    ]
    assert "\\" in TEMP_PREFIX  # a character no artifact path may contain
    if kind == "file":
        assert not [p for p in (tmp_path / "store").rglob("*") if TEMP_PREFIX in p.name]


def test_no_artifact_path_can_name_a_temporary_file(file_config: Path, tmp_path: Path) -> None:
    repo = get_artifact_repository(f"ws-file://{tmp_path}/store")
    with pytest.raises(MlflowException, match="backslash") as info:
        repo.download_artifacts(TEMP_PREFIX + "x")
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"


# -- Symbolic links on a legacy ws-file repository outside a server -----------------------------
@pytest.fixture
def linked_runs(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "mlruns"
    run1 = root / "0" / "run1" / "artifacts"
    run2 = root / "0" / "run2" / "artifacts"
    run1.mkdir(parents=True)
    run2.mkdir(parents=True)
    (run2 / "secret.txt").write_text("run2's")
    (tmp_path / "outside.txt").write_text("host file")
    os.symlink(run2 / "secret.txt", run1 / "to-run2.txt")
    os.symlink(tmp_path / "outside.txt", run1 / "to-host.txt")
    os.symlink(run2, run1 / "dir-link")
    (run1 / "own.txt").write_text("own")
    return root, run1


@pytest.mark.parametrize("link", ["to-run2.txt", "to-host.txt", "dir-link/secret.txt"])
def test_links_out_of_the_artifact_directory_are_refused(
    file_config: Path, linked_runs: tuple[Path, Path], tmp_path: Path, link: str
) -> None:
    root, _run1 = linked_runs
    repo = get_artifact_repository(f"ws-file://{root}/0/run1/artifacts")
    (tmp_path / "dst").mkdir()
    with pytest.raises(MlflowException, match="outside the artifact directory") as info:
        repo.download_artifacts(link, str(tmp_path / "dst"))
    assert info.value.error_code == "PERMISSION_DENIED"
    assert list((tmp_path / "dst").rglob("*.txt")) == []
    own = repo.download_artifacts("own.txt", str(tmp_path / "dst"))
    assert Path(own).read_text() == "own"


# -- Error codes and wording ---------------------------------------------------------------------
def test_bad_key_or_signature_is_unauthenticated() -> None:
    error = refusals.mlflow_error(AuthenticationError("check the route's access_key_id"))
    assert (error.error_code, error.get_http_status_code()) == ("UNAUTHENTICATED", 401)


@pytest.mark.parametrize("scheme", ["s3", "file"])
def test_missing_artifact_says_no_such_artifact(
    use_config: Path, s3: Any, tmp_path: Path, scheme: str
) -> None:
    uri = f"ws-s3://root/{unique('missing')}" if scheme == "s3" else f"ws-file://{tmp_path}/st"
    repo = get_artifact_repository(uri)
    (tmp_path / "dst").mkdir()
    with pytest.raises(MlflowException, match=r"^No such artifact: '.*/nope\.txt'") as info:
        repo.download_artifacts("nope.txt", str(tmp_path / "dst"))
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert list((tmp_path / "dst").iterdir()) == []
