"""The CLI: one line per user error, the documented exit codes, never a traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

FULLDISK = [sys.executable, "-c", "from harness.cli import main; main()"]


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FULLDISK, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def one_clean_line(p: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in p.stderr + p.stdout
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("fulldisk: error:") and "Hint:" in lines[0], lines[0]
    return lines[0]


DOWN = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


@pytest.mark.parametrize(("args", "env", "code", "words"), [
    (["demo", "--size", "12XB"], {}, 2, "12XB"),
    (["demo", "--size", "100"], {}, 2, "page"),
    (["bogus"], {}, 2, "No such command"),
    (["run", "--bogus-flag"], {}, 2, "No such option"),
    (["run", "--target", "nope.toml"], {}, 2, "no such file"),
    (["list", "--target", "nope.toml"], {}, 2, "no such file"),
    (["selftest", "--only", "nosuch"], {}, 2, "unknown defect"),
    (["gate", "-n", "99"], {}, 2, "-n"),
    (["doctor"], DOWN, 3, "No Docker engine"),
    (["run"], DOWN, 3, "No Docker engine"),
    (["gate"], DOWN, 3, "No Docker engine"),
    (["clean"], DOWN, 3, "No Docker engine"),
    (["demo"], DOWN, 3, "No Docker engine"),
    (["explore", "--time", "0"], {}, 2, "--time"),
    (["explore", "--max-steps", "x"], {}, 2, "--max-steps"),
    (["explore", "--target", "nope.toml"], {}, 2, "no such file"),
    (["explore"], DOWN, 3, "No Docker engine"),
])
def test_bad_input_is_one_line_with_the_fix(args: list[str], env: dict[str, str], code: int,
                                            words: str) -> None:
    p = run(*args, env=env)
    assert p.returncode == code, p.stderr
    assert words in one_clean_line(p)


def test_bad_config_file_is_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "fulldisk.toml"
    cfg.write_text('name = "x"\n[services.a]\nimage = "i"\n[volumes.v]\nsize = "12XB"\n'
                   'mounts = [{ service = "a", path = "/d" }]\n')
    p = run("gate", "--target", str(cfg))
    assert p.returncode == 2
    line = one_clean_line(p)
    assert "volumes.v.size" in line and str(cfg) in line


def test_list_shows_volumes_and_scenarios() -> None:
    p = run("list")
    assert p.returncode == 0, p.stderr
    assert "volume sessions" in p.stdout and "scenario downloads-fill-shared-disk" in p.stdout


@pytest.mark.docker
def test_missing_image_is_exit_3(tmp_path: Path) -> None:
    cfg = tmp_path / "fulldisk.toml"
    cfg.write_text('name = "x"\n[services.a]\nimage = "fulldisk/no-such-image:1"\nports = [80]\n'
                   '[volumes.v]\nsize = "1MiB"\nmounts = [{ service = "a", path = "/d" }]\n'
                   '[probes.p]\nservice = "a"\nsteps = [{ path = "/" }]\n')
    p = run("gate", "--target", str(cfg), "--report-dir", str(tmp_path / "r"))
    assert p.returncode == 3, p.stdout + p.stderr
    assert "no-such-image" in p.stdout + p.stderr


@pytest.mark.docker
def test_demo_shows_a_real_enospc() -> None:
    p = run("demo", "--size", "1MiB")
    assert p.returncode == 0, p.stderr
    assert "ENOSPC observed" in p.stdout and "No space left on device" in p.stdout
    inode = " ".join(p.stdout.split())  # rich wraps long lines
    assert re.search(r"inode limit: (\d+) empty files fitted in the \1 free inodes .*the next "
                     r"one failed: cannot create /data/one-more: No space left on device", inode)


@pytest.mark.docker
@pytest.mark.parametrize(("defect", "code"), [("", 0), ("blind_health", 1)])
def test_gate_exit_code_and_reports(tmp_path: Path, defect: str, code: int) -> None:
    p = run("gate", "-k", "sessions and (health_truthful or recovery)",
            "--report-dir", str(tmp_path), "--junit", str(tmp_path / "junit.xml"),
            env={"DATAHUB_DEFECTS": defect})
    assert p.returncode == code, p.stdout[-3000:] + p.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["target"] == "datahub" and report["passed"] is (code == 0)
    assert {v["invariant"] for v in report["verdicts"]} == {"health_truthful", "recovery"}
    for v in report["verdicts"]:
        assert {"scenario", "volume", "invariant", "passed", "evidence"} <= set(v)
    junit = (tmp_path / "junit.xml").read_text()
    assert "fulldisk.verdict" in junit
    assert "wonderland" not in (tmp_path / "report.json").read_text() + junit


def _target_file(tmp_path: Path, service: str) -> Path:
    cfg = tmp_path / "fulldisk.toml"
    cfg.write_text('name = "x"\n' + service + '\n[volumes.v]\nsize = "1MiB"\n'
                   'mounts = [{ service = "a", path = "/d" }]\n'
                   '[probes.p]\nservice = "a"\nsteps = [{ path = "/" }]\n')
    return cfg


@pytest.mark.docker
def test_service_that_exits_at_start_shows_its_last_log_lines(tmp_path: Path) -> None:
    cfg = _target_file(tmp_path, '[services.a]\nimage = "fulldisk/base:bookworm"\nports = [80]\n'
                                 'ready = { http = "/" }\n'
                                 'command = ["sh", "-c", "echo boom: cannot open config; exit 7"]')
    p = run("gate", "--target", str(cfg), "--report-dir", str(tmp_path / "r"))
    assert p.returncode == 3, p.stdout[-2000:]
    out = p.stdout + p.stderr
    assert "exited at start (exit code 7)" in out and "boom: cannot open config" in out
    assert "Traceback" not in out
    assert out.count("boom: cannot open config") <= 2, out  # one block, not one per test


@pytest.mark.docker
def test_unknown_defect_switch_stops_the_app_with_its_message(tmp_path: Path) -> None:
    p = run("gate", "-k", "sessions and recovery", "--report-dir", str(tmp_path),
            env={"DATAHUB_DEFECTS": "no_such_defect"})
    assert p.returncode == 3, p.stdout[-2000:]
    assert "unknown defect 'no_such_defect'" in p.stdout + p.stderr


@pytest.mark.docker
def test_missing_base_image_names_the_fix() -> None:
    p = run("demo", env={"FULLDISK_BASE_IMAGE": "fulldisk/no-base:1"})
    assert p.returncode == 3
    line = one_clean_line(p)
    assert "fulldisk/no-base:1" in line and "ci/setup" in line


def test_bad_option_values_are_one_line(tmp_path: Path) -> None:
    for args in (["demo", "--inodes", "3"], ["run", "-n", "zero"], ["clean", "--run"],
                 ["selftest", "--only", "silent_sessions,bogus"]):
        p = run(*args)
        assert p.returncode == 2, (args, p.stderr)
        one_clean_line(p)


@pytest.mark.docker
def test_pytest_chaos_names_the_invariant_with_evidence_for_silent_sessions(
        tmp_path: Path) -> None:
    """The documented way: DATAHUB_DEFECTS=silent_sessions pytest -m chaos."""
    root = Path(__file__).resolve().parents[2]
    p = subprocess.run([sys.executable, "-m", "pytest", str(root / "scenarios"),
                        "--fulldisk-battery", "-m", "chaos",
                        "-k", "sessions and no_silent_write_loss", "-p", "no:xdist", "-p",
                        "no:cacheprovider"], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path, env={**os.environ, "DATAHUB_DEFECTS": "silent_sessions"})
    assert p.returncode == 1, p.stdout[-3000:]
    assert "no_silent_write_loss FAILED" in p.stdout
    assert "evidence:" in p.stdout and "lacks 'Logged in as alice'" in p.stdout


@pytest.mark.docker
def test_target_without_downloads_cleanup_or_counters_passes_with_exit_0(
        tmp_path: Path) -> None:
    """The incident scenarios it cannot feed are skipped, not failed: every judged verdict
    passed, so the run passes."""
    root = Path(__file__).resolve().parents[2]
    p = run("run", "--target", str(root / "examples" / "fileshare" / "fulldisk.toml"),
            "--report-dir", str(tmp_path))
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["verdicts"] and all(v["passed"] for v in report["verdicts"])
    assert any(v["invariant"] == "no_silent_write_loss" and v.get("applicable", True)
               for v in report["verdicts"])  # the exec write was read back by its nonce


def test_strict_gate_fails_on_not_judged_verdicts_of_fed_invariants() -> None:
    from harness.battery import fed_invariants
    from harness.cli import strict_failures
    from harness.report import build
    from harness.target import reference_target, target_from_dict

    ref = reference_target()
    assert set(fed_invariants(ref)) == {
        "no_silent_write_loss", "errors_surface", "graceful_refusal", "core_isolation",
        "recovery", "cleanup_keeps_up", "counter_accuracy", "health_truthful", "log_integrity"}
    nj = {"invariant": "health_truthful", "status": "not_judged", "judged": False,
          "passed": False, "reason": "no health sample was taken while a volume was full",
          "summary": "not judged: ...", "scenario": "db", "evidence": []}
    ok = {"invariant": "recovery", "status": "pass", "judged": True, "passed": True,
          "summary": "judged 4 probes", "scenario": "db", "evidence": []}
    report = build("datahub", [nj, ok])
    assert report["passed"] is True  # not judged does not fail the plain gate...
    assert strict_failures(ref, report) == [  # ...but --strict names it
        "db: health_truthful: no health sample was taken while a volume was full"]
    assert strict_failures(ref, build("datahub", [ok])) == []
    # an invariant the target does not feed (no [health]) is not held against it
    bare = target_from_dict({
        "name": "bare", "services": {"a": {"image": "i", "ports": [80]}},
        "volumes": {"v": {"size": "1MiB", "mounts": [{"service": "a", "path": "/d"}]}},
        "probes": {"p": {"service": "a", "steps": [{"path": "/"}]}}}, file="<bare>")
    assert "health_truthful" not in fed_invariants(bare)
    assert strict_failures(bare, report) == []


@pytest.mark.docker
def test_pytest_chaos_preflight_failure_is_exit_2_in_one_line(tmp_path: Path) -> None:
    """The plugin alike: a probe that fails on empty disks stops `pytest -m chaos` with
    exit 2 before any fill, and report.json says why (no verdicts)."""
    cfg = tmp_path / "fulldisk.toml"
    cfg.write_text('name = "x"\n[services.a]\nimage = "fulldisk/base:bookworm"\n'
                   'command = ["sleep", "infinity"]\n[volumes.v]\nsize = "64KiB"\n'
                   'mounts = [{ service = "a", path = "/data" }]\n[probes.p]\nkind = "exec"\n'
                   'service = "a"\ncommand = ["sh", "-c", "echo no db; exit 4"]\n')
    root = Path(__file__).resolve().parents[2]
    p = subprocess.run([sys.executable, "-m", "pytest", str(root / "scenarios"), "-m", "chaos",
                        "-p", "no:xdist", "-p", "no:cacheprovider", "--fulldisk-target", str(cfg),
                        "--fulldisk-report", str(tmp_path)], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    assert p.returncode == 2, p.stdout[-3000:]
    assert "Traceback" not in p.stdout + p.stderr
    # once as the error (pytest's one-line short summary, "ERROR <node> - ...", may repeat it)
    body = "\n".join(ln for ln in p.stdout.splitlines() if not ln.startswith("ERROR "))
    assert body.count("pre-flight on healthy, empty disks failed") == 1, p.stdout[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "error" and report["verdicts"] == [] and report["error_exit"] == 2
    assert "probe 'p'" in report["errors"][0] and "exit 4" in report["errors"][0]


@pytest.mark.parametrize("args", [["run", "--json", "{d}"], ["gate", "--report-dir", "{f}"],
                                  ["run", "--json", "{d}/missing/r.json"]])
def test_output_paths_are_checked_before_the_run(tmp_path: Path, args: list[str]) -> None:
    """Docker is down here: an output error must come first (exit 2), not after a run."""
    (tmp_path / "f").write_text("x")
    args = [a.format(d=tmp_path, f=tmp_path / "f") for a in args]
    p = run(*args, env=DOWN)
    assert p.returncode == 2, p.stderr
    line = one_clean_line(p)
    assert str(tmp_path) in line
    assert not (tmp_path / "missing").exists()
