"""The API guard through real servers: ``--app-name ws-guard`` refuses, before anything is
stored, every location outside the caller's workspace on every route that sets one, and lets
the caller's own locations through; ``--app-name ws-guard-basic-auth`` authenticates first.
"""

from __future__ import annotations

import base64
import gzip
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pytest
from packaging.version import Version

from tests.security.world import http_json, raw_request
from tests.support.servers import AUTH_INI, MlflowServer, server_env, start_mlflow
from tests.support.workspaces import in_workspace, unique

pytestmark = pytest.mark.integration

DENIED = "PERMISSION_DENIED"


def _start(workdir: Path, config: Path, app: str, **env: str) -> MlflowServer:
    server = start_mlflow(
        workdir,
        args=[
            "--enable-workspaces",
            "--serve-artifacts",
            "--artifacts-destination",
            "ws-s3://root",
            "--app-name",
            app,
        ],
        env={**server_env(config), **env},
        workers=1,
    )
    return MlflowServer(server, config)


@dataclass
class Guarded:
    server: MlflowServer
    ids: dict[str, str]

    def call(
        self, method: str, path: str, payload: Any, workspace: str = "team-a"
    ) -> tuple[int, dict[str, Any]]:
        status, body = http_json(self.server, method, path, workspace, payload)
        return status, json.loads(body or b"{}")


@pytest.fixture(scope="module")
def servers(
    session_dir: Path, routed_config_file: Path, s3: Any
) -> Iterator[dict[str, MlflowServer]]:
    """Both guarded servers, started side by side (most of a start is waiting on imports)."""
    workdir = session_dir / "guarded-auth"
    workdir.mkdir()
    ini = workdir / "auth.ini"
    ini.write_text(AUTH_INI.format(db=workdir / "auth.db", password=ADMIN_PASSWORD))
    auth_env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": uuid.uuid4().hex,
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        plain = pool.submit(_start, session_dir / "guarded", routed_config_file, "ws-guard")
        auth = pool.submit(_start, workdir, routed_config_file, "ws-guard-basic-auth", **auth_env)
        started = {"ws-guard": plain.result(), "ws-guard-basic-auth": auth.result()}
    yield started
    for server in started.values():
        server.server.stop()


@pytest.fixture(scope="module")
def guarded(servers: dict[str, MlflowServer]) -> Guarded:
    server = servers["ws-guard"]
    client = server.client()
    for name in ("team-a", "team-b"):
        client.create_workspace(name)
    ids: dict[str, str] = {}
    for short, workspace in (("a", "team-a"), ("b", "team-b")):
        with in_workspace(workspace):
            ws_client = server.client()
            exp = ws_client.create_experiment(unique("guard"))
            ids[f"{short}_exp"], ids[f"{short}_run"] = exp, ws_client.create_run(exp).info.run_id
    return Guarded(server, ids)


def _trace(guarded: Guarded, workspace: str = "team-a") -> str:
    status, body = guarded.call(
        "POST", "/api/3.0/mlflow/traces", _trace_body(guarded, {}), workspace
    )
    assert status == 200, body
    return str(body["trace"]["trace_info"]["trace_id"])


def _trace_body(guarded: Guarded, tags: dict[str, str]) -> dict[str, Any]:
    return {
        "trace": {
            "trace_info": {
                "trace_id": f"tr-{uuid.uuid4().hex}",
                "trace_location": {
                    "type": "MLFLOW_EXPERIMENT",
                    "mlflow_experiment": {"experiment_id": guarded.ids["a_exp"]},
                },
                "request_time": "2026-01-01T00:00:00Z",
                "state": "OK",
                "tags": tags,
            }
        }
    }


def _trace_tags(guarded: Guarded, trace_id: str) -> dict[str, str]:
    status, body = guarded.call("GET", f"/api/3.0/mlflow/traces/{trace_id}", None)
    assert status == 200, body
    return dict(body["trace"]["trace_info"].get("tags", {}))


def _refused(status: int, body: dict[str, Any], match: str) -> None:
    assert (status, body.get("error_code")) == (403, DENIED), body
    assert match in body["message"], body["message"]


