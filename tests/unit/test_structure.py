"""The code's shape stays as the architecture says (issue 11): short invariant rules;
docker-py and testcontainers only inside ``harness/engine.py``; no module imports the
pytest plugin; imports follow the data flow and form no cycle."""

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


def test_no_module_imports_the_pytest_plugin() -> None:
    """pytest loads the plugin through its entry point; the battery decides its cases and
    the invariants a target feeds, so the CLI, runner, selftest and bench never load the
    plugin to learn them (the stock stories' ``check`` lives in stock.py, re-exported as
    ``harness.check``)."""
    users = {m for m, deps in import_graph(HARNESS).items() if "plugin" in deps}
    assert users == set()


# --- data flows one way --------------------------------------------------------------------
# target config -> Stack -> loads and probes -> Timeline -> invariants -> report (README,
# Layout). A module of a later stage never imports one of an earlier stage that produces
# its input; records (timeline's DiskSample, Usage) are imported by whoever writes them.
UPSTREAM = {"engine", "hostfs", "guard", "seedcache", "volume", "stack", "writes", "backend",
            "preflight", "probes", "loads", "battery", "scenario", "explore", "runner",
            "selftest", "plugin", "cli", "inprocess", "fakedisk"}
NEVER_IMPORTS = {
    "target": UPSTREAM | {"timeline", "invariants", "report", "report_html"},
    "hostfs": UPSTREAM - {"hostfs"} | {"invariants", "report", "report_html"},
    "engine": UPSTREAM - {"engine", "hostfs", "backend"} | {"invariants", "report", "report_html"},
    "volume": UPSTREAM - {"volume", "engine", "hostfs", "guard", "backend"}
    | {"invariants", "report"},
    "stack": UPSTREAM - {"stack", "engine", "hostfs", "guard", "seedcache", "volume",
                         "writes", "backend"} | {"invariants", "report", "report_html"},
    "probes": UPSTREAM - {"probes", "backend"} | {"invariants", "report", "report_html"},
    "loads": UPSTREAM - {"loads", "probes", "volume", "backend"}
    | {"invariants", "report", "report_html"},
    "timeline": UPSTREAM | {"target", "invariants", "report", "report_html"},
    "invariants": UPSTREAM | {"report", "report_html"},
    "report": UPSTREAM,
    "report_html": UPSTREAM,
}


def harness_imports(tree: ast.Module, package: bool = False) -> set[str]:
    """The harness modules a module imports at run time (relative imports, also inside
    functions; ``if TYPE_CHECKING:`` blocks only name types)."""
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and getattr(node.test, "id", None) == "TYPE_CHECKING"
            for n in ast.walk(node)}
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):  # import harness.plugin
            out |= {a.name.split(".")[1] for a in node.names
                    if a.name.startswith("harness.")}
        elif isinstance(node, ast.ImportFrom) and not node.level:  # from harness.x import
            parts = (node.module or "").split(".")
            if parts[0] == "harness":
                out |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            up = node.level - (1 if package else 0)  # 0: the own subpackage, 1: harness
            if up == 1:
                out |= ({node.module.split(".")[0]} if node.module
                        else {a.name for a in node.names})
    return out


def import_graph(folder: Path) -> dict[str, set[str]]:
    """Module (or subpackage) -> the harness modules it imports, from the source."""
    graph: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        rel = path.relative_to(folder)
        name = rel.parts[0].removesuffix(".py")
        inside = len(rel.parts) > 1
        graph.setdefault(name, set())
        graph[name] |= harness_imports(ast.parse(path.read_text(), str(path)), inside)
    return {k: v - {k, "__init__"} for k, v in graph.items()}


def reaching_back(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a module from an earlier stage of the chain."""
    return sorted(f"{m} imports {d}" for m, never in NEVER_IMPORTS.items()
                  for d in sorted(graph.get(m, set()) & never))


def test_no_module_reaches_back_up_the_chain() -> None:
    graph = import_graph(HARNESS)
    assert set(NEVER_IMPORTS) <= set(graph)  # every stage named is a module of the package
    assert reaching_back(graph) == []


def test_the_harness_imports_form_no_cycle() -> None:
    from graphlib import TopologicalSorter

    graph = import_graph(HARNESS)
    graph.pop("__init__", None)  # the package re-exports: it imports everything
    TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle


def test_the_chain_check_sees_an_import_back_up(tmp_path: Path) -> None:
    (tmp_path / "invariants").mkdir()
    (tmp_path / "invariants" / "writes.py").write_text(
        "from typing import TYPE_CHECKING\nfrom ..timeline import Timeline\n"
        "if TYPE_CHECKING:\n    from ..stack import Stack\n"
        "def f() -> None:\n    from ..probes import Prober\n")
    (tmp_path / "timeline.py").write_text("from .sizes import parse_size\n"
                                          "import harness.plugin\n")
    (tmp_path / "report.py").write_text("from harness.loads import ballast\n")
    graph = import_graph(tmp_path)
    assert graph["invariants"] == {"timeline", "probes"}  # TYPE_CHECKING names only types
    assert reaching_back(graph) == ["invariants imports probes", "report imports loads",
                                    "timeline imports plugin"]
