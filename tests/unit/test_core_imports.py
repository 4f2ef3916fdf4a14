"""The core's modules import each other without a cycle, counting every import: at the top,
under TYPE_CHECKING and inside functions (a cycle hidden there is still a cycle)."""

from __future__ import annotations

import ast
from pathlib import Path

import logoutd.core

CORE = Path(logoutd.core.__file__).resolve().parent
PACKAGE = "logoutd.core"


def imports_of(path: Path) -> set[str]:
    """The core modules a module names in any import statement, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            if node.module == PACKAGE:  # from logoutd.core import sessions
                found |= {alias.name for alias in node.names}
            elif node.module.startswith(PACKAGE + "."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[2] for alias in node.names
                      if alias.name.startswith(PACKAGE + ".")}
    return found - {path.stem}


def graph() -> dict[str, set[str]]:
    modules = {p.stem: p for p in CORE.glob("*.py") if p.stem != "__init__"}
    return {name: imports_of(path) & modules.keys() for name, path in modules.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_checker_finds_a_hidden_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                   "    from logoutd.core.b import B\n")
    (tmp_path / "b.py").write_text("def f():\n    from logoutd.core import a\n")
    edges = {p.stem: imports_of(p) for p in tmp_path.glob("*.py")}
    assert edges == {"a": {"b"}, "b": {"a"}}
    assert find_cycle(edges) in (["a", "b", "a"], ["b", "a", "b"])


def test_the_core_import_graph_is_acyclic() -> None:
    edges = graph()
    assert "sessions" in edges and "users" in edges  # the graph is really read
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges) or [])


def test_the_stop_round_is_a_leaf_of_ports_and_timers() -> None:
    edges = graph()
    assert edges["stopround"] <= {"ports", "timers", "killrecords"}
    assert edges["killrecords"] <= {"ports"}  # what the round names, from /proc via the ports