THEIRS = "ws-s3://root/workspaces/team-b/{b_exp}/{b_run}/artifacts"
OWN = "ws-s3://root/workspaces/team-a/{a_exp}/{a_run}/artifacts"


# -- model versions ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "match"),
    [
        (THEIRS, "it is in workspace 'team-b', not 'team-a'"),
        ("s3://team-b-artifacts/workspaces/team-b/x", "not inside a place of workspace 'team-a'"),
        ("mlflow-artifacts:/workspaces/team-b/{b_exp}", "it is in workspace 'team-b'"),
        ("runs:/{b_run}/model", "does not resolve in workspace 'team-a'"),
        ("ws-file:///etc", "in workspace 'default', not 'team-a'"),
        ("ws-s3://root/workspaces/team-a/%2e%2e/team-b/x", "percent-escaped"),
    ],
    ids=[
        "ws-uri-of-other",
        "raw-other-bucket",
        "proxied-other",
        "run-of-other",
        "server-file",
        "encoded-dotdot",
    ],
)
def test_model_version_source_outside_is_refused_and_not_stored(
    guarded: Guarded, source: str, match: str
) -> None:
    name = unique("guard-model")
    assert (
        guarded.call("POST", "/api/2.0/mlflow/registered-models/create", {"name": name})[0] == 200
    )
    payload = {"name": name, "source": source.format(**guarded.ids)}
    if source.startswith("runs:"):
        payload["run_id"] = guarded.ids["b_run"]
    _refused(*guarded.call("POST", "/api/2.0/mlflow/model-versions/create", payload), match)
    status, body = guarded.call("GET", f"/api/2.0/mlflow/registered-models/get?name={name}", None)
    assert (status, body["registered_model"].get("latest_versions")) == (200, None)


@pytest.mark.parametrize(
    ("route", "encode"),
    [
        ("/ajax-api/2.0/mlflow/model-versions/create", False),
        ("/api/2.0/mlflow/model-versions/create", True),
    ],
    ids=["ajax-route", "double-encoded-json"],
)
def test_model_version_route_and_encoding_variants_are_refused(
    guarded: Guarded, route: str, encode: bool
) -> None:
    name = unique("guard-model")
    guarded.call("POST", "/api/2.0/mlflow/registered-models/create", {"name": name})
    payload: Any = {"name": name, "source": THEIRS.format(**guarded.ids)}
    _refused(*guarded.call("POST", route, json.dumps(payload) if encode else payload), "team-b")


@pytest.mark.parametrize(
    "source",
    [OWN, "runs:/{a_run}/model", "s3://team-a-artifacts/workspaces/team-a/m"],
    ids=["own-ws-uri", "own-run", "own-raw-route"],
)
def test_model_version_source_inside_is_accepted(guarded: Guarded, source: str) -> None:
    name = unique("guard-model")
    guarded.call("POST", "/api/2.0/mlflow/registered-models/create", {"name": name})
    payload = {"name": name, "source": source.format(**guarded.ids)}
    if source.startswith("runs:"):
        payload["run_id"] = guarded.ids["a_run"]
    status, body = guarded.call("POST", "/api/2.0/mlflow/model-versions/create", payload)
    assert (status, body["model_version"]["version"]) == (200, "1"), body


# -- traces -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("route", "key"),
    [
        ("/api/2.0/mlflow/traces/{tid}/tags", "mlflow.artifactLocation"),
        ("/api/3.0/mlflow/traces/{tid}/tags", "mlflow.artifactLocation"),
        ("/ajax-api/3.0/mlflow/traces/{tid}/tags", "mlflow.artifactLocation"),
        ("/api/3.0/mlflow/traces/{tid}/tags", "mlflow.trace.archiveLocation"),
    ],
    ids=["set-tag-v2", "set-tag-v3", "set-tag-ajax", "archive-location"],
)
def test_trace_location_tag_outside_is_refused(guarded: Guarded, route: str, key: str) -> None:
    trace_id = _trace(guarded)
    before = _trace_tags(guarded, trace_id)
    payload = {"key": key, "value": THEIRS.format(**guarded.ids)}
    _refused(*guarded.call("PATCH", route.format(tid=trace_id), payload), f"trace tag {key}")
    assert _trace_tags(guarded, trace_id) == before


