"""The core: what a workspace's artifacts are and where they go, with no I/O and no MLflow.

Owns routing from (workspace, path) to a place (:mod:`.routing`: start here) and what it answers
(:mod:`.targets`: a Route, a Target inside its workspace's scope, and the one Place: a
workspace's location on one route, current or previous); workspaces' own roots and the approved
storage locations they may lie in (:mod:`.locations`), and the server's destinations
(:mod:`.destinations`); the configuration file's models (:mod:`.config`, each place's settings
in :mod:`.settings`) and its loader (:mod:`.loading`); logical artifact paths (:mod:`.paths`),
what a path may hold (:mod:`.path_characters`), the quarantine area's names
(:mod:`.quarantine_names`) and place URLs (:mod:`.urls`); the exception hierarchy
(:mod:`.errors`) and secret redaction in logs (:mod:`.redact`).

May import: the standard library, pydantic and PyYAML. Nothing else of ws_artifacts.
"""
