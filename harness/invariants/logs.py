"""Logs and errors: errors_surface, log_integrity."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..patterns import UserPattern, check
from ..timeline import DiskIndex, LoadEvent, LogRecord, ProbeResult, StepResult, Timeline
from ._evidence import (
    EARLY_SLACK,
    LINE,
    MIN_EMBEDDED,
    Stamps,
    Write,
    any_between,
    classify_writes,
    compile_any,
    could_not_run,
    fmt_log,
    fmt_step,
    full_note,
    needs_a_disk_that_ran_out,
    needs_a_working_target,
    not_judged,
    phase_spans,
    plural,
    sources_read,
    timed_steps,
    ts,
    verdict_of,
)
from .rules import FileSourceRule, Rules
from .verdict import Verdict

# --- 2. errors_surface -------------------------------------------------------------------

@dataclass(frozen=True)
class _Failures:
    """The requests of a timeline that failed as the user sees it."""

    failed: list[tuple[float, ProbeResult, StepResult]]  # step time, run, step
    skipped: list[str]  # evidence: steps that could not run (a config problem, not judged)
    ran_at: list[float]  # sorted start time of every step


def _failures(tl: Timeline) -> _Failures:
    """Every failed request, apart from answers the step expects (any status), readbacks
    and steps that could not run (those are listed as skipped)."""
    out = _Failures([], [], [])
    for p in tl.of(ProbeResult):
        for t, _, s in timed_steps(p):
            out.ran_at.append(t)
            # a status the step expects (a "missing page" probe's 404, an endpoint's
            # documented 501) is an answer, not an error
            expected = s.passed and s.status is not None
            if could_not_run(s):
                out.skipped.append(f"could not run (not judged): {fmt_step(p, s, t)}")
            elif s.failed_request and not s.readback and not expected:
                out.failed.append((t, p, s))
    out.ran_at.sort()
    return out


@dataclass(frozen=True)
class _Sinks:
    """The error and cause records of a timeline, indexed by when they could be written."""

    rules: Rules
    logs: list[LogRecord]
    error_logs: list[LogRecord]  # records matching an error or cause pattern
    cause_rx: UserPattern | None
    errors: Stamps
    causes: Stamps

    @classmethod
    def of(cls, tl: Timeline, rules: Rules) -> _Sinks:
        """Index the timeline's log records by the target's patterns."""
        error_rx = compile_any((*rules.error_patterns, *rules.cause_patterns))
        cause_rx = compile_any(rules.cause_patterns, "cause_patterns")
        logs = tl.of(LogRecord)
        error_logs = [r for r in logs if error_rx and error_rx.search(r.text)]
        return cls(rules, logs, error_logs, cause_rx, Stamps(error_logs),
                   Stamps(r for r in logs if cause_rx and cause_rx.search(r.text)))

    def from_services(self, probe: str) -> list[LogRecord]:
        """Error records from a sink of the services that answer for a probe (all of them
        when the rules map no services, as in hand-built rules)."""
        services = self.rules.probe_services.get(probe)
        return [r for r in self.error_logs if not services
                or self.rules.source_services.get(r.source, frozenset()) & services]


def _unrecorded(failed: Sequence[tuple[float, ProbeResult, StepResult]],
                sinks: _Sinks) -> list[str]:
    """Evidence for each failed request that left no error record within the bound."""
    bound = sinks.rules.error_record_seconds
    out = []
    for t, p, s in failed:
        # the upper bound runs from the end of the step: a hang can only be logged when it ends
        start = t - EARLY_SLACK
        stamps = sinks.errors
        if s.service_down:
            # a server that died answers nothing while it is down: the record of its death,
            # however long before, from a sink of its own, explains every such request
            start = float("-inf")
            stamps = Stamps(sinks.from_services(p.probe))
        if not stamps.any_between(start, t + s.elapsed + bound):
            out.append(f"no error record within {bound:g}s: {fmt_step(p, s, t)}")
    return out


SHOWN = 5
"""Failed requests whose counting records are listed in errors_surface's evidence."""


