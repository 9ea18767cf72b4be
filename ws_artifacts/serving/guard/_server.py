"""The guard's MLflow side: read the locations each request sets, the way MLflow reads them.

Like ``ws_artifacts/_mlflow/`` for the repository, this is the one guard module that imports
MLflow's server internals (its request parsers, protobuf messages, stores and routes), so a
change in MLflow shows up here and nowhere else. Requests are parsed with MLflow's own
functions (``_get_request_message``, ``_get_workspace_request_message``, the OTLP decoder),
so the guard sees exactly the values the handler will store, whatever the spelling (snake or
camel case, double-encoded JSON, compressed OTLP). The ASGI middleware that hands it request
bodies is in :mod:`ws_artifacts.serving.guard.asgi`.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from ws_artifacts.core.destinations import destinations_from_env
from ws_artifacts.core.errors import WsArtifactsError
from ws_artifacts.core.paths import DEFAULT_WORKSPACE, is_valid_workspace_name, normalize
from ws_artifacts.core.quarantine_names import QUARANTINE_SEGMENT, in_quarantine
from ws_artifacts.serving.guard.policy import LocationPolicy, LocationRefused
from ws_artifacts.serving.live_config import config_from_env

__all__ = [
    "check_all",
    "flask_guard",
    "location_tags",
    "names_quarantine",
    "otlp_traces_path",
    "refusal_error",
    "refusal_of",
]

_logger = logging.getLogger(__name__)

#: Trace tags whose value is a location MLflow later reads from with the server's credentials.
LOCATION_TAGS = ("mlflow.artifactLocation", "mlflow.trace.archiveLocation")
_TRACE_TAG_ATTRIBUTE = "mlflow.traceTag."  # OTLP root-span attributes that become trace tags
_TRACE_TAG_FIELD = "trace tag "  # how checks of trace tags name their field

# (field, uri, workspace to check against; None: the caller's)
Check = tuple[str, str, str | None]


def _module(name: str) -> Any:
    """An MLflow (or protobuf) module, untyped on purpose: its functions carry no annotations."""
    return importlib.import_module(name)


def _handlers() -> Any:
    return _module("mlflow.server.handlers")


def mlflow_flask_app() -> Any:
    """MLflow's Flask app."""
    return _module("mlflow.server").app


def mlflow_server_app() -> Any:
    """The app ``mlflow server`` runs: FastAPI under uvicorn, Flask otherwise."""
    sgi = _module("mlflow.environment_variables")._MLFLOW_SGI_NAME.get() or ""
    if sgi == "uvicorn":
        return _module("mlflow.server.fastapi_app").app
    return mlflow_flask_app()


def otlp_traces_path() -> str:
    """MLflow's native OTLP route (below the static prefix)."""
    return str(_module("mlflow.tracing.utils.otlp").OTLP_TRACES_PATH)


def basic_auth_app() -> Any:
    """A new app from MLflow's basic-auth factory."""
    return _module("mlflow.server.auth").create_app()


def _policy() -> LocationPolicy:
    environ = os.environ
    return LocationPolicy(config_from_env(), destinations_from_env(environ) or ())


def _caller() -> str:
    from mlflow.utils.workspace_context import get_request_workspace

    return get_request_workspace() or DEFAULT_WORKSPACE


def check_all(checks: list[Check]) -> None:
    """Check every location of a request against the caller's workspace (raises on the first
    refusal)."""
    if not checks:
        return
    policy, caller = _policy(), _caller()
    for field, uri, workspace in checks:
        if field == _ROOT_FIELD:
            policy.check_workspace_root(uri, workspace or caller)
            continue
        policy.check(
            uri,
            workspace or caller,
            field=field,
            resolve=resolve_reference,
            # A trace tag set to "" is a location to MLflow (its working directory); "" in
            # the other fields is a proto field left out.
            empty_is_unset=not field.startswith(_TRACE_TAG_FIELD),
        )
        _logger.debug("guard: %s accepted for workspace %s", field, workspace or caller)


# -- runs:/ and models:/ ------------------------------------------------------------------
def resolve_reference(uri: str) -> str:
    """The location a ``runs:/`` or ``models:/`` URI stands for, looked up in the caller's
    workspace (MLflow's stores only see the request's workspace).

    Raises:
        LookupError: It names nothing in this workspace.
    """
    from mlflow.exceptions import MlflowException

    handlers = _handlers()
    try:
        if uri.startswith("runs:"):
            runs = _module("mlflow.store.artifact.runs_artifact_repo").RunsArtifactRepository
            run_id, path = runs.parse_runs_uri(uri)
            run = handlers._get_tracking_store().get_run(run_id)
            append = _module("mlflow.utils.uri").append_to_uri_path
            return str(append(run.info.artifact_uri, normalize(path or "")))
        models = _module("mlflow.store.artifact.utils.models")
        parsed = models._parse_model_uri(uri)
        if parsed.model_id is not None:
            model = handlers._get_tracking_store().get_logged_model(parsed.model_id)
            return str(model.artifact_location)
        registry = handlers._get_model_registry_store()
        name, version = models.get_model_name_and_version(registry, uri)
        return str(registry.get_model_version_download_uri(name, version))
    except (MlflowException, WsArtifactsError) as err:
        raise LookupError(str(err).split("\n", 1)[0][:200]) from None


