"""The deployment recipes in docs/deploy/, checked as a user would before deploying them.

Every configuration in them passes ``ws-artifacts check`` (with the environment the recipe
gives the server), every server command line passes ``ws-artifacts server --dry-run`` with the
expected ``mlflow server`` command, and the pieces agree with each other: the Secrets' file
paths are the configuration's ``*_file`` paths, the probes and the load balancer hit the port
the server listens on, the buckets created are the buckets routed to. Docker cannot pull images
here, so the image is not built and nothing is started in containers.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import re
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.servers import Server, clean_env

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "docs" / "deploy"
COMPOSE = DEPLOY / "compose"
KUBERNETES = DEPLOY / "kubernetes" / "ws-artifacts.yaml"
BIN = Path(sys.executable).parent
BACKEND = "postgresql://mlflow@postgres:5432/mlflow"
DESTINATION = "ws-s3://mlflow-artifacts"
IMAGE = "ws-artifacts:0.1.0"
#: What ``check --json`` says of the two team routes of both recipes.
TEAM_ROUTES = [
    ("team-a", "team-a", "s3://team-a-artifacts"),
    ("team-b", "team-b", "s3://team-b-artifacts"),
]


# --------------------------------------------------------------------------------------------
# Reading the recipes
# --------------------------------------------------------------------------------------------
def dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a .env file (comments and blank lines skipped)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


_COMPOSE_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-?])([^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation: ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``, ``$$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.groups()
        if env.get(name):
            return env[name]
        if op == ":-":
            return str(arg)
        raise AssertionError(f"compose would stop: {name} unset ({arg or 'no message'})")

    return _COMPOSE_VAR.sub(replace, text)


def compose() -> dict[str, Any]:
    """compose.yaml as ``docker compose config`` would see it with .env = .env.example."""
    text = interpolate((COMPOSE / "compose.yaml").read_text(), dotenv(COMPOSE / ".env.example"))
    doc: dict[str, Any] = yaml.safe_load(text)
    return doc


def kubernetes() -> dict[tuple[str, str], dict[str, Any]]:
    """The manifests by (kind, name)."""
    docs = yaml.safe_load_all(KUBERNETES.read_text())
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def container(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    (only,) = objects[("Deployment", "ws-artifacts")]["spec"]["template"]["spec"]["containers"]
    return dict(only)


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def instruction(name: str) -> list[str]:
    return [args for kind, args in dockerfile() if kind == name]


def host_path(volumes: list[str], container_path: str) -> Path:
    """Where a container path of a compose service lives on the host (bind mounts)."""
    for volume in volumes:
        source, target, *_ = volume.split(":")
        if container_path.startswith(target + "/"):
            return (COMPOSE / source / container_path[len(target) + 1 :]).resolve()
    raise AssertionError(f"{container_path} is in no bind mount of {volumes}")


def config_files(node: Any) -> set[str]:
    """Every ``*_file`` value in a parsed configuration."""
    if isinstance(node, dict):
        found = {v for k, v in node.items() if k.endswith("_file") and isinstance(v, str)}
        return found.union(*(config_files(v) for v in node.values()))
    return set()


# --------------------------------------------------------------------------------------------
# Running the commands
# --------------------------------------------------------------------------------------------
def ws_artifacts(
    args: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """The ``ws-artifacts`` command, with only ``env`` besides the basics (no AWS_*, MLFLOW_*)."""
    return subprocess.run(
        [str(BIN / "ws-artifacts"), *args],
        env=clean_env(**env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


def check(config: Path, destination: str, env: dict[str, str], cwd: Path, *extra: str) -> Any:
    """``ws-artifacts check --json``: exit 0, the routes it reports."""
    args = ["check", "--config", str(config), "--destination", destination, "--json", *extra]
    out = ws_artifacts(args, env, cwd)
    assert out.returncode == 0, out.stdout + out.stderr
    payload = json.loads(out.stdout)
    assert payload["ok"] is True
    return team_rows(payload["routes"], destination)


def team_rows(reports: list[dict[str, Any]], destination: str) -> list[dict[str, Any]]:
    """The team routes' rows; the last row is the default destination's, checked here."""
    *teams, last = reports
    assert (last["entry"], last["workspace"], last["url"]) == (
        "(default destination)",
        "default",
        destination.removeprefix("ws-"),
    )
    return teams


def dry_run(command: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    """``ws-artifacts <command> --dry-run``: exit 0; the ``mlflow server`` options it prints.

    The printed command may start with ``NAME=value`` words (the environment it sets)."""
    assert command[0] == "server", command
    out = ws_artifacts([*command, "--dry-run"], env, cwd)
    assert out.returncode == 0, out.stdout + out.stderr
    (line,) = [x for x in out.stdout.splitlines() if " -m mlflow server " in x]
    words = shlex.split(line)
    while re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words.pop(0)
    assert words[1:4] == ["-m", "mlflow", "server"], line
    return words[4:]


def option(argv: list[str], name: str) -> str:
    """The value of ``name`` (given exactly once) in ``argv``."""
    assert argv.count(name) == 1, (name, argv)
    return argv[argv.index(name) + 1]


def assert_server(argv: list[str], *, backend: str, destination: str, workers: str) -> None:
    assert "--enable-workspaces" in argv
    assert "--serve-artifacts" in argv
    assert option(argv, "--backend-store-uri") == backend
    assert option(argv, "--artifacts-destination") == destination
    assert option(argv, "--workers") == workers
    assert option(argv, "--host") == "0.0.0.0"
    assert option(argv, "--port") == "5000"
    assert option(argv, "--app-name") == "ws-artifacts"


def routes(reports: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(r["entry"], r["workspace"], r["url"]) for r in reports]


# --------------------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------------------
def test_dockerfile_is_python_slim_with_the_postgres_extra() -> None:
    assert instruction("FROM") == ["python:3.11-slim"]
    (install,) = [r for r in instruction("RUN") if "pip install" in r]
    assert shlex.split(install)[:3] == ["pip", "install", ".[postgres]"]
    assert json.loads(instruction("ENTRYPOINT")[0]) == ["ws-artifacts"]
    assert instruction("EXPOSE") == ["5000"]
    (health,) = instruction("HEALTHCHECK")
    assert "http://127.0.0.1:5000/health" in health
    # Everything it copies exists in the repository (the build context is its root).
    copies = [shlex.split(c) for c in instruction("COPY")]
    assert all((REPO / src).exists() for *sources, _ in copies for src in sources)


def test_dockerfile_cmd_and_config_pass_dry_run_and_check(tmp_path: Path) -> None:
    """The image's own default: its CMD, with the configuration it copies to where its
    WS_ARTIFACTS_CONFIG points (SQLite and local files under the working directory)."""
    (env_line,) = [e for e in instruction("ENV") if e.startswith("WS_ARTIFACTS_CONFIG=")]
    in_image = env_line.split("=", 1)[1]
    (source,) = [
        words[0] for words in map(shlex.split, instruction("COPY")) if words[1:] == [in_image]
    ]
    config = REPO / source
    assert check(config, "ws-file:///tmp/x", {}, tmp_path) == []
    cmd = json.loads(instruction("CMD")[0])
    argv = dry_run(cmd, {"WS_ARTIFACTS_CONFIG": str(config)}, tmp_path)
    data = tmp_path.resolve() / "ws-artifacts-data"
    assert_server(
        argv,
        backend=f"sqlite:///{data / 'mlflow.db'}",
        destination=f"ws-file://{data / 'artifacts'}",
        workers="2",
    )


# --------------------------------------------------------------------------------------------
# docker compose
# --------------------------------------------------------------------------------------------
def test_compose_config_passes_check_with_the_services_environment(tmp_path: Path) -> None:
    service = compose()["services"]["ws-artifacts"]
    env = service["environment"]
    config = host_path(service["volumes"], env["WS_ARTIFACTS_CONFIG"])
    assert config == (COMPOSE / "config" / "ws-artifacts.yaml").resolve()
    reports = check(config, option(service["command"], "--artifacts-destination"), env, tmp_path)
    assert routes(reports) == TEAM_ROUTES
    assert [r["credentials"] for r in reports] == ["static keys", "static keys"]


def test_compose_config_names_an_unset_variable(tmp_path: Path) -> None:
    """Bad input: without the service's environment, check fails and names the variable."""
    out = ws_artifacts(
        ["check", "--config", str(COMPOSE / "config" / "ws-artifacts.yaml")], {}, tmp_path
    )
    assert out.returncode == 2
    assert re.search(
        r"defaults\.credentials\.access_key_id: environment variable\s+"
        r"S3_ACCESS_KEY_ID is not set",
        out.stderr,
    ), out.stderr