def _recorded(failed: Sequence[tuple[float, ProbeResult, StepResult]], sinks: _Sinks,
              tl: Timeline) -> list[str]:
    """Evidence of what counted: for the first few failed requests with a record, the
    record(s) that did; for each full-disk span, the first line that named the cause."""
    bound = sinks.rules.error_record_seconds
    out: list[str] = []
    for t, p, s in failed:
        if len(out) >= SHOWN:
            break
        if s.service_down:
            continue
        said = sinks.errors.between(t - EARLY_SLACK, t + s.elapsed + bound)
        if said:
            out.append(f"recorded: {fmt_step(p, s, t)} <- "
                       + " | ".join(fmt_log(r) for r in said))
    if len(failed) > SHOWN:
        out.append(f"(records of the first {SHOWN} of {len(failed)} failed requests shown)")
    for start, end, vol in tl.full_spans():
        named = sinks.causes.between(start - EARLY_SLACK, end + bound, limit=1)
        if named:
            out.append(f"cause named while {vol} was full ({ts(start)}-{ts(end)}): "
                       f"{fmt_log(named[0])}")
    return out


def _unreported(fakes: Sequence[Write], sinks: _Sinks, disks: DiskIndex) -> list[str]:
    """Evidence for each fake success with no record of its own naming the cause or the
    request: a 503 of some other request in the window does not show the app knew."""
    bound = sinks.rules.error_record_seconds
    out = []
    for w in fakes:
        path = w.step.target.split("?", 1)[0]
        cause_rx = sinks.cause_rx
        mine = Stamps(r for r in sinks.from_services(w.probe.probe)
                      if (cause_rx is not None and cause_rx.search(r.text))
                      or (path and path in r.text))
        if not mine.any_between(w.t - EARLY_SLACK, w.end + bound):
            services = sinks.rules.probe_services.get(w.probe.probe)
            where = f" from {', '.join(sorted(services))}" if services else ""
            out.append(f"fake success, no error record{where} within {bound:g}s: "
                       f"{w.line(disks)}")
    return out


def _span_checks(tl: Timeline, sinks: _Sinks, failures: _Failures,
                 fakes: Sequence[Write]) -> tuple[int, int, list[str]]:
    """How many full-disk spans were judged, in how many no sink named the cause, and
    evidence for those (with the last lines of every source: what was said instead)."""
    rules, bound = sinks.rules, sinks.rules.error_record_seconds
    judged = silent = 0
    evidence: list[str] = []
    for start, end, vol in tl.full_spans():
        fails = [f for f in failures.failed if start <= f[0] <= end]
        lost = [w for w in fakes if start <= w.t <= end]
        named = sinks.causes.any_between(start - EARLY_SLACK, end + bound)
        probed = any_between(failures.ran_at, start, end)
        # the app wrote error records while the disk was full: it met the full disk (a
        # cache that could not store an entry) even where no request of ours failed
        errored = sinks.errors.between(start, end, limit=1)
        if not (fails or lost or named or errored or (vol in rules.log_volumes and probed)):
            continue
        judged += 1
        if named:
            continue
        silent += 1
        why = (f"{plural(len(fails), 'request')} failed" if fails
               else f"{plural(len(lost), 'write')} lost" if lost
               else f"the app logged {fmt_log(errored[0])!r}" if errored
               else "it holds log files")
        evidence.append(f"{ts(start)}-{ts(end)}: {vol} full ({why}) and no sink named the "
                        "cause (" + (" | ".join(rules.cause_patterns) or "no cause patterns")
                        + ")")
        sources = sorted({r.source for r in sinks.logs})
        evidence.append("sources read: " + (", ".join(sources) if sources else "none"))
        for src in sources:
            tail = [r for r in sinks.logs if r.source == src and r.t <= end + bound][-2:]
            evidence.extend(f"  last: {fmt_log(r)}" for r in tail)
    return judged, silent, evidence


