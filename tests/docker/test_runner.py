"""``fulldisk run`` without pytest (harness/runner.py), and the parts that make a job fast:
stack start by ``depends_on`` levels, seeds cached per image id, one stack per variant."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest
from test_cli import run

from harness import seedcache
from harness.battery import Case, Outcome, battery_cases
from harness.stack import _levels
from harness.target import load_target, reference_target
from harness.timeline import Timeline

BENCH = Path(__file__).resolve().parents[2] / "bench" / "fulldisk.toml"


def test_services_start_level_by_level_of_depends_on() -> None:
    ref = reference_target()
    assert [sorted(level) for level in _levels(ref.services)] == [["app", "cleaner"], ["web"]]


def test_one_volume_has_no_shared_scenario_and_two_volumes_do() -> None:
    one = load_target(str(BENCH))
    assert [c.id for c in battery_cases(one)] == ["www"]
    ids = [c.id for c in battery_cases(reference_target())]
    assert "shared" in ids and ids.index("shared") == len(reference_target().volumes)


def test_seed_cache_keys_by_image_id_and_path_and_keeps_absent_paths(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FULLDISK_SEED_CACHE", str(tmp_path))
    monkeypatch.setattr(seedcache, "_memory", {})
    assert seedcache.get("sha256:a", "/d") == (False, None)
    seedcache.put("sha256:a", "/d", b"tar bytes")
    seedcache.put("sha256:a", "/nothing", None)
    monkeypatch.setattr(seedcache, "_memory", {})  # a new process: only the disk is left
    assert seedcache.get("sha256:a", "/d") == (True, b"tar bytes")
    assert seedcache.get("sha256:a", "/nothing") == (True, None)
    assert seedcache.get("sha256:b", "/d") == (False, None)  # a rebuilt image: a new id
    assert len(list(tmp_path.iterdir())) == 2
    monkeypatch.setenv("FULLDISK_SEED_CACHE", "off")
    monkeypatch.setattr(seedcache, "_memory", {})
    seedcache.put("sha256:c", "/d", b"x")
    assert seedcache.get("sha256:c", "/d") == (True, b"x")
    assert len(list(tmp_path.iterdir())) == 2


def _verdicts(report_dir: Path) -> set[tuple[str, str, str]]:
    report = json.loads((report_dir / "report.json").read_text())
    return {(v["scenario"], v["invariant"], v["status"]) for v in report["verdicts"]}


@pytest.mark.docker
def test_run_straight_judges_what_run_through_pytest_judges(tmp_path: Path) -> None:
    """The same target, once straight and once through pytest (-k selects every case):
    the same verdicts, the same exit code, the same files."""
    straight = run("run", "--target", str(BENCH), "--report-dir", str(tmp_path / "a"))
    assert straight.returncode == 0, straight.stdout[-2000:] + straight.stderr[-2000:]
    assert not (tmp_path / "a" / "pytest.log").exists()  # no pytest session ran
    viapytest = run("run", "--target", str(BENCH), "--report-dir", str(tmp_path / "b"),
                    "-k", "www")
    assert viapytest.returncode == 0, viapytest.stdout[-2000:]
    assert (tmp_path / "b" / "pytest.log").exists()
    assert _verdicts(tmp_path / "a") == _verdicts(tmp_path / "b") == {
        ("battery-www", "graceful_refusal", "pass"), ("battery-www", "recovery", "pass"),
        ("battery-www", "core_isolation", "pass"), ("battery-www", "errors_surface",
                                                   "not_judged")}
    assert (tmp_path / "a" / "report.html").stat().st_size > 100_000
    assert "PASSED" in straight.stdout and "battery-www" in straight.stdout


@pytest.mark.docker
def test_run_straight_reports_a_service_that_exits_at_start_as_exit_3(tmp_path: Path) -> None:
    cfg = tmp_path / "fulldisk.toml"
    cfg.write_text('name = "x"\n[services.a]\nimage = "fulldisk/base:bookworm"\nports = [80]\n'
                   'ready = { http = "/" }\n'
                   'command = ["sh", "-c", "echo boom: cannot open config; exit 7"]\n'
                   '[volumes.v]\nsize = "1MiB"\nmounts = [{ service = "a", path = "/d" }]\n'
                   '[probes.p]\nservice = "a"\nsteps = [{ path = "/" }]\n')
    p = run("run", "--target", str(cfg), "--report-dir", str(tmp_path / "r"))
    assert p.returncode == 3, p.stdout[-2000:] + p.stderr[-2000:]
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["passed"] is False and "exited at start (exit code 7)" in report["errors"][0]
    assert "Traceback" not in p.stdout + p.stderr


class _FakeStack:
    """Records the order of calls: the diff must be read before the stack is removed."""

    def __init__(self, calls: list[str], name: str, paths: dict[str, list[str]]) -> None:
        self.calls, self.name, self.paths = calls, name, paths

    def untested_paths(self) -> dict[str, list[str]]:
        self.calls.append(f"diff {self.name}")
        return self.paths

    def __exit__(self, *exc: object) -> None:
        self.calls.append(f"remove {self.name}")


def test_untested_paths_are_read_once_per_stack_before_it_goes_and_not_after_an_interrupt(
) -> None:
    from harness.runner import _Stacks

    calls: list[str] = []
    stacks = _Stacks(reference_target())
    stacks.running = {False: _FakeStack(calls, "plain", {"app": ["/tmp"]}),  # type: ignore
                      True: _FakeStack(calls, "shared", {"app": ["/srv"], "web": ["/x"]})}
    stacks.release(True)  # the shared stack's last case ended
    assert calls == ["diff shared", "remove shared"]
    stacks.stop_all()  # an interrupt: teardown only
    assert calls[2:] == ["remove plain"]
    assert stacks.untested == {"app": {"/srv"}, "web": {"/x"}}
    stacks.running = {False: _FakeStack(calls, "again", {"app": ["/tmp"]})}  # type: ignore
    stacks.stop_all(untested=True)
    assert calls[3:] == ["diff again", "remove again"]
    assert stacks.untested == {"app": {"/srv", "/tmp"}, "web": {"/x"}}
    with pytest.raises(Exception, match="no stack starts"):
        stacks.get(False)  # once stopped, a lane still running cannot start another


def _fake_cases() -> list[Case]:
    def case(cid: str, *, shared: bool = False, fresh: bool = False) -> Case:
        return Case(cid, None, shared, lambda s: None, ("recovery",), fresh=fresh)  # type: ignore
    return [case("a"), case("b"), case("s", shared=True), case("f1", fresh=True),
            case("f2", fresh=True)]


def test_lanes_run_stacks_at_once_and_keep_the_cases_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """f1 (a fresh stack) waits for a and s to be running: run one after another it would
    wait in vain. Results come out in the cases' order; the plain stack's cases in order."""
    from harness import battery
    from harness.runner import BatteryRun, _Lanes

    started = {c: threading.Event() for c in ("a", "b", "s", "f1", "f2")}
    order: list[str] = []

    def run_case(case: Case, target: object, stack_for: object, **kw: object) -> Outcome:
        started[case.id].set()
        order.append(case.id)
        if case.id == "f1":
            assert started["a"].wait(10) and started["s"].wait(10), "lanes did not overlap"
        return Outcome(case.id, None, Timeline(scenario=case.id))

    monkeypatch.setattr(battery, "run_case", run_case)
    done: list[str] = []
    lanes = _Lanes(reference_target(), _fake_cases(), lambda c, o: done.append(c.id))
    assert lanes.lanes() == [[0, 1], [2], [3], [4]]
    lanes.run(5)
    lanes.close()
    result = BatteryRun()
    lanes.collect(result)
    assert not result.errors and result.ran == 5
    assert [o.scenario for o in result.outcomes] == ["a", "b", "s", "f1", "f2"]
    assert order.index("a") < order.index("b") and sorted(done) == sorted(order)


def test_a_broken_case_stops_its_lane_and_starts_no_other_and_is_reported_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import battery
    from harness.errors import InfrastructureError
    from harness.runner import BatteryRun, _Lanes

    ran: list[str] = []

    def run_case(case: Case, target: object, stack_for: object, **kw: object) -> Outcome:
        ran.append(case.id)
        raise InfrastructureError(f"{case.id}: the engine went away", "start it")

    monkeypatch.setattr(battery, "run_case", run_case)
    lanes = _Lanes(reference_target(), _fake_cases(), lambda c, o: None)
    lanes.run(1)  # one lane at a time: after a breaks, nothing else starts
    lanes.close()
    result = BatteryRun()
    lanes.collect(result)
    assert ran == ["a"] and result.ran == 0
    assert len(result.errors) == 1 and "a: the engine went away" in result.errors[0]
    assert result.error_exit == 3


def test_bench_measures_a_jobs_own_peak_memory_not_its_callers() -> None:
    """ci/bench starts each job from a small launcher: Linux hands a parent's peak
    resident size down to its children, so a job started straight from a big process
    would report the caller's peak."""
    from harness.bench import run_job

    ballast = b"x" * (160 << 20)  # this process now peaks above 160 MiB
    small = run_job(["true"])
    big = run_job([sys.executable, "-c", "b = b'x' * (100 << 20)"])
    assert len(ballast) and small.code == 0
    assert small.maxrss_mib < 40, small
    assert 100 < big.maxrss_mib < 160, big


