"""README's Layout section names every module of harness/ and every layer of tests/, so
the map a reader gets stays the tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def layout() -> str:
    """The text of README's ``## Layout`` section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^## Layout\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert found, "README.md has no '## Layout' section"
    return found.group(1)


def named(section: str, name: str) -> bool:
    """Whether ``name`` (a file or folder name) stands as a word of the section."""
    return re.search(rf"(?<![\w/.]){re.escape(name)}(?![\w.])", section) is not None


def test_every_module_and_package_of_harness_is_in_the_layout() -> None:
    section = layout()
    missing = []
    for path in sorted((ROOT / "harness").rglob("*.py")):
        if path.name == "__init__.py":
            path = path.parent  # a package: named as its folder
            name = f"{path.name}/"
        else:
            name = path.name
        if path == ROOT / "harness":
            continue
        if not named(section, name):
            missing.append(str(path.relative_to(ROOT)))
    assert not missing, f"README's Layout section does not name: {', '.join(missing)}"


def test_the_layout_names_the_test_layers_and_top_folders() -> None:
    section = layout()
    layers = sorted(p.name for p in (ROOT / "tests").iterdir()
                    if p.is_dir() and any(p.glob("test_*.py")))
    assert layers == ["docker", "plugin", "unit"]
    flat = sorted(p.name for p in (ROOT / "tests").glob("test_*.py"))
    assert not flat, f"tests/ holds only shared helpers: put {', '.join(flat)} in a layer"
    for name in [*(f"{layer}/" for layer in layers),
                 "harness/", "tests/", "scenarios/", "docker/", "examples/", "bench/", "ci/"]:
        assert named(section, name), f"README's Layout section does not name {name}"


def test_a_module_not_in_the_layout_is_found() -> None:
    assert named("  target.py   the config", "target.py")
    assert not named("  harness/target.py", "target.py")
    assert not named("  mytarget.py", "target.py")
