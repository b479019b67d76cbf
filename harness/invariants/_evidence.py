"""Evidence shared by the rules: formatting, verdict builders, time indices, and the
classification of acknowledged writes (fake successes) that several rules judge."""

from __future__ import annotations

import functools
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from ..patterns import UserPattern, any_of
from ..sizes import format_size
from ..timeline import (
    DiskIndex,
    DiskSample,
    LogRecord,
    PhaseName,
    ProbeResult,
    StepResult,
    Timeline,
)
from .rules import Invariant, Rules
from .verdict import Verdict

MAX_EVIDENCE = 20
"""Evidence lines kept per verdict; the rest are counted in a last "... and N more" line."""
EARLY_SLACK = 1.0
"""Seconds a log record may carry before the request it reports (clock and stamp skew)."""
EXCERPT = 120
LINE = 200
MIN_EMBEDDED = 12
"""Shortest record start found inside a line that counts as a second, glued-on record."""


def ts(t: float) -> str:
    """A time in evidence: seconds since the run's start."""
    return f"t={t:.2f}s"


def clip(text: str, n: int) -> str:
    """Text on one line, cut to n characters."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= n else text[: n - 3] + "..."


def cap(lines: Sequence[str], limit: int = MAX_EVIDENCE) -> tuple[str, ...]:
    """At most ``limit`` evidence lines, the rest counted in the last one."""
    if len(lines) <= limit:
        return tuple(lines)
    return (*lines[: limit - 1], f"... and {len(lines) - limit + 1} more")


def plural(n: int, word: str, many: str | None = None) -> str:
    """``n`` and the word, in the plural unless n is 1."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def timed_steps(p: ProbeResult) -> Iterator[tuple[float, int, StepResult]]:
    """Each step of a flow with its start time and index."""
    t = p.t
    for i, s in enumerate(p.steps):
        yield t, i, s
        t += s.elapsed


def status_text(s: StepResult) -> str:
    """A step's status code, or "no answer"."""
    if s.status is None:
        return "no answer"
    return str(s.status)


def fmt_step(p: ProbeResult, s: StepResult, t: float) -> str:
    """One request as an evidence line: time, probe/step, request, status, error, body."""
    what = f"{p.probe}/{s.name}" if s.name else p.probe
    line = f"{ts(t)} {what}: {s.method} {s.target} -> {status_text(s)} in {s.elapsed:.2f}s"
    flags = [f for f, on in (("timed out", s.timed_out), ("body cut", not s.body_complete))
             if on]
    if flags:
        line += f" ({', '.join(flags)})"
    if s.error:
        line += f"; {clip(s.error, EXCERPT)}"
    if s.body_excerpt:
        line += f"; body {body_text(s.body_excerpt)}"
    return line


def body_text(excerpt: str, n: int = EXCERPT) -> str:
    """A response body in evidence, once and as it read: on one line (a line break shows
    as ⏎, never as an escaped ``\\n``), cut to n characters, between « and »."""
    text = excerpt.replace("\r", "").replace("\t", " ")
    text = "⏎".join(line.strip() for line in text.split("\n")).replace("»", "\u203a")
    return "«" + (text if len(text) <= n else text[: n - 3] + "...") + "»"


def fmt_sample(d: DiskSample) -> str:
    """One disk sample as an evidence line."""
    return (f"{ts(d.t)} disk {d.volume}: {format_size(d.bytes_free)} free of "
            f"{format_size(d.bytes_total)} ({100 * d.used_fraction:.0f}% used), "
            f"{d.inodes_free}/{d.inodes_total} inodes free as {d.as_user}"
            + (" - FULL" if d.full else ""))


def fmt_log(r: LogRecord) -> str:
    """One log record as an evidence line."""
    return f"{ts(r.t)} [{r.source}] {clip(r.text, LINE)}"


