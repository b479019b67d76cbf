"""Invariants: named rules judged over a Timeline, each returning a Verdict with evidence.

Every function here is pure: it reads a :class:`~harness.timeline.Timeline` and the
:class:`Rules` drawn from the target config, and says pass, fail or *not judged* with the
requests, log lines and disk samples that prove it. A rule never passes on no evidence:
when what it needs is missing (no readback, no request while full, nothing green before
the fill) the verdict is not judged and its ``reason`` names the missing evidence. Every
summary says how much evidence it judged. Nothing talks to Docker or the network, so a
hand-built Timeline is judged exactly like one recorded against a live stack.

A *fake success* is an acknowledged write (2xx/3xx, exec exit 0) that a later readback
shows lost: it fails no_silent_write_loss and graceful_refusal, and errors_surface
requires an error record for it from the service that answered.

Times in evidence are seconds since the run's start (``t=1.23s``). A *step time* is the
probe's ``t`` plus the elapsed time of the earlier steps of its flow.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError
from .sizes import format_size
from .target import DEFAULT_CAUSE_PATTERNS, DEFAULT_ERROR_PATTERNS, LogSource, Target
from .timeline import (
    CounterSample,
    DiskSample,
    HealthSample,
    LoadEvent,
    LogRecord,
    PhaseMark,
    PhaseName,
    ProbeResult,
    StepResult,
    Timeline,
)

MAX_EVIDENCE = 20
"""Evidence lines kept per verdict; the rest are counted in a last "... and N more" line."""
EARLY_SLACK = 1.0
"""Seconds a log record may carry before the request it reports (clock and stamp skew)."""
EXCERPT = 120
LINE = 200
MIN_EMBEDDED = 12
"""Shortest record start found inside a line that counts as a second, glued-on record."""


# --- results and rules -------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """The outcome of one invariant on one timeline."""

    invariant: str
    passed: bool  # the rule held on evidence; never True for a verdict that was not judged
    summary: str  # one human sentence, with how much evidence was judged
    evidence: tuple[str, ...] = ()
    applicable: bool = True  # False: not judged, the evidence this rule needs was missing
    scenario: str = ""
    volume: str | None = None
    reason: str = ""  # when not judged: which evidence was missing

    @property
    def status(self) -> str:
        """``"pass"``, ``"fail"`` or ``"not_judged"`` (the evidence it needs was missing)."""
        if not self.applicable:
            return "not_judged"
        return "pass" if self.passed else "fail"

    @property
    def judged(self) -> bool:
        """Whether the rule had the evidence to say pass or fail."""
        return self.applicable

    @property
    def failed(self) -> bool:
        """Judged, and the rule did not hold."""
        return self.applicable and not self.passed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "invariant": self.invariant,
            "status": self.status,
            "judged": self.judged,
            "passed": self.passed,
            "applicable": self.applicable,
            "reason": self.reason,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "scenario": self.scenario,
            "volume": self.volume,
        }


@dataclass(frozen=True)
class FileSourceRule:
    """What the invariants know about one declared log file."""

    volume: str
    line_pattern: str | None = None  # a whole record; a line not matching is torn
    drop_pattern: str | None = None  # a line announcing lost records (optional count group)


@dataclass(frozen=True)
class Rules:
    """Everything the invariants need from a target config, with defaults for unit tests."""

    cause_patterns: tuple[str, ...] = DEFAULT_CAUSE_PATTERNS
    error_patterns: tuple[str, ...] = DEFAULT_ERROR_PATTERNS
    error_record_seconds: float = 5.0
    recovery_seconds: float = 10.0
    request_seconds: float = 5.0  # a step slower than this is a hang
    bulk_volumes: frozenset[str] = frozenset()
    log_volumes: frozenset[str] = frozenset()  # volumes holding a declared file log source
    file_sources: Mapping[str, FileSourceRule] = field(default_factory=dict)
    counters: Mapping[str, str] = field(default_factory=dict)  # counter -> counted probe
    cleanup_volume: str | None = None
    cleanup_ceiling: float = 90.0  # percent of bytes
    cleanup_max_full_seconds: float = 1.0
    healthy_below: float = 0.5  # with every volume below this fraction, health says healthy
    # Which services may answer for a probe (its own and those behind it, by depends_on),
    # and which services write each log source: a fake success needs a record from one.
    # Empty (hand-built rules): any source counts.
    probe_services: Mapping[str, frozenset[str]] = field(default_factory=dict)
    source_services: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_target(cls, target: Target) -> Rules:
        """The rules a target config declares."""
        files = [log for log in target.logs if log.kind == "file"]
        on_volume = {log.label: target.log_volume(log) for log in files}
        cleanup = target.cleanup
        return cls(
            cause_patterns=tuple(target.cause_patterns),
            error_patterns=tuple(target.error_patterns),
            error_record_seconds=target.bounds.error_record_seconds,
            recovery_seconds=target.bounds.recovery_seconds,
            request_seconds=target.bounds.request_timeout,
            bulk_volumes=frozenset(n for n, v in target.volumes.items() if v.role == "bulk"),
            log_volumes=frozenset(v for v in on_volume.values() if v),
            file_sources={log.label: FileSourceRule(volume=on_volume[log.label] or "",
                                                    line_pattern=log.line_pattern,
                                                    drop_pattern=log.drop_pattern)
                          for log in files},
            counters={name: c.counts for name, c in target.counters.items()},
            cleanup_volume=cleanup.volume if cleanup else None,
            cleanup_ceiling=cleanup.ceiling if cleanup else 90.0,
            cleanup_max_full_seconds=cleanup.max_full_seconds if cleanup else 1.0,
            probe_services={name: _behind(target, p.service)
                            for name, p in target.probes.items()},
            source_services={log.label: _writers(target, log) for log in target.logs},
        )


def _behind(target: Target, service: str) -> frozenset[str]:
    """A service and every service it depends on (a proxy answers for its upstream)."""
    seen: set[str] = set()
    todo = [service]
    while todo:
        s = todo.pop()
        if s in seen or s not in target.services:
            seen.add(s)
            continue
        seen.add(s)
        todo.extend(target.services[s].depends_on)
    return frozenset(seen)


def _writers(target: Target, log: LogSource) -> frozenset[str]:
    """The services that can write a log source: its service, or those mounting its volume."""
    if log.service:
        return frozenset({log.service})
    vol = target.volumes.get(log.volume or "")
    return frozenset(m.service for m in vol.mounts) if vol else frozenset()


# --- small helpers -----------------------------------------------------------------------

Invariant = Callable[[Timeline, Rules], Verdict]


def _ts(t: float) -> str:
    return f"t={t:.2f}s"


def _clip(text: str, n: int) -> str:
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= n else text[: n - 3] + "..."


def _cap(lines: Sequence[str], limit: int = MAX_EVIDENCE) -> tuple[str, ...]:
    if len(lines) <= limit:
        return tuple(lines)
    return (*lines[: limit - 1], f"... and {len(lines) - limit + 1} more")


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def _timed_steps(p: ProbeResult) -> Iterator[tuple[float, int, StepResult]]:
    """Each step of a flow with its start time and index."""
    t = p.t
    for i, s in enumerate(p.steps):
        yield t, i, s
        t += s.elapsed


def _status(s: StepResult) -> str:
    if s.status is None:
        return "no answer"
    return str(s.status)


def fmt_step(p: ProbeResult, s: StepResult, t: float) -> str:
    """One request as an evidence line: time, probe/step, request, status, error, body."""
    what = f"{p.probe}/{s.name}" if s.name else p.probe
    line = f"{_ts(t)} {what}: {s.method} {s.target} -> {_status(s)} in {s.elapsed:.2f}s"
    flags = [f for f, on in (("timed out", s.timed_out), ("body cut", not s.body_complete))
             if on]
    if flags:
        line += f" ({', '.join(flags)})"
    if s.error:
        line += f"; {_clip(s.error, EXCERPT)}"
    if s.body_excerpt:
        line += f"; body {_clip(s.body_excerpt, EXCERPT)!r}"
    return line


def fmt_sample(d: DiskSample) -> str:
    """One disk sample as an evidence line."""
    return (f"{_ts(d.t)} disk {d.volume}: {format_size(d.bytes_free)} free of "
            f"{format_size(d.bytes_total)} ({100 * d.used_fraction:.0f}% used), "
            f"{d.inodes_free}/{d.inodes_total} inodes free as {d.as_user}"
            + (" - FULL" if d.full else ""))


def fmt_log(r: LogRecord) -> str:
    """One log record as an evidence line."""
    return f"{_ts(r.t)} [{r.source}] {_clip(r.text, LINE)}"


def _compile(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One regex matching any of the patterns (None when there are none)."""
    parts = [f"(?:{p})" for p in patterns]
    return re.compile("|".join(parts)) if parts else None


