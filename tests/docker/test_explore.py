"""`fulldisk explore`: Hypothesis finds the order-of-events defect the battery misses.

The proof uses the reference stack's ``stale_partial_exports`` switch (an export cut short
by ENOSPC leaves a work file that a later request publishes as complete). From a fixed
seed, explore finds it within its 60 s budget and shrinks it to at most 4 steps; the
replay file it writes fails the same way; the hardened stack with the same seed and
budget shows nothing; the fixed battery passes the switch.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.explore import Finding, Step, Violation, write_replay
from harness.invariants import Verdict
from harness.target import Target, reference_target

SEED = 29
BUDGET = 60.0
DEFECT = "stale_partial_exports"


def _env(defect: str) -> dict[str, dict[str, str]]:
    target = reference_target()
    return {n: {"DATAHUB_DEFECTS": defect} for n, s in target.services.items()
            if "DATAHUB_DEFECTS" in s.env}


def _finding() -> Finding:
    verdict = Verdict("graceful_refusal", False, "1 of 1 request made while full was not "
                      "refused cleanly", ("success status with a cut body: ...",))
    return Finding("datahub", (Step("fill", volume="cache", leave=4096),
                               Step("download", seq=1), Step("download", seq=1)),
                   ("fill cache to 4 KiB free", "download #1 -> 507",
                    "download #1 -> 200, 0 B of 64 KiB"), verdict)


# --- no Docker ---------------------------------------------------------------------------

def test_story_numbers_each_step_and_names_the_invariant() -> None:
    text = _finding().text()
    assert text.splitlines()[:3] == ["1. fill cache to 4 KiB free", "2. download #1 -> 507",
                                     "3. download #1 -> 200, 0 B of 64 KiB"]
    assert "violated: graceful_refusal: 1 of 1 request" in text
    assert "  success status with a cut body" in text


def test_replay_file_is_valid_python_that_replays_the_steps(tmp_path: Path) -> None:
    target = reference_target()
    path = write_replay(_finding(), tmp_path, target, {"app": {"DATAHUB_DEFECTS": DEFECT}}, 7)
    src = path.read_text()
    assert path.name.startswith("test_datahub_graceful_refusal_")
    compile(src, str(path), "exec")
    assert "Step('fill', volume='cache', leave=4096)," in src
    assert "replay(STEPS, target=TARGET, env=ENV)" in src
    assert "seed 7" in src and "1. fill cache to 4 KiB free" in src
    namespace: dict[str, object] = {}
    exec(compile(src, str(path), "exec"), namespace)  # the steps come back as Step objects
    assert namespace["STEPS"] == list(_finding().steps)


@pytest.mark.parametrize("name", ["x²", "a" * 250, "shop; rm -rf ~", "", "Ünïcode-app"])
def test_replay_file_of_any_target_name_imports(tmp_path: Path, name: str) -> None:
    """A name that is no identifier or too long for a file name still gives a short
    replay file whose test function is a valid identifier (it imports and collects)."""
    f = _finding()
    path = write_replay(Finding(name, f.steps, f.said, f.verdict), tmp_path, reference_target(),
                        {}, 7)
    assert len(path.name) < 100 and path.stem.isidentifier() and path.stem.isascii()
    namespace: dict[str, object] = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    assert callable(namespace[path.stem])


def test_violation_is_an_assertion_carrying_the_finding() -> None:
    v = Violation(_finding())
    assert isinstance(v, AssertionError)
    assert v.finding.invariant == "graceful_refusal"
    assert "failed after 3 steps" in str(v)


# --- Docker: the proof -------------------------------------------------------------------

@pytest.mark.docker
@pytest.mark.xdist_group("explore")
def test_seeded_explore_finds_stale_partial_exports_and_the_replay_fails_the_same_way(
        fulldisk_images: list[str], tmp_path: Path) -> None:
    from harness.explore import explore

    result = explore(reference_target(), seed=SEED, seconds=BUDGET, env=_env(DEFECT),
                     report_dir=tmp_path)
    assert result.finding is not None, f"explore found nothing: {result.summary()} {result.notes}"
    f = result.finding
    print(result.summary() + "\n" + f.text())  # shown with -rP: the story of this run
    assert result.found_at is not None and result.found_at <= BUDGET, result.summary()
    assert len(f.steps) <= 4, f"not shrunk to 4 steps or fewer:\n{f.text()}"
    # the story is the defect's: a download of the same export, while the cache disk was
    # full, answered 200 with a body cut short
    assert f.invariant in ("graceful_refusal", "recovery"), f.text()
    assert any(s.kind == "fill" and s.volume == "cache" for s in f.steps), f.text()
    assert "200" in f.said[-1] and " of " in f.said[-1], f.text()
    assert f.replay is not None and f.replay.exists()
    # the replay file fails the same way when pytest runs it
    run = subprocess.run([sys.executable, "-m", "pytest", str(f.replay), "-p", "no:xdist",
                          "-q", "--no-header"], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[2])
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert f"{f.invariant} failed after {len(f.steps)} steps" in out, out
    assert f.said[0] in out, out


@pytest.mark.docker
@pytest.mark.xdist_group("explore")
def test_the_same_seed_and_budget_find_nothing_on_the_hardened_stack(
        fulldisk_images: list[str], tmp_path: Path) -> None:
    from harness.explore import explore

    result = explore(reference_target(), seed=SEED, seconds=BUDGET, env=_env(""),
                     report_dir=tmp_path)
    assert result.finding is None, result.finding.text() if result.finding else ""
    assert result.steps >= 100, f"too little explored to mean anything: {result.summary()}"


@pytest.mark.docker
def test_the_fixed_battery_does_not_catch_stale_partial_exports(
        fulldisk_images: list[str]) -> None:
    from harness.selftest import run_config

    outcomes = run_config(DEFECT)
    failed = [f"{o.scenario}: {v.invariant}: {v.summary}" for o in outcomes
              for v in o.verdicts if not v.passed]
    assert not failed, "the battery caught it after all:\n" + "\n".join(failed)
    assert all(o.verdicts for o in outcomes)


def test_target_fixture_is_the_reference(fulldisk_target: Target) -> None:
    assert fulldisk_target.downloads is not None  # explore's download rule needs it


@pytest.mark.docker
def test_rewind_resumes_a_cleaner_that_is_no_longer_paused(fulldisk_images: list[str]) -> None:
    """A cleaner resumed behind explore's back (it restarted, or another hand unpaused it)
    is not an error of the rewind: the engine would answer 500 "is not paused"."""
    from harness.explore import Explorer
    from harness.stack import Stack

    with Stack(reference_target()) as stack:
        ex = Explorer(stack)
        assert ex.cleaner is not None
        ex.do(Step("pause_cleaner"))
        cleaner = stack.service(ex.cleaner)
        assert cleaner.status == "paused"
        cleaner.unpause()
        assert ex.rewind() is None
        assert cleaner.status == "running" and not ex.paused


@pytest.mark.docker
def test_pause_and_unpause_reach_their_state_and_refuse_a_dead_container() -> None:
    """Asking for a state the engine already reports is no error (the engine answers 409
    or 500 to it); a container that exited cannot be paused or resumed."""
    from harness import engine
    from harness.errors import InfrastructureError

    spec = engine.ContainerSpec(
        name=f"{engine.run_id()}-pause-twice", image=engine.BASE_IMAGE,
        command=["sleep", "infinity"], env={}, user="65534:65534", ports=(), network="",
        aliases=(), binds={}, volumes={}, role="probe")
    h = engine.start(spec)
    try:
        h.pause()
        h.pause()
        assert h.status == "paused"
        h.unpause()
        h.unpause()
        assert h.status == "running"
        h.exec(["sh", "-c", "kill 1"])
        deadline = time.monotonic() + 10
        while h.status == "running":
            assert time.monotonic() < deadline, "the container did not exit"
            time.sleep(0.05)  # poll interval of a deadline-bounded wait
        with pytest.raises(InfrastructureError, match="pause failed"):
            h.pause()
        with pytest.raises(InfrastructureError, match="unpause failed"):
            h.unpause()
    finally:
        h.remove()