def compile_any(patterns: Iterable[str], key: str = "error_patterns/cause_patterns"
                ) -> UserPattern | None:
    """One regex matching any of the patterns (None when there are none), every search
    time-bounded (the patterns are the user's)."""
    return any_of(patterns, key)


def full_note(disks: DiskIndex, t: float) -> str:
    """Which volumes were full at t, for evidence."""
    full = disks.full_volumes(t)
    return f"{', '.join(full)} full" if full else "no volume full"


def any_between(times: Sequence[float], a: float, b: float) -> bool:
    """Whether a sorted list holds a value in [a, b]."""
    i = bisect_left(times, a)
    return i < len(times) and times[i] <= b


def phase_spans(tl: Timeline, phase: PhaseName) -> list[tuple[float, float]]:
    """The (start, end) windows of a phase."""
    return [(m.t, end) for m, end in tl.windows() if m.phase == phase]


class Stamps:
    """When matching log records could have been written, for "any record in [a, b]?".

    A container record carries the time the sink stamped it. A file line carries the time
    it was read back, so it was written at some point after the previous read of that file
    and before this one: it counts for any window that interval touches.
    """

    def __init__(self, records: Iterable[LogRecord]) -> None:
        reads: dict[str, list[float]] = {}
        chosen = list(records)
        for r in chosen:
            if is_file(r):
                reads.setdefault(r.source, []).append(r.t)
        distinct = {src: sorted(set(ts)) for src, ts in reads.items()}
        spans: list[tuple[float, float]] = []
        for r in chosen:
            if is_file(r):
                times = distinct[r.source]
                i = bisect_left(times, r.t)
                spans.append((times[i - 1] if i else float("-inf"), r.t))
            else:
                spans.append((r.t, r.t))
        order = sorted(range(len(spans)), key=lambda i: spans[i])
        self._records = [chosen[i] for i in order]
        spans = [spans[i] for i in order]
        self._spans = spans
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

    def between(self, a: float, b: float, limit: int = 2) -> list[LogRecord]:
        """Up to ``limit`` records that could have been written within [a, b], earliest
        first: the records that counted, for evidence."""
        n = bisect_right(self._lo, b)
        return [r for r, (_, hi) in zip(self._records[:n], self._spans[:n], strict=True)
                if hi >= a][:limit]


def is_file(r: LogRecord) -> bool:
    """A record read back from a log file (not a container stream)."""
    return r.volume is not None or r.source.startswith("file:")


def verdict_of(tl: Timeline, name: str, passed: bool, summary: str,
             evidence: Sequence[str] = ()) -> Verdict:
    """A judged verdict (pass or fail) of a rule on a timeline."""
    return Verdict(invariant=name, passed=passed, summary=summary, evidence=cap(evidence),
                   scenario=tl.scenario, volume=tl.volume)


def not_judged(tl: Timeline, name: str, reason: str, evidence: Sequence[str] = ()) -> Verdict:
    """Neither pass nor fail: ``reason`` names the evidence that was missing."""
    return Verdict(invariant=name, passed=False, summary=f"not judged: {reason}",
                   evidence=cap(evidence), applicable=False, scenario=tl.scenario,
                   volume=tl.volume, reason=reason)


def could_not_run(s: StepResult) -> bool:
    """An exec that never ran the command: 126 (not executable), 127 (not found) or a
    signal (a negative code, or 128+N from a shell). A config problem, not a refusal."""
    if s.could_not_run:  # the prober says so (it saw the exit code and the signal)
        return True
    if s.method != "EXEC" or s.status is None or s.timed_out:
        return False
    return s.status in (126, 127) or s.status < 0 or s.status > 128


def never_worked(tl: Timeline) -> str | None:
    """Why the timeline shows a target that never worked (None when it did, or when it has
    no steady phase to tell): probes ran in steady and not one passed."""
    steady = tl.in_phase(ProbeResult, "steady")
    if not steady or any(p.passed for p in steady):
        return None
    names = ", ".join(sorted({p.probe for p in steady}))
    return (f"the target never worked: no probe was green in the steady phase ({names} "
            "failed), so nothing it did while full can be told apart from that")


