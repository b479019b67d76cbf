"""Each invariant proven both ways against the reference stack: every defect switch,
alone, is caught by the invariant the design names, with evidence of its symptom; the
hardened build raises no alarm and leaves no fed invariant unjudged.

One test per configuration, so ``-n 2`` spreads them; ``fulldisk selftest`` prints the
same matrix. The judging itself is unit-tested first, on hand-made outcomes.
"""

from __future__ import annotations

import pytest

from harness.battery import Outcome
from harness.invariants import Verdict
from harness.refapp import known_defects
from harness.selftest import (
    DEFECTS,
    NOT_IN_SELFTEST,
    SWITCHES,
    judge_hardened,
    judge_switch,
    run_config,
)
from harness.timeline import Timeline


def _outcome(*verdicts: Verdict) -> Outcome:
    return Outcome("battery-downloads", "downloads", Timeline(), list(verdicts))


CUT = ("success status with a cut body: t=1.13s download/GET: GET /datasets/pluto-1/download"
       "?format=csv&size=131072 -> 200 in 0.01s (body cut); body cut short [downloads full]")


def test_caught_needs_the_named_invariant_failing_on_the_symptom() -> None:
    sw = SWITCHES["streamed_exports"]
    hit = Verdict("graceful_refusal", False, "1 of 8 requests ...", (CUT,))
    assert judge_switch("streamed_exports", sw, [_outcome(hit)])["caught"] is True
    # the right invariant failing for another reason is no proof
    other = Verdict("graceful_refusal", False, "1 hang", ("hang: t=1s home/: GET / -> None",))
    d = judge_switch("streamed_exports", sw, [_outcome(other)])
    assert d["caught"] is False and d["failed_without_symptom"] == [
        "battery-downloads: 1 hang"]
    # not judged is neither caught nor a pass
    nj = Verdict("graceful_refusal", False, "not judged: x", applicable=False, reason="x")
    d = judge_switch("streamed_exports", sw, [_outcome(nj)])
    assert d["caught"] is False and d["not_judged"] == ["battery-downloads: x"]
    # the symptom under another invariant does not count either
    wrong = Verdict("errors_surface", False, "...", (CUT,))
    assert judge_switch("streamed_exports", sw, [_outcome(wrong)])["caught"] is False


def test_hardened_fails_on_any_not_judged_verdict_of_a_fed_invariant() -> None:
    ok = Verdict("recovery", True, "judged 4 probes")
    nj = Verdict("health_truthful", False, "not judged: y", applicable=False, reason="y")
    assert judge_hardened([_outcome(ok)], {"recovery", "health_truthful"})["passed"] is True
    h = judge_hardened([_outcome(ok, nj)], {"recovery", "health_truthful"})
    assert h["passed"] is False and h["not_judged"] == [
        "battery-downloads: health_truthful: y"]
    assert judge_hardened([_outcome(ok, nj)], {"recovery"})["passed"] is True
    bad = Verdict("recovery", False, "1 probe never green again")
    assert judge_hardened([_outcome(bad)], {"recovery"})["false_alarms"]
    assert judge_hardened([], {"recovery"})["passed"] is False  # nothing judged, no pass


def test_every_switch_of_the_stack_is_in_the_selftest() -> None:
    """The app's own KNOWN_DEFECTS and the selftest's list agree both ways: a switch added
    to the app without a selftest entry (or a reason it is caught elsewhere) fails here,
    and so does a selftest entry the app does not know."""
    known = set(known_defects())
    assert {"silent_sessions", "stale_partial_exports"} <= known  # the parse found the list
    assert set(SWITCHES) | set(NOT_IN_SELFTEST) == known
    assert not set(SWITCHES) & set(NOT_IN_SELFTEST)
    assert {n: s.invariant for n, s in SWITCHES.items()} == DEFECTS
    assert set(DEFECTS.values()) == {
        "no_silent_write_loss", "errors_surface", "graceful_refusal", "core_isolation",
        "recovery", "cleanup_keeps_up", "counter_accuracy", "health_truthful", "log_integrity"}


@pytest.mark.docker
@pytest.mark.parametrize("defect", list(SWITCHES))
def test_defect_switch_is_caught_by_its_invariant(defect: str, fulldisk_images: list[str]) -> None:
    d = judge_switch(defect, SWITCHES[defect], run_config(defect))
    assert d["caught"], (
        f"{defect} was not caught by {d['expected']} on its symptom {d['symptom']!r}; "
        f"failed: {d['invariants'] or 'none'}; off symptom: {d['failed_without_symptom']}; "
        f"not judged: {d['not_judged']}")


@pytest.mark.docker
def test_hardened_build_raises_no_false_alarm_and_judges_everything(
        fulldisk_images: list[str]) -> None:
    from harness.battery import fed_invariants
    from harness.target import reference_target

    outcomes = run_config(None)
    h = judge_hardened(outcomes, set(fed_invariants(reference_target())))
    alarms = [f"{o.scenario}: {v.invariant}: {v.summary}\n  " + "\n  ".join(v.evidence[:8])
              for o in outcomes for v in o.verdicts if v.failed]
    assert not alarms, "false alarms on the hardened build:\n" + "\n".join(alarms)
    assert not h["not_judged"], "not judged on the hardened build:\n" + "\n".join(
        h["not_judged"])
    assert h["passed"] and h["verdicts"] == sum(len(o.verdicts) for o in outcomes)


@pytest.mark.docker
def test_login_302_that_loses_the_session_and_logs_nothing_fails_three_rules(
        fulldisk_make_stack: object, fulldisk_target: object) -> None:
    """Exversion's login on a full session disk, with the log errors swallowed too: the
    app answers 302 as if fine, the next page is logged out, nothing anywhere says why."""
    from collections.abc import Callable

    from harness.battery import volume_scenario
    from harness.stack import Stack
    from harness.target import Target

    assert callable(fulldisk_make_stack) and isinstance(fulldisk_target, Target)
    make: Callable[..., Stack] = fulldisk_make_stack
    env = {"DATAHUB_DEFECTS": "silent_sessions,log_blackhole"}
    stack = make(fulldisk_target, env={n: env for n, s in fulldisk_target.services.items()
                                       if "DATAHUB_DEFECTS" in s.env})
    outcome = volume_scenario(stack, "sessions")
    for name in ("no_silent_write_loss", "graceful_refusal", "errors_surface"):
        v = outcome.verdict(name)
        assert v.failed, v
        assert any("login/login: POST /login -> 302" in e for e in v.evidence), v.evidence
    assert "fake success" in outcome.verdict("graceful_refusal").summary
    assert "fake success" in outcome.verdict("errors_surface").summary
