"""Nothing outlives a run: a real run in a subprocess, ended at a chosen phase by a
normal end, a failing test, SIGINT, SIGTERM or SIGKILL; then count what is labelled."""

from __future__ import annotations

import json
import os
import random
import re
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

ROOT = Path(__file__).resolve().parents[2]


LEASE = 0.2  # seconds between lease renewals in these runs: a grace period of 2.4 s
GRACE = 12 * LEASE
FULLDISK = [sys.executable, "-c", "from harness.cli import main; main()"]
OTHER_PID_NS = ["unshare", "--pid", "--fork", "--mount-proc"]


def start_run(tmp_path: Path, hold: str | None, *, defects: str = "",
              select: str | None = "sessions and recovery",
              cli: bool = False) -> tuple[subprocess.Popen[bytes], str, Path]:
    run_id = f"fd-kill-{uuid.uuid4().hex[:8]}"
    phases = tmp_path / "phases"
    env = {**os.environ, "FULLDISK_RUN_ID": run_id, "FULLDISK_PHASE_FILE": str(phases),
           "DATAHUB_DEFECTS": defects, "PYTHONUNBUFFERED": "1",
           "FULLDISK_LEASE_INTERVAL": str(LEASE)}
    env.pop("PYTEST_XDIST_WORKER", None)
    if hold:
        env["FULLDISK_HOLD_PHASE"] = hold
    pick = ["-k", select] if select else []  # fulldisk run without -k: the straight runner
    cmd = ([*FULLDISK, "run", *pick, "--report-dir", str(tmp_path / "reports")] if cli
           else [sys.executable, "-m", "pytest", str(ROOT / "scenarios"), "--fulldisk-battery",
                 "-m", "chaos", *pick, "-p", "no:xdist", "-q", "-p", "no:cacheprovider"])
    p = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, preexec_fn=sigint_as_a_terminal)
    return p, run_id, phases


