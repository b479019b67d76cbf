"""Logs and errors: errors_surface, log_integrity."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..timeline import LoadEvent, LogRecord, ProbeResult, StepResult, Timeline
from ._evidence import (
    EARLY_SLACK,
    LINE,
    MIN_EMBEDDED,
    Disks,
    Stamps,
    any_between,
    classify_writes,
    compile_any,
    could_not_run,
    fmt_log,
    fmt_step,
    needs_a_working_target,
    not_judged,
    phase_spans,
    plural,
    sources_read,
    timed_steps,
    ts,
    verdict_of,
)
from .rules import Rules
from .verdict import Verdict

# --- 2. errors_surface -------------------------------------------------------------------

@needs_a_working_target
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
    error_rx = compile_any((*rules.error_patterns, *rules.cause_patterns))
    cause_rx = compile_any(rules.cause_patterns)
    logs = tl.of(LogRecord)
    bound = rules.error_record_seconds
    error_logs = [r for r in logs if error_rx and error_rx.search(r.text)]
    errors = Stamps(error_logs)
    causes = Stamps(r for r in logs if cause_rx and cause_rx.search(r.text))
    disks = Disks(tl)

    failed: list[tuple[float, ProbeResult, StepResult]] = []
    skipped: list[str] = []
    ran_at: list[float] = []
    for p in tl.of(ProbeResult):
        for t, _, s in timed_steps(p):
            ran_at.append(t)
            # a 4xx the probe expected (a "missing page" probe) is an answer, not an error
            expected = s.passed and s.status is not None and s.status < 500
            if could_not_run(s):
                skipped.append(f"could not run (not judged): {fmt_step(p, s, t)}")
            elif s.failed_request and not s.readback and not expected:
                failed.append((t, p, s))
    ran_at.sort()
    fakes = classify_writes(tl).lost
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
            stamps = Stamps(r for r in error_logs if not services
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
        mine = Stamps(r for r in error_logs
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
        probed = any_between(ran_at, start, end)
        if not (fails or lost or named or (vol in rules.log_volumes and probed)):
            continue
        judged_spans += 1
        if named:
            continue
        silent_spans += 1
        why = (f"{plural(len(fails), 'request')} failed" if fails
               else f"{plural(len(lost), 'write')} lost" if lost else "it holds log files")
        evidence.append(f"{ts(start)}-{ts(end)}: {vol} full ({why}) and no sink named the "
                        "cause (" + (" | ".join(rules.cause_patterns) or "no cause patterns")
                        + ")")
        sources = sorted({r.source for r in logs})
        evidence.append("sources read: " + (", ".join(sources) if sources else "none"))
        for src in sources:
            tail = [r for r in logs if r.source == src and r.t <= end + bound][-2:]
            evidence.extend(f"  last: {fmt_log(r)}" for r in tail)
    read = sources_read(tl)
    if not failed and not fakes and not judged_spans:
        why = (f"{plural(len(spans), 'full-disk span')}, but in none did a request fail, a "
               "write get lost or a sink name the cause, and none holds a probed log volume"
               if spans else "no request failed, no write was lost and no volume was full")
        return not_judged(tl, name, f"{why} ({read})", skipped)
    problems = []
    if unrecorded:
        problems.append(f"{unrecorded} of {plural(len(failed), 'failed request')} left no "
                        f"error record within {bound:g}s")
    if unreported:
        problems.append(f"{unreported} of {plural(len(fakes), 'fake success', 'fake successes')}"
                        f" (acknowledged, then lost) left no error record within {bound:g}s")
    if silent_spans:
        problems.append(f"{silent_spans} of {plural(judged_spans, 'full-disk span')} "
                        "had no log line naming the disk as the cause")
    if problems:
        return verdict_of(tl, name, False, "; ".join(problems) + f" ({read})",
                        evidence + skipped)
    return verdict_of(tl, name, True,
                    f"judged {plural(len(failed), 'failed request')}, "
                    f"{plural(len(fakes), 'fake success', 'fake successes')} and "
                    f"{plural(judged_spans, 'full-disk span')}: every one left an error "
                    f"record and every span named the cause ({read})", skipped)


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
    if not sources:
        return not_judged(tl, name, "no declared log file was read back")
    marks = [e for e in tl.of(LoadEvent) if e.load == "log_mark" and e.detail]
    marker_rx = (re.compile("|".join(re.escape(m) for m in sorted(
        {e.detail for e in marks}, key=len, reverse=True))) if marks else None)
    steady = set(phase_spans(tl, "steady"))
    steady_markers = {e.detail for e in marks if any(a <= e.t < b for a, b in steady)}
    disks = Disks(tl)
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
                problems.append(f"{label} has {plural(len(torn), 'torn line')}")
                evidence.extend(f"torn in {label} at {ts(r.t)}: {r.text[:LINE]!r}"
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
            notes.append(f"{label}: all {plural(len(full_marks), 'mark')} sent while "
                         "full were logged")
            continue
        covered = bool(drops) and (not counted or announced >= len(missing))
        listing = [f"missing from {label}: mark {e.detail!r} sent at {ts(e.t)} "
                   f"[{disks.note(e.t)}]" for e in missing]
        if covered:
            notes.append(f"{label}: {len(missing)} missing marks announced as dropped")
            evidence.extend(listing)
            continue
        if drops:
            problems.append(f"{label} lost {plural(len(missing), 'record')} but announced "
                            f"only {announced} dropped")
        else:
            problems.append(f"{label} silently lost {len(missing)} of "
                            f"{plural(len(full_marks), 'record')} sent while full")
        evidence.extend(listing)
    unchecked_note = [f"not checked: {u}" for u in unchecked]
    if problems:
        return verdict_of(tl, name, False, "; ".join(problems), evidence + unchecked_note)
    if len(unchecked) == len(sources):
        return not_judged(tl, name, "no log file read back could be checked: "
                           + "; ".join(unchecked), evidence)
    judged = (f"judged {plural(lines_judged, 'line')} for torn records and "
              f"{plural(len(full_marks), 'mark')} sent while full against "
              f"{plural(len(gap_checked), 'file')}")
    return verdict_of(tl, name, True,
                    f"{judged}: no torn lines and no silent gaps"
                    + (f" ({'; '.join(notes)})" if notes else ""), evidence + unchecked_note)


