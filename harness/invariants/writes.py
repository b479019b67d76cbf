"""Writes and refusals: no_silent_write_loss, graceful_refusal, core_isolation."""

from __future__ import annotations

from ..sizes import format_size
from ..timeline import LoadEvent, ProbeResult, StepResult, Timeline
from ._evidence import (
    classify_writes,
    could_not_run,
    fmt_step,
    full_note,
    is_loss,
    needs_a_disk_that_ran_out,
    needs_a_working_target,
    not_judged,
    phase_spans,
    plural,
    pressure_lines,
    timed_steps,
    ts,
    verdict_of,
)
from .rules import Rules
from .verdict import Verdict

# --- 1. no_silent_write_loss -------------------------------------------------------------

@needs_a_working_target
def no_silent_write_loss(tl: Timeline, rules: Rules) -> Verdict:
    """An acknowledged write is observable afterwards (the next page is logged in).

    A write that answered an error is not silent. A readback that itself failed loudly
    (5xx, no answer, a hang, a cut body, a non-zero exit) cannot show whether the write
    stuck: it is listed but not counted. Not judged when no acknowledged write was read
    back (no write probe, no readback step, every write refused or every readback loud).
    """
    name = "no_silent_write_loss"
    w = classify_writes(tl)
    disks = tl.disk_index()
    unverified = [f"unverified (readback failed loudly): {x.line(disks)}" for x in w.unverified]
    if not w.runs:
        return not_judged(tl, name, "no probe with a write step ran")
    counts = (f"{plural(w.runs, 'write probe run')}: {w.refused} refused with an error, "
              f"{w.unchecked} acknowledged with no readback step after them, "
              f"{len(w.unverified)} whose readback failed loudly")
    if not w.verified:
        return not_judged(tl, name, f"no acknowledged write was read back ({counts})",
                           unverified)
    lost = w.lost
    if lost:
        flows = ", ".join(sorted({x.probe.probe for x in lost}))
        return verdict_of(tl, name, False,
                        f"{len(lost)} of {plural(len(w.verified), 'acknowledged write')} "
                        f"read back ({flows}) {'was' if len(lost) == 1 else 'were'} lost "
                        "silently: the app answered success and the next request did not "
                        "see the write",
                        [f"lost{' after recovery' if x.again else ''}: {x.line(disks)}"
                         for x in lost] + unverified)
    return verdict_of(tl, name, True,
                    f"judged {plural(len(w.verified), 'acknowledged write')} read back, all "
                    f"visible ({counts})", unverified)


# --- 3. graceful_refusal -----------------------------------------------------------------

def _refusal_problem(s: StepResult, rules: Rules) -> str | None:
    """Why a step that ran on a full disk was not a clean refusal (None when it was)."""
    if s.passed:
        return None
    if s.timed_out or s.elapsed > rules.request_seconds:
        return "hang"
    if s.method == "EXEC":
        if could_not_run(s):
            return f"could not run (exit {s.status})"
        return None  # a command that failed fast with its own exit code refused cleanly
    if s.status is None:
        return "no answer (connection reset)"
    if s.status >= 500:
        return None if s.body_complete else "error with a cut body"
    if s.status >= 400:
        return f"client error {s.status} instead of a server error"
    if not s.body_complete:
        return "success status with a cut body"
    return "success status with a broken page"


OUTCOMES = ("ok", "refused cleanly", "fake success", "cut body", "hang", "other error")
"""How a request ended, as reports draw it: the rules' own classification, one place."""


def request_outcome(flow: ProbeResult, index: int, rules: Rules) -> str:
    """How one step of a flow ended, in the terms graceful_refusal and
    no_silent_write_loss judge it (a key of ``OUTCOMES``).

    A write the app acknowledged whose readback later in the flow answered normally
    without it (``is_loss``: an exec readback must exit 0 to show a loss; any other exit
    failed loudly) is a fake success; so is a success status with a page that failed its
    expectations. A fast server error (an exec's own non-zero exit) is a clean refusal.
    """
    s = flow.steps[index]
    if s.timed_out or s.elapsed > rules.request_seconds:
        return "hang"
    if s.method != "EXEC" and s.status is not None and not s.body_complete:
        return "cut body"
    if s.write and s.acknowledged and any(r.readback and is_loss(r)
                                          for r in flow.steps[index + 1:]):
        return "fake success"
    if s.passed:
        return "ok"
    problem = _refusal_problem(s, rules)
    if problem is None:
        return "refused cleanly"
    if problem == "success status with a broken page" and not s.readback:
        return "fake success"
    return "other error"


