"""``ci/bench``: how fast the harness is, against Chaos Toolkit doing the same job, and
as ratios to the floors it cannot beat.

Wall time on a shared machine measures its neighbours too, so every figure comes with
the load average when it was taken, and whole jobs with their CPU time (``wait4``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from . import engine
from .stack import Stack, ensure_images
from .target import reference_target, target_from_dict


def _timed(fn: Any) -> float:
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def inprocess_battery(reps: int = 5) -> dict[str, float]:
    """The whole in-process battery against the reference app (hardened), no Docker: the
    per-volume stack and the shared-disk stack, as the container battery runs both. Median
    and spread of ``reps`` runs (wall and CPU), each with fresh disks and app imports."""
    from .fakedisk import FakeDisks
    from .inprocess import InProcessStack, battery
    from .refapp import SERVICE, VOLUMES, datahub_app

    plain = reference_target()
    shared = plain.shared()
    times, cpu = [], []
    scenarios = 0
    for _ in range(reps + 1):  # the first run pays for imports: not counted
        t0, c0 = time.monotonic(), time.process_time()
        outcomes = []
        for target, volumes in ((plain, VOLUMES), (shared, ("shared",))):
            with FakeDisks() as disks, InProcessStack(
                    target, partial(datahub_app, disks), disks=disks, service=SERVICE,
                    volumes=volumes) as stack:
                outcomes += battery(stack)
        times.append(time.monotonic() - t0)
        cpu.append(time.process_time() - c0)
        scenarios = len(outcomes)
        if not all(o.passed for o in outcomes):
            raise RuntimeError("the hardened in-process battery failed; run "
                               "tests/unit/test_inprocess_datahub.py")
    runs = times[1:]
    # CPU time too: on a shared machine the wall time says more about the neighbours
    return {"inprocess_battery_s": statistics.median(runs),
            "inprocess_battery_spread_s": max(runs) - min(runs),
            "inprocess_battery_cpu_s": statistics.median(cpu[1:]),
            "inprocess_scenarios": float(scenarios)}


BENCH_DIR = Path(__file__).resolve().parent.parent / "bench"
CTK_VENV = BENCH_DIR / ".ctk-venv"
TARGETS = {  # on 2 cores, warm, medians
    "same_scope_ratio": 0.7, "floor_ratio": 1.0, "battery_s": 6.0,
    "volume_scenario_median_s": 0.25, "stack_start_s": 1.5, "run_peak_rss_mib": 60.0}
SECTIONS = ("inprocess", "same-scope", "run", "explore", "floors", "stack", "fill", "battery")
DEFAULT = ("inprocess", "same-scope", "run", "stack", "explore")  # "battery" repeats "run"
EXPLORE_STEPS_PER_S = 20.0  # issue 15: explore's speed on the reference stack, at least


@dataclass(frozen=True)
class Job:
    """One whole job as a child process: wall and CPU seconds, peak memory, exit code."""

    wall_s: float
    cpu_s: float
    maxrss_mib: float
    code: int


# A small process that starts the job and reports wait4's figures for it: a child inherits
# its parent's peak resident size (Linux keeps ru_maxrss across fork and exec), so a job
# started straight from this process, which holds the Docker client and the results of
# earlier runs, would report this process's peak rather than its own.
_LAUNCHER = r"""
import json, os, sys, time
t0 = time.monotonic()
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
print(json.dumps({"wall": time.monotonic() - t0, "cpu": ru.ru_utime + ru.ru_stime,
                  "maxrss_kib": ru.ru_maxrss, "code": os.waitstatus_to_exitcode(status)}))
