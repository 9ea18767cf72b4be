"""The one door to MLflow's internals, a module per MLflow area (library code only: the CLI
asks the library, never this package). Supported: MLflow 3.10 to 3.18; what a version lacks is
handled here and nowhere else.

* :mod:`.artifact_repo`: the artifact repository API the repository implements (base class,
  mixins, entities), with stand-ins for what a version lacks;
* :mod:`.environment`: which MLflow this is, what it can do, what its server tells workers;
* :mod:`.exceptions`: MLflow's exceptions and error codes, and refusals its client does not retry;
* :mod:`.request_context`: the workspace and user of the current request;
* :mod:`.server_app`: ``mlflow server``: its app, its command line, its handlers' repository;
* :mod:`.tracking_db`: the tracking database through MLflow's models (stored artifact
  locations, an experiment's workspace);
* :mod:`.tracking_client`: what a tracking server or database holds, through ``MlflowClient``;
* :mod:`.workspace_store`: MLflow's workspace provider, and ws-artifacts' previous-roots table.

May import: MLflow and its dependencies. Nothing else of ws_artifacts. Importing this package
imports nothing of MLflow; each module imports what its area needs.
"""