@pytest.mark.mlflow_differs
def test_trace_location_tag_inside_is_accepted(guarded: Guarded) -> None:
    """The guard lets a location inside the workspace through; MLflow 3.18's handler then
    refuses to change the tag at all (it is immutable there), so the tag keeps its value."""
    trace_id = _trace(guarded)
    before = _trace_tags(guarded, trace_id)
    own = f"ws-s3://root/workspaces/team-a/{guarded.ids['a_exp']}/traces/{trace_id}/artifacts"
    payload = {"key": "mlflow.artifactLocation", "value": own}
    status, body = guarded.call("PATCH", f"/api/3.0/mlflow/traces/{trace_id}/tags", payload)
    if Version(mlflow.__version__) >= Version("3.18"):
        assert (status, body["message"]) == (
            400,
            "Tag 'mlflow.artifactLocation' is immutable and cannot be set on a trace.",
        )
        assert _trace_tags(guarded, trace_id) == before
    else:
        assert status == 200
        assert _trace_tags(guarded, trace_id)["mlflow.artifactLocation"] == own


def test_start_trace_v3_with_a_location_tag_is_refused(guarded: Guarded) -> None:
    body = _trace_body(guarded, {"mlflow.artifactLocation": THEIRS.format(**guarded.ids)})
    _refused(
        *guarded.call("POST", "/api/3.0/mlflow/traces", body), "trace tag mlflow.artifactLocation"
    )
    trace_id = body["trace"]["trace_info"]["trace_id"]
    assert guarded.call("GET", f"/api/3.0/mlflow/traces/{trace_id}", None)[0] == 404


@pytest.mark.parametrize("method", ["POST", "PATCH"], ids=["start-trace-v2", "end-trace-v2"])
def test_v2_trace_tags_with_a_location_are_refused(guarded: Guarded, method: str) -> None:
    tags = [{"key": "mlflow.artifactLocation", "value": THEIRS.format(**guarded.ids)}]
    if method == "POST":
        route, payload = (
            "/api/2.0/mlflow/traces",
            {"experiment_id": guarded.ids["a_exp"], "timestamp_ms": 1, "tags": tags},
        )
    else:
        route, payload = (
            f"/api/2.0/mlflow/traces/{_trace(guarded)}",
            {"timestamp_ms": 2, "status": "OK", "tags": tags},
        )
    _refused(*guarded.call(method, route, payload), "trace tag mlflow.artifactLocation")


def _otlp(trace_id: bytes, attributes: dict[str, str], json_form: bool = False) -> bytes:
    from google.protobuf.json_format import MessageToJson
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    now = time.time_ns()
    span = Span(
        trace_id=trace_id,
        span_id=uuid.uuid4().bytes[:8],
        name="root",
        start_time_unix_nano=now,
        end_time_unix_nano=now + 1000,
        attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attributes.items()],
    )
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])]
    )
    if not json_form:
        return request.SerializeToString()
    data = json.loads(MessageToJson(request))  # bytes as base64; OTLP JSON wants hex ids
    for field in ("traceId", "spanId"):
        spans = data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        spans[field] = base64.b64decode(spans[field]).hex()
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("form", "encoding"),
    [("protobuf", ""), ("json", ""), ("protobuf", "gzip")],
    ids=["otlp-protobuf", "otlp-json", "otlp-gzip"],
)
def test_otlp_trace_tag_attribute_with_a_location_is_refused(
    guarded: Guarded, form: str, encoding: str
) -> None:
    trace_id = uuid.uuid4().bytes
    body = _otlp(
        trace_id,
        {"mlflow.traceTag.mlflow.artifactLocation": THEIRS.format(**guarded.ids)},
        json_form=form == "json",
    )
    headers = {
        "Content-Type": "application/json" if form == "json" else "application/x-protobuf",
        "x-mlflow-experiment-id": guarded.ids["a_exp"],
    }
    if encoding:
        body, headers["Content-Encoding"] = gzip.compress(body), encoding
    status, answer = raw_request(guarded.server, "POST", "/v1/traces", "team-a", body, headers)
    if form == "json" and _OLD_MLFLOW:  # MLflow 3.10 reads no JSON OTLP: refused as malformed
        assert (status, json.loads(answer)["message"]) == (400, "Invalid OpenTelemetry format")
    else:
        _refused(status, json.loads(answer), "trace tag mlflow.artifactLocation (OTLP)")
    assert guarded.call("GET", f"/api/3.0/mlflow/traces/tr-{trace_id.hex()}", None)[0] == 404


