"""Recovery: every probe green before the fill is green again once space is back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..timeline import PhaseMark, ProbeResult, Timeline
from ._evidence import (
    fmt_step,
    needs_a_disk_that_ran_out,
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

def _restarts(tl: Timeline) -> dict[str, Any]:
    """Services the stack saw restart during the run, with how often."""
    raw = tl.facts.get("restarts", {})
    restarts: dict[str, Any] = dict(raw) if isinstance(raw, Mapping) else {}
    return {k: v for k, v in restarts.items() if v}


def _service_runs(tl: Timeline) -> list[ProbeResult]:
    """The runs of the recover phase that say whether the service works: fresh runs and
    repeated read-only requests (a page rendered while full, asked again). A repeated
    readback of a write lost while full is no_silent_write_loss's evidence only."""
    writes = {(p.probe, p.t) for p in tl.of(ProbeResult) if p.write}
    return [p for p in tl.in_phase(ProbeResult, "recover")
            if p.reread_of is None or (p.probe, p.reread_of) not in writes]


def _judge_probe(probe: str, after: list[ProbeResult], start: float,
                 rules: Rules) -> tuple[str | None, str | None]:
    """How one probe green in steady did in recover: ``("broken" | "slow" | None, evidence)``."""
    runs = sorted((p for p in after if p.probe == probe), key=lambda p: p.t)
    if not runs:
        return "broken", f"{probe}: never ran during recover"
    first_ok = next((p for p in runs if p.passed), None)
    last = runs[-1]
    if first_ok is None or not last.passed:
        bad = next(((t, s) for t, _, s in timed_steps(last) if not s.passed), None)
        detail = fmt_step(last, bad[1], bad[0]) if bad else ts(last.t)
        if first_ok is None:
            return "broken", (f"{probe}: never green again in {len(runs)} runs; last "
                              f"failure {detail}")
        return "broken", (f"{probe}: green at {ts(first_ok.t)} but failing again at the "
                          f"end: {detail}")
    if first_ok is not runs[0] and first_ok.t - start > rules.recovery_seconds:
        # late only if seen failing first: a first run that passes proves nothing slow
        return "slow", (f"{probe}: first green {first_ok.t - start:.2f}s after recover "
                        f"began (bound {rules.recovery_seconds:g}s)")
    return None, None


@needs_a_working_target
@needs_a_disk_that_ran_out
def recovery(tl: Timeline, rules: Rules) -> Verdict:
    """Once space is back, every probe green in steady is green again, in time, no restart.

    Judged on fresh runs of the probes and on read-only requests made while full and
    asked again (a poisoned cache fails here); a repeated readback of a write lost while
    full is not counted (no_silent_write_loss judges that loss)."""
    name = "recovery"
    marks = [m for m in tl.of(PhaseMark) if m.phase == "recover"]
    if not marks:
        return not_judged(tl, name, "the run has no recover phase")
    restarted = _restarts(tl)
    baseline = sorted({p.probe for p in tl.in_phase(ProbeResult, "steady") if p.passed})
    if not baseline and not restarted:
        ran = sorted({p.probe for p in tl.in_phase(ProbeResult, "steady")})
        return not_judged(tl, name, "no probe was green in the steady phase ("
                          + (f"{', '.join(ran)} failed" if ran else "none ran")
                          + "), so there is nothing to compare recovery against")
    after = _service_runs(tl)
    evidence: list[str] = []
    found: dict[str, list[str]] = {"broken": [], "slow": []}
    for probe in baseline:
        kind, line = _judge_probe(probe, after, marks[0].t, rules)
        if kind is not None and line is not None:
            found[kind].append(probe)
            evidence.append(line)
    if restarted:
        evidence.append("restarts: " + ", ".join(f"{k} x{v}" for k, v in sorted(
            restarted.items())))
    broken, slow = found["broken"], found["slow"]
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