"""


def run_job(cmd: list[str], *, env: dict[str, str] | None = None, timeout: float = 600
            ) -> Job:
    """Run a command to its end from a small launcher process, measured by ``wait4``
    there (wall, CPU and ru_maxrss of the job and its children, not of this process)."""
    p = subprocess.Popen([sys.executable, "-I", "-S", "-c", _LAUNCHER, *cmd], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)  # a timeout ends the job with its launcher
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        p.communicate()
        raise RuntimeError(f"{cmd[0]} ran longer than {timeout:g} s") from None
    text = err.decode(errors="replace")
    if p.returncode:
        raise RuntimeError(f"the launcher of {' '.join(cmd[:4])} failed: {text[-800:]}")
    fig = json.loads(out.decode().strip().splitlines()[-1])
    if fig["code"]:
        raise RuntimeError(f"{' '.join(cmd[:4])} exited {fig['code']}: {text[-800:]}")
    return Job(fig["wall"], fig["cpu"], fig["maxrss_kib"] / 1024, fig["code"])


def ctk_chaos() -> tuple[str, str]:
    """Chaos Toolkit in its own throwaway venv (``bench/.ctk-venv``, never a dependency of
    fulldisk): the ``chaos`` binary and its version."""
    chaos = CTK_VENV / "bin" / "chaos"
    if not chaos.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(CTK_VENV)], check=True)
        subprocess.run([str(CTK_VENV / "bin" / "pip"), "install", "-q", "chaostoolkit"],
                       check=True)
    out = subprocess.run([str(chaos), "--version"], capture_output=True, text=True,
                         check=True).stdout.strip()
    return str(chaos), out.rsplit(" ", 1)[-1]


def _fulldisk_bin() -> str:
    return str(Path(sys.executable).parent / "fulldisk")


def _load() -> float:
    return round(os.getloadavg()[0], 2)


FORMS = {  # the same-scope job's fulldisk forms: (target file in bench/, engine path)
    "newuser": ("newuser.toml", "auto"),        # as a new user writes it: no logs, no owner
    "bench": ("fulldisk.toml", "auto"),         # with a container log source declared
    "newuser_agent": ("newuser.toml", "container"),  # the agent container (non-root path)
    "bench_agent": ("fulldisk.toml", "container"),
}


def same_scope(reps: int) -> dict[str, Any]:
    """Chaos Toolkit, every fulldisk form of the same job (bench/: the target as a new user
    writes it and as bench/fulldisk.toml does, each on both engine paths) and the bare
    docker CLI floor (bench/floor-job.sh), alternated ``reps`` times: medians of wall and
    CPU time, ratios to Chaos Toolkit and to the floor, fulldisk's peak memory."""
    from .target import load_target

    chaos, version = ctk_chaos()
    image = load_target(str(BENCH_DIR / "fulldisk.toml")).services["web"].image
    loads = [_load()]
    with tempfile.TemporaryDirectory(prefix="fulldisk-bench-") as tmp:
        cmds: dict[str, tuple[list[str], dict[str, str] | None]] = {
            "ctk": (["bash", str(BENCH_DIR / "ctk-job.sh"), chaos, image], None),
            "floor": (["bash", str(BENCH_DIR / "floor-job.sh"), image], None)}
        for form, (toml, agent) in FORMS.items():
            cmds[form] = ([_fulldisk_bin(), "run", "--target", str(BENCH_DIR / toml),
                           "--report-dir", str(Path(tmp) / form)],
                          {**os.environ, "FULLDISK_AGENT": agent})
        for cmd, env in cmds.values():  # warm-up of each: page cache, images, pyc files
            run_job(cmd, env=env)
        jobs: dict[str, list[Job]] = {name: [] for name in cmds}
        for _ in range(reps):
            for name, (cmd, env) in cmds.items():
                jobs[name].append(run_job(cmd, env=env))
            loads.append(_load())
        verdicts = {}
        for form in FORMS:
            report = json.loads((Path(tmp) / form / "report.json").read_text())
            if not report.get("passed") or report["counts"]["fail"]:
                raise RuntimeError(f"fulldisk's same-scope job ({form}) did not pass: "
                                   f"{report['counts']}")
            verdicts[form] = report["counts"]
    med = statistics.median
    out: dict[str, Any] = {"ctk_version": version, "reps": reps, "load": loads,
                           "fulldisk_verdicts": verdicts}
    for name, js in jobs.items():
        out[f"{name}_s"] = med(j.wall_s for j in js)
        out[f"{name}_cpu_s"] = med(j.cpu_s for j in js)
    for form in FORMS:
        out[f"{form}_peak_rss_mib"] = max(j.maxrss_mib for j in jobs[form])
        out[f"{form}_ratio"] = out[f"{form}_s"] / out["ctk_s"]
        out[f"{form}_floor_ratio"] = out[f"{form}_s"] / out["floor_s"]
    # the figures earlier reports named, for the bench target on the root path
    out.update(fulldisk_s=out["bench_s"], fulldisk_cpu_s=out["bench_cpu_s"],
               fulldisk_peak_rss_mib=out["bench_peak_rss_mib"], ratio=out["bench_ratio"],
               cpu_ratio=out["bench_cpu_s"] / out["ctk_cpu_s"])
    return out