def test_otlp_export_without_a_location_goes_through(guarded: Guarded) -> None:
    trace_id = uuid.uuid4().bytes
    headers = {
        "Content-Type": "application/x-protobuf",
        "x-mlflow-experiment-id": guarded.ids["a_exp"],
    }
    body = _otlp(trace_id, {"mlflow.traceTag.team": "a"})
    status, answer = raw_request(guarded.server, "POST", "/v1/traces", "team-a", body, headers)
    assert status == 200, answer
    tags = _trace_tags(guarded, f"tr-{trace_id.hex()}")
    # MLflow 3.10 does not turn mlflow.traceTag.* span attributes into trace tags at all.
    assert tags.get("team") == (None if _OLD_MLFLOW else "a")


# -- workspaces, experiments, runs -------------------------------------------------------
def test_workspace_roots_outside_are_refused(guarded: Guarded) -> None:
    name = unique("guard-ws")
    theirs = {"name": name, "default_artifact_root": "s3://team-b-artifacts/workspaces/team-b"}
    _refused(
        *guarded.call("POST", "/api/3.0/mlflow/workspaces", theirs, "default"),
        "default_artifact_root",
    )
    assert guarded.call("GET", f"/api/3.0/mlflow/workspaces/{name}", None, "default")[0] == 404
    own = {"name": name, "default_artifact_root": f"ws-s3://root/workspaces/{name}"}
    assert guarded.call("POST", "/api/3.0/mlflow/workspaces", own, "default")[0] == 201
    for payload in (
        {"defaultArtifactRoot": "ws-s3://root/workspaces/team-b"},
        {"trace_archival_config": {"location": "s3://team-b-artifacts/archive"}},
    ):
        status, body = guarded.call(
            "PATCH", f"/api/3.0/mlflow/workspaces/{name}", payload, "default"
        )
        _refused(status, body, f"workspace '{name}'")
    status, body = guarded.call("GET", f"/api/3.0/mlflow/workspaces/{name}", None, "default")
    assert body["workspace"]["default_artifact_root"] == f"ws-s3://root/workspaces/{name}"


def test_workspace_name_with_a_trailing_newline_is_refused(guarded: Guarded) -> None:
    status, body = guarded.call(
        "POST", "/api/3.0/mlflow/workspaces", {"name": "team-b\n"}, "default"
    )
    assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE"), body


@pytest.mark.parametrize(
    ("route", "payload", "match"),
    [
        (
            "/api/2.0/mlflow/experiments/create",
            {"name": "x", "artifact_location": "s3://team-b-artifacts/workspaces/team-b"},
            "artifact_location",
        ),
        (
            "/api/2.0/mlflow/runs/create",
            {"experiment_id": "0", "artifact_uri": "ws-s3://root/workspaces/team-b/1"},
            "run artifact_uri",
        ),
    ],
    ids=["experiment-artifact-location", "run-artifact-uri"],
)
def test_other_locations_are_refused(
    guarded: Guarded, route: str, payload: dict[str, Any], match: str
) -> None:
    _refused(*guarded.call("POST", route, payload), match)


# -- composed with basic-auth ------------------------------------------------------------
@pytest.fixture(scope="module")
def guarded_auth(servers: dict[str, MlflowServer]) -> Guarded:
    server = servers["ws-guard-basic-auth"]
    payload = json.dumps({"name": "team-a"}).encode()
    status, body = raw_request(
        server, "POST", "/api/3.0/mlflow/workspaces", "default", payload, _auth(ADMIN_PASSWORD)
    )
    assert status == 201, body
    return Guarded(server, {})


ADMIN_PASSWORD = f"Adm1n-{uuid.uuid4().hex}"
_OLD_MLFLOW = Version(mlflow.__version__) < Version("3.11")


