"""Pre-flight: before any disk is filled, every probe must pass on the empty disks.

A probe that fails on a healthy stack would later be read as the app failing under a
full disk; it is a problem of the target or its config, reported as such (exit 2).
"""

from __future__ import annotations

import re
import time

from .backend import Backend
from .errors import HarnessError, TargetProblem
from .probes import RECORD_SLACK, Prober
from .timeline import ProbeResult, Timeline

ATTEMPTS = 3  # a service that just became ready may answer its first request late
QUOTES = 3  # the app's own error lines quoted under a failing probe


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
    failed: list[tuple[int, float, float]] = []  # (index in problems, start, end) of a probe
    for name in t.probes:
        values: dict[str, str] = {}
        if t.downloads and name == t.downloads.probe:
            values = {"seq": "1", "size": str(t.downloads.sizes[0])}
        start = pr.tl.now()
        res = _run(pr, name, values)
        if not res.passed and all(s.passed for s in res.steps):
            problems.append(f"probe {name!r}: {res.stopped}")
        elif not res.passed:
            bad = next(s for s in res.steps if not s.passed)
            got = bad.error or f"status {bad.status}"
            excerpt = " ".join(bad.body_excerpt.split())[:120]
            failed.append((len(problems), start, pr.tl.now()))
            problems.append(f"probe {name!r} step {bad.name!r} ({bad.method} {bad.target}) got "
                            f"{got}" + (f", body {excerpt!r}" if excerpt else ""))
    if failed:
        _quote_the_app(pr, problems, failed)
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
            "probe or app: where the app's own error line is quoted, the app (or its image: "
            "a folder's owner or mode, a missing table) is broken on an empty disk, so fix "
            f"that; where the app answered as designed, fix the probe in {t.path} (path, "
            "expected status or text) until it passes on a healthy stack")


def _quote_the_app(pr: Prober, problems: list[str],
                   failed: list[tuple[int, float, float]]) -> None:
    """Add to each failing probe's line the services' error lines (container output and
    declared log files) written while it ran, matched against the target's error and
    cause patterns: the cause is often in the app's own words (``session_start():
    open(...) failed: Permission denied``), not in the answer."""
    t = pr.target
    rx = re.compile("|".join(f"(?:{p})" for p in (*t.error_patterns, *t.cause_patterns)))
    try:
        records = pr.final_logs()  # waits (bounded) for the records of the failed requests
    except HarnessError:
        return  # the probe's own failure stays the error reported (and check_alive follows)
    errors = [r for r in records if rx.search(r.text)]
    for i, start, end in failed:
        said = [r for r in errors if start - RECORD_SLACK <= r.t <= end + RECORD_SLACK]
        if said:
            lines = " | ".join(f"[{r.source}] {' '.join(r.text.split())[:200]}"
                               for r in said[-QUOTES:])
            problems[i] += f"; the app said: {lines}"