def reference_run(reps: int) -> dict[str, Any]:
    """``fulldisk run`` on the reference target as a user runs it: wall, CPU, peak memory,
    and each scenario's seconds from its report (a volume scenario's figure)."""
    from .target import reference_target

    jobs: list[Job] = []
    per: dict[str, list[float]] = {}
    loads = [_load()]
    with tempfile.TemporaryDirectory(prefix="fulldisk-bench-") as tmp:
        cmd = [_fulldisk_bin(), "run", "--report-dir", tmp]
        for _ in range(reps):
            jobs.append(run_job(cmd))
            loads.append(_load())
            report = json.loads((Path(tmp) / "report.json").read_text())
            if not report.get("passed") or report["counts"]["fail"] or report["errors"]:
                raise RuntimeError(f"the hardened reference battery did not pass: "
                                   f"{report['counts']} {report['errors'][:2]}")
            for case, secs in report["seconds"].items():
                per.setdefault(case, []).append(secs)
    volumes = reference_target().volumes
    vol_times = [statistics.median(v) for k, v in per.items() if k in volumes or k == "shared"]
    return {"run_s": statistics.median(j.wall_s for j in jobs),
            "run_cpu_s": statistics.median(j.cpu_s for j in jobs),
            "run_peak_rss_mib": max(j.maxrss_mib for j in jobs), "reps": reps, "load": loads,
            "scenarios": {k: {"median_s": statistics.median(v), "spread_s": max(v) - min(v)}
                          for k, v in per.items()},
            "volume_scenario_median_s": statistics.median(vol_times),
            "volume_scenario_spread_s": max(vol_times) - min(vol_times)}


def explore_speed(seconds: float = 30.0, seed: int = 1) -> dict[str, float]:
    """``fulldisk explore`` on the hardened reference stack for ``seconds`` from a fixed
    seed: steps per second, rewinds between examples included (stack start excluded)."""
    from .explore import explore

    ensure_images(reference_target())
    result = explore(reference_target(), seconds=seconds, seed=seed, report_dir=None)
    return {"explore_steps_per_s": result.steps_per_second,
            "explore_steps": float(result.steps), "explore_examples": float(result.examples),
            "explore_s": result.seconds}


def _row(name: str, value: float, unit: str, key: str | None = None) -> str:
    goal = TARGETS.get(key or "")
    verdict = "" if goal is None else (f"  target <= {goal:g}: "
                                       f"{'met' if value <= goal else 'NOT met'}")
    return f"{name:52} {value:8.2f} {unit}{verdict}"


