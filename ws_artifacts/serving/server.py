"""``ws-artifacts server``: a workspace-enabled ``mlflow server`` with routed artifacts.

The command runs ``mlflow server --enable-workspaces --serve-artifacts --app-name ws-artifacts``.
The ``ws-artifacts`` app (an ``mlflow.app`` entry point, :func:`create_app`) runs in every uvicorn
worker. It:

* turns Nagle's algorithm off on accepted connections. With more than one worker, uvicorn binds
  its socket with protocol 0, and asyncio sets TCP_NODELAY only on sockets whose protocol is
  IPPROTO_TCP, so every reused-connection response with a body stalls ~40 ms on delayed ACKs;
* optionally installs the request guard (``WS_ARTIFACTS_GUARD=1``);
* wraps another ``mlflow.app`` (``WS_ARTIFACTS_INNER_APP``, e.g. ``basic-auth``) instead of
  replacing it;
* with the audit trail on (``WS_ARTIFACTS_AUDIT``), opens its file and installs the outermost
  ASGI middleware that gives each request an id, a remote address and a user for the lines.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import socket
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ws_artifacts.serving.launcher import READY_DIR_ENV

__all__ = [
    "ServerPlan",
    "bootstrap_inner_app",
    "check_presigned_only_supported",
    "create_app",
    "default_config_path",
    "enable_nodelay",
    "mlflow_usage_error",
    "plan_command",
]

_logger = logging.getLogger(__name__)

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
        *_workspace_store_args(backend, workspace_provider, extra),
        *([PRESIGNED_ONLY_OPTION] if presigned_only else []),
        *_with_worker_healthcheck(extra),
    ]
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
    return ServerPlan(
        argv=argv,
        env=env,
        url=f"http://{host}:{port}",
        destination=destination,
        backend_store_uri=backend,
        config_path=config_path,
        extra=list(extra),
    )


def check_presigned_only_supported() -> None:
    """Fail fast when this MLflow cannot serve presigned-only: an older ``mlflow server`` would
    ignore the variable and carry every byte, which is what the operator asked it not to do."""
    from ws_artifacts import _mlflow
    from ws_artifacts.core.errors import ConfigError

    if not _mlflow.HAS_PRESIGNED_ONLY:
        raise ConfigError(
            f"{PRESIGNED_ONLY_OPTION} (or {PRESIGNED_ONLY_ENV}=true) needs MLflow 3.18 or newer; "
            f"this is MLflow {_mlflow.MLFLOW_VERSION}, whose server would carry every artifact "
            "byte. Upgrade MLflow (pip install 'mlflow>=3.18,<3.19'), or start without "
            f"{PRESIGNED_ONLY_OPTION} and unset {PRESIGNED_ONLY_ENV}."
        )


def mlflow_usage_error(plan: ServerPlan) -> str | None:
    """Why ``mlflow server`` would refuse the plan's arguments (its own click command parses
    them without running); None when it would take them."""
    from ws_artifacts._mlflow import server_usage_error

    return server_usage_error(plan.argv[4:])


def bootstrap_inner_app(plan: ServerPlan) -> None:
    """Do what ``mlflow server --app-name NAME`` does before starting workers, for the app the
    plan wraps (if any)."""
    inner = plan.env.get(INNER_APP_ENV)
    if inner:
        from ws_artifacts._mlflow import bootstrap_server_app

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


def enable_nodelay() -> None:
    """Set TCP_NODELAY on every accepted TCP connection of this process (see module doc)."""
    base_events: Any = importlib.import_module("asyncio.base_events")  # a private hook
    original = base_events._set_nodelay
    if getattr(original, "_ws_artifacts", False):
        return

    def set_nodelay(sock: socket.socket) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    set_nodelay._ws_artifacts = True  # type: ignore[attr-defined]
    base_events._set_nodelay = set_nodelay


def create_app() -> Any:
    """The ``ws-artifacts`` MLflow app (called once in every server worker)."""
    if os.environ.get(NODELAY_ENV, "1") != "0":
        enable_nodelay()
    _return_large_buffers()
    _log_to_stderr()
    _warm_up()
    inner = os.environ.get(INNER_APP_ENV, "").strip()
    app = _inner_app(inner)
    from ws_artifacts._mlflow import build_proxied_repository

    build_proxied_repository()  # else the first /server-info pays for it
    if os.environ.get(GUARD_ENV, "0") == "1":
        from ws_artifacts.serving import guard

        app = guard.install(app)
    _install_serving(app)
    ready_dir = os.environ.get(READY_DIR_ENV, "")
    if ready_dir:
        _report_ready(app, ready_dir)
    _install_audit(app, inner)
    return app


def _install_serving(app: Any) -> None:
    """Count per workspace (``/metrics``, docs/metrics.md) and judge an upload's declared size
    against its quota before its body is read."""
    from ws_artifacts.serving import metrics as serving_metrics

    serving_metrics.start()
    if not hasattr(app, "user_middleware"):
        return
    from starlette.middleware import Middleware

    # Innermost, as the guard's: after MLflow's authentication and workspace middleware, so an
    # anonymous caller neither scrapes /metrics nor learns a workspace's quota from a refusal.
    app.user_middleware.append(Middleware(DeclaredLength))
    if not os.environ.get(serving_metrics.MLFLOW_EXPORTER_ENV):  # else MLflow's /metrics
        app.user_middleware.append(Middleware(serving_metrics.MetricsEndpoint))


#: The proxied upload endpoints (``PUT``), whose Content-Length is the file's size.
_UPLOAD_PATHS = (
    "/api/2.0/mlflow-artifacts/artifacts/",
    "/ajax-api/2.0/mlflow-artifacts/artifacts/",
)


class DeclaredLength:
    """ASGI middleware: a proxied upload's ``Content-Length``, handed to the quota
    (:func:`ws_artifacts.serving.quota.declare_length`) for the request's duration."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        length = _declared_length(scope)
        if length is None:
            await self.app(scope, receive, send)
            return
        from ws_artifacts.serving import quota

        refusal = await asyncio.to_thread(_refuse_declared, scope, length)  # may list
        if refusal is not None:  # answered before a byte of the body is read
            body = refusal.serialize_as_json().encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
            status = refusal.get_http_status_code()
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        token = quota.declare_length(length)
        try:
            await self.app(scope, receive, send)
        finally:
            quota.undeclare_length(token)


