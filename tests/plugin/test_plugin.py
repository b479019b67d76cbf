"""The pytest plugin, exercised through real pytest sessions (pytester)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

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
    r = pytester.runpytest_subprocess("--fulldisk-battery", "--collect-only", "-q",
                                      "-p", "no:xdist")
    r.stdout.fnmatch_lines(["fulldisk::sessions::no_silent_write_loss",
                            "fulldisk::downloads::core_isolation",
                            "fulldisk::write-flood::no_silent_write_loss",
                            "fulldisk::incident::login_on_a_full_session_disk_is_refused_not_lost"])
    assert engine.count_labelled(run_id).total == 0


FILESHARE = (ROOT / "examples" / "fileshare" / "fulldisk.toml").read_text()
RECORDER = """
import json, os, signal, sys
import harness.target as t

calls = []
for name in ("load_target", "reference_target"):
    def wrap(orig, name=name):
        def rec(*a, **k):
            calls.append(name)
            return orig(*a, **k)
        return rec
    setattr(t, name, wrap(getattr(t, name)))

def pytest_unconfigure(config):
    with open(os.environ["FD_RECORD"], "w") as f:
        json.dump({"target_loads": calls,
                   "engine": "harness.engine" in sys.modules, "docker": "docker" in sys.modules,
                   "sigterm_default": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL}, f)
"""


def _record(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
            *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    """Run pytest in a subprocess with a recording plugin that lives outside the project."""
    side = pytester.path.parent / f"{pytester.path.name}-recorder"
    side.mkdir(exist_ok=True)
    (side / "fd_recorder.py").write_text(RECORDER)
    out = side / "record.json"
    monkeypatch.setenv("PYTHONPATH", str(side))
    monkeypatch.setenv("FD_RECORD", str(out))
    r = pytester.runpytest_subprocess("-p", "fd_recorder", "-p", "no:xdist", *args)
    return r, json.loads(out.read_text())


def test_installed_is_not_in_use(pytester: pytest.Pytester,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """No target and no chaos test selected: no target read, no engine, no SIGTERM handler,
    no header line; the project's own docker-free tests just run."""
    pytester.makepyfile(test_unit="def test_unit():\n    assert 1 + 1 == 2\n")
    pytester.makepyprojecttoml("[tool.other]\nx = 1\n")
    for args in ((), ("-m", "not chaos"), ("-k", "unit")):
        r, rec = _record(pytester, monkeypatch, *args)
        r.assert_outcomes(passed=1)
        assert rec == {"target_loads": [], "engine": False, "docker": False,
                       "sigterm_default": True}, args
        assert "fulldisk:" not in r.stdout.str(), args  # no header line