class _Disks:
    """The disk samples of a timeline, indexed per volume for "what was true at t" queries.

    Same answers as ``Timeline.full_at``, in log time: the latest sample of each volume at
    or before t.
    """

    def __init__(self, tl: Timeline) -> None:
        by_vol: dict[str, list[DiskSample]] = {}
        for d in tl.of(DiskSample):
            by_vol.setdefault(d.volume, []).append(d)
        self._samples = by_vol
        self._times = {v: [d.t for d in ds] for v, ds in by_vol.items()}

    def latest(self, t: float) -> dict[str, DiskSample]:
        """The latest sample of each volume at or before t (volumes not yet sampled omitted)."""
        out: dict[str, DiskSample] = {}
        for vol, times in self._times.items():
            i = bisect_right(times, t)
            if i:
                out[vol] = self._samples[vol][i - 1]
        return out

    def full_volumes(self, t: float) -> list[str]:
        """Volumes whose latest sample at or before t says full."""
        return sorted(v for v, d in self.latest(t).items() if d.full)

    def full_at(self, t: float) -> bool:
        """Whether any volume was full at t."""
        return any(d.full for d in self.latest(t).values())

    def note(self, t: float) -> str:
        """Which volumes were full at t, for evidence."""
        full = self.full_volumes(t)
        return f"{', '.join(full)} full" if full else "no volume full"


def _any_between(times: Sequence[float], a: float, b: float) -> bool:
    """Whether a sorted list holds a value in [a, b]."""
    i = bisect_left(times, a)
    return i < len(times) and times[i] <= b


def _phase_spans(tl: Timeline, phase: PhaseName) -> list[tuple[float, float]]:
    return [(m.t, end) for m, end in tl.windows() if m.phase == phase]


class _Stamps:
    """When matching log records could have been written, for "any record in [a, b]?".

    A container record carries the time the sink stamped it. A file line carries the time
    it was read back, so it was written at some point after the previous read of that file
    and before this one: it counts for any window that interval touches.
    """

    def __init__(self, records: Iterable[LogRecord]) -> None:
        reads: dict[str, list[float]] = {}
        chosen = list(records)
        for r in chosen:
            if _is_file(r):
                reads.setdefault(r.source, []).append(r.t)
        distinct = {src: sorted(set(ts)) for src, ts in reads.items()}
        spans: list[tuple[float, float]] = []
        for r in chosen:
            if _is_file(r):
                times = distinct[r.source]
                i = bisect_left(times, r.t)
                spans.append((times[i - 1] if i else float("-inf"), r.t))
            else:
                spans.append((r.t, r.t))
        spans.sort()
        self._lo = [a for a, _ in spans]
        self._max_hi: list[float] = []
        top = float("-inf")
        for _, b in spans:
            top = max(top, b)
            self._max_hi.append(top)

    def any_between(self, a: float, b: float) -> bool:
        """Whether some record could have been written within [a, b]."""
        n = bisect_right(self._lo, b)  # records that could be written no later than b
        return n > 0 and self._max_hi[n - 1] >= a


def _is_file(r: LogRecord) -> bool:
    return r.volume is not None or r.source.startswith("file:")


def _verdict(tl: Timeline, name: str, passed: bool, summary: str,
             evidence: Sequence[str] = ()) -> Verdict:
    return Verdict(invariant=name, passed=passed, summary=summary, evidence=_cap(evidence),
                   scenario=tl.scenario, volume=tl.volume)


def _not_judged(tl: Timeline, name: str, reason: str, evidence: Sequence[str] = ()) -> Verdict:
    """Neither pass nor fail: ``reason`` names the evidence that was missing."""
    return Verdict(invariant=name, passed=False, summary=f"not judged: {reason}",
                   evidence=_cap(evidence), applicable=False, scenario=tl.scenario,
                   volume=tl.volume, reason=reason)


