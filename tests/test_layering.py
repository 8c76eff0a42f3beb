"""The package layering: which sub-package may import which, no cycles, and the size limits the
refiner layer keeps (modules in refine/ up to 400 lines, orchestration functions up to 60)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nnunet_diffrefine"
# what each sub-package may import from this project (besides itself and the top-level modules)
ALLOWED = {
    "utils": set(),
    "workspace": {"utils"},
    "data": {"utils"},
    "networks": {"utils"},
    "losses": set(),
    "evaluation": {"utils", "data"},
    "refine": {"utils", "data", "evaluation", "networks", "losses", "workspace"},
    "training": {"utils", "data", "networks", "losses", "refine", "workspace"},
    "report": {"utils", "data", "evaluation"},
    "benchmark": {"utils", "data", "evaluation", "refine", "training", "workspace"},
    "demo": {"utils", "data", "refine", "training", "benchmark", "report", "workspace"},
    "cli": {"utils", "data", "evaluation", "refine", "training", "benchmark", "report", "demo", "workspace"},
}
ORCHESTRATION = ("demo/pipeline.py", "refine/run.py", "benchmark/run.py", "data/convert.py")


def _imports(path: Path) -> set[str]:
    """The sub-packages of this project that ``path`` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "nnunet_diffrefine" and len(parts) > 1 and (PACKAGE / parts[1]).is_dir():
                found.add(parts[1])
    return found


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for sub in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()):
        graph[sub.name] = set().union(*(_imports(f) for f in sub.rglob("*.py"))) - {sub.name}
    return graph


def test_every_sub_package_imports_only_the_layers_below_it():
    graph = package_graph()
    assert set(graph) == set(ALLOWED), "a new sub-package needs its place in ALLOWED"
    for package, imported in graph.items():
        assert imported <= ALLOWED[package], f"{package} imports {sorted(imported - ALLOWED[package])}"
    assert not any("cli" in imported for imported in graph.values()), "no package imports cli"


def fail_on_cycle(graph: dict[str, set[str]], where: str) -> None:
    """Depth-first search of an import graph; fails the test naming the first cycle found."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for other in sorted(graph[node]):
            if state.get(other) == "open":
                pytest.fail(f"import cycle{where}: {' -> '.join([*path, node, other])}")
            if other not in state:
                visit(other, [*path, node])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [])


def test_the_sub_packages_form_no_cycle():
    fail_on_cycle(package_graph(), "")


def test_importing_the_refiners_loads_nothing_from_the_layers_above():
    code = (
        "import importlib, pkgutil, sys, nnunet_diffrefine.refine as r\n"
        "for m in pkgutil.iter_modules(r.__path__): importlib.import_module(f'nnunet_diffrefine.refine.{m.name}')\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    layers_above = tuple(f"nnunet_diffrefine.{p}" for p in ("training", "benchmark", "cli", "demo", "report"))
    above = [m for m in loaded if m.startswith(layers_above)]
    assert "nnunet_diffrefine.refine.corrdiff" in loaded and not above, above


def test_refiner_modules_and_orchestration_functions_stay_small():
    for module in sorted((PACKAGE / "refine").glob("*.py")):
        lines = len(module.read_text().splitlines())
        assert lines <= 400, f"{module.name}: {lines} lines"
    for name in ORCHESTRATION:
        tree = ast.parse((PACKAGE / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 60, f"{name}: {node.name} has {length} lines"


def test_the_benchmark_scripts_import_each_other_without_a_cycle():
    """``benchmarks/`` scripts share code through ``_setup`` and declaration modules, never in a circle
    (imports inside functions count too)."""
    folder = PACKAGE.parent / "benchmarks"
    scripts = {p.stem: p for p in folder.glob("*.py")}
    graph = {}
    for name, path in scripts.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
        graph[name] = found & set(scripts) - {name}
    assert graph["bench_refinement"] >= {"_setup"} and graph["bench_refinement_real"] >= {"_setup"}
    fail_on_cycle(graph, " in benchmarks/")