def main(argv: list[str] | None = None) -> int:
    """Measure, print a table, write reports/bench.json; returns 0."""
    ap = argparse.ArgumentParser(prog="ci/bench", description=__doc__)
    ap.add_argument("--inprocess", action="store_true",
                    help="only the in-process battery (no Docker)")
    ap.add_argument("--only", default=",".join(DEFAULT),
                    help=f"comma-separated sections of {', '.join(SECTIONS)} (default "
                         f"{','.join(DEFAULT)})")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of the short figures")
    ap.add_argument("--battery-reps", type=int, default=3,
                    help="repetitions of the reference battery")
    args = ap.parse_args(argv)
    only = {"inprocess"} if args.inprocess else set(args.only.split(","))
    unknown = only - set(SECTIONS)
    if unknown:
        ap.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from "
                 f"{', '.join(SECTIONS)}")
    out: dict[str, Any] = {"load_at_start": _load(), "cores": os.cpu_count()}
    rows: list[str] = []
    if "inprocess" in only:
        out.update(inprocess_battery())
        rows += [_row("in-process battery (median of 5)", out["inprocess_battery_s"], "s"),
                 _row("in-process battery spread", out["inprocess_battery_spread_s"], "s"),
                 _row("in-process battery CPU (median)", out["inprocess_battery_cpu_s"], "s")]
    if args.inprocess:
        print("\n".join(rows))
        Path("reports").mkdir(exist_ok=True)
        Path("reports/bench-inprocess.json").write_text(json.dumps(out, indent=2) + "\n")
        return 0
    if "same-scope" in only:
        ss = out["same_scope"] = same_scope(args.reps)
        rows += [_row(f"Chaos Toolkit {ss['ctk_version']} job (median of {ss['reps']})",
                      ss["ctk_s"], "s"),
                 _row("  its CPU time", ss["ctk_cpu_s"], "s"),
                 _row("floor: docker CLI + curl, same steps", ss["floor_s"], "s")]
        for form, label in (("newuser", "new user's target, root path"),
                            ("bench", "bench target, root path"),
                            ("newuser_agent", "new user's target, agent container"),
                            ("bench_agent", "bench target, agent container")):
            rows += [_row(f"fulldisk run, {label}", ss[f"{form}_s"], "s"),
                     _row("  its CPU time", ss[f"{form}_cpu_s"], "s"),
                     _row("  its peak memory (ru_maxrss)", ss[f"{form}_peak_rss_mib"], "MiB",
                          "run_peak_rss_mib"),
                     _row("  / Chaos Toolkit (wall)", ss[f"{form}_ratio"], "x",
                          "same_scope_ratio"),
                     _row("  / docker CLI floor (wall)", ss[f"{form}_floor_ratio"], "x",
                          "floor_ratio" if not form.endswith("_agent") else None)]
    if "run" in only:
        rr = out["reference_run"] = reference_run(args.battery_reps)
        rows += [_row(f"fulldisk run, reference (median of {rr['reps']})", rr["run_s"], "s",
                      "battery_s"),
                 _row("  its CPU time", rr["run_cpu_s"], "s"),
                 _row("  its peak memory (ru_maxrss)", rr["run_peak_rss_mib"], "MiB",
                      "run_peak_rss_mib"),
                 _row("  volume scenario median", rr["volume_scenario_median_s"], "s",
                      "volume_scenario_median_s"),
                 _row("  volume scenario spread", rr["volume_scenario_spread_s"], "s")]
        rows += [f"    scenario {name:30} median {st['median_s']:5.2f} s, spread "
                 f"{st['spread_s']:5.2f} s" for name, st in rr["scenarios"].items()]
    if "explore" in only:
        ex = explore_speed()
        out.update(ex)
        ok = "met" if ex["explore_steps_per_s"] >= EXPLORE_STEPS_PER_S else "NOT met"
        rows.append(f"{'explore steps per second (hardened)':40} "
                    f"{ex['explore_steps_per_s']:8.2f} /s  target >= "
                    f"{EXPLORE_STEPS_PER_S:g}: {ok} ({ex['explore_steps']:.0f} steps, "
                    f"{ex['explore_examples']:.0f} examples in {ex['explore_s']:.1f} s)")
    out.update(_docker_figures(only, args.reps, args.battery_reps, rows))
    out["load_at_end"] = _load()
    rows.append(f"load average (1 min) {out['load_at_start']} at start, "
                f"{out['load_at_end']} at end, {out['cores']} cores")
    print("\n".join(rows))
    Path("reports").mkdir(exist_ok=True)
    Path("reports/bench.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


def _docker_figures(only: set[str], reps: int, battery_reps: int, rows: list[str]
                    ) -> dict[str, Any]:
    """Floors, stack start, fills and the in-process loop over the reference battery."""
    out: dict[str, Any] = {}
    if not only & {"floors", "stack", "fill", "battery"}:
        return out
    target = reference_target()
    ensure_images(target)
    if "floors" in only:
        # floor: a bare container start (create + start + remove) from the base image
        floors = []
        for _ in range(reps):
            t0 = time.monotonic()
            engine.run_once(engine.BASE_IMAGE, ["true"])
            floors.append(time.monotonic() - t0)
        out["bare_container_s"] = statistics.median(floors)
        rows.append(_row("floor: bare container", out["bare_container_s"], "s"))
    if "stack" in only:
        starts, cpus = [], []
        for _ in range(reps):
            s = Stack(target)
            c0 = time.process_time()
            starts.append(_timed(s.start))
            cpus.append(time.process_time() - c0)
            s.stop()
        out["stack_start_s"] = statistics.median(starts)
        out["stack_start_cpu_s"] = statistics.median(cpus)
        out["stack_start_load"] = _load()
        rows += [_row(f"stack start, reference (median of {reps})", out["stack_start_s"], "s",
                      "stack_start_s"),
                 _row("  its CPU time in this process", out["stack_start_cpu_s"], "s")]
        out.update(_volume_scenarios(target, rows))
    if "fill" in only:
        big = target_from_dict({"name": "bench", "services": {"x": {
            "image": engine.BASE_IMAGE, "command": ["sleep", "infinity"]}},
            "volumes": {"big": {"size": "256MiB", "inodes": 1024,
                                "mounts": [{"service": "x", "path": "/d"}]}}}, file="<bench>")
        with Stack(big) as s:
            v = s.volume("big")
            fills, resets, bare = [], [], []
            for _ in range(reps):
                fills.append(_timed(lambda: v.fill(leave=0)))
                resets.append(_timed(v.reset))
                bare.append(_timed(lambda: s.service("x").exec(
                    ["sh", "-c", "fallocate -l 200M /d/f && rm /d/f"])))
        out["fill_256mib_s"] = statistics.median(fills)
        out["reset_s"] = statistics.median(resets)
        out["bare_fallocate_s"] = statistics.median(bare)
        rows += [_row("fill 256 MiB (median)", out["fill_256mib_s"], "s"),
                 _row("volume reset (median)", out["reset_s"], "s"),
                 _row("floor: bare fallocate", out["bare_fallocate_s"], "s")]
    if "battery" in only:
        out.update(_battery_loop(target, battery_reps, rows))
    return out


def _volume_scenarios(target: Any, rows: list[str]) -> dict[str, Any]:
    """Each volume scenario of the reference target once, one after another on one warm
    stack with nothing else of this process running (in ``fulldisk run`` they share the
    machine with the other lanes): median wall and CPU seconds."""
    from .battery import volume_scenario
    from .preflight import preflight

    walls, cpus = [], []
    with Stack(target) as s:
        preflight(s)
        for vol in target.volumes:
            t0, c0 = time.monotonic(), time.process_time()
            outcome = volume_scenario(s, vol)
            walls.append(time.monotonic() - t0)
            cpus.append(time.process_time() - c0)
            if not outcome.passed:
                raise RuntimeError(f"the hardened volume scenario {vol} failed")
    out = {"volume_scenario_alone_s": statistics.median(walls),
           "volume_scenario_alone_cpu_s": statistics.median(cpus),
           "volume_scenario_alone_load": _load()}
    rows += [_row("volume scenario alone, warm stack (median)",
                  out["volume_scenario_alone_s"], "s", "volume_scenario_median_s"),
             _row("  its CPU time", out["volume_scenario_alone_cpu_s"], "s")]
    return out


def _battery_loop(target: Any, battery_reps: int, rows: list[str]) -> dict[str, Any]:
    """The reference battery in this process, case by case (per-scenario figures)."""
    from .runner import run_battery

    out: dict[str, Any] = {}
    per: dict[str, list[float]] = {}
    battery_runs = []
    for _ in range(battery_reps):
        t0 = time.monotonic()
        result = run_battery(target)
        battery_runs.append(time.monotonic() - t0)
        if result.errors:
            raise RuntimeError(f"the reference battery broke: {result.errors[:3]}")
        for case_id, secs in result.seconds.items():
            per.setdefault(case_id, []).append(secs)
    out["battery_s"] = statistics.median(battery_runs)
    out["battery_load"] = _load()
    out["scenarios"] = {k: {"median_s": statistics.median(v), "spread_s": max(v) - min(v)}
                        for k, v in per.items()}
    vol_times = [statistics.median(v) for k, v in per.items()
                 if k in target.volumes or k == "shared"]
    out["volume_scenario_median_s"] = statistics.median(vol_times)
    out["volume_scenario_spread_s"] = max(vol_times) - min(vol_times)
    rows += [_row(f"battery in-process loop (median of {battery_reps})", out["battery_s"], "s",
                  "battery_s"),
             _row("volume scenario median", out["volume_scenario_median_s"], "s",
                  "volume_scenario_median_s"),
             _row("volume scenario spread", out["volume_scenario_spread_s"], "s")]
    rows += [f"  scenario {name:28} median {st['median_s']:5.2f} s, spread {st['spread_s']:5.2f} s"
             for name, st in out["scenarios"].items()]
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