def _could_not_run(s: StepResult) -> bool:
    """An exec that never ran the command: 126 (not executable), 127 (not found) or a
    signal (a negative code, or 128+N from a shell). A config problem, not a refusal."""
    if s.could_not_run:  # the prober says so (it saw the exit code and the signal)
        return True
    if s.method != "EXEC" or s.status is None or s.timed_out:
        return False
    return s.status in (126, 127) or s.status < 0 or s.status > 128


def _never_worked(tl: Timeline) -> str | None:
    """Why the timeline shows a target that never worked (None when it did, or when it has
    no steady phase to tell): probes ran in steady and not one passed."""
    steady = tl.in_phase(ProbeResult, "steady")
    if not steady or any(p.passed for p in steady):
        return None
    names = ", ".join(sorted({p.probe for p in steady}))
    return (f"the target never worked: no probe was green in the steady phase ({names} "
            "failed), so nothing it did while full can be told apart from that")


def _needs_a_working_target(rule: Invariant) -> Invariant:
    """A rule judged only when the target worked before the fill: a stack that is red
    from the start would otherwise pass rules that look at refusals and errors."""
    @functools.wraps(rule)
    def judged(tl: Timeline, rules: Rules) -> Verdict:
        why = _never_worked(tl)
        if why is not None:
            return _not_judged(tl, rule.__name__, why)
        return rule(tl, rules)
    return judged


def _is_loss(s: StepResult) -> bool:
    """A readback that answered normally, without an error, and did not show the write.

    HTTP: a whole answer below 500 (a page that says "Log in", a 401/404). Exec: the
    command exited 0 but its output lacked the write (any other exit failed loudly)."""
    if s.passed or s.timed_out or s.status is None:
        return False
    if s.method == "EXEC":
        return s.status == 0
    return s.status < 500 and s.body_complete


@dataclass(frozen=True)
class _Write:
    """An acknowledged write and what its first readback showed."""

    probe: ProbeResult
    t: float
    step: StepResult
    index: int
    readback: tuple[float, StepResult] | None  # the loss, else the first loud failure
    lost: bool
    again: ProbeResult | None = None  # the reread after recovery that showed the loss

    @property
    def end(self) -> float:
        """When the readback that showed the loss (or the write) finished."""
        if self.readback is None:
            return self.t + self.step.elapsed
        return self.readback[0] + self.readback[1].elapsed

    def line(self, disks: _Disks) -> str:
        """The write and its readback, for evidence."""
        out = fmt_step(self.probe, self.step, self.t)
        if self.again is not None and self.readback is not None:
            rt, r = self.readback
            return (f"{out} acknowledged while full [{disks.note(self.t)}], and after "
                    f"recovery {fmt_step(self.again, r, rt)} still does not show it")
        if self.readback is not None:
            rt, r = self.readback
            out += f" acknowledged, then {fmt_step(self.probe, r, rt)}"
        return out + f" [{disks.note(self.t)}]"


@dataclass
class _Writes:
    """Every write step of a timeline, sorted by what can be said about it."""

    runs: int = 0  # probe runs with a write step
    refused: int = 0  # writes answered with an error (not silent)
    unchecked: int = 0  # acknowledged, but the flow has no readback after it
    verified: list[_Write] = field(default_factory=list)  # read back: visible or lost
    unverified: list[_Write] = field(default_factory=list)  # the readback failed loudly

    @property
    def lost(self) -> list[_Write]:
        """Fake successes: acknowledged, then read back without the write."""
        return [w for w in self.verified if w.lost]


def _writes(tl: Timeline) -> _Writes:
    out = _Writes()
    for p in tl.of(ProbeResult):
        steps = list(_timed_steps(p))
        if not any(s.write for _, _, s in steps):
            continue
        out.runs += 1
        for t, i, s in steps:
            if not s.write:
                continue
            if not s.acknowledged:
                out.refused += 1
                continue
            later = [(rt, r) for rt, j, r in steps if j > i and r.readback]
            if not later:
                out.unchecked += 1
                continue
            bad = next(((rt, r) for rt, r in later if _is_loss(r)), None)
            loud = next(((rt, r) for rt, r in later if not r.passed and not _is_loss(r)), None)
            if bad is not None:
                out.verified.append(_Write(p, t, s, i, bad, True))
            elif loud is not None:
                out.unverified.append(_Write(p, t, s, i, loud, False))
            else:
                out.verified.append(_Write(p, t, s, i, None, False))
    _lost_after_recovery(tl, out)
    return out


def _lost_after_recovery(tl: Timeline, out: _Writes) -> None:
    """Writes whose readback, repeated once space was back (a ``reread_of`` run with the
    same nonce and cookies), answered without them: damage that persists. Such a write
    becomes a lost one (once: a write already lost before recovery stays as it was)."""
    firsts = {(p.probe, p.t): p for p in tl.of(ProbeResult) if p.reread_of is None}
    for again in tl.of(ProbeResult):
        first = firsts.get((again.probe, again.reread_of)) if again.reread_of is not None \
            else None
        bad = next(((rt, r) for rt, _, r in _timed_steps(again) if r.readback and _is_loss(r)),
                   None) if first is not None else None
        if first is None or bad is None:
            continue
        known = [w for w in (*out.verified, *out.unverified) if w.probe is first]
        if any(w.lost for w in known):
            continue
        write = next(((t, i, s) for t, i, s in _timed_steps(first)
                      if s.write and s.acknowledged), None)
        if write is None:
            continue
        if not known:
            out.unchecked -= 1  # it had no readback step of its own; now it has one
        out.verified = [w for w in out.verified if w.probe is not first]
        out.unverified = [w for w in out.unverified if w.probe is not first]
        t, i, s = write
        out.verified.append(_Write(first, t, s, i, bad, True, again))


def _sources_read(tl: Timeline) -> str:
    n = len({r.source for r in tl.of(LogRecord)})
    return _plural(n, "log source") + " read"


# --- 1. no_silent_write_loss -------------------------------------------------------------

