"""What the tests and the benchmarks share: one configuration factory, one set of server helpers.

* :mod:`tests.support.config`: :class:`ConfigFile`, the builder of every ws-artifacts
  configuration file the tests and benchmarks write (routes, defaults, quotas, previous places,
  locations), and :func:`routed`, the routes every integration server uses.
* :mod:`tests.support.servers`: start moto's S3 server and ``mlflow server`` / ``ws-artifacts
  server`` on loopback (:class:`MlflowServer`, :func:`running_server`, :func:`server_env`).
* :mod:`tests.support.postgres`: a real PostgreSQL server on loopback.
* :mod:`tests.support.faults`: a fault-injecting HTTP proxy in front of moto.
* :mod:`tests.support.s3`: moto's admin client and the keys of a bucket.
* :mod:`tests.support.workspaces`: unique names and acting as a workspace's client.
* :mod:`tests.support.polling`: wait until a condition holds (never a fixed sleep).

Nothing here is a fixture (fixtures live in ``tests/conftest.py``) and nothing imports from
``tests.conftest``. Imports only the standard library, boto3, MLflow's client, PyYAML and
psycopg (lazily); never ``ws_artifacts`` (the benchmarks import it for a stock MLflow too).
"""
