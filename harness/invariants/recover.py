"""Recovery: every probe green before the fill is green again once space is back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..timeline import PhaseMark, ProbeResult, Timeline
from ._evidence import (
    fmt_step,
    needs_a_working_target,
    not_judged,
    plural,
    timed_steps,
    ts,
    verdict_of,
)
from .rules import Rules
from .verdict import Verdict

# --- 5. recovery -------------------------------------------------------------------------

@needs_a_working_target
def recovery(tl: Timeline, rules: Rules) -> Verdict:
    """Once space is back, every probe green in steady is green again, in time, no restart."""
    name = "recovery"
    marks = [m for m in tl.of(PhaseMark) if m.phase == "recover"]
    if not marks:
        return not_judged(tl, name, "the run has no recover phase")
    start = marks[0].t
    raw_restarts = tl.facts.get("restarts", {})
    restarts: dict[str, Any] = dict(raw_restarts) if isinstance(raw_restarts, Mapping) else {}
    restarted = {k: v for k, v in restarts.items() if v}
    baseline = sorted({p.probe for p in tl.in_phase(ProbeResult, "steady") if p.passed})
    if not baseline and not restarted:
        ran = sorted({p.probe for p in tl.in_phase(ProbeResult, "steady")})
        return not_judged(tl, name, "no probe was green in the steady phase ("
                           + (f"{', '.join(ran)} failed" if ran else "none ran")
                           + "), so there is nothing to compare recovery against")
    after = tl.in_phase(ProbeResult, "recover")
    evidence: list[str] = []
    broken: list[str] = []
    slow: list[str] = []
    for probe in baseline:
        runs = sorted((p for p in after if p.probe == probe), key=lambda p: p.t)
        if not runs:
            broken.append(probe)
            evidence.append(f"{probe}: never ran during recover")
            continue
        first_ok = next((p for p in runs if p.passed), None)
        last = runs[-1]
        if first_ok is None or not last.passed:
            broken.append(probe)
            bad = next(((t, s) for t, _, s in timed_steps(last) if not s.passed), None)
            detail = fmt_step(last, bad[1], bad[0]) if bad else ts(last.t)
            if first_ok is None:
                evidence.append(f"{probe}: never green again in {len(runs)} runs; last "
                                f"failure {detail}")
            else:
                evidence.append(f"{probe}: green at {ts(first_ok.t)} but failing again at "
                                f"the end: {detail}")
        elif first_ok is not runs[0] and first_ok.t - start > rules.recovery_seconds:
            # late only if seen failing first: a first run that passes proves nothing slow
            slow.append(probe)
            evidence.append(f"{probe}: first green {first_ok.t - start:.2f}s after recover "
                            f"began (bound {rules.recovery_seconds:g}s)")
    if restarted:
        evidence.append("restarts: " + ", ".join(f"{k} x{v}" for k, v in sorted(
            restarted.items())))
    problems = []
    if broken:
        problems.append(f"{plural(len(broken), 'probe')} never green again "
                        f"({', '.join(broken)})")
    if slow:
        problems.append(f"{plural(len(slow), 'probe')} green only after "
                        f"{rules.recovery_seconds:g}s ({', '.join(slow)})")
    if restarted:
        problems.append(f"{plural(len(restarted), 'service')} restarted "
                        f"({', '.join(sorted(restarted))})")
    if problems:
        return verdict_of(tl, name, False, "; ".join(problems), evidence)
    reruns = sum(1 for p in after if p.probe in baseline)
    return verdict_of(tl, name, True,
                    f"judged {plural(len(baseline), 'probe')} green in steady over "
                    f"{plural(reruns, 'run')} in recover: all green again within "
                    f"{rules.recovery_seconds:g}s, with no restart")