def test_compose_server_command_passes_dry_run(tmp_path: Path) -> None:
    service = compose()["services"]["ws-artifacts"]
    assert service["image"] == IMAGE
    assert service["deploy"]["replicas"] == 2
    env = dict(service["environment"])
    env["WS_ARTIFACTS_CONFIG"] = str(host_path(service["volumes"], env["WS_ARTIFACTS_CONFIG"]))
    argv = dry_run(service["command"], env, tmp_path)
    assert_server(argv, backend=BACKEND, destination=DESTINATION, workers="2")
    # The password reaches libpq from the environment, never through the command line.
    assert env["PGPASSWORD"] == dotenv(COMPOSE / ".env.example")["POSTGRES_PASSWORD"]
    assert env["PGPASSWORD"] not in " ".join(argv)


def test_compose_services_agree_with_each_other() -> None:
    doc = compose()
    services = doc["services"]
    server = services["ws-artifacts"]
    # The image is built from the Dockerfile above, migrated before the servers start.
    build = services["migrate"]["build"]
    assert (COMPOSE / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    assert services["migrate"]["image"] == IMAGE
    assert [*services["migrate"]["entrypoint"], *services["migrate"]["command"]] == [
        "mlflow",
        "db",
        "upgrade",
        option(server["command"], "--backend-store-uri"),
    ]
    assert server["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "buckets": {"condition": "service_completed_successfully"},
    }
    # Every bucket the configuration routes to (and the destination's) is created.
    (script,) = services["buckets"]["command"]
    created = {w.removeprefix("local/") for w in shlex.split(script) if w.startswith("local/")}
    config = yaml.safe_load((COMPOSE / "config" / "ws-artifacts.yaml").read_text())
    routed = {r["url"].removeprefix("s3://") for r in config["workspaces"].values()}
    assert created == routed | {DESTINATION.removeprefix("ws-s3://")}
    # The database the server uses is the one postgres creates.
    pg = services["postgres"]["environment"]
    assert f"postgresql://{pg['POSTGRES_USER']}@postgres:5432/{pg['POSTGRES_DB']}" == BACKEND
    assert server["environment"]["PGPASSWORD"] == pg["POSTGRES_PASSWORD"]


def test_compose_load_balancer_round_robins_to_the_servers_port() -> None:
    lb = compose()["services"]["lb"]
    assert lb["volumes"] == ["./nginx.conf:/etc/nginx/nginx.conf:ro"]
    nginx = (COMPOSE / "nginx.conf").read_text()
    directives = [line.split("#")[0].strip() for line in nginx.splitlines()]
    assert "server ws-artifacts:5000;" in directives
    assert "proxy_pass http://ws_artifacts;" in directives
    assert "client_max_body_size 0;" in directives  # artifacts of any size
    assert "proxy_request_buffering off;" in directives  # uploads streamed, not spooled twice
    sticky = [d for d in directives if d.split(" ")[0] in ("ip_hash;", "hash", "sticky")]
    assert sticky == []


# --------------------------------------------------------------------------------------------
# Kubernetes
# --------------------------------------------------------------------------------------------
def k8s_env(spec: dict[str, Any]) -> dict[str, str]:
    """The container's literal env values (valueFrom ones are the Secrets' business)."""
    return {e["name"]: e["value"] for e in spec["env"] if "value" in e}


def mounted_config(tmp_path: Path, objects: dict[tuple[str, str], dict[str, Any]]) -> Path:
    """The ConfigMap's file, written where this test can read it; checks that the container
    mounts it (as a directory: subPath mounts never see updates) where WS_ARTIFACTS_CONFIG
    points."""
    spec = container(objects)
    pod = objects[("Deployment", "ws-artifacts")]["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "configMap" in v]
    (mount,) = [m for m in spec["volumeMounts"] if m["name"] == volume["name"]]
    assert "subPath" not in mount
    data = objects[("ConfigMap", volume["configMap"]["name"])]["data"]
    (name,) = data
    assert k8s_env(spec)["WS_ARTIFACTS_CONFIG"] == f"{mount['mountPath']}/{name}"
    path = tmp_path / name
    path.write_text(data[name])
    return path


def test_kubernetes_config_passes_check(tmp_path: Path) -> None:
    objects = kubernetes()
    spec = container(objects)
    config = mounted_config(tmp_path, objects)
    destination = option(spec["args"], "--artifacts-destination")
    reports = check(config, destination, k8s_env(spec), tmp_path)
    assert routes(reports) == TEAM_ROUTES
    secrets = "/etc/ws-artifacts/secrets"
    assert [r["credentials"] for r in reports] == [
        f"static keys from files {secrets}/{team}/access_key_id, {secrets}/{team}/secret_access_key"
        for team in ("team-a", "team-b")
    ]
    assert [r["storage"] for r in reports] == [
        "sse=AES256; tags: mlflow-workspace",
        "tags: mlflow-workspace",
    ]


def secret_files(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Container path -> (Secret, key) of every Secret file the container mounts."""
    spec = container(objects)
    pod = objects[("Deployment", "ws-artifacts")]["spec"]["template"]["spec"]
    out: dict[str, tuple[str, str]] = {}
    for volume in pod["volumes"]:
        # A projected volume of several Secrets, or a plain secret volume.
        secrets = [s["secret"] for s in volume.get("projected", {}).get("sources", [])]
        if "secret" in volume:
            secrets.append({"name": volume["secret"]["secretName"], **volume["secret"]})
        for mount in (m for m in spec["volumeMounts"] if m["name"] == volume["name"]):
            assert "subPath" not in mount  # rotated keys must reach the pods
            for secret in secrets:
                for item in secret["items"]:
                    path = f"{mount['mountPath']}/{item['path']}"
                    out[path] = (secret["name"], item["key"])
    return out


def test_kubernetes_secret_files_are_the_configs_file_credentials(tmp_path: Path) -> None:
    objects = kubernetes()
    config = yaml.safe_load(mounted_config(tmp_path, objects).read_text())
    files = secret_files(objects)
    assert set(files) == config_files(config)
    assert len(files) == 6  # default, team-a, team-b: a key id and a secret each
    for name, key in files.values():
        assert key in objects[("Secret", name)]["stringData"], (name, key)


def test_kubernetes_file_credentials_work_from_the_mounted_secrets(
    tmp_path: Path, moto: Server, s3: Any
) -> None:
    """The mounts materialised under tmp_path (the Secrets' values as files at their mount
    paths), the endpoint moved to moto: check --probe writes, reads and deletes a marker in
    each team's bucket with the keys read from those files."""
    objects = kubernetes()
    config = mounted_config(tmp_path, objects)
    root = tmp_path / "mnt"
    for path, (name, key) in secret_files(objects).items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(objects[("Secret", name)]["stringData"][key])  # moto takes any key
    config.write_text(config.read_text().replace(" /etc/", f" {root}/etc/"))
    env = {**k8s_env(container(objects)), "S3_ENDPOINT_URL": moto.url, "S3_REGION": "us-east-1"}
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=DESTINATION.removeprefix("ws-s3://"))  # probed too
    reports = check(config, DESTINATION, env, tmp_path, "--probe")
    assert [(r["entry"], r["ok"], r["error"]) for r in reports] == [
        ("team-a", True, None),
        ("team-b", True, None),
    ]
    assert [
        o["Key"]
        for o in s3.list_objects_v2(Bucket="team-a-artifacts").get("Contents", [])
        if ".ws-artifacts-probe-" in o["Key"]
    ] == []  # the probe cleaned up
    # A Secret that is not mounted: the probe of that route fails and names the file and fix.
    missing = root / "etc/ws-artifacts/secrets/team-b/secret_access_key"
    missing.unlink()
    out = ws_artifacts(
        ["check", "--config", str(config), "--destination", DESTINATION, "--probe", "--json"],
        env,
        tmp_path,
    )
    assert out.returncode == 1
    failed = {r["entry"]: (r["ok"], r["error"]) for r in json.loads(out.stdout)["routes"]}
    assert failed == {
        "(default destination)": (True, None),
        "team-a": (True, None),
        "team-b": (
            False,
            f"Cannot read secret_access_key_file {missing} (No such file or directory); mount "
            "the secret there or fix the path in the route's credentials.",
        ),
    }


def test_kubernetes_deployment_args_pass_dry_run(tmp_path: Path) -> None:
    objects = kubernetes()
    spec = container(objects)
    assert spec["image"] == IMAGE
    assert "command" not in spec  # args go to the image's ENTRYPOINT, ws-artifacts
    env = {**k8s_env(spec), "WS_ARTIFACTS_CONFIG": str(mounted_config(tmp_path, objects))}
    argv = dry_run(spec["args"], env, tmp_path)
    assert_server(argv, backend=BACKEND, destination=DESTINATION, workers="2")
    (password,) = [e for e in spec["env"] if e["name"] == "PGPASSWORD"]
    assert password["valueFrom"]["secretKeyRef"] == {
        "name": "ws-artifacts-postgres",
        "key": "password",
    }


def test_kubernetes_replicas_probes_service_and_migration_agree() -> None:
    objects = kubernetes()
    deployment = objects[("Deployment", "ws-artifacts")]
    spec = container(objects)
    assert deployment["spec"]["replicas"] == 3
    ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
    assert ports == {"http": int(option(spec["args"], "--port"))}
    for probe in ("readinessProbe", "livenessProbe"):
        assert spec[probe]["httpGet"] == {"path": "/health", "port": "http"}
    service = objects[("Service", "ws-artifacts")]["spec"]
    assert service["selector"] == deployment["spec"]["template"]["metadata"]["labels"]
    assert service["sessionAffinity"] == "None"
    assert service["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
    (job,) = objects[("Job", "ws-artifacts-db-upgrade")]["spec"]["template"]["spec"]["containers"]
    assert [*job["command"], *job["args"]] == ["mlflow", "db", "upgrade", BACKEND]
    assert job["env"] == [e for e in spec["env"] if e["name"] == "PGPASSWORD"]


def test_image_pins_the_newest_tested_mlflow() -> None:
    """The migration step relies on it (see the next test); ./run tests that release."""
    newest = re.search(r"^MLFLOW_NEWEST=(\S+)", (REPO / "run").read_text(), re.M)
    assert newest is not None
    assert instruction("ARG") == [f"MLFLOW_VERSION={newest.group(1)}"]


def test_migration_command_creates_mlflows_schema(tmp_path: Path) -> None:
    """The recipes' `mlflow db upgrade <uri>` (the same in compose and Kubernetes) run as they
    run it, on an empty SQLite database here: PostgreSQL is not started by this test.

    MLflow 3.10's `db upgrade` cannot create the schema in an empty database (it migrates
    tables that do not exist yet); docs/deployment.md says so and what to do instead. The
    image installs the newest tested MLflow, whose `db upgrade` can."""
    migrate = compose()["services"]["migrate"]
    job = kubernetes()[("Job", "ws-artifacts-db-upgrade")]
    (k8s,) = job["spec"]["template"]["spec"]["containers"]
    assert k8s["command"] == migrate["entrypoint"] == ["mlflow", "db", "upgrade"]
    assert k8s["args"] == migrate["command"] == [BACKEND]
    db = tmp_path / "mlflow.db"
    out = subprocess.run(
        [str(BIN / k8s["command"][0]), *k8s["command"][1:], f"sqlite:///{db}"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if importlib.metadata.version("mlflow").startswith("3.10."):
        assert out.returncode == 1
        assert "no such table: metrics" in out.stderr
        assert "3.10" in (REPO / "docs" / "deployment.md").read_text()
        return
    assert out.returncode == 0, out.stderr
    with sqlite3.connect(db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"alembic_version", "experiments", "runs", "workspaces"} <= tables


def test_deployment_doc_names_only_files_that_exist() -> None:
    text = (REPO / "docs" / "deployment.md").read_text()
    named = set(re.findall(r"docs/deploy/[\w./-]+\w", text))
    assert named >= {
        "docs/deploy/Dockerfile",
        "docs/deploy/compose/compose.yaml",
        "docs/deploy/kubernetes/ws-artifacts.yaml",
    }
    assert sorted(p for p in named if not (REPO / p).exists()) == []


def test_deployment_doc_check_command_passes_in_the_compose_directory(tmp_path: Path) -> None:
    """The documented `ws-artifacts check` line, run where the doc says, with .env sourced."""
    text = (REPO / "docs" / "deployment.md").read_text()
    (line,) = [x for x in text.splitlines() if x.startswith("ws-artifacts check ")]
    args = shlex.split(line)[1:]
    out = ws_artifacts([*args, "--json"], dotenv(COMPOSE / ".env.example"), COMPOSE)
    assert out.returncode == 0, out.stdout + out.stderr
    reports = json.loads(out.stdout)["routes"]
    assert routes(reports[:-1]) == TEAM_ROUTES
    assert reports[-1]["entry"] == "(default destination)"
