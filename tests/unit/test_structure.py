"""The code's shape stays as the architecture says (issue 11)."""

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
