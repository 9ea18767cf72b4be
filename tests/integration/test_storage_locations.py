"""Approved storage locations through real servers (issue #20): a workspace manager picks the
workspace's default_artifact_root with MLflow's own API, ws-artifacts routes the bytes there.

One moto server ENFORCES IAM for this module (``INITIAL_NO_AUTH_ACTION_COUNT``): location one's
user may touch only ``sl-loc-one``, location two's only ``sl-loc-two``, the servers' own user
(the default chain) only the destination ``sl-root``. So an object in a location's bucket was
written with that location's credentials, and clients (which have none) reach it only through
the proxied server. Presigned URLs do not work in moto with IAM on, so they are off here.
Two proxied ``ws-artifacts server`` processes and one direct-mode ``mlflow server`` share one
SQLite database; team-a has a file route inside location one (it references the location for
its credentials).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from mlflow.exceptions import MlflowException

from tests.support.servers import Server, clean_env, start_mlflow, start_moto
from tests.support.workspaces import in_workspace

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning"),
]

REGION = "us-east-1"
ROOT, ONE, TWO = "sl-root", "sl-loc-one", "sl-loc-two"
WS_ARTIFACTS = str(Path(sys.executable).parent / "ws-artifacts")
LISTED = rf"one \(s3://{ONE}/teams\), two \(s3://{TWO}\)"
TTL = 1.0  # WS_ARTIFACTS_ROOTS_TTL of the servers


@dataclass
class Locations:
    """The IAM world, the two servers' URLs, their configuration and database."""

    moto: Server
    admin: Any
    users: dict[str, tuple[str, str]]
    servers: list[Server]
    config: Path
    db: Path
    env: dict[str, str]

    def client(self, index: int = 0) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.servers[index].url)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.admin.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [WS_ARTIFACTS, *args],
            env=clean_env(**self.env, WS_ARTIFACTS_CONFIG=str(self.config), COLUMNS="200"),
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, done.stderr + done.stdout
        return done


def _iam_world(moto: Server) -> tuple[Any, dict[str, tuple[str, str]]]:
    def client(service: str, key: str, secret: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=moto.url,
            region_name=REGION,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
        )

    boot = client("iam", "bootstrap", "bootstrap")  # moto's three unauthenticated requests
    boot.create_user(UserName="admin")
    boot.put_user_policy(
        UserName="admin",
        PolicyName="all",
        PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*",'
        '"Resource":"*"}]}',
    )
    made = boot.create_access_key(UserName="admin")["AccessKey"]
    iam = client("iam", made["AccessKeyId"], made["SecretAccessKey"])
    s3 = client("s3", made["AccessKeyId"], made["SecretAccessKey"])
    users = {}
    for user, bucket in (("server", ROOT), ("one", ONE), ("two", TWO)):
        s3.create_bucket(Bucket=bucket)
        iam.create_user(UserName=user)
        arns = f'"arn:aws:s3:::{bucket}","arn:aws:s3:::{bucket}/*"'
        iam.put_user_policy(
            UserName=user,
            PolicyName="own-bucket",
            PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
            f'"Action":"s3:*","Resource":[{arns}]}}]}}',
        )
        key = iam.create_access_key(UserName=user)["AccessKey"]
        users[user] = (key["AccessKeyId"], key["SecretAccessKey"])
    return s3, users


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Locations]:
    base = tmp_path_factory.mktemp("locations")
    moto = start_moto(base / "moto", no_auth_actions=3)
    servers: list[Server] = []
    try:
        admin, users = _iam_world(moto)
        config = base / "ws-artifacts.yaml"
        config.write_text(
            textwrap.dedent(f"""
                defaults:
                  endpoint_url: {moto.url}
                  region: {REGION}
                  addressing_style: path
                  transfer: {{presigned_downloads: false}}
                locations:
                  one:
                    url: s3://{ONE}/teams
                    credentials:
                      access_key_id: "${{ONE_KEY}}"
                      secret_access_key: "${{ONE_SECRET}}"
                  two:
                    url: s3://{TWO}
                    credentials:
                      access_key_id: "${{TWO_KEY}}"
                      secret_access_key: "${{TWO_SECRET}}"
                workspaces:
                  team-a: {{url: "s3://{ONE}/teams/a", location: one}}
            """)
        )
        env = {
            "ONE_KEY": users["one"][0],
            "ONE_SECRET": users["one"][1],
            "TWO_KEY": users["two"][0],
            "TWO_SECRET": users["two"][1],
            "AWS_ACCESS_KEY_ID": users["server"][0],
            "AWS_SECRET_ACCESS_KEY": users["server"][1],
            "AWS_DEFAULT_REGION": REGION,
        }
        db = base / "one" / "mlflow.db"
        for name in ("one", "two"):
            servers.append(
                start_mlflow(
                    base / name,
                    command=[WS_ARTIFACTS, "server", "--config", str(config)],
                    args=["--artifacts-destination", f"ws-s3://{ROOT}"],
                    env={**env, "WS_ARTIFACTS_ROOTS_TTL": str(TTL)},
                    backend_store_uri=f"sqlite:///{db}",
                    workers=2,
                    startup_timeout=600,
                )
            )
        # A direct-mode server on the same database: clients route with their own keys.
        direct = start_mlflow(
            base / "direct",
            args=[
                "--enable-workspaces",
                "--no-serve-artifacts",
                "--default-artifact-root",
                f"ws-s3://{ROOT}",
                "--workspace-store-uri",
                f"ws+sqlite:///{db}",
            ],
            env={**env, "WS_ARTIFACTS_CONFIG": str(config)},
            backend_store_uri=f"sqlite:///{db}",
            workers=1,
        )
        servers.append(direct)
        yield Locations(moto, admin, users, servers, config, db, env)
    finally:
        for server in servers:
            server.stop()
        moto.stop()