@_needs_a_working_target
def no_silent_write_loss(tl: Timeline, rules: Rules) -> Verdict:
    """An acknowledged write is observable afterwards (the next page is logged in).

    A write that answered an error is not silent. A readback that itself failed loudly
    (5xx, no answer, a hang, a cut body, a non-zero exit) cannot show whether the write
    stuck: it is listed but not counted. Not judged when no acknowledged write was read
    back (no write probe, no readback step, every write refused or every readback loud).
    """
    name = "no_silent_write_loss"
    w = _writes(tl)
    disks = _Disks(tl)
    unverified = [f"unverified (readback failed loudly): {x.line(disks)}" for x in w.unverified]
    if not w.runs:
        return _not_judged(tl, name, "no probe with a write step ran")
    counts = (f"{_plural(w.runs, 'write probe run')}: {w.refused} refused with an error, "
              f"{w.unchecked} acknowledged with no readback step after them, "
              f"{len(w.unverified)} whose readback failed loudly")
    if not w.verified:
        return _not_judged(tl, name, f"no acknowledged write was read back ({counts})",
                           unverified)
    lost = w.lost
    if lost:
        flows = ", ".join(sorted({x.probe.probe for x in lost}))
        return _verdict(tl, name, False,
                        f"{len(lost)} of {_plural(len(w.verified), 'acknowledged write')} "
                        f"read back ({flows}) {'was' if len(lost) == 1 else 'were'} lost "
                        "silently: the app answered success and the next request did not "
                        "see the write",
                        [f"lost{' after recovery' if x.again else ''}: {x.line(disks)}"
                         for x in lost] + unverified)
    return _verdict(tl, name, True,
                    f"judged {_plural(len(w.verified), 'acknowledged write')} read back, all "
                    f"visible ({counts})", unverified)


# --- 2. errors_surface -------------------------------------------------------------------

@_needs_a_working_target
def errors_surface(tl: Timeline, rules: Rules) -> Verdict:
    """Every failed request (and every fake success) leaves an error record within the
    bound; while a volume is full, some sink names the cause.

    A full-disk span is judged when a request failed in it, a write was lost in it, a
    sink named the cause during it, or it holds declared log files and was probed. A
    fake success needs an error record that names the cause or the request's path, from
    a sink of the service that answered (or one behind it; without such a mapping, as
    in hand-built rules, any sink counts).
    """
    name = "errors_surface"
    error_rx = _compile((*rules.error_patterns, *rules.cause_patterns))
    cause_rx = _compile(rules.cause_patterns)
    logs = tl.of(LogRecord)
    bound = rules.error_record_seconds
    error_logs = [r for r in logs if error_rx and error_rx.search(r.text)]
    errors = _Stamps(error_logs)
    causes = _Stamps(r for r in logs if cause_rx and cause_rx.search(r.text))
    disks = _Disks(tl)

    failed: list[tuple[float, ProbeResult, StepResult]] = []
    skipped: list[str] = []
    ran_at: list[float] = []
    for p in tl.of(ProbeResult):
        for t, _, s in _timed_steps(p):
            ran_at.append(t)
            # a 4xx the probe expected (a "missing page" probe) is an answer, not an error
            expected = s.passed and s.status is not None and s.status < 500
            if _could_not_run(s):
                skipped.append(f"could not run (not judged): {fmt_step(p, s, t)}")
            elif s.failed_request and not s.readback and not expected:
                failed.append((t, p, s))
    ran_at.sort()
    fakes = _writes(tl).lost
    spans = tl.full_spans()
    evidence: list[str] = []
    unrecorded = 0
    for t, p, s in failed:
        # the upper bound runs from the end of the step: a hang can only be logged when it ends
        start = t - EARLY_SLACK
        stamps = errors
        if s.service_down:
            # a server that died answers nothing while it is down: the record of its death,
            # however long before, from a sink of its own, explains every such request
            start = float("-inf")
            services = rules.probe_services.get(p.probe)
            stamps = _Stamps(r for r in error_logs if not services
                             or rules.source_services.get(r.source, frozenset()) & services)
        if not stamps.any_between(start, t + s.elapsed + bound):
            unrecorded += 1
            evidence.append(f"no error record within {bound:g}s: {fmt_step(p, s, t)}")
    unreported = 0
    for w in fakes:
        # the app said "saved": only a record of its own that names the cause or the
        # request shows it knew (a 503 of some other request in the window does not)
        services = rules.probe_services.get(w.probe.probe)
        path = w.step.target.split("?", 1)[0]
        mine = _Stamps(r for r in error_logs
                       if (not services or rules.source_services.get(r.source, frozenset())
                           & services)
                       and ((cause_rx is not None and cause_rx.search(r.text))
                            or (path and path in r.text)))
        if not mine.any_between(w.t - EARLY_SLACK, w.end + bound):
            unreported += 1
            where = f" from {', '.join(sorted(services))}" if services else ""
            evidence.append(f"fake success, no error record{where} within {bound:g}s: "
                            f"{w.line(disks)}")
    silent_spans = 0
    judged_spans = 0
    for start, end, vol in spans:
        fails = [f for f in failed if start <= f[0] <= end]
        lost = [w for w in fakes if start <= w.t <= end]
        named = causes.any_between(start - EARLY_SLACK, end + bound)
        probed = _any_between(ran_at, start, end)
        if not (fails or lost or named or (vol in rules.log_volumes and probed)):
            continue
        judged_spans += 1
        if named:
            continue
        silent_spans += 1
        why = (f"{_plural(len(fails), 'request')} failed" if fails
               else f"{_plural(len(lost), 'write')} lost" if lost else "it holds log files")
        evidence.append(f"{_ts(start)}-{_ts(end)}: {vol} full ({why}) and no sink named the "
                        "cause (" + (" | ".join(rules.cause_patterns) or "no cause patterns")
                        + ")")
        sources = sorted({r.source for r in logs})
        evidence.append("sources read: " + (", ".join(sources) if sources else "none"))
        for src in sources:
            tail = [r for r in logs if r.source == src and r.t <= end + bound][-2:]
            evidence.extend(f"  last: {fmt_log(r)}" for r in tail)
    read = _sources_read(tl)
    if not failed and not fakes and not judged_spans:
        why = (f"{_plural(len(spans), 'full-disk span')}, but in none did a request fail, a "
               "write get lost or a sink name the cause, and none holds a probed log volume"
               if spans else "no request failed, no write was lost and no volume was full")
        return _not_judged(tl, name, f"{why} ({read})", skipped)
    problems = []
    if unrecorded:
        problems.append(f"{unrecorded} of {_plural(len(failed), 'failed request')} left no "
                        f"error record within {bound:g}s")
    if unreported:
        problems.append(f"{unreported} of {_plural(len(fakes), 'fake success', 'fake successes')}"
                        f" (acknowledged, then lost) left no error record within {bound:g}s")
    if silent_spans:
        problems.append(f"{silent_spans} of {_plural(judged_spans, 'full-disk span')} "
                        "had no log line naming the disk as the cause")
    if problems:
        return _verdict(tl, name, False, "; ".join(problems) + f" ({read})",
                        evidence + skipped)
    return _verdict(tl, name, True,
                    f"judged {_plural(len(failed), 'failed request')}, "
                    f"{_plural(len(fakes), 'fake success', 'fake successes')} and "
                    f"{_plural(judged_spans, 'full-disk span')}: every one left an error "
                    f"record and every span named the cause ({read})", skipped)


