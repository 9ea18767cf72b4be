"""The ``ws-artifacts`` command: thin click commands over library calls (:mod:`.main`).

May import: every package below it. Never :mod:`ws_artifacts._mlflow`: what a command needs
of MLflow, a library function gives it.
"""
