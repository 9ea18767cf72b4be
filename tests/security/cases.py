"""The attack cases: one line each, with what each mode must answer.

``template`` is an artifact path (read/write/list/delete) or a location (model-version, trace),
filled with the victims' IDs (:meth:`tests.security.world.World.fill`: ``{B}`` is team-b's run
root ``workspaces/team-b/<exp>/<run>/artifacts``, ``{Y}`` vision-y's, ``{O}`` other's).
Paths go on the wire as written (``%`` kept, so the server decodes ``%2e`` once and ``%252e``
reaches MLflow as ``%2e``); in direct mode the same string goes straight to the repository.

``proxied`` is the proxied server's HTTP status. ``direct`` is, for paths, the error code the
direct client's repository raises (``ok``: allowed, and contained), and for stored locations
the direct (``--no-serve-artifacts``) server's HTTP status. Where MLflow's proxy rewrites a path
into the attacker's own workspace (``Workspaces/...``, ``x/workspaces/...``), the answer is a
404 from the attacker's own place: contained, not refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["read", "write", "list", "delete", "model-version", "trace"]
DENIED, INVALID, MISSING = "PERMISSION_DENIED", "INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"


@dataclass(frozen=True)
class Case:
    id: str
    kind: Kind
    template: str
    proxied: int
    direct: int | str
    attacker: str = "team-a"
    base: Literal["root", "run"] = "root"


B_SECRET = "{B}/secret.txt"
B_TAIL = "team-b/{b_exp}/{b_run}/artifacts/secret.txt"  # team-b's secret below "workspaces/"
B_TRACE = "workspaces/team-b/{b_exp}/traces/{b_trace}/artifacts"

# fmt: off
CASES = [
    # -- another workspace, named outright -----------------------------------------------------
    Case("read-other-workspace", "read", B_SECRET, 400, DENIED),
    Case("write-other-workspace", "write", "{B}/planted.txt", 400, DENIED),
    Case("list-other-workspace", "list", "{B}", 400, DENIED),
    Case("delete-other-workspace", "delete", B_SECRET, 400, DENIED),
    Case("read-unrouted-workspace", "read", "{O}/secret.txt", 400, DENIED),
    Case("unrouted-reads-routed", "read", B_SECRET, 400, DENIED, attacker="other"),
    Case("default-reads-routed", "read", B_SECRET, 400, DENIED, attacker="default"),
    Case("pattern-sibling-read", "read", "{Y}/secret.txt", 400, DENIED, attacker="vision-x"),
    Case("pattern-sibling-write", "write", "{Y}/p.txt", 400, DENIED, attacker="vision-x"),
    Case("read-default-legacy", "read", "{legacy}/secret.txt", 404, DENIED),
    Case("list-default-legacy", "list", "{legacy}", 200, DENIED),
    # -- upwards --------------------------------------------------------------------------------
    Case("dotdot-from-own", "read", "workspaces/team-a/{a_exp}/../../" + B_TAIL, 400, INVALID),
    Case("dotdot-write", "write", "workspaces/team-a/../team-b/{b_exp}/p.txt", 400, INVALID),
    Case("dotdot-from-run", "read", "../../../../" + B_TAIL, 400, INVALID, base="run"),
    Case("dotdot-pattern-prefix", "read", "workspaces/vision-x/../../vision-y/{Y}/secret.txt",
         400, INVALID, attacker="vision-x"),
    Case("encoded-dotdot", "read", "workspaces/team-a/%2e%2e/" + B_TAIL, 400, INVALID),
    Case("double-encoded-dotdot", "read", "workspaces/team-a/%252e%252e/" + B_TAIL, 400, INVALID),
    Case("encoded-slash", "read", "workspaces%2f" + B_TAIL.replace("/", "%2f"), 400, INVALID),
    Case("double-encoded-slash", "write", "workspaces/team-a/x%252f..%252f..%252fteam-b/p.txt",
         400, INVALID),
    Case("backslash", "read", "workspaces\\" + B_TAIL.replace("/", "\\"), 400, INVALID),
    Case("encoded-backslash", "write", "workspaces/team-a/..%5c..%5cteam-b/p.txt", 400, INVALID),
    Case("fullwidth-dots", "read", "workspaces/team-a/\uff0e\uff0e/" + B_TAIL, 400, INVALID),
    Case("two-dot-leader", "write", "workspaces/team-a/\u2025/team-b/p.txt", 400, INVALID),
    # -- spelling tricks --------------------------------------------------------------------------
    # An absolute path is refused before routing, with MLflow's own "Invalid path".
    Case("absolute-path", "read", "/" + B_SECRET, 400, INVALID),
    Case("repeated-slashes", "read", "workspaces//team-b///{b_exp}/{b_run}/artifacts/secret.txt",
         400, DENIED),
    Case("dot-segments", "read", "./workspaces/./" + B_TAIL, 404, DENIED),
    Case("case-segment", "read", "Workspaces/" + B_TAIL, 404, INVALID),
    Case("case-name", "read", "workspaces/TEAM-B/{b_exp}/{b_run}/artifacts/secret.txt",
         400, INVALID),
    Case("fullwidth-name", "read", "workspaces/\uff54eam-b/{b_exp}/{b_run}/artifacts/secret.txt",
         400, INVALID),
    Case("cyrillic-name", "write", "workspaces/t\u0435am-b/{b_exp}/p.txt", 400, INVALID),
    Case("encoded-workspaces-segment", "read", "%2577orkspaces/" + B_TAIL, 400, INVALID),
    Case("trailing-newline-name", "read", "workspaces/team-b%0a/{b_exp}/{b_run}/artifacts/x",
         404, INVALID),
    Case("nul-byte", "write", "workspaces/team-a/x%00/../../team-b/p.txt", 400, INVALID),
    Case("bidi-override", "write", "workspaces/team-a/\u202eb-maet/p.txt", 400, INVALID),
    Case("deeper-workspaces-segment", "read", "x/workspaces/" + B_TAIL, 404, INVALID),
    Case("nested-workspaces-in-own", "read", "workspaces/team-a/{a_exp}/workspaces/" + B_TAIL,
         404, MISSING),
    Case("very-long-path", "write", "workspaces/team-a/" + "a/" * 2100 + "p.txt", 400, INVALID),
    # -- destructive ------------------------------------------------------------------------------
    Case("delete-own-workspace-root", "delete", "workspaces/team-a", 400, INVALID),
    Case("delete-workspaces-dir", "delete", "workspaces", 400, INVALID, attacker="default"),
    Case("list-destination-root", "list", "", 200, "ok", attacker="default"),
    # -- stored locations the server reads with its own credentials ----------------------------
    Case("mv-ws-uri-other-workspace", "model-version", "ws-s3://root/{B}", 403, 403),
    Case("mv-ws-uri-dotdot", "model-version", "ws-s3://root/workspaces/team-a/../{B}", 400, 400),
    Case("mv-ws-uri-encoded-dotdot", "model-version", "ws-s3://root/workspaces/team-a/%2e%2e/"
         + B_TAIL.removesuffix("/secret.txt"), 400, 400),
    Case("mv-ws-uri-case-segment", "model-version", "ws-s3://root/Workspaces/"
         + B_TAIL.removesuffix("/secret.txt"), 400, 400),
    Case("mv-ws-uri-pattern-sibling", "model-version", "ws-s3://root/{Y}", 403, 403,
         attacker="vision-x"),
    Case("mv-ws-uri-other-bucket", "model-version", "ws-s3://team-b-artifacts/{unmanaged}",
         403, 403, attacker="default"),
    Case("mv-ws-file-server-fs", "model-version", "ws-file://{local}", 403, 403,
         attacker="default"),
    Case("mv-mlflow-artifacts-other", "model-version", "mlflow-artifacts:/{B}", 400, 400),
    Case("mv-runs-uri-other-workspace", "model-version", "runs:/{b_run}", 404, 404),
    Case("trace-ws-uri-other-workspace", "trace", "ws-s3://root/" + B_TRACE, 403, 403),
    Case("trace-mlflow-artifacts-other", "trace", "mlflow-artifacts:/" + B_TRACE, 403, 500),
    Case("trace-ws-file-server-fs", "trace", "ws-file://{local}", 403, 403, attacker="default"),
]
# fmt: on