@pytest.fixture(autouse=True)
def _no_presigned_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")


def log_run(
    world: Locations, workspace: str, data: bytes, tmp: Path, server: int = 0
) -> tuple[str, str]:
    client = world.client(server)
    with in_workspace(workspace):
        exp = client.create_experiment(f"exp-{workspace}-{time.monotonic_ns()}")
        run = client.create_run(exp).info.run_id
        src = tmp / f"src-{run}"
        src.mkdir()
        (src / "model.bin").write_bytes(data)
        client.log_artifact(run, str(src / "model.bin"))
    return exp, run


def read_back(world: Locations, workspace: str, run: str, tmp: Path, server: int = 0) -> bytes:
    with in_workspace(workspace):
        path = world.client(server).download_artifacts(run, "model.bin", str(tmp))
    return Path(path).read_bytes()


def test_a_root_inside_location_one_gets_runs_proxied_with_its_credentials(
    world: Locations, tmp_path: Path
) -> None:
    client = world.client()
    created = client.create_workspace("team-c", default_artifact_root=f"s3://{ONE}/teams/c")
    assert created.default_artifact_root == f"s3://{ONE}/teams/c"
    exp, run = log_run(world, "team-c", b"team c weights", tmp_path)
    with in_workspace("team-c"):
        location = client.get_experiment(exp).artifact_location
    assert location == f"mlflow-artifacts:/workspaces/team-c/{exp}"  # clients need no keys
    assert world.keys(ONE, "teams/c/") == [
        f"teams/c/workspaces/team-c/{exp}/{run}/artifacts/model.bin"
    ]
    assert world.keys(ROOT, "workspaces/team-c/") == []
    assert read_back(world, "team-c", run, tmp_path) == b"team c weights"


def test_route_check_and_usage_say_the_route_came_from_the_workspace_setting(
    world: Locations,
) -> None:
    common = ["--destination", f"ws-s3://{ROOT}", "--backend-store-uri", f"sqlite:///{world.db}"]
    route = json.loads(world.cli("route", "--json", *common, "team-c").stdout)
    assert (route["entry"], route["source"], route["location"]) == (
        "location:one",
        "workspace setting",
        f"s3://{ONE}/teams/c/workspaces/team-c",
    )
    assert json.loads(world.cli("route", "--json", *common, "team-a").stdout)["source"] == "file"
    checked = json.loads(world.cli("check", "--json", *common).stdout)
    rows = {r["entry"]: (r["source"], r["url"]) for r in checked["routes"]}
    assert rows == {
        "team-a": ("file", f"s3://{ONE}/teams/a"),
        "team-c (root)": ("workspace setting", f"s3://{ONE}/teams/c"),
        "(default destination)": ("default", f"s3://{ROOT}"),
    }
    used = json.loads(world.cli("usage", "--json", *common, "team-c").stdout)
    assert [(w["workspace"], w["source"], w["objects"]) for w in used["workspaces"]] == [
        ("team-c", "workspace setting", 1)
    ]


