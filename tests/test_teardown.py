"""Nothing outlives a run: a real run in a subprocess, ended at a chosen phase by a
normal end, a failing test, SIGINT, SIGTERM or SIGKILL; then count what is labelled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from harness import engine

# One worker runs these in order: each spawns real sessions, and a session start reaps
# stale runs (which these tests create on purpose).
pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("teardown")]

ROOT = Path(__file__).resolve().parent.parent


def start_run(tmp_path: Path, hold: str | None, *, defects: str = "",
              select: str = "sessions and recovery") -> tuple[subprocess.Popen[bytes], str, Path]:
    run_id = f"fd-kill-{uuid.uuid4().hex[:8]}"
    phases = tmp_path / "phases"
    env = {**os.environ, "FULLDISK_RUN_ID": run_id, "FULLDISK_PHASE_FILE": str(phases),
           "DATAHUB_DEFECTS": defects, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    if hold:
        env["FULLDISK_HOLD_PHASE"] = hold
    p = subprocess.Popen([sys.executable, "-m", "pytest", str(ROOT / "scenarios"),
                          "--fulldisk-battery", "-m", "chaos",
                          "-k", select, "-p", "no:xdist", "-q", "-p", "no:cacheprovider"],
                         cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return p, run_id, phases


def wait_for_phase(p: subprocess.Popen[bytes], phases: Path, phase: str,
                   deadline: float = 120) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if phases.exists() and phase in phases.read_text().split():
            return
        if p.poll() is not None:
            out = p.stdout.read().decode() if p.stdout else ""
            pytest.fail(f"run ended before phase {phase!r}: {out[-2000:]}")
        time.sleep(0.05)  # polling a file with a deadline
    p.kill()
    pytest.fail(f"phase {phase!r} not reached within {deadline} s")


def labelled(run_id: str) -> engine.Leftovers:
    return engine.count_labelled(run_id)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("phase", ["fill", "act"])
def test_interrupt_mid_phase_leaves_nothing(tmp_path: Path, sig: signal.Signals,
                                           phase: str) -> None:
    p, run_id, phases = start_run(tmp_path, phase)
    wait_for_phase(p, phases, phase)
    assert labelled(run_id).total > 0  # the run really had a stack up
    p.send_signal(sig)
    p.wait(timeout=120)
    assert labelled(run_id).total == 0, labelled(run_id)


def test_sigkill_mid_fill_is_cleaned_by_fulldisk_clean(tmp_path: Path) -> None:
    p, run_id, phases = start_run(tmp_path, "fill")
    wait_for_phase(p, phases, "fill")
    assert labelled(run_id).total > 0  # the stack is up (its owner is alive: not stale)
    p.kill()  # SIGKILL runs no teardown: this is what clean is for
    p.wait(timeout=60)
    out = subprocess.run([sys.executable, "-c", "from harness.cli import main; main()",
                          "clean", "--stale"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert labelled(run_id).total == 0


def test_next_session_removes_what_a_killed_run_left(tmp_path: Path) -> None:
    p, run_id, phases = start_run(tmp_path, "act")
    wait_for_phase(p, phases, "act")
    assert labelled(run_id).total > 0
    p.kill()
    p.wait(timeout=60)
    q, _, _ = start_run(tmp_path, None, select="no_such_test_id")  # collects nothing to run
    q.wait(timeout=120)
    assert labelled(run_id).total == 0


@pytest.mark.parametrize(("defects", "code"), [("", 0), ("blind_health", 1)],
                         ids=["passing", "failing"])
def test_normal_end_and_test_failure_leave_nothing(tmp_path: Path, defects: str,
                                                   code: int) -> None:
    p, run_id, _ = start_run(tmp_path, None, defects=defects, select="sessions and health_truthful")
    out, _ = p.communicate(timeout=300)
    assert p.returncode == code, out.decode()[-3000:]
    assert labelled(run_id).total == 0