@needs_a_working_target
@needs_a_disk_that_ran_out
def errors_surface(tl: Timeline, rules: Rules) -> Verdict:
    """Every failed request (and every fake success) leaves an error record within the
    bound; while a volume is full, some sink names the cause.

    A full-disk span is judged when a request failed in it, a write was lost in it, a
    sink wrote an error record or named the cause during it, or it holds declared log
    files and was probed. A
    fake success needs an error record that names the cause or the request's path, from
    a sink of the service that answered (or one behind it; without such a mapping, as
    in hand-built rules, any sink counts).
    """
    name = "errors_surface"
    sinks = _Sinks.of(tl, rules)
    failures = _failures(tl)
    failed, fakes = failures.failed, classify_writes(tl).lost
    unrecorded = _unrecorded(failed, sinks)
    unreported = _unreported(fakes, sinks, tl.disk_index())
    judged_spans, silent_spans, silent = _span_checks(tl, sinks, failures, fakes)
    read = sources_read(tl)
    if not failed and not fakes and not judged_spans:
        spans = tl.full_spans()
        why = (f"{plural(len(spans), 'full-disk span')}, but in none did a request fail, a "
               "write get lost or a sink record an error or name the cause, and none holds "
               "a probed log volume"
               if spans else "no request failed, no write was lost and no volume was full")
        return not_judged(tl, name, f"{why} ({read})", failures.skipped)
    bound = rules.error_record_seconds
    problems = []
    if unrecorded:
        problems.append(f"{len(unrecorded)} of {plural(len(failed), 'failed request')} left "
                        f"no error record within {bound:g}s")
    if unreported:
        problems.append(f"{len(unreported)} of "
                        f"{plural(len(fakes), 'fake success', 'fake successes')} "
                        f"(acknowledged, then lost) left no error record within {bound:g}s")
    if silent_spans:
        problems.append(f"{silent_spans} of {plural(judged_spans, 'full-disk span')} "
                        "had no log line naming the disk as the cause")
    counted = _recorded(failed, sinks, tl)
    if problems:
        return verdict_of(tl, name, False, "; ".join(problems) + f" ({read})",
                          unrecorded + unreported + silent + failures.skipped + counted)
    return verdict_of(tl, name, True,
                      f"judged {plural(len(failed), 'failed request')}, "
                      f"{plural(len(fakes), 'fake success', 'fake successes')} and "
                      f"{plural(judged_spans, 'full-disk span')}: every one left an error "
                      f"record and every span named the cause ({read})",
                      counted + failures.skipped)


# --- 9. log_integrity --------------------------------------------------------------------

_TB_START = ("Traceback (most recent call last)", "Stack (most recent call last)")
_TB_CHAIN = ("During handling of the above exception", "The above exception was the direct")


def _torn_lines(records: Sequence[LogRecord], whole: UserPattern,
                anywhere: UserPattern | None) -> list[LogRecord]:
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


def _glued(anywhere: UserPattern, text: str, pos: int) -> bool:
    """A second record starts inside this line (at least MIN_EMBEDDED characters of it)."""
    return any(len(m.group(0)) >= MIN_EMBEDDED for m in anywhere.finditer(text, pos))


def _unanchored(pattern: str, key: str) -> UserPattern | None:
    """The line pattern without its start anchor, to find a record starting mid-line."""
    body = pattern.removeprefix("^").removeprefix(r"\A")
    if body == pattern or not body or check(body) is not None:
        return None
    return UserPattern(body, key)


@dataclass(frozen=True)
class _Marks:
    """The harness's log marks: which were sent in steady, which while a volume was full."""

    rx: re.Pattern[str] | None  # finds any mark in a line (longest first)
    steady: frozenset[str]
    while_full: list[LoadEvent]
    disks: DiskIndex

    @classmethod
    def of(cls, tl: Timeline) -> _Marks:
        """The marks a timeline records."""
        marks = [e for e in tl.of(LoadEvent) if e.load == "log_mark" and e.detail]
        rx = (re.compile("|".join(re.escape(m) for m in sorted(
            {e.detail for e in marks}, key=len, reverse=True))) if marks else None)
        spans = set(phase_spans(tl, "steady"))
        steady = frozenset(e.detail for e in marks if any(a <= e.t < b for a, b in spans))
        disks = tl.disk_index()
        return cls(rx, steady, [e for e in marks if disks.full_at(e.t)], disks)

    def seen_in(self, records: Sequence[LogRecord]) -> set[str]:
        """The marks that appear in the records."""
        seen: set[str] = set()
        if self.rx is not None:
            for r in records:
                seen.update(self.rx.findall(r.text))
        return seen


@dataclass
class _Findings:
    """What the checks of the log files found, file by file."""

    evidence: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lines_judged: int = 0
    gap_checked: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)


def _check_torn(label: str, rule: FileSourceRule, records: Sequence[LogRecord],
                out: _Findings) -> bool:
    """Torn lines of a file with a ``line_pattern`` (False: it has none, not checked).

    Every line is judged, whenever it was read: the reader hands over only lines ended by
    a newline (the unterminated tail only at the very end), so a line read while the disk
    was full is still in the file once space is back."""
    if not rule.line_pattern:
        return False
    out.lines_judged += len(records)
    key = f"logs ({label}).line_pattern"
    torn = _torn_lines(records, UserPattern(rule.line_pattern, key),
                       _unanchored(rule.line_pattern, key))
    if torn:
        out.problems.append(f"{label} has {plural(len(torn), 'torn line')}")
        out.evidence.extend(f"torn in {label} at {ts(r.t)}: {r.text[:LINE]!r}" for r in torn)
    return True