def _refuse_declared(scope: dict[str, Any], length: int) -> Any:
    """The quota's refusal of this upload, judged from its Content-Length (MLflow 3.10 reads
    the whole body before the repository sees it); None: let it through."""
    from ws_artifacts._mlflow import proxied_repository
    from ws_artifacts.core.paths import DEFAULT_WORKSPACE, WORKSPACES_SEGMENT
    from ws_artifacts.serving.repository import WorkspaceArtifactRepository

    headers = dict(scope.get("headers", ()))
    workspace = headers.get(b"x-mlflow-workspace", b"").decode("latin-1").strip()
    path = str(scope.get("path", ""))
    for prefix in _UPLOAD_PATHS:
        path = path.removeprefix(prefix)
    if not workspace or workspace == DEFAULT_WORKSPACE:
        return None  # MLflow decides these paths; the upload itself is judged as it arrives
    own = f"{WORKSPACES_SEGMENT}/{workspace}/"
    if path.startswith(f"{WORKSPACES_SEGMENT}/"):  # already scoped (MLflow 3.10's client)
        if not path.startswith(own):
            return None  # another workspace's path: MLflow refuses it
        path = path.removeprefix(own)
    try:
        repo = proxied_repository()
    except Exception:  # never fail an upload for the early look
        _logger.debug("no proxied repository for the early quota check", exc_info=True)
        return None
    if not isinstance(repo, WorkspaceArtifactRepository):
        return None
    pinned = repo.for_workspace(workspace)
    return pinned.refuse_declared_upload(own + path, length)


def _declared_length(scope: dict[str, Any]) -> int | None:
    if scope.get("type") != "http" or scope.get("method") != "PUT":
        return None
    path = str(scope.get("path", ""))
    if not any(path.startswith(p) for p in _UPLOAD_PATHS):
        return None
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


