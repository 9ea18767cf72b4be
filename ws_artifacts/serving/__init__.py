"""What runs inside the MLflow server.

Owns the artifact repository MLflow loads (:mod:`.plugin`, :mod:`.repository`, thin over
:mod:`.resolution`, :mod:`.uploads`, :mod:`.downloads` and :mod:`.transfers`), the workspace
provider (:mod:`.provider`), the API guard (:mod:`.guard`), quotas and upload bounds, the audit
trail (:mod:`.audit`, :mod:`.request_info`), refusals, the server's metrics, the live
configuration, and ``ws-artifacts server`` (:mod:`.server`) with the app's middleware and worker
set-up (:mod:`.app_middleware`, :mod:`.declared_length`, :mod:`.worker_process`) and its
launcher.

May import: :mod:`ws_artifacts.lifecycle`, :mod:`ws_artifacts.storage`,
:mod:`ws_artifacts.core` and :mod:`ws_artifacts._mlflow`. Never :mod:`ws_artifacts.cli`.
"""
