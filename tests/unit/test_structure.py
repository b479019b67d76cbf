"""The code's shape stays as the architecture says (issue 11): short invariant rules;
docker-py and testcontainers only inside ``harness/engine.py``; only the pytest side
imports the plugin."""

from __future__ import annotations

import ast
from pathlib import Path

import harness

MAX_LINES = 50
"""Longest function allowed in harness/invariants/: a longer rule is read as named steps."""


def _long_functions(folder: Path) -> list[str]:
    """Every function (methods and nested ones too) in the folder longer than MAX_LINES."""
    out = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                n = node.end_lineno - node.lineno + 1
                if n > MAX_LINES:
                    out.append(f"{path.name}:{node.lineno} {node.name} ({n} lines)")
    return out


def test_no_invariant_function_is_over_fifty_lines() -> None:
    folder = Path(harness.__file__).parent / "invariants"
    assert folder.is_dir()
    assert _long_functions(folder) == []


def test_the_length_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    short = "def short() -> None:\n    pass\n\n\n"
    (tmp_path / "m.py").write_text(f"{short}def long() -> None:\n{body}\n")
    assert _long_functions(tmp_path) == [f"m.py:5 long ({MAX_LINES + 1} lines)"]


HARNESS = Path(harness.__file__).parent
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
