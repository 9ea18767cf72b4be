"""The package's imports point one way: cli -> serving -> lifecycle -> storage -> core, with
``_mlflow`` (MLflow's internals) reachable from lifecycle and serving only. Read from the
source, imports inside functions included, so an import that climbs back up fails here before
it can become a loop."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import ws_artifacts

PACKAGE = Path(ws_artifacts.__file__).parent
#: How high each part of the package stands; a part imports only what stands lower.
LEVEL = {"core": 0, "storage": 1, "_mlflow": 2, "lifecycle": 3, "serving": 4, "cli": 5}
#: Parts that may not import ``_mlflow`` although one stands higher than it.
NO_MLFLOW = frozenset({"core", "storage", "cli"})
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE)


def imported_parts(source: str) -> Iterator[tuple[int, str]]:
    """(line, part of ws_artifacts) for every absolute import of the package in ``source``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "ws_artifacts":
                names = [a.name for a in node.names] if len(parts) == 1 else [parts[1]]
                yield from ((node.lineno, name) for name in names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "ws_artifacts" and len(parts) > 1:
                    yield node.lineno, parts[1]


def upward(mine: str, source: str) -> list[str]:
    """The imports of a module of part ``mine`` that break the direction."""
    return [
        f"line {line}: {mine} imports {part}"
        for line, part in imported_parts(source)
        if part in LEVEL
        and part != mine
        and (LEVEL[part] > LEVEL[mine] or (part == "_mlflow" and mine in NO_MLFLOW))
    ]


def test_every_part_of_the_package_has_its_level() -> None:
    parts = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert parts == set(LEVEL)
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py"]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    mine = path.relative_to(PACKAGE).parts[0]
    assert upward(mine, path.read_text()) == []


@pytest.mark.parametrize(
    ("mine", "source", "expected"),
    [
        ("storage", "def f():\n    from ws_artifacts.serving import quota\n", ["serving"]),
        ("cli", "from ws_artifacts._mlflow import environment\n", ["_mlflow"]),
        ("core", "import ws_artifacts.lifecycle.usage\n", ["lifecycle"]),
        ("serving", "from ws_artifacts import _mlflow, core\n", []),
    ],
    ids=["lazy-climb", "cli-to-mlflow", "plain-import", "allowed"],
)
def test_the_rule_sees_a_climb(mine: str, source: str, expected: list[str]) -> None:
    assert [line.rsplit(" ", 1)[-1] for line in upward(mine, source)] == expected