@needs_a_working_target
@needs_a_disk_that_ran_out
def graceful_refusal(tl: Timeline, rules: Rules) -> Verdict:
    """While a volume is full, requests pass or fail fast with a 5xx, never hang or lie.

    A fake success (a write acknowledged, then found lost) is a lie whenever it happened:
    the app answered as if the disk had taken the write."""
    name = "graceful_refusal"
    judged = 0
    bad: list[str] = []
    kinds: dict[str, int] = {}
    disks = tl.disk_index()
    fakes = {(id(w.probe), w.index): w for w in classify_writes(tl).lost}

    def flag(problem: str, line: str) -> None:
        kinds[problem] = kinds.get(problem, 0) + 1
        bad.append(f"{problem}: {line}")

    for p in tl.of(ProbeResult):
        for t, i, s in timed_steps(p):
            fake = fakes.get((id(p), i))
            if fake is not None:
                judged += 1
                flag("fake success (acknowledged, then lost)", fake.line(disks))
                continue
            if s.readback or not disks.full_at(t):
                continue
            judged += 1
            problem = _refusal_problem(s, rules)
            if problem:
                flag(problem, f"{fmt_step(p, s, t)} [{full_note(disks, t)}]")
    if not judged:
        why = "no request ran while a volume was full" if tl.full_spans() else \
            "no volume was full (per the disk samples) and no write was lost"
        return not_judged(tl, name, why)
    slack = pressure_lines(tl)
    if bad:
        what = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
        return verdict_of(tl, name, False,
                        f"{len(bad)} of {plural(judged, 'request')} judged (made while full, "
                        f"or writes lost) were not refused cleanly: {what}", slack + bad)
    return verdict_of(tl, name, True,
                    f"judged {plural(judged, 'request')} made while full: all passed or "
                    f"failed fast with a server error (within {rules.request_seconds:g}s)",
                    slack)


# --- 4. core_isolation -------------------------------------------------------------------

@needs_a_working_target
def core_isolation(tl: Timeline, rules: Rules) -> Verdict:
    """Filling a bulk volume (downloads) does not break the declared core flows."""
    name = "core_isolation"
    loads = tl.of(LoadEvent)
    bulk = [e for e in loads if e.load == "download"
            or (e.load == "ballast" and e.volume in rules.bulk_volumes)]
    if not bulk:
        return not_judged(tl, name, "the fill was not bulk data (no downloads and no "
                           "ballast on a bulk volume)")
    steady = tl.in_phase(ProbeResult, "steady")
    green = {p.probe for p in steady if p.core and p.passed}
    if phase_spans(tl, "steady") and not green:
        ran = sorted({p.probe for p in steady if p.core})
        return not_judged(tl, name, "no core probe was green in the steady phase ("
                           + (f"{', '.join(ran)} failed" if ran else "none ran")
                           + "), so a failure while full cannot be blamed on the fill")
    core = [p for p in (*tl.in_phase(ProbeResult, "fill"), *tl.in_phase(ProbeResult, "act"))
            if p.core and (not green or p.probe in green)]
    if not core:
        return not_judged(tl, name, "no core probe ran during the fill and act phases")
    core.sort(key=lambda p: p.t)
    disks = tl.disk_index()
    failing = [p for p in core if not p.passed]
    totals: dict[str, tuple[int, int]] = {}
    for e in loads:
        if e.load in ("drain", "reset", "cleanup", "log_mark"):
            continue
        n, b = totals.get(e.load, (0, 0))
        totals[e.load] = (n + 1, b + e.bytes)
    fill = "; ".join(f"{k}: {n}x, {format_size(b)}" for k, (n, b) in sorted(totals.items()))
    if not failing:
        return verdict_of(tl, name, True,
                        f"judged {plural(len(core), 'core probe run')} while bulk data "
                        "filled the disk: all passed", [f"loads: {fill}"])
    evidence = [f"loads: {fill}"]
    for p in failing:
        first = next(((t, s) for t, _, s in timed_steps(p) if not s.passed), None)
        detail = fmt_step(p, first[1], first[0]) if first else f"{ts(p.t)} {p.probe}"
        evidence.append(f"{detail} [{full_note(disks, p.t)}]")
    names = ", ".join(sorted({p.probe for p in failing}))
    return verdict_of(tl, name, False,
                    f"{len(failing)} of {plural(len(core), 'core probe run')} failed while "
                    f"bulk data filled the disk ({names})", evidence)


