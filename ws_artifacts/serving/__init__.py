"""What runs inside the MLflow server.

Owns the artifact repository MLflow loads (:mod:`.plugin`, :mod:`.repository`), the workspace
provider (:mod:`.provider`), the API guard (:mod:`.guard`), quotas and upload bounds, the audit
trail, refusals, the server's metrics, the live configuration, and ``ws-artifacts server`` with
its launcher.

May import: :mod:`ws_artifacts.lifecycle`, :mod:`ws_artifacts.storage`,
:mod:`ws_artifacts.core` and :mod:`ws_artifacts._mlflow`. Never :mod:`ws_artifacts.cli`.
"""