# --- 3. graceful_refusal -----------------------------------------------------------------

def _refusal_problem(s: StepResult, rules: Rules) -> str | None:
    """Why a step that ran on a full disk was not a clean refusal (None when it was)."""
    if s.passed:
        return None
    if s.timed_out or s.elapsed > rules.request_seconds:
        return "hang"
    if s.method == "EXEC":
        if _could_not_run(s):
            return f"could not run (exit {s.status})"
        return None  # a command that failed fast with its own exit code refused cleanly
    if s.status is None:
        return "no answer (connection reset)"
    if s.status >= 500:
        return None if s.body_complete else "error with a cut body"
    if s.status >= 400:
        return f"client error {s.status} instead of a server error"
    if not s.body_complete:
        return "success status with a cut body"
    return "success status with a broken page"


@_needs_a_working_target
def graceful_refusal(tl: Timeline, rules: Rules) -> Verdict:
    """While a volume is full, requests pass or fail fast with a 5xx, never hang or lie.

    A fake success (a write acknowledged, then found lost) is a lie whenever it happened:
    the app answered as if the disk had taken the write."""
    name = "graceful_refusal"
    judged = 0
    bad: list[str] = []
    kinds: dict[str, int] = {}
    disks = _Disks(tl)
    fakes = {(id(w.probe), w.index): w for w in _writes(tl).lost}

    def flag(problem: str, line: str) -> None:
        kinds[problem] = kinds.get(problem, 0) + 1
        bad.append(f"{problem}: {line}")

    for p in tl.of(ProbeResult):
        for t, i, s in _timed_steps(p):
            fake = fakes.get((id(p), i))
            if fake is not None:
                judged += 1
                flag("fake success (acknowledged, then lost)", fake.line(disks))
                continue
            if s.readback or not disks.full_at(t):
                continue
            judged += 1
            problem = _refusal_problem(s, rules)
            if problem:
                flag(problem, f"{fmt_step(p, s, t)} [{disks.note(t)}]")
    if not judged:
        why = "no request ran while a volume was full" if tl.full_spans() else \
            "no volume was full (per the disk samples) and no write was lost"
        return _not_judged(tl, name, why)
    if bad:
        what = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
        return _verdict(tl, name, False,
                        f"{len(bad)} of {_plural(judged, 'request')} judged (made while full, "
                        f"or writes lost) were not refused cleanly: {what}", bad)
    return _verdict(tl, name, True,
                    f"judged {_plural(judged, 'request')} made while full: all passed or "
                    f"failed fast with a server error (within {rules.request_seconds:g}s)")


# --- 4. core_isolation -------------------------------------------------------------------

@_needs_a_working_target
def core_isolation(tl: Timeline, rules: Rules) -> Verdict:
    """Filling a bulk volume (downloads) does not break the declared core flows."""
    name = "core_isolation"
    loads = tl.of(LoadEvent)
    bulk = [e for e in loads if e.load == "download"
            or (e.load == "ballast" and e.volume in rules.bulk_volumes)]
    if not bulk:
        return _not_judged(tl, name, "the fill was not bulk data (no downloads and no "
                           "ballast on a bulk volume)")
    steady = tl.in_phase(ProbeResult, "steady")
    green = {p.probe for p in steady if p.core and p.passed}
    if _phase_spans(tl, "steady") and not green:
        ran = sorted({p.probe for p in steady if p.core})
        return _not_judged(tl, name, "no core probe was green in the steady phase ("
                           + (f"{', '.join(ran)} failed" if ran else "none ran")
                           + "), so a failure while full cannot be blamed on the fill")
    core = [p for p in (*tl.in_phase(ProbeResult, "fill"), *tl.in_phase(ProbeResult, "act"))
            if p.core and (not green or p.probe in green)]
    if not core:
        return _not_judged(tl, name, "no core probe ran during the fill and act phases")
    core.sort(key=lambda p: p.t)
    disks = _Disks(tl)
    failing = [p for p in core if not p.passed]
    totals: dict[str, tuple[int, int]] = {}
    for e in loads:
        if e.load in ("drain", "reset", "cleanup", "log_mark"):
            continue
        n, b = totals.get(e.load, (0, 0))
        totals[e.load] = (n + 1, b + e.bytes)
    fill = "; ".join(f"{k}: {n}x, {format_size(b)}" for k, (n, b) in sorted(totals.items()))
    if not failing:
        return _verdict(tl, name, True,
                        f"judged {_plural(len(core), 'core probe run')} while bulk data "
                        "filled the disk: all passed", [f"loads: {fill}"])
    evidence = [f"loads: {fill}"]
    for p in failing:
        first = next(((t, s) for t, _, s in _timed_steps(p) if not s.passed), None)
        detail = fmt_step(p, first[1], first[0]) if first else f"{_ts(p.t)} {p.probe}"
        evidence.append(f"{detail} [{disks.note(p.t)}]")
    names = ", ".join(sorted({p.probe for p in failing}))
    return _verdict(tl, name, False,
                    f"{len(failing)} of {_plural(len(core), 'core probe run')} failed while "
                    f"bulk data filled the disk ({names})", evidence)


# --- 5. recovery -------------------------------------------------------------------------