@pytest.mark.parametrize(
    ("root", "why"),
    [
        ("s3://sl-elsewhere/d", "not inside an approved storage location"),
        (f"s3://{ROOT}/d", "not inside an approved storage location"),
        (f"s3://{ONE}/teams/a/workspaces/team-a", "contains a 'workspaces' segment"),
        (f"s3://{ONE}/teams/a/d", "overlaps the place of route 'team-a'"),
        (f"s3://{ONE}/teams", "overlaps the place of route 'team-a'"),
        (f"s3://{ONE}/teams/c/../a", "contains '..'"),
    ],
    ids=[
        "outside-both",
        "destination-bucket",
        "team-a-place",
        "inside-team-a-route",
        "prefix-of-team-a",
        "traversal",
    ],
)
def test_a_root_outside_both_or_in_team_as_place_is_refused_with_the_locations(
    world: Locations, root: str, why: str
) -> None:
    client = world.client()
    with pytest.raises(MlflowException, match=rf"workspace 'team-d'.*{why}.*{LISTED}") as info:
        client.create_workspace("team-d", default_artifact_root=root)
    assert info.value.error_code == "PERMISSION_DENIED"
    with pytest.raises(MlflowException, match="team-d"):
        client.get_workspace("team-d")


def test_an_update_to_location_two_keeps_old_runs_readable_and_migrate_empties_the_old_place(
    world: Locations, tmp_path: Path, record_property: Any
) -> None:
    client = world.client()
    client.create_workspace("team-m", default_artifact_root=f"s3://{ONE}/teams/m")
    _, old_run = log_run(world, "team-m", b"before the move", tmp_path)
    assert len(world.keys(ONE, "teams/m/workspaces/team-m/")) == 1
    client.update_workspace("team-m", default_artifact_root=f"s3://{TWO}/m")
    updated = time.monotonic()
    assert read_back(world, "team-m", old_run, tmp_path / "a") == b"before the move"
    # Every worker of both servers routes new writes to location two within the bound; until
    # then a write goes to the old place, which the workspace still owns (a previous place).
    for server in (0, 1):
        while True:
            exp, run = log_run(world, "team-m", b"after the move", tmp_path, server=server)
            key = f"workspaces/team-m/{exp}/{run}/artifacts/model.bin"
            if f"m/{key}" in world.keys(TWO, "m/"):
                break
            assert f"teams/m/{key}" in world.keys(ONE, "teams/m/")
            assert time.monotonic() - updated < 30 * TTL, "new writes never reached location two"
        record_property(f"server{server}_seconds_to_new_root", round(time.monotonic() - updated, 3))
    world.cli(
        "migrate",
        "team-m",
        "--delete-source",
        "--destination",
        f"ws-s3://{ROOT}",
        "--backend-store-uri",
        f"sqlite:///{world.db}",
    )
    assert world.keys(ONE, "teams/m/") == []
    assert f"m/workspaces/team-m/{old_run}" not in world.keys(TWO, "m/")  # keys hold exp ids
    assert any(k.endswith(f"/{old_run}/artifacts/model.bin") for k in world.keys(TWO, "m/"))
    assert read_back(world, "team-m", old_run, tmp_path / "b", server=1) == b"before the move"


def test_the_second_server_routes_a_root_set_through_the_first(
    world: Locations, tmp_path: Path
) -> None:
    world.client(0).create_workspace("team-s", default_artifact_root=f"s3://{TWO}/s")
    exp, run = log_run(world, "team-s", b"second server", tmp_path, server=1)  # at once
    assert world.keys(TWO, "s/") == [f"s/workspaces/team-s/{exp}/{run}/artifacts/model.bin"]
    assert read_back(world, "team-s", run, tmp_path, server=0) == b"second server"