def _announced_drops(tl: Timeline, rule: FileSourceRule) -> tuple[list[LogRecord], int, bool]:
    """Records announcing lost lines, how many they announce, and whether any gave a count.

    The loss may be announced in any operator-visible sink, not only the file that lost it
    (nginx says so on its stderr error_log; the file is full)."""
    drops: list[LogRecord] = []
    announced = 0
    counted = False
    if not rule.drop_pattern:
        return drops, announced, counted
    drop_rx = UserPattern(rule.drop_pattern, "logs.drop_pattern")
    for r in tl.of(LogRecord):
        m = drop_rx.search(r.text)
        if not m:
            continue
        drops.append(r)
        count = next((int(g) for g in m.groups() if g is not None and g.isdigit()), None)
        if count is not None:
            announced += count
            counted = True
    return drops, announced, counted


def _check_gaps(tl: Timeline, label: str, rule: FileSourceRule, seen: set[str],
                marks: _Marks, out: _Findings) -> None:
    """Marks sent while full that never appear in the file and were not announced lost."""
    out.gap_checked.append(label)
    missing = [e for e in marks.while_full if e.detail not in seen]
    drops, announced, counted = _announced_drops(tl, rule)
    out.evidence.extend(f"drop of {label} announced: {fmt_log(r)}" for r in drops[:5])
    if not missing:
        out.notes.append(f"{label}: all {plural(len(marks.while_full), 'mark')} sent while "
                         "full were logged")
        return
    listing = [f"missing from {label}: mark {e.detail!r} sent at {ts(e.t)} "
               f"[{full_note(marks.disks, e.t)}]" for e in missing]
    out.evidence.extend(listing)
    if drops and (not counted or announced >= len(missing)):
        out.notes.append(f"{label}: {len(missing)} missing marks announced as dropped")
    elif drops:
        out.problems.append(f"{label} lost {plural(len(missing), 'record')} but announced "
                            f"only {announced} dropped")
    else:
        out.problems.append(f"{label} silently lost {len(missing)} of "
                            f"{plural(len(marks.while_full), 'record')} sent while full")


@needs_a_working_target
def log_integrity(tl: Timeline, rules: Rules) -> Verdict:
    """Once space is back, log files hold no torn lines and no silent gaps.

    A file is checked for torn lines when it declares a ``line_pattern``, and for gaps
    when it logs the harness's marks and some marks were sent while a volume was full.
    Not judged when no file read back could be checked either way.
    """
    name = "log_integrity"
    sources = {label: rule for label, rule in sorted(rules.file_sources.items())
               if tl.logs(label)}
    unread = [f"not checked: {label} (declared, but no line of it was read back: the file "
              "is absent or stayed empty)" for label in sorted(rules.file_sources)
              if label not in sources]
    if not sources:
        return not_judged(tl, name, "no declared log file was read back"
                          + (f" ({', '.join(sorted(rules.file_sources))})"
                             if rules.file_sources else ""), unread)
    marks = _Marks.of(tl)
    out = _Findings()
    for label, rule in sources.items():
        records = tl.logs(label)
        checked = _check_torn(label, rule, records, out)
        seen = marks.seen_in(records)
        if seen & marks.steady and marks.while_full:
            _check_gaps(tl, label, rule, seen, marks, out)
        elif not checked:
            why = ("no line_pattern" if not rule.line_pattern else "") + (
                "; it logged none of the steady marks" if not seen & marks.steady
                else "; no mark was sent while a volume was full")
            out.unchecked.append(f"{label} ({why.lstrip('; ')})")
    unchecked_note = [f"not checked: {u}" for u in out.unchecked] + unread
    judged_note = [f"judged: {label} ("
                   + ", ".join(w for w, on in (
                       ("torn lines", bool(rule.line_pattern)),
                       ("gaps against the marks", label in out.gap_checked)) if on) + ")"
                   for label, rule in sources.items()
                   if rule.line_pattern or label in out.gap_checked]
    if out.problems:
        return verdict_of(tl, name, False, "; ".join(out.problems),
                          out.evidence + unchecked_note + judged_note)
    if len(out.unchecked) == len(sources):
        return not_judged(tl, name, "no log file read back could be checked: "
                          + "; ".join(out.unchecked), out.evidence + unread)
    judged = (f"judged {plural(out.lines_judged, 'line')} for torn records and "
              f"{plural(len(marks.while_full), 'mark')} sent while full against "
              f"{plural(len(out.gap_checked), 'file')}")
    return verdict_of(tl, name, True,
                      f"{judged}: no torn lines and no silent gaps"
                      + (f" ({'; '.join(out.notes)})" if out.notes else ""),
                      out.evidence + unchecked_note + judged_note)
