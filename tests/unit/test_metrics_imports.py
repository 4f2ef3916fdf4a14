"""prometheus_client (logoutd[metrics]) is imported only with --metrics-listen: one module
imports it, and the daemon reaches that module only from inside a function."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import logoutd

SRC = Path(logoutd.__file__).resolve().parent
EXPORTER = "logoutd.daemon.metrics"


def _imports(tree: ast.Module) -> list[tuple[str, ast.AST]]:
    """Every module an import statement names, with the statement."""
    found: list[tuple[str, ast.AST]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and not node.level:
            found.append((node.module, node))
    return found


def _module_level(tree: ast.Module) -> set[ast.AST]:
    """Import statements that run at import time (not in a function nor under TYPE_CHECKING)."""
    run: set[ast.AST] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                run.add(node)
            elif isinstance(node, ast.If) and not (isinstance(node.test, ast.Name)
                                                   and node.test.id == "TYPE_CHECKING"):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(tree.body)
    return run


def test_only_the_exporter_imports_prometheus_client_and_only_lazily() -> None:
    importers, eager = [], []
    for path in sorted(SRC.rglob("*.py")):
        module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
        tree = ast.parse(path.read_text(), str(path))
        top = _module_level(tree)
        for name, node in _imports(tree):
            if name.split(".")[0] == "prometheus_client":
                importers.append(module)
            if name == EXPORTER and node in top:
                eager.append(module)
    assert sorted(set(importers)) == [EXPORTER]
    assert eager == [], f"imported at module level by {eager}"


def test_importing_every_other_module_leaves_prometheus_client_out() -> None:
    """The daemon without --metrics-listen: every module but the exporter, and the parser run."""
    script = f"""
import importlib, pkgutil, sys
import logoutd
for info in pkgutil.walk_packages(logoutd.__path__, "logoutd."):
    if info.name != {EXPORTER!r} and not info.name.endswith("__main__"):
        importlib.import_module(info.name)
from logoutd.daemon.main import build_parser
build_parser().parse_args([])
assert {EXPORTER!r} not in sys.modules
print(sorted(m for m in sys.modules if m.split(".")[0] == "prometheus_client"))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": str(SRC.parent)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