def test_deleting_the_workspace_quarantines_every_place(world: Locations, tmp_path: Path) -> None:
    client = world.client()
    client.create_workspace("team-q", default_artifact_root=f"s3://{ONE}/teams/q")
    log_run(world, "team-q", b"first place", tmp_path)
    client.update_workspace("team-q", default_artifact_root=f"s3://{TWO}/q")
    started = time.monotonic()
    while not world.keys(TWO, "q/workspaces/"):
        log_run(world, "team-q", b"second place", tmp_path)
        assert time.monotonic() - started < 30 * TTL
    client.delete_workspace("team-q", mode="CASCADE")
    assert world.keys(ONE, "teams/q/workspaces/") == []
    assert world.keys(TWO, "q/workspaces/") == []
    assert world.keys(ONE, "teams/q/.ws-quarantine/team-q/")
    assert world.keys(TWO, "q/.ws-quarantine/team-q/")


def test_direct_mode_clients_route_to_the_root_with_the_locations_keys(
    world: Locations, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in world.env.items():  # the client's own keys: the server user's (root only)
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WS_ARTIFACTS_CONFIG", str(world.config))
    client = world.client(2)
    client.create_workspace("team-dir", default_artifact_root=f"s3://{TWO}/dir")
    exp, run = log_run(world, "team-dir", b"direct bytes", tmp_path, server=2)
    with in_workspace("team-dir"):
        location = client.get_experiment(exp).artifact_location
    assert location == f"ws-s3://{ROOT}/workspaces/team-dir/{exp}"
    assert world.keys(TWO, "dir/") == [f"dir/workspaces/team-dir/{exp}/{run}/artifacts/model.bin"]
    assert world.keys(ROOT, "workspaces/team-dir/") == []
    assert read_back(world, "team-dir", run, tmp_path, server=2) == b"direct bytes"


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def _create_in_the_ui(driver: Any, url: str, name: str, root: str) -> None:
    """Fill in and submit the home page's "Create new workspace" form, as a user would."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 120)
    driver.get(url + "/#/")
    create = (By.CSS_SELECTOR, "[data-component-id='mlflow.home.workspaces.create_button']")
    wait.until(ec.element_to_be_clickable(create)).click()
    name_box = (By.XPATH, "//input[@placeholder='Enter workspace name']")
    wait.until(ec.visibility_of_element_located(name_box)).send_keys(name)
    root_box = "//input[@placeholder='Enter default artifact root URI']"
    driver.find_element(By.XPATH, root_box).send_keys(root)
    ok = "[data-component-id='mlflow.home.create_workspace_modal.footer.ok']"
    driver.find_element(By.CSS_SELECTOR, ok).click()


def _exists(world: Locations, name: str) -> bool:
    try:
        world.client().get_workspace(name)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True


def test_the_ui_workspace_form_refuses_with_the_locations_and_creates_a_routed_workspace(
    world: Locations, tmp_path: Path
) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    url = world.servers[0].url
    try:
        _create_in_the_ui(driver, url, "team-ui", f"s3://{ONE}/teams/a/ui")
        error = (By.CSS_SELECTOR, "[data-component-id='mlflow.home.create_workspace_modal.error']")
        shown = WebDriverWait(driver, 120).until(ec.visibility_of_element_located(error)).text
        assert "overlaps the place of route 'team-a'" in shown, shown
        assert f"one (s3://{ONE}/teams), two (s3://{TWO})" in shown, shown
        # The form stays open with the refusal: correct the root there and submit again.
        root_box = driver.find_element(
            By.XPATH, "//input[@placeholder='Enter default artifact root URI']"
        )
        root_box.send_keys(Keys.CONTROL, "a")
        root_box.send_keys(Keys.DELETE)
        root_box.send_keys(f"s3://{TWO}/ui")
        ok = "[data-component-id='mlflow.home.create_workspace_modal.footer.ok']"
        driver.find_element(By.CSS_SELECTOR, ok).click()
        deadline = time.monotonic() + 120
        while not _exists(world, "team-ui"):  # the form posts; MLflow versions differ after
            assert time.monotonic() < deadline, "the workspace form did not create team-ui"
            time.sleep(0.2)
    finally:
        driver.quit()
    assert world.client().get_workspace("team-ui").default_artifact_root == f"s3://{TWO}/ui"
    exp, run = log_run(world, "team-ui", b"made in the ui", tmp_path)
    assert world.keys(TWO, "ui/") == [f"ui/workspaces/team-ui/{exp}/{run}/artifacts/model.bin"]
