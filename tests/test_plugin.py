"""The pytest plugin, exercised through real pytest sessions (pytester)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_markers_registered_under_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        @pytest.mark.chaos
        @pytest.mark.docker
        def test_x():
            pass
    """)
    r = pytester.runpytest("--strict-markers", "--collect-only", "-q", "-p", "no:xdist")
    r.assert_outcomes()
    assert r.ret == 0


def test_collect_only_starts_nothing_and_names_the_battery(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    from harness import engine

    run_id = f"fd-collect-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("FULLDISK_RUN_ID", run_id)  # anything it made would carry this
    pytester.makepyfile(test_b="""
        def test_battery(battery_case, battery_outcome):
            pass
    """)
    r = pytester.runpytest_subprocess("--collect-only", "-q", "-p", "no:xdist")
    r.stdout.fnmatch_lines(["*test_battery[[]sessions-no_silent_write_loss[]]*",
                            "*test_battery[[]downloads-core_isolation[]]*",
                            "*test_battery[[]session-flood-no_silent_write_loss[]]*"])
    assert engine.count_labelled(run_id).total == 0


def test_docker_required_fails_at_start_when_engine_is_down(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile("""
        import pytest
        @pytest.mark.docker
        def test_needs_docker():
            pass
    """)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.setenv("CI", "true")
    r = pytester.runpytest_subprocess("-p", "no:xdist")
    assert r.ret == 3
    r.stdout.fnmatch_lines(["*No Docker engine answers*Hint*ci/setup*"])
    monkeypatch.delenv("CI")
    r = pytester.runpytest_subprocess("-p", "no:xdist", "-rs")
    r.assert_outcomes(skipped=1)
    r.stdout.fnmatch_lines(["*no Docker engine*"])


def test_bad_target_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_t(fulldisk_target):
            pass
    """)
    r = pytester.runpytest("--fulldisk-target", "missing.toml", "-p", "no:xdist")
    assert r.ret != 0
    r.stdout.fnmatch_lines(["*missing.toml: no such file*"])


NOT_JUDGED_TEST = """
    from harness import Outcome, check
    from harness.invariants import Verdict
    from harness.timeline import Timeline

    def outcome():
        return Outcome("sessions", "sessions", Timeline(), [
            Verdict("recovery", False, "not judged: no probe was green in steady",
                    applicable=False, scenario="sessions", reason="no probe was green in steady"),
            Verdict("health_truthful", True, "judged 3 health samples", scenario="sessions"),
            Verdict("graceful_refusal", False, "1 of 2 requests hung", scenario="sessions"),
        ])

    def test_recovery(record_outcome):
        o = outcome()
        record_outcome(o, "recovery")
        check(o, "recovery")

    def test_health(record_outcome):
        o = outcome()
        record_outcome(o, "health_truthful")
        check(o, "health_truthful")

    def test_refusal(record_outcome):
        o = outcome()
        record_outcome(o, "graceful_refusal")
        check(o, "graceful_refusal")
"""


def test_not_judged_is_a_skip_with_the_reason_in_junit_json_and_summary(
        pytester: pytest.Pytester) -> None:
    import json
    import xml.etree.ElementTree as ET

    pytester.makepyfile(NOT_JUDGED_TEST)
    r = pytester.runpytest("-p", "no:xdist", "-rs", "--junitxml", "junit.xml",
                           "--fulldisk-report", "rep")
    r.assert_outcomes(passed=1, failed=1, skipped=1)
    r.stdout.fnmatch_lines([
        "*fulldisk verdicts*",
        "FAIL sessions: graceful_refusal: 1 of 2 requests hung",
        "NOT JUDGED sessions: recovery: no probe was green in steady",
        "1 passed, 1 failed, 1 not judged",
        "*SKIPPED*recovery not judged: no probe was green in steady*",
    ])
    cases = {c.get("name"): c for c in ET.parse(pytester.path / "junit.xml").iter("testcase")}
    skipped = cases["test_recovery"].find("skipped")
    assert skipped is not None
    assert "recovery not judged: no probe was green in steady" in skipped.get("message", "")
    assert cases["test_health"].find("skipped") is None
    assert cases["test_refusal"].find("failure") is not None
    report = json.loads((pytester.path / "rep" / "report.json").read_text())
    assert report["counts"] == {"pass": 1, "fail": 1, "not_judged": 1}
    nj = next(v for v in report["verdicts"] if v["invariant"] == "recovery")
    assert nj["status"] == "not_judged" and nj["judged"] is False and nj["passed"] is False
    assert nj["reason"] == "no probe was green in steady"
