"""The floors of the house (DESIGN.md): imports only point down, and no module imports itself round a cycle.

``utilities/`` is the ground floor and imports nothing of ours; ``connectors/`` and
``data_quality_checks/`` stand on it and know nothing of the engine; ``script_factory/`` stands on all
three; ``script_runner.py`` on the engine. Every import counts, also those inside functions (a lazy
import is still a dependency); only ``if TYPE_CHECKING:`` blocks are left out, as they never run.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

from tests.conftest import REPO

FLOORS = {
    "utilities": set(),
    "connectors": {"utilities"},
    "data_quality_checks": {"utilities"},
    "script_factory": {"utilities", "connectors", "data_quality_checks"},
    "script_runner": {"utilities", "connectors", "data_quality_checks", "script_factory"},
}


def modules() -> dict[str, Path]:
    found = {"script_runner": REPO / "script_runner.py"}
    for package in ("utilities", "connectors", "data_quality_checks", "script_factory"):
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Our modules that ``path`` imports at run time (``from a import b`` counts a.b when it is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for stmt in block.body
        for node in ast.walk(stmt)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in known}
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(path, set(found)) - {name} for name, path in found.items()}


def test_imports_only_point_down_the_floors() -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        for target in targets
        if target.split(".")[0] != module.split(".")[0] and target.split(".")[0] not in FLOORS[module.split(".")[0]]
    ]
    assert wrong == []


def test_no_module_imports_itself_round_a_cycle() -> None:
    edges = graph()
    # a package's __init__ is imported by every module below it: leave that edge out, keep the rest
    edges = {m: {t for t in targets if not m.startswith(t + ".")} for m, targets in edges.items()}
    try:
        list(graphlib.TopologicalSorter(edges).static_order())
    except graphlib.CycleError as cycle:
        raise AssertionError(f"import cycle: {' -> '.join(cycle.args[1])}") from None


def test_the_checker_sees_a_lazy_import_and_ignores_type_checking(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import script_factory.runner\n"
        "def f():\n    from script_factory import load_strategies\n",
        encoding="utf-8",
    )
    known = {"script_factory", "script_factory.runner", "script_factory.load_strategies"}
    assert imports_of(module, known) == {"script_factory", "script_factory.load_strategies"}
