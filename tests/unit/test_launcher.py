"""The launcher's parts in process: the worker health-check option it adds, the ready marks the
workers write, and how it waits for them."""

from __future__ import annotations

import asyncio
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ws_artifacts.serving.app_middleware import ReadyReporter
from ws_artifacts.serving.launcher import mark_ready, wait_until_ready
from ws_artifacts.serving.server import _with_worker_healthcheck

OURS = "--timeout-worker-healthcheck=30"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ((), [f"--uvicorn-opts={OURS}"]),
        (("--uvicorn-opts", "--log-level debug"), ["--uvicorn-opts", f"--log-level debug {OURS}"]),
        (("--uvicorn-opts=--log-level debug",), [f"--uvicorn-opts=--log-level debug {OURS}"]),
        (("--uvicorn-opts", "--timeout-worker-healthcheck 9"), None),
        (("--gunicorn-opts", "--timeout 60"), None),
        (("--waitress-opts", "--threads 4"), None),
    ],
    ids=["none", "user-opts", "user-opts-equals", "user-timeout", "gunicorn", "waitress"],
)
def test_worker_healthcheck_is_added_to_uvicorn_only(
    extra: tuple[str, ...], expected: list[str] | None
) -> None:
    assert _with_worker_healthcheck(extra) == (list(extra) if expected is None else expected)


def test_a_worker_marks_itself_ready_after_lifespan_startup(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        assert (await receive())["type"] == "lifespan.startup"
        seen.append(os.listdir(tmp_path))  # nothing marked before start-up completes
        await send({"type": "lifespan.startup.complete"})

    async def main() -> None:
        sent: list[str] = []
        received = [{"type": "lifespan.startup"}]

        async def receive() -> dict[str, str]:
            return received.pop(0)

        async def send(message: dict[str, str]) -> None:
            sent.append(message["type"])

        reporter = ReadyReporter(app, str(tmp_path))
        await reporter({"type": "lifespan"}, receive, send)
        await reporter._task
        assert sent == ["lifespan.startup.complete"]

    asyncio.run(main())
    assert seen == [[]]
    assert os.listdir(tmp_path) == [str(os.getpid())]


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def health() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/health"
    server.shutdown()


def test_ready_needs_every_worker_and_an_answer(tmp_path: Path, health: str) -> None:
    mark_ready(str(tmp_path))
    (tmp_path / ".123.tmp").write_text("half written")
    checks = iter([True, True, False])
    assert wait_until_ready(tmp_path, 2, health, lambda: next(checks)) is False
    (tmp_path / "99999999").write_text("another worker")
    assert wait_until_ready(tmp_path, 2, health, lambda: True) is True


def test_ready_waits_for_the_server_to_answer(tmp_path: Path) -> None:
    mark_ready(str(tmp_path))
    checks = iter([True, True, False])
    assert wait_until_ready(tmp_path, 1, "http://127.0.0.1:9/health", lambda: next(checks)) is False