def sigint_as_a_terminal() -> None:
    """In the child: SIGINT as a terminal delivers it, also when this suite runs as a
    background job (whose children start with SIGINT ignored, so Ctrl-C would be lost)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def clean_stale(run_id: str, *, other_ns: bool = False) -> subprocess.CompletedProcess[str]:
    """``fulldisk clean --stale`` scoped to one run id of this test (others' runs are live)."""
    cmd = [*FULLDISK, "clean", "--stale", "--run", run_id]
    out = subprocess.run([*OTHER_PID_NS, *cmd] if other_ns else cmd, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode in (0, 2), out.stderr  # 2: the run is already gone
    return out


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


def wait_stale(run_id: str, deadline: float = 60) -> None:
    """Until the run counts as proven gone (its lease went unrenewed), or is gone: a
    session of an older fulldisk on this engine reaps a dead pid's run at once."""
    t0 = time.monotonic()
    while run_id not in engine.stale_runs() and labelled(run_id).total:
        assert time.monotonic() - t0 < deadline, f"{run_id} never became stale"
        time.sleep(0.2)  # polling the engine with a deadline


@pytest.mark.parametrize("other_ns", [False, True], ids=["same-ns", "other-pid-ns"])
def test_sigkill_mid_fill_is_cleaned_by_fulldisk_clean(tmp_path: Path, other_ns: bool) -> None:
    from harness import hostfs

    p, run_id, phases = start_run(tmp_path, "fill")
    wait_for_phase(p, phases, "fill")
    left = labelled(run_id)
    assert left.total > 0  # the stack is up (its owner is alive: not stale)
    # where fulldisk mounts the volumes itself, a SIGKILL leaves those mounts too
    assert (left.mounts > 0) == (hostfs.unavailable() is None), left
    assert run_id not in engine.stale_runs()
    p.kill()  # SIGKILL runs no teardown: this is what clean is for
    t0 = time.monotonic()
    p.wait(timeout=60)
    early = engine.stale_runs()
    if time.monotonic() - t0 < GRACE - 1:  # never judged before the grace period
        assert run_id not in early
    wait_stale(run_id)
    out = clean_stale(run_id, other_ns=other_ns)
    if other_ns and left.mounts:
        # another mount namespace cannot unmount the host's mounts: their volumes are
        # kept, named, for a clean on the engine's host (which then finishes the run)
        assert "whose tmpfs fulldisk mounted on the engine's host" in out.stdout, out.stdout
        # its lease stays with them, the proof that clean needs (another session's reaper
        # on this engine may finish the run meanwhile: it only ever removes less here)
        removed = re.search(r"removed (\d+) containers", out.stdout)
        assert removed and int(removed.group(1)) <= left.containers - 1, out.stdout
        clean_stale(run_id)
    assert labelled(run_id).total == 0  # mounts included
    assert not [m for m in hostfs.mounted() if m.startswith(run_id)]


def test_next_session_removes_what_a_killed_run_left(tmp_path: Path) -> None:
    p, run_id, phases = start_run(tmp_path, "act")
    wait_for_phase(p, phases, "act")
    assert labelled(run_id).total > 0
    p.kill()
    p.wait(timeout=60)
    wait_stale(run_id)
    q, _, _ = start_run(tmp_path, None, select="no_such_test_id")  # collects nothing to run
    q.wait(timeout=120)
    assert labelled(run_id).total == 0


def test_live_run_survives_clean_stale_from_another_pid_namespace(tmp_path: Path) -> None:
    """The old rule (host name + pid) reaped this run: its pid does not exist in the other
    namespace. Its lease is renewed, so it is not stale, and it finishes green."""
    p, run_id, phases = start_run(tmp_path, "fill")
    wait_for_phase(p, phases, "fill")
    before = labelled(run_id)
    assert before.total > 0
    blind = subprocess.run([*OTHER_PID_NS, sys.executable, "-c",
                            f"import os; os.kill({p.pid}, 0)"], capture_output=True, text=True)
    assert "ProcessLookupError" in blind.stderr  # the owner's pid is invisible there
    end = time.monotonic() + 2.5 * GRACE  # longer than a grace period, several cleans
    cleans = 0
    while time.monotonic() < end or cleans < 3:
        out = clean_stale(run_id, other_ns=True)
        assert "removed 0 containers, 0 volumes, 0 networks" in out.stdout, out.stdout
        assert run_id in out.stdout  # named as kept: not proven gone
        cleans += 1
    assert labelled(run_id) == before
    (tmp_path / "phases.release").touch()  # let the run go on from its fill phase
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out.decode()[-3000:]
    assert "exited" not in out.decode()
    assert labelled(run_id).total == 0


def test_run_without_a_lease_is_never_judged_stale(tmp_path: Path) -> None:
    """A run without a lease (an older fulldisk's) whose pid is dead: kept by --stale and
    named; removed only by an explicit --run. (Its host label is another name only so that
    an older fulldisk's reaper on this shared engine, which trusts pids, leaves it alone.)"""
    run_id = f"fd-legacy-{uuid.uuid4().hex[:8]}"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    engine.client().volumes.create(f"{run_id}-v", labels={
        engine.RUN_LABEL: run_id, engine.PID_LABEL: dead,
        engine.HOST_LABEL: "elsewhere", engine.ROLE_LABEL: "volume"})
    try:
        out = clean_stale(run_id)
        assert "removed 0 containers, 0 volumes" in out.stdout and run_id in out.stdout
        assert labelled(run_id).volumes == 1
    finally:
        engine.clean(run_id)
    assert labelled(run_id).total == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("phase", ["start", "ready-wait", "fill", "act"])
def test_cli_interrupt_at_any_phase_is_exit_130_and_reported(tmp_path: Path,
                                                           sig: signal.Signals,
                                                           phase: str) -> None:
    p, run_id, phases = start_run(tmp_path, phase, cli=True)
    wait_for_phase(p, phases, phase)
    assert labelled(run_id).total > 0
    t0 = time.monotonic()
    p.send_signal(sig)
    out, _ = p.communicate(timeout=120)
    text = out.decode()
    assert p.returncode == 130, text[-3000:]
    assert time.monotonic() - t0 < 30  # at once: no further scenario ran
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert report["status"] == "interrupted" and report["passed"] is False, report
    assert report["interrupted"] in ("SIGTERM", "SIGINT")
    assert "INTERRUPTED" in text and "verdicts passed —" not in text
    assert "Traceback" not in text
    assert labelled(run_id).total == 0, labelled(run_id)


@pytest.mark.parametrize("phase", ["start", "act"])
def test_straight_run_interrupted_while_its_lanes_run_leaves_nothing(tmp_path: Path,
                                                                   phase: str) -> None:
    """``fulldisk run`` without -k runs cases on several stacks at once (harness/runner.py):
    SIGINT while they are held in a phase ends every lane and removes every stack."""
    p, run_id, phases = start_run(tmp_path, phase, select=None, cli=True)
    wait_for_phase(p, phases, phase)
    assert labelled(run_id).total > 0
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=120)
    text = out.decode()
    assert p.returncode == 130, text[-3000:]
    # bounded by communicate's 120 s: under a loaded CI machine the interrupted straight
    # run once took 71 s to end (usually a few seconds); how long is a figure, not a check
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert report["status"] == "interrupted" and not report["errors"], report
    assert "Traceback" not in text
    assert labelled(run_id).total == 0, labelled(run_id)


@pytest.mark.parametrize(("defects", "code"), [("", 0), ("blind_health", 1)],
                         ids=["passing", "failing"])
def test_normal_end_and_test_failure_leave_nothing(tmp_path: Path, defects: str,
                                                   code: int) -> None:
    p, run_id, _ = start_run(tmp_path, None, defects=defects, select="sessions and health_truthful")
    out, _ = p.communicate(timeout=300)
    assert p.returncode == code, out.decode()[-3000:]
    assert labelled(run_id).total == 0


SMALL = """\
name = "small"
[services.a]
image = "fulldisk/base:bookworm"
command = ["sleep", "infinity"]
[volumes.v]
size = "256KiB"
mounts = [{ service = "a", path = "/data" }]
[probes.p]
service = "a"
kind = "exec"
command = ["true"]
"""
"""One service, one volume, one exec probe: a whole run takes about a second."""


def start_small(tmp_path: Path, hold: str | None, *, docker_host: str | None = None
                ) -> tuple[subprocess.Popen[bytes], str, Path]:
    """``fulldisk run`` of the small target in tmp_path, held in a phase when asked."""
    (tmp_path / "fulldisk.toml").write_text(SMALL)
    run_id = f"fd-kill-{uuid.uuid4().hex[:8]}"
    phases = tmp_path / "phases"
    env = {**os.environ, "FULLDISK_RUN_ID": run_id, "FULLDISK_PHASE_FILE": str(phases),
           "PYTHONUNBUFFERED": "1", "FULLDISK_LEASE_INTERVAL": str(LEASE)}
    env.pop("PYTEST_XDIST_WORKER", None)
    if hold:
        env["FULLDISK_HOLD_PHASE"] = hold
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    p = subprocess.Popen([*FULLDISK, "run", "-t", "fulldisk.toml", "--report-dir", "reports"],
                         cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, preexec_fn=sigint_as_a_terminal)
    return p, run_id, phases


def test_second_and_third_sigint_cannot_cut_the_cleanup_short(tmp_path: Path) -> None:
    """Ctrl-C, then Ctrl-C again (once or twice) at random moments of the cleanup that the
    first one started, 20 times in a row: each time exit 130, an interrupted report, and
    nothing left (a cleanup cut short used to leave containers and mounts without a lease,
    which no `clean --stale` ever removed)."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    for i in range(20):
        folder = tmp_path / str(i)
        folder.mkdir()
        hold = rng.choice(["start", "ready-wait", "fill", "act"])
        p, run_id, phases = start_small(folder, hold)
        wait_for_phase(p, phases, hold)
        p.send_signal(signal.SIGINT)
        for _ in range(rng.choice([1, 2])):
            time.sleep(rng.uniform(0.0, 0.4))  # a random moment of the cleanup (not a sync)
            p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
        text = (out + err).decode()
        where = f"seed {seed}, run {i}, held at {hold}: {text[-2000:]}"
        assert p.returncode == 130, where
        assert "Traceback" not in text, where
        report = json.loads((folder / "reports" / "report.json").read_text())
        assert (report["status"], report["exit"]) == ("interrupted", 130), where
        assert labelled(run_id).total == 0, (labelled(run_id), where)


PROXY = """\
import socket, sys, threading
srv = socket.socket(socket.AF_UNIX)
srv.bind(sys.argv[1])
srv.listen(64)
def pipe(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
while True:
    c, _ = srv.accept()
    u = socket.socket(socket.AF_UNIX)
    u.connect(sys.argv[2])
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
"""
"""A unix-socket proxy to the engine: killed, it is an engine lost mid-run."""


def engine_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        pytest.skip("the engine is not on a local unix socket")
    return host.removeprefix("unix://")


@pytest.mark.parametrize("phase", ["start", "fill", "act"])
def test_engine_lost_mid_run_is_one_line_exit_3_and_reaped_later(tmp_path: Path,
                                                                 phase: str) -> None:
    """The engine's socket goes away while the run is held in a phase: one error line
    (no traceback), exit 3, report.json says error; once the engine answers again (here:
    directly), `clean --stale` removes everything the run left."""
    sock = tmp_path / "engine.sock"
    proxy = subprocess.Popen([sys.executable, "-c", PROXY, str(sock), engine_socket()])
    try:
        end = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < end, "the proxy did not start"
            time.sleep(0.02)  # polling for the socket with a deadline
        p, run_id, phases = start_small(tmp_path, phase, docker_host=f"unix://{sock}")
        wait_for_phase(p, phases, phase)
        assert labelled(run_id).total > 0
    finally:
        proxy.kill()
        proxy.wait(timeout=10)
    sock.unlink()
    (tmp_path / "phases.release").touch()
    out, err = p.communicate(timeout=120)
    text = err.decode()
    assert p.returncode == 3, (out + err).decode()[-3000:]
    lines = [ln for ln in text.splitlines() if ln.startswith("fulldisk: error:")]
    assert len(lines) == 1 and "Docker engine stopped answering" in lines[0], text
    assert "Traceback" not in text
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert (report["status"], report["exit"]) == ("error", 3), report
    assert "Docker engine stopped answering" in report["errors"][0]
    wait_stale(run_id)
    clean_stale(run_id)
    assert labelled(run_id).total == 0, labelled(run_id)


def test_ctrl_c_stops_every_lane_at_once(tmp_path: Path) -> None:
    """The reference stack's straight run, Ctrl-C while its lanes fill: no lane starts a
    phase after it (the session-flood lane used to finish its fill first, and its phases
    kept printing for 11 s), the run ends interrupted and leaves nothing. How soon the
    lanes stop is a figure (a second on a quiet machine), not asserted: a loaded machine
    stretches the step under way."""
    p, run_id, phases = start_run(tmp_path, None, select=None, cli=True)
    t_start = time.monotonic()
    wait_for_phase(p, phases, "fill")
    time.sleep(0.5)  # into the fill of the lanes (a moment, not a synchronisation)
    t_signal = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=120)
    text = out.decode()
    assert p.returncode == 130, text[-3000:]
    # progress lines carry the seconds since the run began (which is after t_start)
    late = [ln for ln in text.splitlines()
            if (m := re.match(r"\[\s*([\d.]+)s\]", ln)) and float(m.group(1)) >
            t_signal - t_start + 0.1]
    assert not late, late
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert (report["status"], report["exit"]) == ("interrupted", 130), report
    assert labelled(run_id).total == 0, labelled(run_id)


def test_a_run_warns_when_another_live_run_writes_its_report_folder(tmp_path: Path) -> None:
    """Two runs at once with one report folder replace each other's report.json: the
    second says so; a run after both have ended does not."""
    first, _, phases = start_small(tmp_path, "act")
    wait_for_phase(first, phases, "act")
    warning = "another fulldisk run writes its reports to"
    second = subprocess.run([*FULLDISK, "run", "-t", "fulldisk.toml", "--report-dir",
                             "reports"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert warning in second.stderr, second.stderr
    (tmp_path / "phases.release").touch()
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, (out + err).decode()[-3000:]
    assert warning not in err.decode()
    third = subprocess.run([*FULLDISK, "run", "-t", "fulldisk.toml", "--report-dir",
                            "reports"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=300)
    assert third.returncode == 0 and warning not in third.stderr, third.stderr
