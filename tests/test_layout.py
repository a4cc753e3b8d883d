"""The package's import graph: no cycles, and layers import only downward.

Every ``import`` in every module counts, including the lazy ones inside functions: a cycle
hidden in a function body is still a cycle for the reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "benchmark"

# layer -> the layers it may import (besides itself). Top to bottom: the pipeline's order.
ALLOWED = {
    # the library's entry points (``import benchmark`` exposes them lazily), beside the CLI
    "api": {"sweep", "sweep_options", "run", "analysis", "recipes", "losses", "errors", "record"},
    # dispatches to command modules by name (importlib); reads the metric registry (cheap: no
    # torch) for the --metrics choices
    "cli": {"errors", "metrics"},
    "sweep": {"sweep_options", "slurm", "progress", "run", "analysis", "recipes", "protocol",
              "errors", "data", "record"},
    "sweep_options": {"slurm", "errors"},  # what a sweep is asked (typed options, sweep.yaml)
    "slurm": {"run", "recipes", "errors", "record"},  # the cluster side of a sweep
    "progress": set(),  # the sweep's display
    "run": {"recipes", "losses", "data", "metrics", "model", "protocol", "weights", "errors",
            "record"},
    # reads run folders through the record (and the bibliography) only; the metric registry
    # (benchmark.metrics: labels, units, decimals, better direction) for every table and figure
    "analysis": {"errors", "references", "record", "metrics"},
    "recipes": {"losses", "errors", "weights", "references", "resources"},
    "losses": {"weights", "errors"},
    "data": {"errors", "resources"},
    "metrics": {"weights", "errors"},
    "model": {"errors"},
    "protocol": {"errors", "precision"},
    "precision": set(),  # the TF32 policy (process-wide torch flags)
    "weights": {"errors"},
    "references": {"errors", "resources"},
    "resources": set(),  # where the shipped recipes, bibliography and manifests are
    # the run record: folder layout, file names, hashed fields, atomic I/O, typed files; the
    # one owner of the run-folder contract, below everything that reads or writes run folders
    "record": {"errors"},
    "errors": set(),
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, modules: dict[str, Path], name: str) -> set[str]:
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules, name) for name, path in modules.items()}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "cli"


def test_import_graph_has_no_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_layers_import_only_downward() -> None:
    bad = []
    for module, targets in sorted(_graph().items()):
        layer = _layer(module)
        if layer in ("__main__",) or module == "benchmark":
            continue
        for target in sorted(targets):
            other = _layer(target)
            if other != layer and other not in ALLOWED[layer]:
                bad.append(f"{module} imports {target} ({layer} -> {other})")
    assert not bad, "\n".join(bad)


def test_the_walker_sees_a_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The graph walker itself: a planted two-module cycle must be found."""
    pkg = tmp_path / "benchmark"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("def f():\n    from benchmark.sub import b\n")
    (pkg / "sub" / "b.py").write_text("from .a import f\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", pkg)
    with pytest.raises(pytest.fail.Exception, match=r"import cycle: benchmark\.sub\.a -> "
                       r"benchmark\.sub\.b -> benchmark\.sub\.a"):
        test_import_graph_has_no_cycle()


def test_no_module_is_over_430_lines() -> None:
    """Long modules get split where the split reads like the pipeline (CONTRIBUTING.md)."""
    long = {name: n for name, path in _modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 430}
    assert not long, long
