"""Selftest: proof that the battery catches each defect switch of the reference stack
(alone) with the intended invariant, and raises no false alarm on the hardened build."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from .battery import Outcome
from .plugin import battery_cases
from .stack import Stack, ensure_images
from .target import reference_target


def run_config(defect: str | None, *, progress: Callable[[str], None] = lambda s: None
               ) -> list[Outcome]:
    """The whole battery against the reference stack with one switch on (or none)."""
    target = reference_target()
    env = {"DATAHUB_DEFECTS": defect or ""}
    overrides = {name: env for name, s in target.services.items()
                 if "DATAHUB_DEFECTS" in s.env}
    outcomes: list[Outcome] = []
    with Stack(target, env=overrides) as plain, Stack(target.shared(), env=overrides) as shared:
        for case in battery_cases(target):
            s = shared if case.shared else plain
            s.reset()
            t0 = time.monotonic()
            outcomes.append(case.run(s))
            progress(f"  {defect or 'hardened'}: {case.id} "
                     f"({time.monotonic() - t0:.1f} s)")
    return outcomes


def run_selftest(names: list[str], expected: Mapping[str, str], *,
                 progress: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Run every switch and the hardened build; returns the matrix as JSON-ready data."""
    ensure_images(reference_target())
    t0 = time.monotonic()
    result: dict[str, Any] = {"defects": {}, "hardened": {}}
    hardened = run_config(None, progress=progress)
    alarms = sorted({f"{o.scenario}: {v.invariant}: {v.summary}"
                     for o in hardened for v in o.verdicts if v.failed})
    unjudged = sorted({f"{o.scenario}: {v.invariant}: {v.reason}"
                       for o in hardened for v in o.verdicts if not v.judged})
    result["hardened"] = {"passed": not alarms and not unjudged, "false_alarms": alarms,
                          "not_judged": unjudged}
    for name in names:
        outcomes = run_config(name, progress=progress)
        failed = sorted({v.invariant for o in outcomes for v in o.verdicts if v.failed})
        result["defects"][name] = {"caught": expected[name] in failed,
                                   "expected": expected[name], "invariants": failed}
    result["seconds"] = round(time.monotonic() - t0, 1)
    result["passed"] = result["hardened"]["passed"] and all(
        d["caught"] for d in result["defects"].values())
    return result


def matrix_text(result: Mapping[str, Any]) -> str:
    """The matrix for a terminal."""
    lines = [f"{'switch':22} {'caught':7} {'expected':22} caught by"]
    for name, d in result["defects"].items():
        lines.append(f"{name:22} {'yes' if d['caught'] else 'NO':7} {d['expected']:22} "
                     f"{', '.join(d['invariants']) or '-'}")
    h = result["hardened"]
    lines.append(f"{'hardened':22} {'ok' if h['passed'] else 'FALSE ALARMS':7}")
    lines += [f"  false alarm: {a}" for a in h["false_alarms"]]
    lines.append(f"selftest {'PASSED' if result['passed'] else 'FAILED'} in "
                 f"{result['seconds']} s")
    return "\n".join(lines)
