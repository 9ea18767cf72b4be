"""The core: what a workspace's artifacts are and where they go, with no I/O and no MLflow.

Owns the configuration file's models (:mod:`.config`, the settings of each place in
:mod:`.settings`) and its loader (:mod:`.loading`), logical artifact paths
(:mod:`.paths`), routing from (workspace, path) to a place (:mod:`.routing`: start here),
approved storage locations (:mod:`.locations`), the exception hierarchy (:mod:`.errors`) and
secret redaction in logs (:mod:`.redact`).

May import: the standard library, pydantic and PyYAML. Nothing else of ws_artifacts.
"""
