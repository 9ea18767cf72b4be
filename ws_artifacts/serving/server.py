"""``ws-artifacts server``: a workspace-enabled ``mlflow server`` with routed artifacts.

The command runs ``mlflow server --enable-workspaces --serve-artifacts --app-name ws-artifacts``.
The ``ws-artifacts`` app (an ``mlflow.app`` entry point, :func:`create_app`) runs in every uvicorn
worker. It:

* sets up its worker process (:mod:`ws_artifacts.serving.worker_process`): Nagle's algorithm
  off on accepted connections, malloc thresholds, logging to stderr, a warm-up;
* optionally installs the request guard (``WS_ARTIFACTS_GUARD=1``);
* wraps another ``mlflow.app`` (``WS_ARTIFACTS_INNER_APP``, e.g. ``basic-auth``) instead of
  replacing it;
* with the audit trail on (``WS_ARTIFACTS_AUDIT``), opens its file and installs the outermost
  ASGI middleware that gives each request an id, a remote address and a user for the lines.

The middleware it installs (``/metrics``, the early quota look, the audit trail's request
middleware, the readiness mark) is in :mod:`ws_artifacts.serving.app_middleware`.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ws_artifacts.serving import app_middleware, worker_process
from ws_artifacts.serving.launcher import READY_DIR_ENV

__all__ = [
    "ServerPlan",
    "bootstrap_inner_app",
    "check_presigned_only_supported",
    "create_app",
    "default_config_path",
    "mlflow_usage_error",
    "plan_command",
]


INNER_APP_ENV = "WS_ARTIFACTS_INNER_APP"
GUARD_ENV = "WS_ARTIFACTS_GUARD"
NODELAY_ENV = "WS_ARTIFACTS_NODELAY"
APP_NAME = "ws-artifacts"
#: MLflow 3.18's presigned-only serving: its option and the variable its workers read.
PRESIGNED_ONLY_OPTION = "--artifacts-presigned-only"
PRESIGNED_ONLY_ENV = "MLFLOW_ARTIFACTS_PRESIGNED_ONLY"


def default_config_path() -> Path:
    """The embedded default configuration: every workspace under the default destination."""
    return Path(str(resources.files("ws_artifacts").joinpath("default-config.yaml")))


@dataclass
class ServerPlan:
    """What ``ws-artifacts server`` will run."""

    argv: list[str]
    env: dict[str, str]
    url: str
    destination: str
    backend_store_uri: str
    config_path: Path
    extra: list[str] = field(default_factory=list)

    def shell_command(self) -> str:
        """The command as one shell line, with the environment it needs in front of it
        (``WS_ARTIFACTS_CONFIG=... WS_ARTIFACTS_GUARD=... python -m mlflow server ...``): copied
        and run elsewhere, it starts the same server, configuration and guard included."""
        import shlex

        settings = [
            f"{name}={shlex.quote(value)}"
            for name, value in sorted(self.env.items())
            if name.startswith("WS_ARTIFACTS_")
        ]
        return " ".join([*settings, *(shlex.quote(arg) for arg in self.argv)])


def plan_command(
    *,
    config_path: Path,
    data_dir: Path,
    backend_store_uri: str | None,
    artifacts_destination: str | None,
    host: str,
    port: int,
    workers: int,
    inner_app: str | None,
    guard: bool,
    nodelay: bool,
    extra: tuple[str, ...] = (),
    audit: str | None = None,
    workspace_provider: bool = True,
    presigned_only: bool = False,
) -> ServerPlan:
    """Build the ``mlflow server`` command line and environment (no side effects).

    Raises:
        ConfigError: ``presigned_only`` on an MLflow without presigned-only serving (< 3.18).
    """
    if presigned_only:
        check_presigned_only_supported()
    data_dir = data_dir.resolve()
    backend = backend_store_uri or f"sqlite:///{data_dir / 'mlflow.db'}"
    destination = artifacts_destination or f"ws-file://{data_dir / 'artifacts'}"
    argv = [
        *_serve_args(backend, destination, host, port, workers),
        *_workspace_store_args(backend, workspace_provider, extra),
        *([PRESIGNED_ONLY_OPTION] if presigned_only else []),
        *_with_worker_healthcheck(extra),
    ]
    env = _server_env(
        config_path,
        guard=guard,
        nodelay=nodelay,
        audit=audit,
        presigned_only=presigned_only,
        inner_app=inner_app,
    )
    return ServerPlan(
        argv=argv,
        env=env,
        url=f"http://{host}:{port}",
        destination=destination,
        backend_store_uri=backend,
        config_path=config_path,
        extra=list(extra),
    )


def _serve_args(backend: str, destination: str, host: str, port: int, workers: int) -> list[str]:
    """``mlflow server`` with workspaces, proxied artifacts and the ``ws-artifacts`` app."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--enable-workspaces",
        "--serve-artifacts",
        "--backend-store-uri",
        backend,
        "--artifacts-destination",
        destination,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--app-name",
        APP_NAME,
    ]


def _server_env(
    config_path: Path,
    *,
    guard: bool,
    nodelay: bool,
    audit: str | None,
    presigned_only: bool,
    inner_app: str | None,
) -> dict[str, str]:
    """This environment, with the settings the server's workers read."""
    env = dict(os.environ)
    env["WS_ARTIFACTS_CONFIG"] = str(config_path)
    env[GUARD_ENV] = "1" if guard else "0"
    env[NODELAY_ENV] = "1" if nodelay else "0"
    if audit:
        from ws_artifacts.serving.audit import AUDIT_ENV

        env[AUDIT_ENV] = audit if audit == "-" else str(Path(audit).resolve())
    if presigned_only:
        env[PRESIGNED_ONLY_ENV] = "true"
    if inner_app:
        env[INNER_APP_ENV] = inner_app
    else:
        env.pop(INNER_APP_ENV, None)
    return env