def test_meanwhile_runs_once_all_cases_ended_while_the_last_stacks_are_removed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The report's charts are drawn while the engine removes the last stacks: the hook
    comes after every case, with the outcomes in the cases' order, before any stack whose
    removal waits for it is gone."""
    from harness import battery
    from harness.runner import _Lanes

    calls: list[str] = []
    drawn = threading.Event()

    class SlowStack(_FakeStack):
        def __exit__(self, *exc: object) -> None:
            assert drawn.wait(10), "the stacks were removed before the hook ran"
            super().__exit__(*exc)

    def run_case(case: Case, target: object, stack_for: object, **kw: object) -> Outcome:
        calls.append(case.id)
        return Outcome(case.id, None, Timeline(scenario=case.id))

    def meanwhile(outcomes: list[Outcome]) -> None:
        calls.append("charts " + ",".join(o.scenario for o in outcomes))
        drawn.set()

    monkeypatch.setattr(battery, "run_case", run_case)
    lanes = _Lanes(reference_target(), _fake_cases(), lambda c, o: None)
    lanes.stacks.running = {False: SlowStack(calls, "plain", {}),  # type: ignore[dict-item]
                            True: SlowStack(calls, "shared", {})}
    lanes.run(5, meanwhile)
    lanes.close()
    assert not lanes.lane_errors
    assert calls.count("charts a,b,s,f1,f2") == 1
    charts = calls.index("charts a,b,s,f1,f2")
    assert all(calls.index(c) < charts for c in ("a", "b", "s", "f1", "f2"))
    assert charts < calls.index("remove plain") and charts < calls.index("remove shared")
