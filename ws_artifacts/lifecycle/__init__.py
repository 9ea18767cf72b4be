"""The life of a workspace's artifacts, outside any request.

Owns MLflow's artifact layout (:mod:`.layout`: what each child of ``workspaces/<ws>/`` is),
reads that fall back to a route's previous places (:mod:`.fallback`), migrate and moves,
quarantine, orphans, usage, the route and check reports, and the workspace roots MLflow's
database records (:mod:`.roots`).

May import: :mod:`ws_artifacts.storage`, :mod:`ws_artifacts.core` and, for MLflow's database,
:mod:`ws_artifacts._mlflow`. Never :mod:`ws_artifacts.serving` or :mod:`ws_artifacts.cli`.
"""
