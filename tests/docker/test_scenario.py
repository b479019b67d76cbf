"""Scenario scripts' API (harness.ScenarioStack) against the reference stack: phases
always complete, ad hoc requests are recorded, nothing passes on no evidence."""

from __future__ import annotations

import pytest

from harness import HarnessError, PhaseMark, ScenarioStack, UsageError

pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("scenario-api")]


def test_full_frees_its_ballast_even_when_the_body_fails(fulldisk_stack: ScenarioStack) -> None:
    before = fulldisk_stack.usage("sessions").bytes_free
    with pytest.raises(RuntimeError) as err, fulldisk_stack.full("sessions") as fill:
        assert fulldisk_stack.usage("sessions").bytes_free < 4096 < before
        assert fill.added_bytes > 0
        raise RuntimeError("the body broke")
    assert any("phase 'act'" in n for n in getattr(err.value, "__notes__", []))
    assert fulldisk_stack.usage("sessions").bytes_free >= before - 8192
    phases = [m.phase for m in fulldisk_stack.timeline.of(PhaseMark)]
    assert phases == ["steady", "fill", "act", "free"]


def test_ad_hoc_request_is_recorded_and_judged(fulldisk_stack: ScenarioStack) -> None:
    r = fulldisk_stack.probe("/no-such-page", expect_status=[404])
    assert r.passed and r.steps[0].status == 404 and r.probe == "GET /no-such-page"
    bad = fulldisk_stack.probe("/no-such-page")  # expects 200 by default
    assert not bad.passed and "status 404" in (bad.steps[0].error or "")
    assert fulldisk_stack.timeline.probes("GET /no-such-page") == [r, bad]


def test_misuse_says_what_to_write(fulldisk_stack: ScenarioStack) -> None:
    with pytest.raises(UsageError, match=r"(?s)unknown probe 'upload'.*Hint: use a declared probe"):
        fulldisk_stack.probe("upload")
    with pytest.raises(UsageError, match=r"(?s)unknown invariant.*choose from"):
        fulldisk_stack.judge("no_such_rule")
    with pytest.raises(HarnessError, match="unknown volume 'uploads'"), \
            fulldisk_stack.full("uploads"):
        pass


def test_a_named_invariant_without_evidence_fails_as_not_judged(
        fulldisk_stack: ScenarioStack) -> None:
    fulldisk_stack.observe()  # nothing was full: graceful_refusal has nothing to judge
    with pytest.raises(pytest.fail.Exception, match="graceful_refusal NOT JUDGED"):
        fulldisk_stack.judge("graceful_refusal")


def test_session_flood_until_logins_fail_then_clear(fulldisk_stack: ScenarioStack) -> None:
    """The "locked out" load: logins until a session cannot be written. The hardened app
    refuses them loudly; clearing the folder (as the operator did) brings logins back."""
    ran = fulldisk_stack.session_flood(400)
    assert 0 < ran < 400  # stopped early: three logins in a row failed, the disk was full
    assert fulldisk_stack.usage("sessions").full
    fulldisk_stack.log_flood()
    fulldisk_stack.clear("sessions")
    outcome = fulldisk_stack.judge("no_silent_write_loss", "recovery")
    assert {v.invariant: v.status for v in outcome.verdicts} == {
        "no_silent_write_loss": "pass", "recovery": "pass"}
