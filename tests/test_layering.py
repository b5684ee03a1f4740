"""Imports point one way, down the flow (docs/architecture.md):

errors, theory → scenario → components → engine → results → outputs → api → cli.
A module may import its own layer and layers to its left, never to its right.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "memstack_capacity"
ORDER = {
    "errors": 0, "theory": 0,
    "scenario": 1, "components": 2, "engine": 3, "results": 4, "outputs": 5,
    "api": 6, "cli": 7, "__main__": 7, "__init__": 7,
}  # fmt: skip


def _layer(parts: list[str]) -> str:
    return parts[0].removesuffix(".py")


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("memstack_capacity."):
            yield node.module.split(".")[1], node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("memstack_capacity."):
                    yield alias.name.split(".")[1], node.lineno


def test_every_module_imports_only_to_its_left():
    offenders = []
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 30
    for path in files:
        own = _layer(list(path.relative_to(PACKAGE).parts))
        assert own in ORDER, f"{path} is in no layer; add it to ORDER"
        for target, line in _imports(path):
            assert target in ORDER, f"{path}:{line} imports unknown module {target}"
            if ORDER[target] > ORDER[own]:
                offenders.append(f"{path.relative_to(PACKAGE)}:{line} ({own}) imports {target}")
    assert not offenders, "imports that point right:\n" + "\n".join(offenders)