@_needs_a_working_target
def recovery(tl: Timeline, rules: Rules) -> Verdict:
    """Once space is back, every probe green in steady is green again, in time, no restart."""
    name = "recovery"
    marks = [m for m in tl.of(PhaseMark) if m.phase == "recover"]
    if not marks:
        return _not_judged(tl, name, "the run has no recover phase")
    start = marks[0].t
    raw_restarts = tl.facts.get("restarts", {})
    restarts: dict[str, Any] = dict(raw_restarts) if isinstance(raw_restarts, Mapping) else {}
    restarted = {k: v for k, v in restarts.items() if v}
    baseline = sorted({p.probe for p in tl.in_phase(ProbeResult, "steady") if p.passed})
    if not baseline and not restarted:
        ran = sorted({p.probe for p in tl.in_phase(ProbeResult, "steady")})
        return _not_judged(tl, name, "no probe was green in the steady phase ("
                           + (f"{', '.join(ran)} failed" if ran else "none ran")
                           + "), so there is nothing to compare recovery against")
    after = tl.in_phase(ProbeResult, "recover")
    evidence: list[str] = []
    broken: list[str] = []
    slow: list[str] = []
    for probe in baseline:
        runs = sorted((p for p in after if p.probe == probe), key=lambda p: p.t)
        if not runs:
            broken.append(probe)
            evidence.append(f"{probe}: never ran during recover")
            continue
        first_ok = next((p for p in runs if p.passed), None)
        last = runs[-1]
        if first_ok is None or not last.passed:
            broken.append(probe)
            bad = next(((t, s) for t, _, s in _timed_steps(last) if not s.passed), None)
            detail = fmt_step(last, bad[1], bad[0]) if bad else _ts(last.t)
            if first_ok is None:
                evidence.append(f"{probe}: never green again in {len(runs)} runs; last "
                                f"failure {detail}")
            else:
                evidence.append(f"{probe}: green at {_ts(first_ok.t)} but failing again at "
                                f"the end: {detail}")
        elif first_ok is not runs[0] and first_ok.t - start > rules.recovery_seconds:
            # late only if seen failing first: a first run that passes proves nothing slow
            slow.append(probe)
            evidence.append(f"{probe}: first green {first_ok.t - start:.2f}s after recover "
                            f"began (bound {rules.recovery_seconds:g}s)")
    if restarted:
        evidence.append("restarts: " + ", ".join(f"{k} x{v}" for k, v in sorted(
            restarted.items())))
    problems = []
    if broken:
        problems.append(f"{_plural(len(broken), 'probe')} never green again "
                        f"({', '.join(broken)})")
    if slow:
        problems.append(f"{_plural(len(slow), 'probe')} green only after "
                        f"{rules.recovery_seconds:g}s ({', '.join(slow)})")
    if restarted:
        problems.append(f"{_plural(len(restarted), 'service')} restarted "
                        f"({', '.join(sorted(restarted))})")
    if problems:
        return _verdict(tl, name, False, "; ".join(problems), evidence)
    reruns = sum(1 for p in after if p.probe in baseline)
    return _verdict(tl, name, True,
                    f"judged {_plural(len(baseline), 'probe')} green in steady over "
                    f"{_plural(reruns, 'run')} in recover: all green again within "
                    f"{rules.recovery_seconds:g}s, with no restart")


# --- 6. cleanup_keeps_up -----------------------------------------------------------------

@_needs_a_working_target
def cleanup_keeps_up(tl: Timeline, rules: Rules) -> Verdict:
    """With downloads arriving, cleanup keeps usage under the ceiling and full time short."""
    name = "cleanup_keeps_up"
    vol = rules.cleanup_volume
    if vol is None:
        return _not_judged(tl, name, "the target declares no cleanup")
    samples = [d for d in tl.in_phase(DiskSample, "act") if d.volume == vol]
    downloads = [e for e in tl.of(LoadEvent) if e.load == "download"]
    if not samples or not downloads:
        return _not_judged(tl, name, f"no downloads with disk samples of {vol} during the "
                           "act phase")
    peak = max(samples, key=lambda d: d.used_fraction)
    peak_pct = 100 * peak.used_fraction
    acts = _phase_spans(tl, "act")
    full: list[tuple[float, float]] = []
    for a, b, _ in tl.full_spans(vol):
        for lo, hi in acts:
            if min(b, hi) > max(a, lo):
                full.append((max(a, lo), min(b, hi)))
    full_seconds = sum(b - a for a, b in full)
    runs = [p for p in tl.in_phase(ProbeResult, "act") if "download" in p.tags]
    ok = sum(1 for p in runs if p.passed)
    if not ok:
        # an app that refuses every download keeps its disk empty: nothing was cleaned
        return _not_judged(tl, name, f"no download was served during the act phase "
                           f"({len(runs)} attempted, all refused), so the cleanup had "
                           "nothing to keep up with")
    evidence = [f"peak: {fmt_sample(peak)}",
                f"downloads: {len(runs)} attempted, {ok} served, {len(runs) - ok} refused "
                f"({len(downloads)} download loads)"]
    evidence += [f"full {_ts(a)}-{_ts(b)} ({b - a:.2f}s)" for a, b in full]
    problems = []
    if peak_pct > rules.cleanup_ceiling:
        problems.append(f"usage of {vol} peaked at {peak_pct:.0f}% (ceiling "
                        f"{rules.cleanup_ceiling:g}%)")
    if full_seconds > rules.cleanup_max_full_seconds:
        problems.append(f"{vol} was full for {full_seconds:.2f}s (bound "
                        f"{rules.cleanup_max_full_seconds:g}s)")
    if problems:
        return _verdict(tl, name, False, "cleanup did not keep up: " + "; ".join(problems),
                        evidence)
    return _verdict(tl, name, True,
                    f"judged {_plural(len(samples), 'disk sample')} of {vol} while {ok} of "
                    f"{_plural(len(runs), 'download')} were served: cleanup kept it at or "
                    f"under {rules.cleanup_ceiling:g}% (peak {peak_pct:.0f}%, full "
                    f"{full_seconds:.2f}s)", evidence)


# --- 7. counter_accuracy -----------------------------------------------------------------