def _auth(password: str) -> dict[str, str]:
    token = base64.b64encode(f"admin:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("password", "source", "expected"),
    [
        (None, "s3://team-b-artifacts/x", 401),
        ("wrong-password", "s3://team-b-artifacts/x", 401),
        (ADMIN_PASSWORD, "s3://team-b-artifacts/x", 403),
        (ADMIN_PASSWORD, "s3://team-a-artifacts/workspaces/team-a/m", 200),
    ],
    ids=["anonymous-is-asked-to-log-in", "wrong-password", "admin-outside-refused", "admin-inside"],
)
def test_guard_runs_after_basic_auth(
    guarded_auth: Guarded, password: str | None, source: str, expected: int
) -> None:
    name = unique("auth-model")
    status, _ = raw_request(
        guarded_auth.server,
        "POST",
        "/api/2.0/mlflow/registered-models/create",
        "team-a",
        json.dumps({"name": name}).encode(),
        _auth(ADMIN_PASSWORD),
    )
    assert status == 200
    headers = _auth(password) if password else {"Content-Type": "application/json"}
    status, body = raw_request(
        guarded_auth.server,
        "POST",
        "/api/2.0/mlflow/model-versions/create",
        "team-a",
        json.dumps({"name": name, "source": source}).encode(),
        headers,
    )
    assert status == expected, body
    if expected == 403:
        assert json.loads(body)["error_code"] == DENIED


# -- skill versions (MLflow 3.18) ------------------------------------------------------------
SKILL_TOKEN = "0123456789abcdef0123456789abcdef"
SKILLS_API = "/api/3.0/mlflow/skills"


@pytest.mark.mlflow_min("3.18")
@pytest.mark.parametrize(
    ("route", "source"),
    [
        (SKILLS_API + "/{name}/versions", f"ws-s3://root/workspaces/team-b/skills/x/{SKILL_TOKEN}"),
        (SKILLS_API + "/{name}/versions", "ws-s3://team-b-artifacts/workspaces/team-b/x.zip"),
        ("/ajax-api/3.0/mlflow/skills/{name}/versions", "s3://team-b-artifacts/workspaces/x.zip"),
        (SKILLS_API + "/@acme/{name}/versions", "mlflow-artifacts:/workspaces/team-b/skills/x"),
        (SKILLS_API + "/{name}/versions", "runs:/{b_run}/skill"),
        (SKILLS_API + "/bulk-register", "s3://team-b-artifacts/workspaces/team-b/x.zip"),
    ],
    ids=["ws-uri-other-workspace", "ws-uri-other-bucket", "s3-other-bucket-ajax",
         "mlflow-artifacts-organization", "runs-of-other-workspace", "bulk-register"],
)  # fmt: skip
def test_skill_version_source_in_another_workspace_is_refused(
    guarded: Guarded, route: str, source: str
) -> None:
    """A skill version may not point at another workspace's place: the guard refuses it before
    MLflow reads the request, and no skill or version is created."""
    name = unique("sk")
    source = source.format(**guarded.ids)
    path = route.format(name=name)
    version = {"source": source, "digest": "0" * 64}
    if route.endswith("bulk-register"):
        payload: dict[str, Any] = {"skills": [{"name": name, **version}]}
    else:
        payload = {"name": name, "organization": "acme" if "@acme" in route else "", **version}
    _refused(
        *guarded.call("POST", path, payload), f"Refused to set skill version source to '{source}'"
    )
    status, body = guarded.call("GET", f"/api/3.0/mlflow/skills/{name}", None)
    assert (status, body.get("error_code")) == (404, "RESOURCE_DOES_NOT_EXIST"), body


@pytest.mark.mlflow_min("3.18")
def test_skill_version_sources_outside_storage_are_left_to_mlflow(guarded: Guarded) -> None:
    """Git, OCI and public ZIP sources name no storage place: the guard lets MLflow judge them
    (the client fetches them with its own credentials, never the server's)."""
    name = unique("sk")
    payload = {
        "name": name,
        "source": "https://github.com/acme/skills.git",
        "ref": "main",
        "digest": "0" * 64,
    }
    status, body = guarded.call("POST", f"/api/3.0/mlflow/skills/{name}/versions", payload)
    assert (status, body["version"], body["source"]) == (
        200,
        1,
        "https://github.com/acme/skills.git",
    ), body
