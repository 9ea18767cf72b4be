"""What the ``ws-artifacts`` app adds to MLflow's server (``/metrics``, the early quota check on
an upload's Content-Length) sits behind the server's authentication, as the guard does: an
anonymous caller neither scrapes workspace names and quota use nor gets a workspace's quota
figures from a refusal. The attack: a server with an authentication middleware (as
``--app-name basic-auth`` installs), scraped and probed without logging in.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ws_artifacts.serving import app_middleware
from ws_artifacts.serving import metrics as serving_metrics
from ws_artifacts.serving.declared_length import DeclaredLength

UPLOAD = "/api/2.0/mlflow-artifacts/artifacts/workspaces/team-b/1/run/artifacts/x.bin"


def _app_with_auth(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    app = FastAPI()

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Any:
        if request.headers.get("authorization") != "Basic b2s6b2s=":
            return JSONResponse({"error_code": "UNAUTHENTICATED"}, status_code=401)
        return await call_next(request)

    @app.put(UPLOAD)
    async def upload() -> dict[str, str]:
        return {}

    app_middleware.install_serving(app)
    return app


def _status(app: Any, method: str, path: str, headers: dict[str, str]) -> int:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 5000),
    }
    asyncio.run(app(scope, receive, send))
    return int(next(m["status"] for m in sent if m["type"] == "http.response.start"))


def test_metrics_need_the_servers_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    app = _app_with_auth(monkeypatch, tmp_path)
    assert _status(app, "GET", "/metrics", {}) == 401
    assert _status(app, "GET", "/metrics", {"Authorization": "Basic b2s6b2s="}) == 200


def test_an_anonymous_oversized_upload_is_refused_by_the_login_not_the_quota(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    app = _app_with_auth(monkeypatch, tmp_path)
    headers = {"Content-Length": str(10**12), "X-MLflow-Workspace": "team-b"}
    assert _status(app, "PUT", UPLOAD, headers) == 401
    # Our middleware is innermost: after the login (and MLflow's workspace middleware).
    order = [m.cls for m in app.user_middleware]
    assert order.index(DeclaredLength) > 0
    assert order[-2:] == [DeclaredLength, serving_metrics.MetricsEndpoint]
