"""Pre-flight: before any disk is filled, every probe must pass on the empty disks.

A probe that fails on a healthy stack would later be read as the app failing under a
full disk; it is a problem of the target or its config, reported as such (exit 2).
"""

from __future__ import annotations

import time

from .backend import Backend
from .errors import TargetProblem
from .probes import Prober
from .timeline import ProbeResult, Timeline

ATTEMPTS = 3  # a service that just became ready may answer its first request late


def _run(pr: Prober, name: str, values: dict[str, str]) -> ProbeResult:
    res = pr.run(name, values)
    for _ in range(ATTEMPTS - 1):
        if res.passed:
            break
        time.sleep(0.2)  # retry interval of a bounded retry (ATTEMPTS in all)
        res = pr.run(name, values)
    return res


def preflight(stack: Backend) -> None:
    """Run every probe, the health check and the counters once; raise TargetProblem
    naming each one that fails and what it got."""
    t = stack.target
    pr = Prober(stack, Timeline(scenario="preflight"))
    problems: list[str] = []
    for name in t.probes:
        values: dict[str, str] = {}
        if t.downloads and name == t.downloads.probe:
            values = {"seq": "1", "size": str(t.downloads.sizes[0])}
        res = _run(pr, name, values)
        if not res.passed and all(s.passed for s in res.steps):
            problems.append(f"probe {name!r}: {res.stopped}")
        elif not res.passed:
            bad = next(s for s in res.steps if not s.passed)
            got = bad.error or f"status {bad.status}"
            excerpt = " ".join(bad.body_excerpt.split())[:120]
            problems.append(f"probe {name!r} step {bad.name!r} ({bad.method} {bad.target}) got "
                            f"{got}" + (f", body {excerpt!r}" if excerpt else ""))
    sample = pr.health()
    if sample is not None and sample.status == "unreachable":
        assert t.health is not None
        problems.append(f"health {t.health.path} did not answer ({sample.raw})")
    for i, log in enumerate(t.logs):  # a folder or device is never a log (/usr/lib, /dev/zero)
        if log.kind == "file" and log.service and log.path:
            kind = stack.file_kind(log.service, log.path)
            if kind not in (None, "file", "link"):
                problems.append(f"logs[{i}]: {log.service}:{log.path} is a {kind}, not a log "
                                "file (declare the file the app writes its records to)")
    for cname, c in t.counters.items():
        if pr.counter(cname).value is None:
            what = c.metric or c.json_field
            problems.append(f"counter {cname!r}: {c.path} has no readable {what!r}")
    if problems:
        stack.check_alive()  # a service that died after its start check: that is the cause
        raise TargetProblem(
            "pre-flight on healthy, empty disks failed, so nothing was filled and no verdict "
            f"was judged: {'; '.join(problems)}",
            f"fix the probe in {t.path} (path, expected status or text) or the app, until it "
            "passes on a healthy stack")
