"""Storage: one interface over a place's objects, one package per kind of store.

Owns the interface every store implements (:mod:`.base`: operations, capabilities, lifecycle
work by key), the store a route uses (:mod:`.registry`), S3 through boto3 (:mod:`.s3`: every S3
call; its clients in :mod:`.clients` and their credentials in :mod:`.credentials`), every other
store through fsspec (:mod:`.fs`: every fsspec call), MLflow's own S3 variables as defaults
(:mod:`.mlflow_settings`), what an object is (:mod:`.content`), and verified copies between
places (:mod:`.copying`, comparing contents with :mod:`.verify`).

May import: :mod:`ws_artifacts.core`, boto3 and fsspec. Never MLflow, never the layers above.
"""
