"""Module boundaries read from the source: docker-py and testcontainers stay inside
``harness/engine.py`` (callers get the engine's own functions and ``Handle`` methods)."""

from __future__ import annotations

import ast
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[2] / "harness"
ENGINE = HARNESS / "engine.py"
DOCKER_LIBS = ("docker", "testcontainers")


def modules() -> dict[str, ast.Module]:
    """Every module of the harness package, parsed, by path relative to the package."""
    return {str(p.relative_to(HARNESS)): ast.parse(p.read_text(), str(p))
            for p in sorted(HARNESS.rglob("*.py")) if p != ENGINE}


def imported(tree: ast.Module) -> set[str]:
    """Top-level names of the modules a tree imports (also inside functions)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_only_the_engine_imports_docker_or_testcontainers() -> None:
    found = {name: sorted(imported(tree) & set(DOCKER_LIBS))
             for name, tree in modules().items()}
    assert {k: v for k, v in found.items() if v} == {}
    assert set(DOCKER_LIBS) <= imported(ast.parse(ENGINE.read_text()))  # the check can see


def test_no_caller_reaches_docker_py_objects_through_the_engine() -> None:
    """``engine.client()`` and a handle's docker-py container are the engine's own: a
    caller pauses, inspects or removes through the engine's functions."""
    leaks = []
    for name, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and (
                    node.attr in ("container", "_container")
                    or (node.attr == "client" and isinstance(node.value, ast.Name)
                        and node.value.id == "engine")):
                leaks.append(f"{name}:{node.lineno} .{node.attr}")
    assert leaks == []


# The pytest side: the stock stories assert with ``check``; ``harness.check`` re-exports it.
PLUGIN_USERS = {"stock.py", "__init__.py"}


def imports_of_plugin(tree: ast.Module) -> bool:
    """Whether a module imports ``harness.plugin`` (relatively or by its full name)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (
                (node.level == 1 and node.module == "plugin")
                or (node.level == 1 and node.module is None
                    and any(a.name == "plugin" for a in node.names))
                or node.module == "harness.plugin"):
            return True
        if isinstance(node, ast.Import) and any(a.name == "harness.plugin" for a in node.names):
            return True
    return False


def test_only_the_pytest_side_imports_the_plugin() -> None:
    """The battery decides its cases and the invariants a target feeds; the CLI, runner,
    selftest and bench never load pytest's plugin to learn them."""
    users = {name for name, tree in modules().items() if imports_of_plugin(tree)}
    assert users == PLUGIN_USERS
