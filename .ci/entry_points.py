"""Load every entry point ws-artifacts declares, in the environment that runs this script.

Run by ``./run tests`` with the python of a fresh venv into which its bundled pip installed the
tree (``pip install .``): every ``mlflow.artifact_repository`` and ``mlflow.app`` entry point in
pyproject.toml must be installed and load, and MLflow must build a repository through one.
Exits non-zero, naming what is wrong, otherwise.
"""

from __future__ import annotations

import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

GROUPS = ("mlflow.artifact_repository", "mlflow.app")


def main(pyproject: Path) -> int:
    declared = tomllib.loads(pyproject.read_text())["project"]["entry-points"]
    failures = []
    for group in GROUPS:
        installed = {
            ep.name: ep
            for ep in entry_points(group=group)
            if ep.dist is not None and ep.dist.name == "ws-artifacts"
        }
        if set(installed) != set(declared[group]):
            failures.append(
                f"{group}: installed {sorted(installed)}, declared {sorted(declared[group])}"
            )
        for name, ep in sorted(installed.items()):
            try:
                ep.load()
            except Exception as err:  # noqa: BLE001 - reported, then the script fails
                failures.append(f"{group} {name} = {ep.value}: {type(err).__name__}: {err}")
            else:
                print(f"loaded {group} {name} = {ep.value}")
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository("ws-memory://install-check")
    if type(repo).__module__ != "ws_artifacts.serving.repository":
        failures.append(f"ws-memory:// built {type(repo).__module__}.{type(repo).__name__}")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