# -- Flask: the REST endpoints that store a location --------------------------------------
def _message(name: str) -> Any:
    handlers = _handlers()
    return handlers._get_request_message(getattr(handlers, name)())


def _model_version() -> list[Check]:
    # MLflow's placeholders for prompt versions (3.10 has the literals but not the set).
    placeholders = getattr(
        _module("mlflow.prompt.constants"),
        "_PROMPT_SOURCE_PLACEHOLDERS",
        frozenset({"dummy-source", "prompt-template"}),
    )
    message = _message("CreateModelVersion")
    if message.source in placeholders:
        return []  # a prompt version: a placeholder, not a location
    return [("the model version source", message.source, None)]


def _tag_pairs(pairs: Iterator[tuple[str, str]]) -> list[Check]:
    return [
        (f"{_TRACE_TAG_FIELD}{key}", value, None) for key, value in pairs if key in LOCATION_TAGS
    ]


def _set_trace_tag(name: str) -> Callable[[], list[Check]]:
    def extract() -> list[Check]:
        message = _message(name)
        return _tag_pairs(iter([(message.key, message.value)]))

    return extract


def _start_trace_v3() -> list[Check]:
    message = _message("StartTraceV3")
    return _tag_pairs(iter(message.trace.trace_info.tags.items()))


def _trace_v2(name: str) -> Callable[[], list[Check]]:
    def extract() -> list[Check]:
        return _tag_pairs((tag.key, tag.value) for tag in _message(name).tags)

    return extract


def _create_experiment() -> list[Check]:
    location = _message("CreateExperiment").artifact_location
    return [("the experiment artifact_location", location, None)] if location else []


def _raw_locations(name: str) -> Callable[[], list[Check]]:
    """Endpoints without a location field in MLflow 3.17 (runs, logged models): check any
    location-like key a version of MLflow might accept."""

    def extract() -> list[Check]:
        body = _handlers()._get_normalized_request_json()
        keys = ("artifact_uri", "artifact_location", "artifactUri", "artifactLocation")
        return [
            (f"the {name} {key}", body[key], None)
            for key in keys
            if isinstance(body, dict) and isinstance(body.get(key), str)
        ]

    return extract


_ROOT_FIELD = "the workspace default_artifact_root"


def _workspace(create: bool) -> Callable[[], list[Check]]:
    def extract() -> list[Check]:
        from flask import request
        from mlflow.exceptions import MlflowException

        handlers = _handlers()
        kind = "CreateWorkspace" if create else "UpdateWorkspace"
        message, body = _workspace_message(handlers, getattr(handlers, kind)())
        name = message.name if create else (request.view_args or {}).get("workspace_name", "")
        if not is_valid_workspace_name(name):
            raise MlflowException.invalid_parameter_value(
                f"Workspace name {name!r} is not valid: lowercase letters, digits and inner "
                "hyphens, 2 to 63 characters, nothing after them."
            )
        archival = body.get("trace_archival_config") if isinstance(body, dict) else None
        root = body.get("default_artifact_root") if isinstance(body, dict) else None
        checks = [
            (_ROOT_FIELD, message.default_artifact_root, name),
            (_ROOT_FIELD, root if isinstance(root, str) else "", name),
            ("the trace archival location", _archival_location(message), name),
        ]
        if isinstance(archival, dict) and isinstance(archival.get("location"), str):
            checks.append(("the trace archival location", archival["location"], name))
        return checks

    return extract


def _workspace_message(handlers: Any, message: Any) -> tuple[Any, Any]:
    """Parse a workspace request as this MLflow's handler does (3.17 has a helper for it that
    also returns the JSON body; 3.10 parses it like every other request)."""
    parse = getattr(handlers, "_get_workspace_request_message", None)
    if parse is not None:
        return parse(message)  # type: ignore[no-any-return]
    from flask import request

    return handlers._get_request_message(message), request.get_json(silent=True) or {}


def _archival_location(message: Any) -> str:
    """The trace archival location of a workspace request ("" on MLflow versions without it)."""
    try:
        return str(message.trace_archival_config.location)
    except AttributeError:
        return ""


