"""``ci/bench``: how fast the harness is, as ratios to the floors it cannot beat."""

from __future__ import annotations

import json
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from . import engine
from .battery import run_case
from .plugin import battery_cases
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
                               "tests/test_inprocess_datahub.py")
    runs = times[1:]
    # CPU time too: on a shared machine the wall time says more about the neighbours
    return {"inprocess_battery_s": statistics.median(runs),
            "inprocess_battery_spread_s": max(runs) - min(runs),
            "inprocess_battery_cpu_s": statistics.median(cpu[1:]),
            "inprocess_scenarios": float(scenarios)}


def main(argv: list[str] | None = None) -> int:
    """Measure and print; returns 0. ``--inprocess``: only the in-process battery."""
    out: dict[str, Any] = inprocess_battery()
    print(f"{'in-process battery (median of 5)':34} {out['inprocess_battery_s']:8.2f} s")
    print(f"{'in-process battery spread':34} {out['inprocess_battery_spread_s']:8.2f} s")
    print(f"{'in-process battery CPU (median)':34} {out['inprocess_battery_cpu_s']:8.2f} s")
    if argv and "--inprocess" in argv:
        Path("reports").mkdir(exist_ok=True)
        Path("reports/bench-inprocess.json").write_text(json.dumps(out, indent=2) + "\n")
        return 0
    reps = 5
    battery_reps = 3
    target = reference_target()
    ensure_images(target)
    # floor: a bare container start (create + start + remove) from the base image
    floors = []
    for _ in range(reps):
        t0 = time.monotonic()
        c = engine.client().containers.run(engine.BASE_IMAGE, ["true"], detach=True,
                                           labels=engine.labels("bench"))
        c.wait()
        c.remove(force=True)
        floors.append(time.monotonic() - t0)
    out["bare_container_s"] = statistics.median(floors)
    starts = []
    for _ in range(reps):
        s = Stack(target)
        starts.append(_timed(s.start))
        s.stop()
    out["stack_start_s"] = statistics.median(starts)
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
    per: dict[str, list[float]] = {}
    battery_runs = []
    for _ in range(battery_reps):
        t0 = time.monotonic()
        with Stack(target) as plain, Stack(target.shared()) as shared:
            for case in battery_cases(target):
                per.setdefault(case.id, []).append(_timed(
                    lambda c=case, p=plain, sh=shared: run_case(
                        c, target, lambda shr: sh if shr else p)))
        battery_runs.append(time.monotonic() - t0)
    out["battery_s"] = statistics.median(battery_runs)
    out["scenarios"] = {k: {"median_s": statistics.median(v), "spread_s": max(v) - min(v)}
                        for k, v in per.items()}
    vol_times = [statistics.median(v) for k, v in per.items()
                 if k in target.volumes or k == "shared"]
    out["volume_scenario_median_s"] = statistics.median(vol_times)
    out["volume_scenario_spread_s"] = max(vol_times) - min(vol_times)
    out["ratios"] = {
        "battery/bare_container": out["battery_s"] / out["bare_container_s"],
        "stack_start/bare_container": out["stack_start_s"] / out["bare_container_s"],
        "fill_256mib/bare_fallocate": out["fill_256mib_s"] / out["bare_fallocate_s"],
        "reset/bare_container": out["reset_s"] / out["bare_container_s"],
    }
    rows = [(f"battery, median of {battery_reps} (2 stacks)", out["battery_s"]),
            ("volume scenario median", out["volume_scenario_median_s"]),
            ("volume scenario spread", out["volume_scenario_spread_s"]),
            ("stack start (median of 5)", out["stack_start_s"]),
            ("fill 256 MiB (median)", out["fill_256mib_s"]),
            ("volume reset (median)", out["reset_s"]),
            ("floor: bare container", out["bare_container_s"]),
            ("floor: bare fallocate", out["bare_fallocate_s"])]
    for name, secs in rows:
        print(f"{name:34} {secs:8.2f} s")
    for name, r in out["ratios"].items():
        print(f"{name:34} {r:8.2f} x")
    for name, st in out["scenarios"].items():
        print(f"  scenario {name:28} median {st['median_s']:5.2f} s, "
              f"spread {st['spread_s']:5.2f} s")
    Path("reports").mkdir(exist_ok=True)
    Path("reports/bench.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