def needs_a_working_target(rule: Invariant) -> Invariant:
    """A rule judged only when the target worked before the fill: a stack that is red
    from the start would otherwise pass rules that look at refusals and errors."""
    @functools.wraps(rule)
    def judged(tl: Timeline, rules: Rules) -> Verdict:
        why = never_worked(tl)
        if why is not None:
            return not_judged(tl, rule.__name__, why)
        return rule(tl, rules)
    return judged


def pressure_lines(tl: Timeline) -> list[str]:
    """The write pressure on full volumes, for evidence: how much each write probe had
    accepted on a full disk before the first refusal (the slack), or until the bound."""
    out = []
    for probe, f in sorted(dict(tl.facts.get("pressure", {})).items()):
        n, written = int(f.get("accepted", 0)), int(f.get("bytes", 0))
        content = f" ({format_size(written)} of fresh content)" if written else ""
        if f.get("refused") and not n:
            out.append(f"pressure on {f.get('volume')}: {probe} was refused at its first "
                       "write on a full disk")
        elif f.get("refused"):
            out.append(f"pressure on {f.get('volume')}: {probe} accepted "
                       f"{plural(n, 'write')}{content} on a full disk before the first "
                       "refusal")
        else:
            out.append(f"pressure on {f.get('volume')}: {probe} accepted "
                       f"{plural(n, 'write')}{content} on a full disk, every one "
                       f"acknowledged and read back, until the {f.get('bound') or 'time'} "
                       f"bound ({format_size(int(f.get('bytes_bound') or 0))} of fresh "
                       f"content or {float(f.get('seconds_bound', 0)):g}s)")
    return out


def never_ran_out(tl: Timeline) -> tuple[str, str] | None:
    """(volume, why) when write pressure on a full volume never met a refusal: every write
    probe that writes on it kept being acknowledged and read back until the bound. The
    app did not run out (it writes into space it preallocated, or the probe writes too
    little), so nothing it did while "full" says how it behaves when it does."""
    flood = tl.facts.get("write_flood")
    if isinstance(flood, dict):
        volumes = [str(v) for v in flood.get("volumes", [])]
        return (", ".join(volumes) or tl.scenario, f"{', '.join(volumes) or 'no volume'} "
                f"never ran out: {flood.get('why', '')}. Hint: give the write probe a "
                "bigger body_size, or raise [bounds] pressure_seconds")
    facts = dict(tl.facts.get("pressure", {}))
    by_volume: dict[str, list[tuple[str, dict[str, object]]]] = {}
    for probe, f in sorted(facts.items()):
        by_volume.setdefault(str(f.get("volume")), []).append((probe, f))
    for volume, runs in sorted(by_volume.items()):
        if any(f.get("refused") for _, f in runs):
            continue
        fresh = [p for p, f in runs if not f.get("fresh_per_run")]
        hint = ("give " + ", ".join(fresh) + " a body_size (fresh content per run) so that "
                "it writes more" if fresh else "make the write probe write more per run (a "
                "bigger body_size)")
        why = (f"{volume} never ran out: " + "; ".join(pressure_lines(tl)) + ". Hint: "
               f"{hint}, or raise [bounds] pressure_bytes / pressure_seconds")
        return volume, why
    return None


def needs_a_disk_that_ran_out(rule: Invariant) -> Invariant:
    """A rule about what the app does when its disk runs out, judged only where it did:
    a volume whose writes were all accepted up to the pressure bound tested nothing."""
    @functools.wraps(rule)
    def judged(tl: Timeline, rules: Rules) -> Verdict:
        untested = never_ran_out(tl)
        if untested is not None:
            volume, why = untested
            return replace(not_judged(tl, rule.__name__, why), untested=volume)
        return rule(tl, rules)
    return judged


