"""The core: what a workspace's artifacts are and where they go, with no I/O and no MLflow.

Owns the configuration file's models and loader (:mod:`.config`), logical artifact paths
(:mod:`.paths`), routing from (workspace, path) to a place (:mod:`.routing`: start here), the one
:class:`~.routing.Place` (a workspace's location on one route, built by routing),
approved storage locations (:mod:`.locations`), the exception hierarchy (:mod:`.errors`) and
secret redaction in logs (:mod:`.redact`).

May import: the standard library, pydantic and PyYAML. Nothing else of ws_artifacts.
"""
