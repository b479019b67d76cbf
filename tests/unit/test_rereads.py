"""Writes made while full are read back again after recovery: damage that persists fails
no_silent_write_loss with the evidence (not recovery: the service works again); a page
asked while full and broken when asked again (a poisoned cache) fails recovery; a
healthy reread passes."""

from __future__ import annotations

from harness.invariants import Rules, no_silent_write_loss, recovery
from harness.timeline import DiskSample, PhaseMark, ProbeResult, StepResult, Timeline

KiB = 1024


def st(status: int, *, write: bool = False, readback: bool = False, passed: bool = True,
       body: str = "") -> StepResult:
    return StepResult(name="w" if write else "r", method="PUT" if write else "GET",
                      target="/f/fd1", status=status, passed=passed, elapsed=0.01,
                      error=None if passed else "body sha256 differs", body_excerpt=body,
                      write=write, readback=readback)


def timeline(*, reread_ok: bool, first_readback_ok: bool = True) -> Timeline:
    tl = Timeline(scenario="unit", volume="files")
    full = DiskSample(1024 * KiB, 0, 64, 10, t=1.0, volume="files")
    free = DiskSample(1024 * KiB, 900 * KiB, 64, 50, t=3.0, volume="files")
    write_run = ProbeResult(1.5, "put", "http", (
        st(201, write=True), st(200, readback=True, passed=first_readback_ok)), write=True)
    again = ProbeResult(4.0, "put", "http", (st(200, readback=True, passed=reread_ok),),
                        tags=("reread",), reread_of=1.5)
    steady = ProbeResult(0.5, "put", "http", (st(201, write=True), st(200, readback=True)),
                         write=True)
    fresh = ProbeResult(3.5, "put", "http", (st(201, write=True), st(200, readback=True)),
                        write=True)
    tl.extend([PhaseMark(0.0, "steady"), steady, PhaseMark(0.9, "fill"), full,
               PhaseMark(1.2, "act"), write_run, PhaseMark(2.5, "free"), free,
               PhaseMark(3.2, "recover"), fresh, again])
    return tl


def test_damage_that_persists_after_recovery_is_a_silent_loss() -> None:
    v = no_silent_write_loss(timeline(reread_ok=False), Rules())
    assert not v.passed
    assert any(e.startswith("lost after recovery:") and "acknowledged while full" in e
               for e in v.evidence), v.evidence
    assert "1 of 3 acknowledged writes" in v.summary, v.summary
    r = recovery(timeline(reread_ok=False), Rules())
    # a fresh write and readback after recovery passed: the service works again, and the
    # old lost write is no_silent_write_loss's alone (judged once, not twice)
    assert r.passed, (r.summary, r.evidence)


def test_a_lost_login_does_not_fail_recovery_but_a_fresh_failure_does() -> None:
    tl = timeline(reread_ok=False)
    broken = ProbeResult(4.5, "put", "http", (st(201, write=True),
                                              st(200, readback=True, passed=False)),
                         write=True)
    tl.add(broken)  # the last fresh run fails: the service did not recover
    r = recovery(tl, Rules())
    assert not r.passed and "put" in r.summary, r.summary


def page(status: int, *, passed: bool, t: float, reread_of: float | None = None
         ) -> ProbeResult:
    step = StepResult(name="page", method="GET", target="/d/fd9", status=status,
                      passed=passed, elapsed=0.01, error=None if passed else "body cut")
    return ProbeResult(t, "dataset", "http", (step,),
                       tags=("reread",) if reread_of is not None else (),
                       reread_of=reread_of)


def test_a_page_rendered_while_full_and_broken_afterwards_fails_recovery() -> None:
    for healthy in (True, False):
        tl = timeline(reread_ok=True)
        tl.extend([page(200, passed=True, t=0.6), page(503, passed=False, t=1.6),
                   page(200, passed=True, t=3.6),
                   page(200, passed=healthy, t=4.2, reread_of=1.6)])
        r = recovery(tl, Rules())
        assert r.passed is healthy, (healthy, r.summary)
        if not healthy:
            assert "dataset" in r.summary, r.summary


def test_a_healthy_reread_passes() -> None:
    assert no_silent_write_loss(timeline(reread_ok=True), Rules()).passed
    assert recovery(timeline(reread_ok=True), Rules()).passed


def test_lost_before_and_after_recovery_counts_once() -> None:
    v = no_silent_write_loss(timeline(reread_ok=False, first_readback_ok=False), Rules())
    assert not v.passed and "1 of 3" in v.summary, v.summary
    assert not any(e.startswith("lost after recovery:") for e in v.evidence)