def is_loss(s: StepResult) -> bool:
    """A readback that answered normally, without an error, and did not show the write.

    HTTP: a whole answer below 500 (a page that says "Log in", a 401/404). Exec: the
    command exited 0 but its output lacked the write (any other exit failed loudly)."""
    if s.passed or s.timed_out or s.status is None:
        return False
    if s.method == "EXEC":
        return s.status == 0
    return s.status < 500 and s.body_complete


@dataclass(frozen=True)
class Write:
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

    def line(self, disks: DiskIndex) -> str:
        """The write and its readback, for evidence."""
        out = fmt_step(self.probe, self.step, self.t)
        if self.again is not None and self.readback is not None:
            rt, r = self.readback
            return (f"{out} acknowledged while full [{full_note(disks, self.t)}], and after "
                    f"recovery {fmt_step(self.again, r, rt)} still does not show it")
        if self.readback is not None:
            rt, r = self.readback
            out += f" acknowledged, then {fmt_step(self.probe, r, rt)}"
        return out + f" [{full_note(disks, self.t)}]"


@dataclass
class Writes:
    """Every write step of a timeline, sorted by what can be said about it."""

    runs: int = 0  # probe runs with a write step
    refused: int = 0  # writes answered with an error (not silent)
    unchecked: int = 0  # acknowledged, but the flow has no readback after it
    verified: list[Write] = field(default_factory=list)  # read back: visible or lost
    unverified: list[Write] = field(default_factory=list)  # the readback failed loudly

    @property
    def lost(self) -> list[Write]:
        """Fake successes: acknowledged, then read back without the write."""
        return [w for w in self.verified if w.lost]


def classify_writes(tl: Timeline) -> Writes:
    """Every write step of a timeline: refused, unchecked, read back (seen or lost), or
    with a readback that failed loudly; a reread after recovery can show a loss later."""
    out = Writes()
    for p in tl.of(ProbeResult):
        steps = list(timed_steps(p))
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
            bad = next(((rt, r) for rt, r in later if is_loss(r)), None)
            loud = next(((rt, r) for rt, r in later if not r.passed and not is_loss(r)), None)
            if bad is not None:
                out.verified.append(Write(p, t, s, i, bad, True))
            elif loud is not None:
                out.unverified.append(Write(p, t, s, i, loud, False))
            else:
                out.verified.append(Write(p, t, s, i, None, False))
    lost_after_recovery(tl, out)
    return out


def lost_after_recovery(tl: Timeline, out: Writes) -> None:
    """Writes whose readback, repeated once space was back (a ``reread_of`` run with the
    same nonce and cookies), answered without them: damage that persists. Such a write
    becomes a lost one (once: a write already lost before recovery stays as it was)."""
    firsts = {(p.probe, p.t): p for p in tl.of(ProbeResult) if p.reread_of is None}
    for again in tl.of(ProbeResult):
        first = firsts.get((again.probe, again.reread_of)) if again.reread_of is not None \
            else None
        bad = next(((rt, r) for rt, _, r in timed_steps(again) if r.readback and is_loss(r)),
                   None) if first is not None else None
        if first is None or bad is None:
            continue
        known = [w for w in (*out.verified, *out.unverified) if w.probe is first]
        if any(w.lost for w in known):
            continue
        write = next(((t, i, s) for t, i, s in timed_steps(first)
                      if s.write and s.acknowledged), None)
        if write is None:
            continue
        if not known:
            out.unchecked -= 1  # it had no readback step of its own; now it has one
        out.verified = [w for w in out.verified if w.probe is not first]
        out.unverified = [w for w in out.unverified if w.probe is not first]
        t, i, s = write
        out.verified.append(Write(first, t, s, i, bad, True, again))


def sources_read(tl: Timeline) -> str:
    """How many log sources were read, for summaries."""
    n = len({r.source for r in tl.of(LogRecord)})
    return plural(n, "log source") + " read"
