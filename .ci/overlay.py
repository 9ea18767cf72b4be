"""What an overlaid MLflow needs beyond the release it was laid over (``./run``'s 3.18 venv).

While the registry lacks ``mlflow-tracing`` of the newest MLflow, ``./run`` resolves the
environment with the previous release, then lays ``mlflow`` and ``mlflow-skinny`` over it with
``--no-deps`` (see docs/compatibility.md). Whatever the new packages require that the old ones
did not (3.18: ``python-multipart``, for skill uploads) is then missing. This script:

* ``requirements``: prints the new packages' own requirements (not MLflow's packages, no
  extras), one a line, for ``uv pip install``;
* ``check``: exits non-zero unless every one of them is satisfied and the only MLflow package
  at another version than ``mlflow`` is ``mlflow-tracing`` (the one the registry lacks).
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, distribution, version

from packaging.requirements import Requirement

OVERLAID = ("mlflow", "mlflow-skinny")


def requirements() -> list[Requirement]:
    found: dict[str, Requirement] = {}
    for name in OVERLAID:
        for line in distribution(name).requires or []:
            req = Requirement(line)
            if req.name.startswith("mlflow"):
                continue
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            found[f"{req.name}{req.specifier}"] = req
    return [found[key] for key in sorted(found)]


def problems() -> list[str]:
    out: list[str] = []
    for req in requirements():
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            out.append(f"{req} is not installed")
            continue
        if not req.specifier.contains(installed, prereleases=True):
            out.append(f"{req} is needed, {installed} is installed")
    wanted = version("mlflow")
    for name in ("mlflow-skinny",):
        if version(name) != wanted:
            out.append(f"{name} {version(name)} is installed with mlflow {wanted}")
    return out


def main(argv: list[str]) -> int:
    if argv == ["requirements"]:
        print("\n".join(f"{r.name}{r.specifier}" for r in requirements()))
        return 0
    if argv == ["check"]:
        found = problems()
        for problem in found:
            print(f"overlaid MLflow: {problem}", file=sys.stderr)
        return 1 if found else 0
    print("usage: overlay.py requirements|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
