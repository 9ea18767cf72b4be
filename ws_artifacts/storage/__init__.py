"""Storage: one interface over a place's objects, one module per kind of store.

Owns the interface every store implements (:mod:`.base`), the store a route uses
(:mod:`.registry`), S3 through boto3 (:mod:`.s3`, with its clients and credentials in
:mod:`.clients`), every other store through fsspec (:mod:`.fs`), and verified copies between
places (:mod:`.copying`).

May import: :mod:`ws_artifacts.core`, boto3 and fsspec. Never MLflow, never the layers above.
"""