def test_a_target_or_chaos_puts_the_plugin_in_use(pytester: pytest.Pytester,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The counter-proof: the same recorder sees the plugin at work once it is used."""
    pytester.makepyfile(test_unit="def test_unit():\n    assert 1 + 1 == 2\n")
    r, rec = _record(pytester, monkeypatch, "-m", "chaos", "--collect-only")
    assert rec["sigterm_default"] is True  # collect-only starts nothing
    r, rec = _record(pytester, monkeypatch, "-m", "chaos")
    assert rec["sigterm_default"] is False and rec["target_loads"]
    r.stdout.fnmatch_lines(["fulldisk: target 'datahub'*"])


def test_chaos_with_a_configured_target_collects_the_battery_beside_own_tests(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_own="""
        import pytest
        def test_unit():
            pass
        @pytest.mark.chaos
        def test_own_chaos():
            pass
    """)
    pytester.makefile(".toml", fulldisk=FILESHARE)
    r = pytester.runpytest("-m", "chaos", "--collect-only", "-q", "-p", "no:xdist")
    r.stdout.fnmatch_lines(["test_own.py::test_own_chaos", "fulldisk::uploads::graceful_refusal",
                            "*(1 deselected)*"])
    assert "fulldisk::shared" not in r.stdout.str()  # one volume: the shared disk is that disk
    assert "incident" not in r.stdout.str()  # the fileshare target feeds no incident story
    r = pytester.runpytest("--collect-only", "-q", "-p", "no:xdist")  # no -m chaos: no battery
    assert "fulldisk::" not in r.stdout.str()
    r.stdout.fnmatch_lines(["test_own.py::test_unit", "test_own.py::test_own_chaos"])
    # the same target from [tool.fulldisk] in pyproject.toml, and from --fulldisk-target
    (pytester.path / "fulldisk.toml").rename(pytester.path / "elsewhere.toml")
    r = pytester.runpytest("-m", "chaos", "--collect-only", "-q", "-p", "no:xdist",
                           "--fulldisk-target", "elsewhere.toml")
    r.stdout.fnmatch_lines(["fulldisk::uploads::errors_surface"])
    table = FILESHARE.replace("[services.", "[tool.fulldisk.services.").replace(
        "[volumes.", "[tool.fulldisk.volumes.").replace("[probes.", "[tool.fulldisk.probes.")
    table = table.replace("[[logs]]", "[[tool.fulldisk.logs]]").replace(
        'name = "fileshare"', '[tool.fulldisk]\nname = "fileshare"')
    pytester.makepyprojecttoml(table)
    r = pytester.runpytest("-m", "chaos", "--collect-only", "-q", "-p", "no:xdist")
    r.stdout.fnmatch_lines(["fulldisk::uploads::errors_surface"])


def test_a_bad_target_is_one_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", fulldisk='name = "x"\n[services.web]\nimage = 3\n')
    r = pytester.runpytest("-m", "chaos", "-p", "no:xdist")
    assert r.ret != 0
    r.stdout.fnmatch_lines(["*fulldisk.toml*services.web.image*Hint*"])
    assert "Traceback" not in r.stdout.str()


@pytest.mark.docker
def test_fresh_folder_chaos_runs_the_battery_and_plain_pytest_never_touches_docker(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """The done-when of issue 13: a folder with only fulldisk.toml and one unit test."""
    pytester.makefile(".toml", fulldisk=FILESHARE)
    pytester.makepyfile(test_unit="def test_unit():\n    assert 1 + 1 == 2\n")
    r, rec = _record(pytester, monkeypatch)
    r.assert_outcomes(passed=1)
    assert not rec["engine"] and not rec["docker"] and rec["target_loads"] == []
    r, rec = _record(pytester, monkeypatch, "-m", "chaos")
    outcomes = r.parseoutcomes()
    selected = re.search(r"collected \d+ items / 1 deselected / (\d+) selected", r.stdout.str())
    assert selected and int(selected.group(1)) >= 6, r.stdout.str()[-2000:]  # the battery
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == int(selected.group(1))
    assert outcomes.get("deselected") == 1  # the unit test
    r.stdout.fnmatch_lines(["*fulldisk verdicts*",
                            "[0-9]* passed, [0-9]* failed, [0-9]* not judged"])
    assert rec["engine"]


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

    def test_recovery(fulldisk_record_outcome):
        o = outcome()
        fulldisk_record_outcome(o, "recovery")
        check(o, "recovery")

    def test_health(fulldisk_record_outcome):
        o = outcome()
        fulldisk_record_outcome(o, "health_truthful")
        check(o, "health_truthful")

    def test_refusal(fulldisk_record_outcome):
        o = outcome()
        fulldisk_record_outcome(o, "graceful_refusal")
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


def test_every_fixture_of_the_plugin_is_prefixed() -> None:
    """The plugin adds fixtures to every session that loads it: each starts with
    ``fulldisk_``, so none replaces (or is replaced by) a team's own fixture."""
    import harness.plugin as plugin

    names = [name for name, obj in vars(plugin).items()
             if type(obj).__name__ == "FixtureFunctionDefinition"
             or hasattr(obj, "_fixture_function_marker")
             or hasattr(obj, "_pytestfixturefunction")]
    assert len(names) >= 10, names  # the detection itself works
    assert [n for n in names if not n.startswith("fulldisk_")] == []


def test_a_teams_own_stack_fixtures_do_not_collide(pytester: pytest.Pytester) -> None:
    """A team's conftest defines ``stack``, ``make_stack``, ``outcome_of`` and
    ``record_outcome`` of its own; its tests get those, and fulldisk's fixtures are still
    there under their own names."""
    pytester.makeconftest("""
        import pytest

        @pytest.fixture
        def stack():
            return "team stack"

        @pytest.fixture
        def make_stack():
            return lambda: "team factory"

        @pytest.fixture
        def outcome_of():
            return "team outcome"

        @pytest.fixture
        def record_outcome():
            return "team recorder"
    """)
    pytester.makepyfile(test_team="""
        def test_team(stack, make_stack, outcome_of, record_outcome):
            assert stack == "team stack" and make_stack() == "team factory"
            assert outcome_of == "team outcome" and record_outcome == "team recorder"
    """)
    r = pytester.runpytest("-p", "no:xdist", "-q")
    r.assert_outcomes(passed=1)
    r = pytester.runpytest("-p", "no:xdist", "--fixtures")
    listed = r.stdout.str()
    for name in ("fulldisk_stack --", "fulldisk_make_stack [session scope]",
                 "fulldisk_outcome_of --", "stack -- conftest.py"):
        assert name in listed, listed[-3000:]


def test_a_report_on_a_full_disk_is_one_error_line_and_exit_3(
        pytester: pytest.Pytester) -> None:
    """``--fulldisk-html /dev/full`` (any full disk): the session ends with one line naming
    the path and exit 3, never a traceback; the JSON report beside it is written whole."""
    import json

    pytester.makepyfile(NOT_JUDGED_TEST)
    r = pytester.runpytest_subprocess("-p", "no:xdist", "--fulldisk-report", "rep",
                                      "--fulldisk-html", "/dev/full")
    assert r.ret == 3, r.stdout.str() + r.stderr.str()
    lines = [ln for ln in r.stderr.lines if ln.startswith("fulldisk: error:")]
    assert lines == [lines[0]] and "cannot write /dev/full" in lines[0], r.stderr.str()
    assert "Traceback" not in r.stdout.str() + r.stderr.str()
    report = json.loads((pytester.path / "rep" / "report.json").read_text())
    assert report["counts"] == {"pass": 1, "fail": 1, "not_judged": 1}
    assert not [p for p in (pytester.path / "rep").iterdir() if p.name.endswith(".part")]
