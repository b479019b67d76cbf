"""The CI templates teams copy: valid against the published schemas of GitHub Actions and
GitLab CI, and doing what the README says (install fulldisk, run the gate with options the
CLI really has, publish JUnit and the HTML report)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

TEMPLATES = Path(__file__).resolve().parents[2] / "ci" / "templates"
SCHEMAS = {"github-actions.yml": "vendor.github-workflows", "gitlab-ci.yml": "vendor.gitlab-ci"}
CHECK = Path(sys.executable).with_name("check-jsonschema")


def _check(path: Path, schema: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHECK), "--builtin-schema", schema, str(path)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("name", "broken"), [
    ("github-actions.yml", ("runs-on:", "runs_on:")),
    ("gitlab-ci.yml", ("when: always", "when: sometimes")),
])
def test_template_validates_and_a_broken_copy_does_not(name: str, broken: tuple[str, str],
                                                       tmp_path: Path) -> None:
    path = TEMPLATES / name
    ok = _check(path, SCHEMAS[name])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / name
    bad.write_text(path.read_text().replace(*broken))
    assert _check(bad, SCHEMAS[name]).returncode != 0  # the validator really reads the schema


def _gate_args(text: str) -> list[str]:
    # the `fulldisk gate ...` command, folded YAML (>-) joined back into one line
    joined = re.sub(r"\n\s+(--)", r" \1", text)
    line = next(ln for ln in joined.splitlines() if re.search(r"fulldisk gate\b", ln))
    words = shlex.split(line.split("fulldisk gate", 1)[1])
    return [w for w in words if w.startswith("--")]


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_template_runs_the_gate_and_publishes_junit_and_html(name: str) -> None:
    text = (TEMPLATES / name).read_text()
    assert re.search(r"pip install \"\$FULLDISK_SPEC\"", text)
    options = _gate_args(text)
    assert options == ["--target", "--report-dir", "--junit", "--html"]
    help_text = subprocess.run([sys.executable, "-c", "from harness.cli import main; main()",
                                "gate", "--help"], capture_output=True, text=True, timeout=60,
                               env={**os.environ, "COLUMNS": "200"}).stdout
    for opt in options:
        assert opt in help_text, f"{name} uses {opt}, which `fulldisk gate` does not have"
    for published in ("reports/report.html", "reports/junit.xml"):
        assert re.search(rf"^\s+(- )?{re.escape(published)}$", text, re.M), published
    if name == "gitlab-ci.yml":
        assert re.search(r"reports:\n\s+junit: reports/junit.xml", text)
        assert "when: always" in text
    else:
        assert "actions/upload-artifact@v4" in text and "if: always()" in text