def _report_ready(app: Any, directory: str) -> None:
    """Mark this worker ready for ``ws-artifacts server`` once it accepts requests: under
    uvicorn, when its application startup has completed; a WSGI app (gunicorn) right away."""
    from ws_artifacts.serving.launcher import mark_ready

    if not hasattr(app, "add_middleware"):
        mark_ready(directory)
        return
    app.add_middleware(ReadyReporter, directory=directory)


class ReadyReporter:
    """ASGI middleware: after ``lifespan.startup.complete``, mark the worker ready.

    uvicorn starts serving the listening socket right after startup completes, in the same
    coroutine and without waiting on anything (``loop.create_server(sock=...)``); the mark is
    written from a task that first lets the event loop run that far.
    """

    _YIELDS = 3

    def __init__(self, app: Any, directory: str) -> None:
        self.app = app
        self.directory = directory
        self._task: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_then_mark(message: dict[str, Any]) -> None:
            await send(message)
            if message.get("type") == "lifespan.startup.complete":
                self._task = asyncio.get_running_loop().create_task(self._mark())

        await self.app(scope, receive, send_then_mark)

    async def _mark(self) -> None:
        from ws_artifacts.serving.launcher import mark_ready

        for _ in range(self._YIELDS):
            await asyncio.sleep(0)
        await asyncio.to_thread(mark_ready, self.directory)


def _install_audit(app: Any, inner: str) -> None:
    """Open the audit file (a bad path fails the start) and put the request middleware
    outermost, so every request has an id before any other app sees it."""
    from ws_artifacts.serving import audit

    if not audit.enabled():
        return
    audit.open_sink()
    if not hasattr(app, "user_middleware"):
        _logger.warning(
            "ws-artifacts audit: %s is not an ASGI app; lines carry no request id, user or "
            "remote address",
            type(app).__name__,
        )
        return
    from starlette.middleware import Middleware

    app.user_middleware.insert(
        0,
        Middleware(
            audit.AuditMiddleware,
            trust_basic_header=inner in audit.BASIC_AUTH_APPS,
        ),
    )


def _return_large_buffers() -> None:
    """Pin glibc's mmap threshold at 4 MiB and its trim threshold at 8 MiB in this worker.

    Left dynamic, glibc raises the mmap threshold after large buffers are freed, so later
    8 MiB buffers come from the heaps and the worker keeps that memory (measured: +190 MB that
    never went back). Pinned at 4 MiB, below S3's 5 MiB minimum part, every part-sized buffer
    is mapped and unmapped. Not lower: the 1 MiB read buffers of a download would then be
    mapped and faulted in one by one, and pinning also freezes the trim threshold at 128 KiB,
    so the heap would shrink and regrow on every free (together, measured: a 256 MiB proxied
    download took 1.8x as long). Hence the 8 MiB trim threshold.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(-3, 4 * 1024 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 8 * 1024 * 1024)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to pin
        return


def _log_to_stderr() -> None:
    """Send ws-artifacts' INFO and above to this worker's stderr (the server's log): a reload
    refused or a route dropped must be seen by the operator. A library only adds a NullHandler;
    here we are the application, so the handler is ours to add (once)."""
    logger = logging.getLogger("ws_artifacts")
    if any(getattr(handler, "_ws_artifacts", False) for handler in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
    )
    handler._ws_artifacts = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _warm_up() -> None:
    """Import the repository and its backends and load the configuration now, before this
    worker accepts connections: otherwise the first request (usually the client's
    /server-info probe, with a 3 s timeout) pays for it, and a bad file fails late."""
    from ws_artifacts.serving.live_config import config_from_env

    config_from_env()
    import boto3  # noqa: F401 - the slowest import of all


def _inner_app(name: str) -> Any:
    if not name:
        from ws_artifacts._mlflow import default_server_app

        return default_server_app()
    from ws_artifacts._mlflow import find_server_app

    target = find_server_app(name)
    module, attr = target.split(":", 1)
    obj = getattr(importlib.import_module(module), attr.removesuffix("()"))
    return obj() if callable(obj) and not hasattr(obj, "router") and _is_factory(obj) else obj


def _is_factory(obj: Any) -> bool:
    import types

    return isinstance(obj, types.FunctionType)