@_needs_a_working_target
def counter_accuracy(tl: Timeline, rules: Rules) -> Verdict:
    """A declared counter moves by exactly the number of successful runs of its probe."""
    name = "counter_accuracy"
    samples = tl.of(CounterSample)
    judged = 0
    wrong: list[str] = []
    evidence: list[str] = []
    for counter, probe in sorted(rules.counters.items()):
        values = [c for c in samples if c.counter == counter and c.value is not None]
        if len(values) < 2:
            evidence.append(f"{counter}: read {_plural(len(values), 'time')} (needs two "
                            "readings, not judged)")
            continue
        first, last = values[0], values[-1]
        assert first.value is not None and last.value is not None
        delta = last.value - first.value
        window = [p for p in tl.probes(probe) if first.t <= p.t <= last.t]
        observed = sum(1 for p in window if p.passed)
        if not observed:
            # a counter that never moves would "match" zero successes
            evidence.append(f"{counter}: read at {_ts(first.t)} and {_ts(last.t)}, but no "
                            f"successful {probe} run between the readings (not judged; "
                            f"{len(window)} failed)")
            continue
        judged += 1
        failures = [p for p in window if not p.passed]
        line = (f"{counter}: {first.value:g} at {_ts(first.t)} -> {last.value:g} at "
                f"{_ts(last.t)} (moved {delta:g}); {observed} successful {probe} runs, "
                f"{len(failures)} failed")
        evidence.append(line)
        if abs(delta - observed) > 1e-9:
            wrong.append(f"{counter} moved {delta:g} for {observed} successful {probe} runs")
            for p in failures:
                bad = next(((t, s) for t, _, s in _timed_steps(p) if not s.passed), None)
                if bad:
                    evidence.append(f"  failed: {fmt_step(p, bad[1], bad[0])}")
    if not judged:
        return _not_judged(tl, name, "no declared counter was read twice with a successful "
                           "run of its probe in between", evidence)
    if wrong:
        return _verdict(tl, name, False, "; ".join(wrong), evidence)
    return _verdict(tl, name, True,
                    f"judged {_plural(judged, 'counter')}: each moved by exactly the "
                    "successful runs observed", evidence)


# --- 8. health_truthful ------------------------------------------------------------------

def _inode_fraction(d: DiskSample) -> float:
    return (d.inodes_total - d.inodes_free) / d.inodes_total if d.inodes_total else 0.0


@_needs_a_working_target
def health_truthful(tl: Timeline, rules: Rules) -> Verdict:
    """Health says not-healthy when a volume is full, healthy when every volume is calm."""
    name = "health_truthful"
    health = tl.of(HealthSample)
    if not health:
        return _not_judged(tl, name, "no health sample was taken")
    judged = 0
    while_full = 0
    calm = 0
    lies: list[str] = []
    alarms: list[str] = []
    disks = _Disks(tl)
    for h in health:
        latest = disks.latest(h.t)
        if not latest:
            continue
        judged += 1
        full = [d for d in latest.values() if d.full]
        raw = f" ({_clip(h.raw, EXCERPT)!r})" if h.raw else ""
        if full:
            while_full += 1
            if h.status == "healthy":
                lies.append(f"{_ts(h.t)} health said {h.status}{raw} while full: "
                            + "; ".join(fmt_sample(d) for d in full))
        elif not all(d.used_fraction < rules.healthy_below
                     and _inode_fraction(d) < rules.healthy_below for d in latest.values()):
            continue
        elif h.status != "healthy":
            calm += 1
            busiest = max(latest.values(),
                          key=lambda d: max(d.used_fraction, _inode_fraction(d)))
            alarms.append(f"{_ts(h.t)} health said {h.status}{raw} with every volume "
                          f"under {100 * rules.healthy_below:g}% used; busiest: "
                          f"{fmt_sample(busiest)}")
        else:
            calm += 1
    if not judged:
        return _not_judged(tl, name, "no health sample had a disk sample to compare with")
    note = "" if while_full else " (no health sample was taken while a volume was full)"
    if not (lies or alarms) and not (while_full and calm):
        # a health that always says "failing" (or "ok") must be seen on both sides
        missing = [what for what, n in (("while a volume was full", while_full),
                                        (f"with every volume under "
                                         f"{100 * rules.healthy_below:g}% used", calm)) if not n]
        return _not_judged(tl, name, f"no health sample was taken {' or '.join(missing)} "
                           f"({_plural(judged, 'sample')} compared with the disks)")
    problems = []
    if lies:
        problems.append(f"health said healthy {_plural(len(lies), 'time')} while a volume "
                        "was full")
    if alarms:
        problems.append(f"health raised {_plural(len(alarms), 'false alarm')} with every "
                        "volume far from full")
    if problems:
        return _verdict(tl, name, False, "; ".join(problems) + note, lies + alarms)
    return _verdict(tl, name, True,
                    f"judged {_plural(judged, 'health sample')} ({while_full} taken while "
                    f"full, {calm} with every disk calm): all matched the disks")


# --- 9. log_integrity --------------------------------------------------------------------

_TB_START = ("Traceback (most recent call last)", "Stack (most recent call last)")
_TB_CHAIN = ("During handling of the above exception", "The above exception was the direct")


def _torn_lines(records: Sequence[LogRecord], whole: re.Pattern[str],
                anywhere: re.Pattern[str] | None) -> list[LogRecord]:
    """Lines that are not one whole record.

    A line is torn when it does not start like a record, or when a second record starts
    inside it (a record cut short and the next one appended to it; checked only when the
    pattern is specific enough not to match inside most whole lines). Python tracebacks that
    follow a record (``Traceback ...``, indented frames, the exception line) are
    continuation lines, not torn ones.
    """
    torn: list[int] = []
    glued: list[int] = []
    wholes = 0
    in_tb = after_tb = False
    for i, r in enumerate(records):
        text = r.text.rstrip("\r\n")
        m = whole.match(text)
        if m:
            in_tb = after_tb = False
            wholes += 1
            if anywhere is not None and _glued(anywhere, text, max(m.end(), 1)):
                glued.append(i)
            continue
        if text.startswith(_TB_START):
            in_tb, after_tb = True, False
        elif in_tb and (not text or text[:1].isspace()):
            pass
        elif in_tb:
            in_tb, after_tb = False, True  # the exception line ends the traceback
        elif after_tb and (not text or text.startswith(_TB_CHAIN)):
            pass
        else:
            torn.append(i)
    # a pattern loose enough to match inside most whole lines cannot tell glued records
    # apart (judged once there are enough lines to tell)
    if glued and (wholes < 4 or 2 * len(glued) <= wholes):
        torn.extend(glued)
    return [records[i] for i in sorted(torn)]


