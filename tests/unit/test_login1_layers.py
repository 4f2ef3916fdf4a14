"""The login1 adapter only translates: it calls the Service, never the core's manager."""

from __future__ import annotations

import ast
from pathlib import Path

import logoutd.login1

LOGIN1 = Path(logoutd.login1.__file__).parent


def _modules() -> list[Path]:
    modules = sorted(LOGIN1.glob("*.py"))
    assert len(modules) >= 8, modules  # bus, connection, handlers, objects, wire, … found
    return modules


def test_no_login1_module_reaches_the_manager() -> None:
    reached = [f"{path.name}:{node.lineno}" for path in _modules()
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.Attribute) and node.attr in ("manager", "listeners")]
    assert reached == []


def test_the_handlers_import_nothing_from_the_core() -> None:
    tree = ast.parse((LOGIN1 / "handlers.py").read_text())
    imported = [node.module for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module is not None]
    assert "logoutd.api.service" in imported
    assert [m for m in imported if m.startswith("logoutd.core")] == []