def check_presigned_only_supported() -> None:
    """Fail fast when this MLflow cannot serve presigned-only: an older ``mlflow server`` would
    ignore the variable and carry every byte, which is what the operator asked it not to do."""
    from ws_artifacts._mlflow import environment
    from ws_artifacts.core.errors import ConfigError

    if not environment.HAS_PRESIGNED_ONLY:
        raise ConfigError(
            f"{PRESIGNED_ONLY_OPTION} (or {PRESIGNED_ONLY_ENV}=true) needs MLflow 3.18 or newer; "
            f"this is MLflow {environment.MLFLOW_VERSION}, whose server would carry every artifact "
            "byte. Upgrade MLflow (pip install 'mlflow>=3.18,<3.19'), or start without "
            f"{PRESIGNED_ONLY_OPTION} and unset {PRESIGNED_ONLY_ENV}."
        )


def mlflow_usage_error(plan: ServerPlan) -> str | None:
    """Why ``mlflow server`` would refuse the plan's arguments (its own click command parses
    them without running); None when it would take them."""
    from ws_artifacts._mlflow.server_app import server_usage_error

    return server_usage_error(plan.argv[4:])


def bootstrap_inner_app(plan: ServerPlan) -> None:
    """Do what ``mlflow server --app-name NAME`` does before starting workers, for the app the
    plan wraps (if any)."""
    inner = plan.env.get(INNER_APP_ENV)
    if inner:
        from ws_artifacts._mlflow.server_app import bootstrap_server_app

        bootstrap_server_app(inner)


#: How long uvicorn's supervisor waits for a worker to answer its health ping before killing
#: it (uvicorn's default: 5 s). A spawned worker answers only once it has imported uvicorn and
#: unpickled its configuration, which on a loaded machine takes longer than 5 s: the worker was
#: killed and restarted again and again, and nothing answered.
WORKER_HEALTHCHECK_SECONDS = 30
_HEALTHCHECK_OPTION = "--timeout-worker-healthcheck"


def _with_worker_healthcheck(extra: tuple[str, ...]) -> list[str]:
    """``extra`` with ``--uvicorn-opts`` carrying a longer worker health-check timeout, unless
    another server is chosen, the user set one, or this uvicorn has no such option."""
    args = list(extra)
    if any(a.startswith(("--gunicorn-opts", "--waitress-opts", "--dev")) for a in args):
        return args
    if not _uvicorn_has_healthcheck_option():
        return args
    ours = f"{_HEALTHCHECK_OPTION}={WORKER_HEALTHCHECK_SECONDS}"  # no space: copy-paste safe
    for index, arg in enumerate(args):
        if arg.startswith("--uvicorn-opts="):
            value = arg.split("=", 1)[1]
            if _HEALTHCHECK_OPTION not in value:
                args[index] = f"--uvicorn-opts={value} {ours}".replace("= ", "=")
            return args
        if arg == "--uvicorn-opts" and index + 1 < len(args):
            if _HEALTHCHECK_OPTION not in args[index + 1]:
                args[index + 1] = f"{args[index + 1]} {ours}".strip()
            return args
    return [*args, f"--uvicorn-opts={ours}"]


def _uvicorn_has_healthcheck_option() -> bool:
    import inspect

    try:
        from uvicorn import Config
    except ImportError:
        return False
    return "timeout_worker_healthcheck" in inspect.signature(Config).parameters


def _workspace_store_args(backend: str, on: bool, extra: tuple[str, ...]) -> list[str]:
    """``--workspace-store-uri ws+<backend>`` (the quarantining provider, docs/lifecycle.md),
    unless turned off, given explicitly, or the backend store is not a database."""
    from ws_artifacts.serving.provider import PREFIX

    given = any(
        a == "--workspace-store-uri" or a.startswith("--workspace-store-uri=") for a in extra
    )
    database = backend.split(":", 1)[0].split("+", 1)[0] in (
        "sqlite",
        "postgresql",
        "mysql",
        "mssql",
    )
    return ["--workspace-store-uri", PREFIX + backend] if on and database and not given else []


def create_app() -> Any:
    """The ``ws-artifacts`` MLflow app (called once in every server worker)."""
    if os.environ.get(NODELAY_ENV, "1") != "0":
        worker_process.enable_nodelay()
    worker_process.return_large_buffers()
    worker_process.log_to_stderr()
    worker_process.warm_up()
    inner = os.environ.get(INNER_APP_ENV, "").strip()
    app = _inner_app(inner)
    from ws_artifacts._mlflow.server_app import build_proxied_repository

    build_proxied_repository()  # else the first /server-info pays for it
    if os.environ.get(GUARD_ENV, "0") == "1":
        from ws_artifacts.serving import guard

        app = guard.install(app)
    app_middleware.install_serving(app)
    ready_dir = os.environ.get(READY_DIR_ENV, "")
    if ready_dir:
        app_middleware.report_ready(app, ready_dir)
    app_middleware.install_audit(app, inner)
    return app


def _inner_app(name: str) -> Any:
    if not name:
        from ws_artifacts._mlflow.server_app import default_server_app

        return default_server_app()
    from ws_artifacts._mlflow.server_app import find_server_app

    target = find_server_app(name)
    module, attr = target.split(":", 1)
    obj = getattr(importlib.import_module(module), attr.removesuffix("()"))
    return obj() if callable(obj) and not hasattr(obj, "router") and _is_factory(obj) else obj


def _is_factory(obj: Any) -> bool:
    import types

    return isinstance(obj, types.FunctionType)