def _glued(anywhere: re.Pattern[str], text: str, pos: int) -> bool:
    """A second record starts inside this line (at least MIN_EMBEDDED characters of it)."""
    return any(len(m.group(0)) >= MIN_EMBEDDED for m in anywhere.finditer(text, pos))


def _unanchored(pattern: str) -> re.Pattern[str] | None:
    """The line pattern without its start anchor, to find a record starting mid-line."""
    body = pattern.removeprefix("^").removeprefix(r"\A")
    if body == pattern or not body:
        return None
    try:
        return re.compile(body)
    except re.error:
        return None


@_needs_a_working_target
def log_integrity(tl: Timeline, rules: Rules) -> Verdict:
    """Once space is back, log files hold no torn lines and no silent gaps.

    A file is checked for torn lines when it declares a ``line_pattern``, and for gaps
    when it logs the harness's marks and some marks were sent while a volume was full.
    Not judged when no file read back could be checked either way.
    """
    name = "log_integrity"
    sources = {label: rule for label, rule in sorted(rules.file_sources.items())
               if tl.logs(label)}
    if not sources:
        return _not_judged(tl, name, "no declared log file was read back")
    marks = [e for e in tl.of(LoadEvent) if e.load == "log_mark" and e.detail]
    marker_rx = (re.compile("|".join(re.escape(m) for m in sorted(
        {e.detail for e in marks}, key=len, reverse=True))) if marks else None)
    steady = set(_phase_spans(tl, "steady"))
    steady_markers = {e.detail for e in marks if any(a <= e.t < b for a, b in steady)}
    disks = _Disks(tl)
    full_marks = [e for e in marks if disks.full_at(e.t)]
    evidence: list[str] = []
    problems: list[str] = []
    notes: list[str] = []
    lines_judged = 0
    gap_checked: list[str] = []
    unchecked: list[str] = []
    for label, rule in sources.items():
        records = tl.logs(label)
        checked = False
        # (a) torn lines. Every line is judged, whenever it was read: the reader hands over
        # only lines ended by a newline (the unterminated tail only at the very end), so a
        # line read while the disk was full is still in the file once space is back.
        if rule.line_pattern:
            checked = True
            lines_judged += len(records)
            whole = re.compile(rule.line_pattern)
            torn = _torn_lines(records, whole, _unanchored(rule.line_pattern))
            if torn:
                problems.append(f"{label} has {_plural(len(torn), 'torn line')}")
                evidence.extend(f"torn in {label} at {_ts(r.t)}: {r.text[:LINE]!r}"
                                for r in torn)
        # (b) silent gaps: marks sent while full that never appear and are not announced
        seen: set[str] = set()
        if marker_rx is not None:
            for r in records:
                seen.update(marker_rx.findall(r.text))
        if not seen & steady_markers or not full_marks:
            if not checked:
                why = ("no line_pattern" if not rule.line_pattern else "") + (
                    "; it logged none of the steady marks" if not seen & steady_markers
                    else "; no mark was sent while a volume was full")
                unchecked.append(f"{label} ({why.lstrip('; ')})")
            continue
        gap_checked.append(label)
        missing = [e for e in full_marks if e.detail not in seen]
        drops: list[LogRecord] = []
        announced = 0
        counted = False
        if rule.drop_pattern:
            # The loss may be announced in any operator-visible sink, not only the file
            # that lost it (nginx says so on its stderr error_log; the file is full).
            drop_rx = re.compile(rule.drop_pattern)
            for r in tl.of(LogRecord):
                m = drop_rx.search(r.text)
                if not m:
                    continue
                drops.append(r)
                for g in m.groups():
                    if g is not None and g.isdigit():
                        announced += int(g)
                        counted = True
                        break
        evidence.extend(f"drop of {label} announced: {fmt_log(r)}" for r in drops[:5])
        if not missing:
            notes.append(f"{label}: all {_plural(len(full_marks), 'mark')} sent while "
                         "full were logged")
            continue
        covered = bool(drops) and (not counted or announced >= len(missing))
        listing = [f"missing from {label}: mark {e.detail!r} sent at {_ts(e.t)} "
                   f"[{disks.note(e.t)}]" for e in missing]
        if covered:
            notes.append(f"{label}: {len(missing)} missing marks announced as dropped")
            evidence.extend(listing)
            continue
        if drops:
            problems.append(f"{label} lost {_plural(len(missing), 'record')} but announced "
                            f"only {announced} dropped")
        else:
            problems.append(f"{label} silently lost {len(missing)} of "
                            f"{_plural(len(full_marks), 'record')} sent while full")
        evidence.extend(listing)
    unchecked_note = [f"not checked: {u}" for u in unchecked]
    if problems:
        return _verdict(tl, name, False, "; ".join(problems), evidence + unchecked_note)
    if len(unchecked) == len(sources):
        return _not_judged(tl, name, "no log file read back could be checked: "
                           + "; ".join(unchecked), evidence)
    judged = (f"judged {_plural(lines_judged, 'line')} for torn records and "
              f"{_plural(len(full_marks), 'mark')} sent while full against "
              f"{_plural(len(gap_checked), 'file')}")
    return _verdict(tl, name, True,
                    f"{judged}: no torn lines and no silent gaps"
                    + (f" ({'; '.join(notes)})" if notes else ""), evidence + unchecked_note)


# --- registry ----------------------------------------------------------------------------

INVARIANTS: dict[str, Invariant] = {
    "no_silent_write_loss": no_silent_write_loss,
    "errors_surface": errors_surface,
    "graceful_refusal": graceful_refusal,
    "core_isolation": core_isolation,
    "recovery": recovery,
    "cleanup_keeps_up": cleanup_keeps_up,
    "counter_accuracy": counter_accuracy,
    "health_truthful": health_truthful,
    "log_integrity": log_integrity,
}


def evaluate(tl: Timeline, rules: Rules, names: Iterable[str] | None = None) -> list[Verdict]:
    """Judge a timeline by the named invariants (all of them, in order, by default)."""
    chosen = list(INVARIANTS) if names is None else list(names)
    unknown = [n for n in chosen if n not in INVARIANTS]
    if unknown:
        raise UsageError(f"unknown invariant(s): {', '.join(unknown)}",
                         f"choose from {', '.join(INVARIANTS)}")
    return [INVARIANTS[n](tl, rules) for n in chosen]
