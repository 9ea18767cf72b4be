"""The audit module on its own: lines, errors, nesting, the middleware, concurrent appends."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ws_artifacts.core.errors import ConfigError, NotFoundError
from ws_artifacts.serving import audit, request_info


@pytest.fixture
def trail(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "logs" / "audit.jsonl"
    monkeypatch.setenv(audit.AUDIT_ENV, str(path))
    return path


def _lines(path: Path) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in json.loads(line).items() if k not in ("time", "duration_ms", "pid")}
        for line in path.read_text().splitlines()
    ]


class _Route:
    source = "file"


class _Target:
    uri = "s3://team-a-artifacts/workspaces/team-a/1/r/artifacts/m.pkl"
    workspace = "team-a"
    route = _Route()


@audit.audited("read")
def _read(fail: BaseException | None = None, nested: bool = False) -> str:
    audit.note(workspace="team-a", base="workspaces/team-a/1", path="r/artifacts/m.pkl")
    audit.note(_Target(), size=7)
    if nested:
        _read()
    if fail is not None:
        raise fail
    return "done"


BASE_LINE = {
    "workspace": "team-a",
    "operation": "read",
    "path": "workspaces/team-a/1/r/artifacts/m.pkl",
    "location": "s3://team-a-artifacts/workspaces/team-a/1/r/artifacts/m.pkl",
    "route_source": "file",
    "bytes": 7,
    "outcome": "ok",
    "error_code": None,
    "request_id": None,
    "user": None,
    "remote": None,
    "forwarded_for": None,
}


def test_one_line_per_operation_nested_calls_included(trail: Path) -> None:
    assert _read(nested=True) == "done"
    assert _lines(trail) == [{**BASE_LINE, "bytes": 14}]  # the inner call's bytes count too


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NotFoundError("gone"), "RESOURCE_DOES_NOT_EXIST"),
        (ConnectionResetError("client went away"), "INTERNAL_ERROR:ConnectionResetError"),
    ],
    ids=["ours", "builtin"],
)
def test_a_failure_is_an_error_line_with_its_code(
    trail: Path, error: BaseException, code: str
) -> None:
    with pytest.raises(type(error), match=str(error)):
        _read(fail=error)
    assert _lines(trail) == [{**BASE_LINE, "outcome": "error", "error_code": code}]


def test_off_by_default_writes_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(audit.AUDIT_ENV, raising=False)
    assert _read() == "done"
    assert not audit.enabled()
    assert list(tmp_path.iterdir()) == []


def test_a_path_that_cannot_be_opened_fails_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(audit.AUDIT_ENV, str(blocker / "audit.jsonl"))
    with pytest.raises(ConfigError, match=r"cannot open the audit file .* or '-' for standard"):
        audit.open_sink()


def _asgi(app: Any, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "headers": headers, "client": ("10.1.2.3", 5555)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def _inner(scope: Any, receive: Any, send: Any) -> Any:
    async def run() -> None:
        _read()
        await send({"type": "http.response.start", "status": 200, "headers": []})

    return run()


def _basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


@pytest.mark.parametrize(
    ("trusted", "user"), [(True, "alice"), (False, None)], ids=["basic-auth", "no-auth-app"]
)
def test_the_middleware_gives_lines_a_request_id_user_and_remote(
    trail: Path, trusted: bool, user: str | None
) -> None:
    app = request_info.AuditMiddleware(_inner, trust_basic_header=trusted)
    sent = _asgi(
        app,
        [
            (b"x-request-id", b"req-42"),
            (b"authorization", _basic("alice", "s3cret-pw")),
            (b"x-forwarded-for", b"203.0.113.9, 10.0.0.1"),
        ],
    )
    assert sent[0]["headers"] == [(b"x-request-id", b"req-42")]
    assert _lines(trail) == [
        {
            **BASE_LINE,
            "request_id": "req-42",
            "user": user,
            "remote": "10.1.2.3",
            "forwarded_for": "203.0.113.9",
        }
    ]
    assert "s3cret-pw" not in trail.read_text()


def test_an_unusable_request_id_is_replaced(trail: Path) -> None:
    sent = _asgi(
        request_info.AuditMiddleware(_inner), [(b"x-request-id", b"has spaces\nand lines")]
    )
    generated = dict(sent[0]["headers"])[b"x-request-id"].decode()
    assert len(generated) == 32
    assert _lines(trail)[0]["request_id"] == generated


WRITER = """
import sys
from ws_artifacts.serving import audit

@audit.audited("write")
def op(i):
    audit.note(workspace="team-a", base="workspaces/team-a", path="f" + str(i) + "x" * 3000)

for i in range(300):
    op(i)
"""


def test_processes_appending_at_once_never_interleave(trail: Path) -> None:
    """Lines longer than a pipe buffer, four processes: every line whole."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER], env={**_env(), audit.AUDIT_ENV: str(trail)}
        )
        for _ in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    lines = _lines(trail)
    assert len(lines) == 1200
    assert sorted(line["path"] for line in lines) == sorted(
        f"workspaces/team-a/f{i}" + "x" * 3000 for i in range(300) for _ in range(4)
    )


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("logs/audit.jsonl", "ABS"), ("-", "-"), (None, None)],
    ids=["relative-path", "stdout", "off"],
)
def test_server_audit_option_sets_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, given: str | None, expected: str | None
) -> None:
    from ws_artifacts.serving.server import plan_command

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(audit.AUDIT_ENV, raising=False)
    plan = plan_command(
        config_path=tmp_path / "c.yaml",
        data_dir=tmp_path,
        backend_store_uri=None,
        artifacts_destination=None,
        host="127.0.0.1",
        port=5000,
        workers=2,
        inner_app=None,
        guard=False,
        nodelay=True,
        audit=given,
    )
    want = str(tmp_path / "logs/audit.jsonl") if expected == "ABS" else expected
    assert plan.env.get(audit.AUDIT_ENV) == want
