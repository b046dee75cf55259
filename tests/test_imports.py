"""The layers of src/erasekit point one way: no import cycle between packages, methods and attacks apart.

Layers, bottom up: the core (flat modules: errors, registry, io, text, targets, concepts, closed_form,
diffusion, gate, edit, edit_file, pipeline, judge, config); methods/, attacks/ and worlds/ on it;
metrics/; evaluate/; the facade (``erasekit/__init__.py``, ``api.py``); cli/.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1] / "src" / "erasekit"
FACADE = {"erasekit", "erasekit.api"}


def _module(path: Path) -> tuple[str, bool]:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _layer(module: str) -> str:
    """``erasekit.methods.uce`` -> "methods"; a flat module -> "core"; the facade -> "facade"."""
    if module in FACADE:
        return "facade"
    parts = module.split(".")
    if len(parts) >= 2 and (ROOT / parts[1]).is_dir():
        return parts[1]
    return "core"


def _imports(path: Path) -> set[str]:
    """Every erasekit module ``path`` imports (at top level or inside functions), resolved."""
    module, is_package = _module(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("erasekit")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("erasekit"):
                continue
            if node.module is None:  # `from . import x`: x is a submodule
                found |= {f"{target}.{a.name}" for a in node.names}
            else:
                found.add(target)
    return found


def layer_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        here = _layer(_module(path)[0])
        for target in _imports(path):
            there = _layer(target if target != "erasekit" else "erasekit")
            if there != here:
                graph[here].add(there)
    return graph


def test_the_layer_finder_sees_a_known_edge():  # the positive control: the graph is not empty by accident
    graph = layer_graph()
    assert "core" in graph["methods"] and "methods" in graph["facade"] and "evaluate" in graph["cli"]


def test_no_cycle_between_packages():
    graph = layer_graph()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            pytest.fail(f"import cycle: {' -> '.join([*path[path.index(node) :], node])}")
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*path, node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])


def test_the_core_imports_nothing_above_it():
    assert layer_graph().get("core", set()) == set()


def test_methods_and_attacks_never_import_each_other():
    graph = layer_graph()
    assert "attacks" not in graph.get("methods", set()) and "methods" not in graph.get("attacks", set())


def test_only_worlds_and_the_command_line_name_a_world():
    named = []
    for path in ROOT.rglob("*.py"):
        layer = _layer(_module(path)[0])
        if layer in ("worlds", "cli"):
            continue
        if any(t.startswith("erasekit.worlds.") for t in _imports(path)):
            named.append(str(path.relative_to(ROOT)))
    assert named == [], f"these modules import a world directly, not through erasekit.worlds: {named}"


def test_no_module_over_350_lines():
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > 350}
    assert long == {}
