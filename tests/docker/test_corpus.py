"""The corpus: stock third-party targets (``examples/<name>/``) judged by ``fulldisk run``
exactly as their ground truth says.

Each target's ``truth.json`` holds the verdicts that follow from the invariants' definitions
and from what the software really did on a full disk, measured by hand without fulldisk
(``truth.sh`` -> ``observed.json``, explained in ``EXPECTED.md``). A test per scenario and
invariant asserts that the harness says the same; the battery runs once per target, through
the command a user types, limited to the scenarios the truth covers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CORPUS = ("mediawiki", "webdav", "mariadb", "redis", "apachecache", "influxdb")
RUN_SECONDS = 240
KNOWN_WRONG: dict[tuple[str, str, str], str] = {
}
"""(target, scenario, invariant) -> the harness defect that still makes it disagree with the
measured truth (strict: the test fails as soon as the harness gets it right)."""
FLAKY_WRONG: dict[tuple[str, str, str], str] = {
}
"""Disagreements that depend on timing: expected to fail, not strict (they pass at times)."""

pytestmark = [pytest.mark.docker]


def truth(name: str) -> dict[str, dict[str, str]]:
    """A corpus target's measured verdicts: scenario -> invariant -> pass/fail."""
    data: dict[str, dict[str, str]] = json.loads(
        (EXAMPLES / name / "truth.json").read_text(encoding="utf-8"))
    return data


def _cases() -> list[Any]:
    out = []
    for name in CORPUS:
        for scenario, verdicts in truth(name).items():
            for invariant in verdicts:
                key = (name, scenario, invariant)
                # One worker runs all of a target's cases: the battery runs once per target.
                marks = [pytest.mark.xdist_group(f"corpus-{name}")]
                if key in KNOWN_WRONG:
                    marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_WRONG[key]))
                elif key in FLAKY_WRONG:
                    marks.append(pytest.mark.xfail(strict=False, reason=FLAKY_WRONG[key]))
                out.append(pytest.param(key, id="-".join(key), marks=marks))
    return out


def _scenario_id(v: dict[str, Any]) -> str:
    """The battery case id of a verdict (a volume case is named after its volume)."""
    return str(v.get("scenario", "")).removeprefix("battery-").removeprefix("incident-")


def _select(name: str) -> str:
    """The -k expression for the cases a target's truth covers: battery nodes are
    fulldisk::<case id>::<invariant>; an incident case runs under the stories that read it
    (fulldisk::incident::<story>)."""
    from harness.stock import INCIDENT

    stories: dict[str, list[str]] = {}
    for story in INCIDENT:
        for case, _ in getattr(story, "fulldisk_needs", ()):
            stories.setdefault(case, []).append(story.__name__)
    terms = []
    for case in truth(name):
        incident = case in stories and case not in _volumes(name)
        terms += stories[case] if incident else [case]
    return " or ".join(terms)


def _volumes(name: str) -> set[str]:
    """The volume names of a corpus target (their cases are battery nodes, not stories)."""
    from harness import load_target

    return set(load_target(str(EXAMPLES / name / "fulldisk.toml")).volumes)


def run_report(target: Path, out: Path, select: str) -> dict[str, Any]:
    """``fulldisk run`` on a target as a user types it, limited by ``-k``: its JSON report,
    with the tail of its output under ``_output``; the test fails when it wrote none."""
    exe = Path(sys.executable).with_name("fulldisk")
    proc = subprocess.run(
        [str(exe), "run", "--target", str(target), "--json", str(out / "report.json"),
         "--report-dir", str(out), "-k", select],
        capture_output=True, text=True, timeout=RUN_SECONDS, env=os.environ.copy(),
        check=False)
    report_path = out / "report.json"
    if not report_path.is_file():
        pytest.fail(f"fulldisk run wrote no report for {target} (exit {proc.returncode}):\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}", pytrace=False)
    report: dict[str, Any] = json.loads(report_path.read_text(encoding="utf-8"))
    report["_output"] = (proc.stdout + proc.stderr)[-1500:]
    return report


@pytest.fixture(scope="session")
def corpus_report(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], dict[str, Any]]:
    """The JSON report of ``fulldisk run`` on a corpus target: run once per session, lazily."""
    runs: dict[str, dict[str, Any]] = {}

    def run(name: str) -> dict[str, Any]:
        if name in runs:
            return runs[name]
        out = tmp_path_factory.mktemp(f"corpus-{name}")
        runs[name] = run_report(EXAMPLES / name / "fulldisk.toml", out, _select(name))
        return runs[name]

    return run


@pytest.mark.parametrize("case", _cases())
def test_corpus_verdict_matches_truth(case: tuple[str, str, str],
                                      corpus_report: Callable[[str], dict[str, Any]]) -> None:
    """The harness's verdict on a corpus target equals the measured ground truth."""
    name, scenario, invariant = case
    report = corpus_report(name)
    found = [v for v in report["verdicts"]
             if _scenario_id(v) == scenario and v["invariant"] == invariant]
    expected = truth(name)[scenario][invariant]
    if not found:
        pytest.fail(f"{name}: fulldisk gave no verdict for {scenario}/{invariant} "
                    f"(expected {expected}); errors: {report.get('errors')}\n"
                    f"{report['_output']}", pytrace=False)
    v = found[0]
    status = v.get("status") or ("pass" if v["passed"] else "fail")
    assert status == expected, (
        f"{name} {scenario}/{invariant}: fulldisk says {status}, truth is {expected} "
        f"(examples/{name}/EXPECTED.md)\n{v['summary']}\n" + "\n".join(v.get("evidence", [])))
