"""Imports point one way, down the flow (docs/architecture.md):

errors, theory → scenario → calibration → components → engine → results → outputs → api → cli.
A module may import its own layer and layers to its left, never to its right; and inside a
layer no modules import each other round in a cycle (a function-level import counts: it is
the same dependency, only deferred). Every package's docstring says what it owns and what
it may import.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "memstack_capacity"
ROOT = PACKAGE.name
ORDER = {
    "errors": 0, "theory": 0,
    "scenario": 1, "calibration": 1.5, "components": 2, "engine": 3, "results": 4, "outputs": 5,
    "api": 6, "plotting": 6, "reporting": 6, "cli": 7, "__main__": 7, "__init__": 7,
}  # fmt: skip

#: Cycles tolerated while being taken apart (each one the exact set of modules in it): none.
#: An entry that is no longer a cycle fails the test as stale, so this set only shrinks.
KNOWN_CYCLES: set = set()

#: Packages whose docstrings are still to be written: none. A listed package that has its
#: docstring fails as stale, so this set only shrinks.
UNDOCUMENTED: set = set()


def _module_name(path: Path) -> str:
    """``outputs/files.py`` → ``outputs.files``; a package is named by its ``__init__.py``."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> str:
    return module.split(".")[0]


def _local(name: str) -> str:
    """A dotted import name inside the package, without the package's own name."""
    return name.removeprefix(f"{ROOT}.") if name != ROOT else "__init__"


def _imports(path: Path):
    """(module imported, line) for every import of the package in ``path``, at any depth.

    ``from package import name`` counts as importing the module ``package.name`` when
    that is a module, else the package itself.
    """
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == ROOT:
            base = _local(node.module)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield (sub if sub in MODULES else base), node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == ROOT:
                    yield _local(alias.name), node.lineno


def _graph() -> dict[str, dict[str, int]]:
    """module → {module it imports: the first line that does}."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in MODULES.items():
        edges = graph.setdefault(module, {})
        for target, line in _imports(path):
            if target != module:
                edges.setdefault(target, line)
    return graph


def _strongly_connected(graph: dict[str, dict[str, int]]) -> list[frozenset[str]]:
    """Tarjan's strongly connected components with more than one module: each one is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = {stack.pop()}
            while node not in component:
                component.add(stack.pop())
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _describe(component: frozenset[str], graph: dict[str, dict[str, int]]) -> str:
    edges = [f"  {m}:{line} imports {t}" for m in sorted(component) for t, line in sorted(graph[m].items())
             if t in component]  # fmt: skip
    return " ↔ ".join(sorted(component)) + "\n" + "\n".join(edges)


def test_every_module_imports_only_to_its_left():
    offenders = []
    assert len(MODULES) > 30
    for module, path in MODULES.items():
        own = _layer(module)
        assert own in ORDER, f"{path} is in no layer; add it to ORDER"
        for target, line in _imports(path):
            assert target in MODULES, f"{path}:{line} imports unknown module {target}"
            if ORDER[_layer(target)] > ORDER[own]:
                offenders.append(f"{module}:{line} ({own}) imports {target}")
    assert not offenders, "imports that point right:\n" + "\n".join(offenders)


def test_no_import_cycles():
    graph = _graph()
    cycles = _strongly_connected(graph)
    new = [c for c in cycles if c not in KNOWN_CYCLES]
    stale = [c for c in KNOWN_CYCLES if c not in cycles]
    assert not new, "import cycles (break each one):\n" + "\n".join(_describe(c, graph) for c in new)
    assert not stale, "KNOWN_CYCLES lists cycles that are gone; remove them:\n" + "\n".join(
        " ↔ ".join(sorted(c)) for c in stale)


def _says_what_it_may_import(path: Path) -> bool:
    """The docstring is there and a sentence of it (not a doctest line) speaks of imports."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    prose = [line for line in doc.splitlines() if not line.lstrip().startswith(">>>")]
    return bool(doc.strip()) and any(re.search(r"\bimport", line) for line in prose)


def test_every_package_says_what_it_owns_and_what_it_must_not_import():
    packages = {m: p for m, p in MODULES.items() if p.name == "__init__.py"}
    assert {"scenario", "outputs", "cli"} <= set(packages)
    silent = [m for m, p in sorted(packages.items()) if m not in UNDOCUMENTED and not _says_what_it_may_import(p)]
    stale = sorted(m for m in UNDOCUMENTED if m not in packages or _says_what_it_may_import(packages[m]))
    assert not silent, ("packages whose __init__.py docstring does not say what they own and what they may "
                        "import:\n" + "\n".join(silent))
    assert not stale, "UNDOCUMENTED lists packages that are gone or documented; remove them:\n" + "\n".join(stale)
