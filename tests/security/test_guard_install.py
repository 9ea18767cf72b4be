"""How the guard attaches to an app, in process on fresh apps (MLflow's own is left alone)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from flask import Flask

from ws_artifacts.serving import guard
from ws_artifacts.serving.guard._server import flask_guard
from ws_artifacts.serving.guard.asgi import OtlpGuard
from ws_artifacts.serving.guard.skills import SkillSourceGuard


class Wsgi:
    """Stands in for MLflow's WSGI mount: an ASGI app holding the Flask app as ``.app``."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        raise NotImplementedError


def _hooks(app: Flask) -> list[Any]:
    return list(app.before_request_funcs.get(None, []))


def test_a_flask_app_gets_one_hook_after_the_existing_ones() -> None:
    app = Flask("mlflow-like")

    def authenticate() -> None:
        return None

    app.before_request(authenticate)
    assert guard.install(app) is app
    assert guard.install(app) is app  # idempotent
    assert _hooks(app) == [authenticate, flask_guard]


def test_a_fastapi_app_gets_the_hook_on_its_mounted_flask_app_and_an_innermost_middleware() -> None:
    flask_app = Flask("mounted")
    app = FastAPI()

    @app.middleware("http")
    async def workspace(request: Any, call_next: Any) -> Any:
        return await call_next(request)

    app.mount("/", Wsgi(flask_app))
    assert guard.install(app) is app
    guard.install(app)
    assert _hooks(flask_app) == [flask_guard]
    assert [m.cls for m in app.user_middleware][-2:] == [OtlpGuard, SkillSourceGuard]
    assert sum(m.cls is OtlpGuard for m in app.user_middleware) == 1
    assert sum(m.cls is SkillSourceGuard for m in app.user_middleware) == 1


def test_other_apps_are_refused() -> None:
    with pytest.raises(TypeError, match="takes MLflow's Flask or FastAPI app, not object"):
        guard.install(object())
