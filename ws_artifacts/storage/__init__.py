"""Storage: one interface over a place's objects, one module per kind of store.

Owns the interface every store implements (:mod:`.base`: operations, capabilities, lifecycle
work by key), the store a route uses (:mod:`.registry`), S3 through boto3 (:mod:`.s3`, every S3
call; its clients in :mod:`.clients` and their credentials in :mod:`.credentials`), every other
store through fsspec (:mod:`.fs`, with :mod:`.s3fs_options` and the local writes of
:mod:`.local_files`), and verified copies between places (:mod:`.copying`, whose S3 calls are in
:mod:`.s3.copy`).

May import: :mod:`ws_artifacts.core`, boto3 and fsspec. Never MLflow, never the layers above.
"""