#: Flask endpoint (the handler's name) -> what it stores. Both /api and /ajax-api routes of
#: every version share the handler, so this covers them all, static prefix included.
EXTRACTORS: dict[str, Callable[[], list[Check]]] = {
    "_create_model_version": _model_version,
    "_set_trace_tag": _set_trace_tag("SetTraceTag"),
    "_set_trace_tag_v3": _set_trace_tag("SetTraceTagV3"),
    "_start_trace_v3": _start_trace_v3,
    "_deprecated_start_trace_v2": _trace_v2("StartTrace"),
    "_deprecated_end_trace_v2": _trace_v2("EndTrace"),
    "_create_experiment": _create_experiment,
    "_create_run": _raw_locations("run"),
    "_create_logged_model": _raw_locations("logged model"),
    "_create_workspace_handler": _workspace(create=True),
    "_update_workspace_handler": _workspace(create=False),
}


def flask_guard() -> Any:
    """A Flask ``before_request`` hook: None to go on, or the refusal response."""
    from flask import Response, request
    from mlflow.exceptions import MlflowException

    extract = EXTRACTORS.get(request.endpoint or "")
    quarantined = names_quarantine(request.path, request.query_string.decode("latin-1"))
    if extract is None and not quarantined:
        return None
    error: Any
    try:
        if quarantined:
            raise LocationRefused(QUARANTINE_REFUSAL)
        check_all(extract() if extract is not None else [])
        return None
    except LocationRefused as err:
        _logger.debug("guard refused %s %s: %s", request.method, request.path, err)
        error = refusal_error(err)
    except MlflowException as err:  # the handler would refuse the request the same way
        error = err
    response = Response(error.serialize_as_json(), mimetype="application/json")
    response.status_code = error.get_http_status_code()
    return response


QUARANTINE_REFUSAL = (
    f"Refused: the request names the quarantine area ('{QUARANTINE_SEGMENT}'), which is nobody's "
    "place; no workspace may read, list, write or delete it. Operators use `ws-artifacts "
    "quarantine` for it."
)


def names_quarantine(path: str, query: str) -> bool:
    """Whether a request's (decoded) URL path or any query value names the quarantine area,
    in any spelling (:func:`ws_artifacts.core.quarantine_names.in_quarantine`)."""
    if in_quarantine(path):
        return True
    if not query:
        return False
    import urllib.parse

    return any(
        in_quarantine(value) for _, value in urllib.parse.parse_qsl(query, keep_blank_values=True)
    )


def refusal_of(err: BaseException) -> tuple[int, bytes] | None:
    """The HTTP status and JSON body that refuse a request for ``err`` (a location the policy
    refused, or MLflow's own refusal), or None for any other error."""
    from mlflow.exceptions import MlflowException

    error: Any
    if isinstance(err, LocationRefused):
        error = refusal_error(err)
    elif isinstance(err, MlflowException):
        error = err
    else:
        return None
    return error.get_http_status_code(), error.serialize_as_json().encode()


def refusal_error(err: LocationRefused) -> Any:
    """The MlflowException (HTTP 403) that refuses a location the policy refused; logged and
    counted as a refusal of the guard."""
    from ws_artifacts.serving.refusals import mlflow_error

    return mlflow_error(err, operation="guard")


# -- OTLP: root-span attributes mlflow.traceTag.<key> become trace tags -------------------
def location_tags(body: bytes, content_type: str, content_encoding: str) -> list[Check]:
    """The location trace tags an OTLP export request would set, parsed like MLflow does.

    Raises:
        ValueError: The body is not a valid OTLP request (MLflow would refuse it too).
    """
    from mlflow.server import otel_api
    from mlflow.tracing.utils import otlp
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    if content_encoding:
        body = otlp.decompress_otlp_body(body, content_encoding.lower())
    parsed = ExportTraceServiceRequest()
    if content_type.split(";")[0].strip() == "application/json":
        parse = _module("google.protobuf.json_format").Parse
        parse(otel_api._convert_otlp_json_ids_to_base64(body), parsed, ignore_unknown_fields=True)
    else:
        parsed.ParseFromString(body)
    checks: list[Check] = []
    for resource_spans in parsed.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                for attribute in span.attributes:
                    tag = attribute.key.removeprefix(_TRACE_TAG_ATTRIBUTE)
                    if attribute.key.startswith(_TRACE_TAG_ATTRIBUTE) and tag in LOCATION_TAGS:
                        # The store keeps str() of the decoded value.
                        value = otlp._decode_otel_proto_anyvalue(attribute.value)
                        text = value if isinstance(value, str) else str(value)
                        checks.append((f"{_TRACE_TAG_FIELD}{tag} (OTLP)", text, None))
    return checks
