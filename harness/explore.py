"""Explore: Hypothesis searches orders of disk-pressure events and shrinks a failure to
its shortest story.

The battery runs fixed scripts; real outages are orders of events (a download cut short
while a disk was full, space coming back, the same download asked for again). Here a
Hypothesis ``RuleBasedStateMachine`` drives a live Stack with steps drawn from the target:
fill a volume (leave 0, a page, a few KiB), free it (all or half), run a probe or ask
the health endpoint, one download (from a small pool, so repeats happen), a log flood,
a session flood, pause and resume the cleaner. After each step the invariants that
apply are judged on the timeline so far with the battery's own pure rules. Hypothesis
shrinks a failure; the shortest sequence is told as a numbered story and written as a
pytest file that replays it. Between examples the stack is rewound, not restarted:
ballast and everything made since the start are removed, log files truncated in place.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from .errors import HarnessError, UsageError
from .invariants import Rules, Verdict, evaluate
from .loads import Downloads, ballast, drain, log_marks, sessions
from .probes import Prober
from .sizes import PAGE, format_size
from .stack import Stack, ensure_images
from .target import Target, load_target, reference_target
from .timeline import DiskSample, LoadEvent, PhaseName, ProbeResult, Timeline
from .volume import mark, rewind

StepKind = Literal["fill", "free", "free_part", "probe", "download", "log_flood",
                   "session_flood", "pause_cleaner", "resume_cleaner"]

LEAVES = (0, PAGE, 3 * PAGE)
"""What a fill leaves free: nothing, one page, a few KiB (tails of pages still take appends)."""
POOL = (1, 2, 3)
"""Download numbers: a small pool, so the same export is asked for again."""
LOG_FLOOD = 8
SESSION_FLOOD = 4
REQUESTS = frozenset({"probe", "download", "session_flood"})
"""Steps whose requests the invariants judge: the disks are measured right before them."""
PAUSES = 2
"""Cleaner pauses per example at most."""
HEALTH = "health"
"""The probe name under which the health endpoint is asked (``[health]`` of the target)."""
NOT_JUDGED = {
    "errors_surface": "needs the logs read back after every step (too slow per step), and "
                      "nginx announces a failing log write about once a minute only",
    "log_integrity": "needs the logs read back after every step",
    "cleanup_keeps_up": "needs downloads at a sustained rate (the battery's case)",
    "counter_accuracy": "the app may count a download just after the client has its last "
                        "byte, so a counter read in the very next step can race it",
}
"""Invariants explore does not judge, and why (the battery judges them)."""


@dataclass(frozen=True)
class Step:
    """One explore step: what to do, with the arguments Hypothesis drew."""

    kind: StepKind
    volume: str | None = None
    leave: int | None = None
    probe: str | None = None
    seq: int | None = None

    def code(self) -> str:
        """The step as Python source, for a replay file."""
        args = [repr(self.kind)] + [f"{k}={v!r}" for k, v in (
            ("volume", self.volume), ("leave", self.leave), ("probe", self.probe),
            ("seq", self.seq)) if v is not None]
        return f"Step({', '.join(args)})"


@dataclass(frozen=True)
class Finding:
    """A failure: the steps that lead to it, what each did, and the violated invariant."""

    target: str
    steps: tuple[Step, ...]
    said: tuple[str, ...]  # what each step did, in words
    verdict: Verdict
    replay: Path | None = None

    @property
    def invariant(self) -> str:
        """Name of the violated invariant."""
        return self.verdict.invariant

    def story(self) -> str:
        """The steps as a numbered story a person reads."""
        return "\n".join(f"{i}. {s}" for i, s in enumerate(self.said, 1))

    def text(self) -> str:
        """Story, violated invariant, its evidence."""
        lines = [self.story(), "", f"violated: {self.invariant}: {self.verdict.summary}"]
        lines += [f"  {e}" for e in self.verdict.evidence]
        if self.replay is not None:
            lines.append(f"replay: {self.replay}")
        return "\n".join(lines)


class Violation(AssertionError):
    """An invariant failed after a step; carries the Finding (what Hypothesis shrinks)."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(f"{finding.invariant} failed after {len(finding.steps)} steps:\n"
                         + finding.text())
        self.finding = finding


class Explorer:
    """Runs explore steps on a live Stack into a Timeline, and judges after each step."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.target = stack.target
        self.rules = Rules.from_target(self.target)
        t = self.target
        self.volumes = sorted(t.volumes)
        dl = t.downloads.probe if t.downloads else None
        self.probes = [n for n in t.probes if n != dl] + ([HEALTH] if t.health else [])
        writers = sorted((n for n, p in t.probes.items() if p.write and n != dl),
                         key=lambda n: not t.probes[n].core)
        self.writer = writers[0] if writers else None
        self.cleaner = (t.cleanup.service if t.cleanup and t.cleanup.service in t.services
                        else None)
        self.sizes = list(t.downloads.sizes) if t.downloads else []
        self.paused = False
        self._marked()
        self.begin()

    def _marked(self) -> None:
        """Remember what the app made at start, and the state to come back to."""
        vols = list(self.stack.volumes.values())
        mark(vols)
        self.start_usage = {v.name: u for v, u in zip(vols, rewind(vols), strict=True)}
        self.start_restarts = self.stack.restarts()

    # --- one example ---------------------------------------------------------------------
    def begin(self) -> None:
        """A new example: a fresh timeline, nothing filled, no step yet."""
        self.tl = Timeline(scenario="explore")
        self.pr = Prober(self.stack, self.tl)
        self.ballast: set[str] = set()
        self.freed = False
        self.phase: PhaseName | None = None
        self.steps: list[Step] = []
        self.said: list[str] = []
        self.pauses = 0

    def do(self, step: Step) -> str:
        """Run one step (requests after measuring what is full) and say what happened."""
        if step.kind in REQUESTS:  # one statvfs of every volume: what is full right now
            self.pr.disk()
        self._mark_phase(step)
        said: str = getattr(self, f"_{step.kind}")(step)
        self.steps.append(step)
        self.said.append(said)
        return said

    def judge(self) -> Verdict | None:
        """The first invariant that applies and failed on the timeline so far, if any."""
        names = self.applicable()
        verdicts = evaluate(self.tl, self.rules, [n for n in names if n != "recovery"])
        if "recovery" in names:
            verdicts += evaluate(self._rerun(), self.rules, ["recovery"])
        return next((v for v in verdicts if v.applicable and not v.passed), None)

    def _rerun(self) -> Timeline:
        """The timeline without the runs of probes that have not run again since space
        came back: recovery then judges exactly the probes it has evidence for (the
        battery runs every probe in its recover phase; an explore example need not)."""
        again = {p.probe for p in self.tl.in_phase(ProbeResult, "recover")}
        events = [e for e in self.tl.events
                  if not (isinstance(e, ProbeResult) and e.probe not in again)]
        return replace(self.tl, events=events)

    def finding(self, verdict: Verdict) -> Finding:
        """The example so far as a Finding."""
        return Finding(self.target.name, tuple(self.steps), tuple(self.said), verdict)

    def applicable(self) -> list[str]:
        """Invariants this timeline can be judged by (see NOT_JUDGED for the others)."""
        t = self.target
        names = ["graceful_refusal"]
        if any(p.write for p in t.probes.values()):
            names.append("no_silent_write_loss")
        if t.health is not None:
            names.append("health_truthful")
        # Core flows must survive bulk data filling the disk; once another volume was full,
        # a core flow failing says nothing about bulk data.
        if t.core_probes and all(d.volume in self.rules.bulk_volumes
                                 for d in self.tl.of(DiskSample) if d.full):
            names.append("core_isolation")
        steady = {p.probe for p in self.tl.in_phase(ProbeResult, "steady") if p.passed}
        again = {p.probe for p in self.tl.in_phase(ProbeResult, "recover")}
        if steady & again:  # a probe green before any fill has run again since
            names.append("recovery")
        return names

    def _full(self) -> set[str]:
        latest: dict[str, DiskSample] = {}
        for d in self.tl.of(DiskSample):
            latest[d.volume] = d
        return {v for v, d in latest.items() if d.full}

    def _mark_phase(self, step: Step) -> None:
        """Phases follow the state: fill, free, act while anything is full or ballasted,
        recover once everything is free again after a free, steady before any of it."""
        phase: PhaseName
        if step.kind in ("fill", "session_flood"):
            phase = "fill"
        elif step.kind in ("free", "free_part"):
            phase = "free"
        elif self.ballast or self._full():
            phase = "act"
        else:
            phase = "recover" if self.freed else "steady"
        if phase != self.phase:
            self.tl.phase(phase, step.volume)
            self.phase = phase

    # --- the steps -----------------------------------------------------------------------
    def _fill(self, step: Step) -> str:
        assert step.volume is not None and step.leave is not None
        res = ballast(self.pr, self.stack.volume(step.volume), leave=step.leave)
        self.tl.add(DiskSample.of(self.tl.now(), step.volume, res.usage))
        self.ballast.add(step.volume)
        done = "" if res.added_bytes else " (it already was)"
        return f"fill {step.volume} to {format_size(step.leave)} free{done}"

    def _free(self, step: Step) -> str:
        assert step.volume is not None
        freed = drain(self.pr, self.stack.volume(step.volume))
        self.ballast.discard(step.volume)
        self.freed = True
        return f"free {step.volume}" + (f" ({format_size(freed)})" if freed > 0 else "")

    def _free_part(self, step: Step) -> str:
        assert step.volume is not None
        t = self.tl.now()
        freed = self.stack.volume(step.volume).release(0.5)
        self.tl.add(LoadEvent(t, "drain", step.volume, -max(freed, 0), "half the ballast"))
        return f"free half of the ballast on {step.volume}"

    def _probe(self, step: Step) -> str:
        assert step.probe is not None
        if step.probe == HEALTH and HEALTH not in self.target.probes:
            h = self.pr.health()
            return f"health -> {h.status if h else 'not declared'}"
        r = self.pr.run(step.probe)
        return f"{step.probe} -> " + ", ".join(_said(s) for s in r.steps)

    def _download(self, step: Step) -> str:
        assert step.seq is not None
        size = self.sizes[(step.seq - 1) % len(self.sizes)]  # one export per number
        r = Downloads(self.pr).one(seq=step.seq, size=size)
        if not r.steps:  # not sent (a session probe with no green run before the fill)
            return f"download #{step.seq} -> not sent: {r.stopped}"
        s = r.steps[-1]
        if s.status is not None and 200 <= s.status < 300:
            got = (format_size(size) if s.body_complete and s.bytes_received == size else
                   f"{format_size(s.bytes_received)} of {format_size(size)}")
            return f"download #{step.seq} -> {s.status}, {got}" + (
                f" ({s.error})" if s.error else "")
        return f"download #{step.seq} -> " + _said(s)

    def _log_flood(self, step: Step) -> str:
        sent = log_marks(self.pr, LOG_FLOOD)
        return f"log flood: {len(sent)} marked requests"

    def _session_flood(self, step: Step) -> str:
        assert self.writer is not None
        t = self.tl.now()
        n = sessions(self.pr, self.writer, SESSION_FLOOD, deadline=10, stop_after_failures=3,
                     sample_every=SESSION_FLOOD + 1)
        failed = sum(1 for p in self.tl.probes(tag="session_flood") if p.t >= t
                     and not p.passed)
        return f"session flood: {n} x {self.writer}" + (f", {failed} failed" if failed else "")

    def _pause_cleaner(self, step: Step) -> str:
        assert self.cleaner is not None
        self.stack.service(self.cleaner).pause()
        self.paused = True
        self.pauses += 1
        self.tl.add(LoadEvent(self.tl.now(), "cleanup", None, 0, "cleaner paused"))
        return f"pause the {self.cleaner}"

    def _resume_cleaner(self, step: Step) -> str:
        assert self.cleaner is not None
        self.stack.service(self.cleaner).unpause()
        self.paused = False
        self.tl.add(LoadEvent(self.tl.now(), "cleanup", None, 0, "cleaner resumed"))
        return f"resume the {self.cleaner}"

    # --- between examples ----------------------------------------------------------------
    def rewind(self) -> str | None:
        """Back to the start state without a restart; when that is impossible (a service
        restarted or exited, a volume did not come back), say why and restart the stack."""
        why: list[str] = []
        if self.paused and self.cleaner:
            cleaner = self.stack.service(self.cleaner)
            status = cleaner.status
            if status == "paused":
                cleaner.unpause()
            elif status != "running":  # it died while paused: nothing left to resume
                why.append(f"{self.cleaner} is {status}")
            self.paused = False
        vols = list(self.stack.volumes.values())
        usage = dict(zip([v.name for v in vols], rewind(vols), strict=True))
        # A service that died shows in its answers (none, or the proxy's 502/504): only
        # then ask the engine (several API calls) whether something restarted or exited.
        if any(s.status in (None, 502, 504) for p in self.tl.of(ProbeResult) for s in p.steps):
            now = self.stack.restarts()
            why += [f"{s} restarted or exited" for s, n in now.items()
                    if n != self.start_restarts.get(s)]
        for name, u in usage.items():
            drift = self.start_usage[name].bytes_free - u.bytes_free
            if drift > DRIFT:
                why.append(f"{name} holds {format_size(drift)} more than at start")
        if not why:
            return None
        self.stack.stop()
        self.stack.start()
        self._marked()
        return "restarted the stack: " + "; ".join(why)


DRIFT = 64 * 1024
"""Growth of a volume across examples (files the app made at start, e.g. its database)
beyond which the stack is restarted rather than rewound."""


def _said(s: Any) -> str:
    """One request's outcome in a few words."""
    if s.status is None:
        return s.error or "no answer"
    out = str(s.status)
    if not s.passed and s.error and not s.error.startswith("status "):
        out += f" ({s.error})"
    return out


# --- Hypothesis ---------------------------------------------------------------------------

@dataclass
class Progress:
    """How far an exploration got: examples, steps, failures (shrinking included)."""

    examples: int = 0
    steps: int = 0
    failures: int = 0
    restarts: int = 0
    found_at: float | None = None  # seconds to the first failure
    shortest_at: float | None = None  # seconds to the shortest failure reported
    started: float = field(default_factory=time.monotonic)
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Seconds since the exploration started."""
        return time.monotonic() - self.started

    @property
    def steps_per_second(self) -> float:
        """Steps per wall-clock second, rewinds between examples included."""
        return self.steps / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """One line for a progress display."""
        state = "shrinking" if self.failures else "exploring"
        return (f"{state}: {self.examples} examples, {self.steps} steps, "
                f"{self.steps_per_second:.1f} steps/s, {self.failures} failures"
                + (f", {self.restarts} restarts" if self.restarts else ""))


# Both stop Hypothesis the way Ctrl-C does: at once, without recording the example as
# generated data (any other early exit would look like inconsistent data generation).
class _BudgetSpent(KeyboardInterrupt):
    """The time budget ran out (not a failure)."""


class _Abort(KeyboardInterrupt):
    """The harness itself failed (Docker, the agent): stop, never shrink it as a finding."""

    def __init__(self, error: HarnessError) -> None:
        super().__init__(str(error))
        self.error = error


class _Session:
    """What every example of one exploration shares: the explorer, budget and progress."""

    def __init__(self, explorer: Explorer, seconds: float,
                 tick: Callable[[Progress], None]) -> None:
        self.ex = explorer
        self.seconds = seconds
        self.tick = tick
        self.progress = Progress()
        self.best: Finding | None = None  # the shortest failure Hypothesis has reached

    def begin(self) -> None:
        if self.progress.seconds > self.seconds:
            raise _BudgetSpent()
        self.progress.examples += 1
        self.ex.begin()

    def step(self, step: Step) -> None:
        try:
            self.ex.do(step)
        except HarnessError as e:
            raise _Abort(e) from e
        self.progress.steps += 1
        self.tick(self.progress)

    def judge(self) -> None:
        verdict = self.ex.judge()
        if verdict is not None:
            self.progress.failures += 1
            found = self.ex.finding(verdict)
            if self.progress.found_at is None:
                self.progress.found_at = self.progress.seconds
            if self.best is None or len(found.steps) < len(self.best.steps):
                self.progress.shortest_at = self.progress.seconds
            if self.best is None or len(found.steps) <= len(self.best.steps):
                self.best = found
            raise Violation(found)

    def end(self) -> None:
        try:
            note = self.ex.rewind()
        except HarnessError as e:
            raise _Abort(e) from e
        if note:
            self.progress.restarts += 1
            self.progress.notes.append(note)


def machine(session: _Session) -> type[Any]:
    """A RuleBasedStateMachine class whose rules are drawn from the session's target."""
    from hypothesis import strategies as st
    from hypothesis.stateful import (
        Bundle,
        RuleBasedStateMachine,
        consumes,
        invariant,
        multiple,
        precondition,
        rule,
    )

    ex = session.ex
    filled: Bundle[str] = Bundle("filled")
    made: Bundle[int] = Bundle("made")
    ns: dict[str, Any] = {"__module__": __name__, "__doc__": f"explore {ex.target.name}"}

    def __init__(self: RuleBasedStateMachine) -> None:
        RuleBasedStateMachine.__init__(self)
        session.begin()

    # Fewer, broader rules explore better than many narrow ones: Hypothesis's swarm
    # testing switches whole rules off per example, and each rule's share of the steps
    # shrinks with their number.
    @rule(target=filled, volume=st.sampled_from(ex.volumes), leave=st.sampled_from(LEAVES))
    def fill(self: Any, volume: str, leave: int) -> str:
        session.step(Step("fill", volume=volume, leave=leave))
        return volume

    @rule(target=filled, volume=consumes(filled), half=st.booleans())
    def free(self: Any, volume: str, half: bool) -> Any:
        session.step(Step("free_part" if half else "free", volume=volume))
        return volume if half else multiple()  # half freed: still filled, free it again

    @rule(name=st.sampled_from(ex.probes))
    def probe(self: Any, name: str) -> None:
        session.step(Step("probe", probe=name))

    floods = ["log_flood"] + (["session_flood"] if ex.writer else [])

    @rule(kind=st.sampled_from(floods))
    def flood(self: Any, kind: StepKind) -> None:
        session.step(Step(kind))

    ns.update(__init__=__init__, fill=fill, free=free, probe=probe, flood=flood)
    if ex.sizes:
        @rule(target=made, seq=st.sampled_from(POOL))
        def download(self: Any, seq: int) -> int:
            session.step(Step("download", seq=seq))
            return seq

        @rule(seq=made)
        def download_again(self: Any, seq: int) -> None:
            session.step(Step("download", seq=seq))

        ns.update(download=download, download_again=download_again)
    if ex.cleaner:
        # An engine call each; more than a couple of pauses per example says nothing new
        # and, left free, swarm testing fills whole examples with pause/resume.
        @precondition(lambda self: not ex.paused and ex.pauses < PAUSES)
        @rule()
        def pause_cleaner(self: Any) -> None:
            session.step(Step("pause_cleaner"))

        @precondition(lambda self: ex.paused)
        @rule()
        def resume_cleaner(self: Any) -> None:
            session.step(Step("resume_cleaner"))

        ns.update(pause_cleaner=pause_cleaner, resume_cleaner=resume_cleaner)

    @invariant()
    def judged(self: Any) -> None:
        session.judge()

    def teardown(self: Any) -> None:
        session.end()

    ns.update(judged=judged, teardown=teardown)
    # The class name keys Hypothesis's example database: one key per target.
    name = "Explore_" + re.sub(r"\W", "_", ex.target.name)
    return type(name, (RuleBasedStateMachine,), ns)


# --- the whole exploration ----------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    """What an exploration did, and the failure it found (shrunk), if any."""

    target: str
    finding: Finding | None
    examples: int
    steps: int
    seconds: float
    restarts: int
    seed: int | None
    notes: tuple[str, ...] = ()
    found_at: float | None = None
    shortest_at: float | None = None

    @property
    def steps_per_second(self) -> float:
        """Steps per wall-clock second over the whole exploration."""
        return self.steps / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line: examples, steps, speed, and what was found."""
        found = (f"FOUND {self.finding.invariant} after {self.found_at or 0:.1f} s, shrunk "
                 f"to {len(self.finding.steps)} steps after {self.shortest_at or 0:.1f} s"
                 if self.finding else "nothing found")
        return (f"explore {self.target}: {found} ({self.examples} examples, {self.steps} "
                f"steps in {self.seconds:.1f} s, {self.steps_per_second:.1f} steps/s"
                + (f", {self.restarts} restarts" if self.restarts else "")
                + (f", seed {self.seed}" if self.seed is not None else "") + ")")


def explore(target: Target, *, max_examples: int = 1000, max_steps: int = 20,
            seconds: float = 60.0, seed: int | None = None,
            env: Mapping[str, Mapping[str, str]] | None = None,
            report_dir: str | Path | None = "reports/explore",
            database: str | Path | None = ".hypothesis/examples",
            tick: Callable[[Progress], None] = lambda p: None) -> Result:
    """Search orders of steps on a live stack of the target until an invariant fails
    (then shrink it and write its replay file), the examples run out, or the time does.
    ``seconds`` bounds the whole run, shrinking included: when it runs out while
    shrinking, the shortest failure reached so far is reported.

    ``seed`` replays a run exactly (the example database is then not used); without it,
    Hypothesis's database in ``database`` makes the next run try the last failure first.
    """
    from hypothesis import HealthCheck, Phase, Verbosity, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis.database import DirectoryBasedExampleDatabase
    from hypothesis.errors import Flaky
    from hypothesis.stateful import run_state_machine_as_test

    if max_examples < 1 or max_steps < 1 or seconds <= 0:
        raise UsageError(f"bad budget: {max_examples} examples, {max_steps} steps, "
                         f"{seconds} s", "give positive numbers")
    ensure_images(target)
    finding: Finding | None = None
    with Stack(target, env=env) as stack:
        session = _Session(Explorer(stack), seconds, tick)
        cls = machine(session)
        if seed is not None:
            cls = hypothesis_seed(seed)(cls)
        db = None if seed is not None or database is None else \
            DirectoryBasedExampleDatabase(str(database))
        config = settings(max_examples=max_examples, stateful_step_count=max_steps,
                          deadline=None, database=db, report_multiple_bugs=False,
                          suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
                          phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
                          print_blob=False)
        try:
            run_state_machine_as_test(cls, settings=config)
        except Violation as e:
            finding = e.finding
        except _BudgetSpent:
            # Out of time while shrinking: the shortest failure so far is the story (its
            # steps did fail on the stack); Hypothesis's database keeps it, so the next
            # run goes on shrinking from there.
            finding = session.best
            if finding is not None:
                session.progress.notes.append("the time ran out while shrinking: this is "
                                              "the shortest failure reached so far")
        except _Abort as e:
            raise e.error from None
        except Flaky as e:
            # A failure that did happen on the stack, but not again on a replay of the
            # same steps: still reported (the shortest seen), and said so.
            finding = session.best
            session.progress.notes.append("a failure did not reproduce every time on the "
                                          f"same steps (Hypothesis: {type(e).__name__})")
        p = session.progress
    env_used = {n: {**s.env, **dict((env or {}).get(n, {}))} for n, s in target.services.items()}
    if finding is not None and report_dir is not None:
        try:
            finding = replace(finding, replay=write_replay(finding, Path(report_dir), target,
                                                           env_used, seed))
        except OSError as e:  # the finding is still told in full; only the file is missing
            p.notes.append(f"the replay file could not be written in {report_dir} "
                           f"({e.strerror or e}): the steps are below")
    return Result(target.name, finding, p.examples, p.steps, p.seconds, p.restarts, seed,
                  tuple(p.notes), p.found_at, p.shortest_at)


@contextmanager
def progress_display(console: Any) -> Iterator[Callable[[Progress], None]]:
    """A live line on a rich console (examples, steps, steps/s, failures), at most ten
    updates a second; yields the ``tick`` to hand to ``explore``."""
    from rich.live import Live

    last = [0.0]
    with Live("explore: starting the stack", console=console, transient=True,
              refresh_per_second=10) as live:
        def tick(p: Progress) -> None:
            if time.monotonic() - last[0] >= 0.1:
                last[0] = time.monotonic()
                live.update(p.line())

        yield tick


# --- replay ------------------------------------------------------------------------------

def write_replay(finding: Finding, folder: Path, target: Target,
                 env: Mapping[str, Mapping[str, str]], seed: int | None) -> Path:
    """Write the finding as a pytest file that replays its steps and fails the same way."""
    steps = "".join(f"    {s.code()},\n" for s in finding.steps)
    digest = hashlib.sha256(f"{finding.target}\n{steps}".encode()).hexdigest()[:6]
    # an identifier (ASCII: "x²" is \w but no identifier) and a short file name, whatever
    # the target is called; the digest keeps two long names apart
    short = re.sub(r"[^A-Za-z0-9_]", "_", finding.target)[:40]
    name = f"{short}_{finding.invariant}_{digest}"
    path = folder / f"test_{name}.py"
    story = "\n".join(f"    {ln}" for ln in finding.story().splitlines())
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    envs = {n: dict(v) for n, v in env.items() if v}
    src = f'''"""Found by `fulldisk explore` on {when} (target {finding.target}, seed {seed}):
{finding.invariant} fails after {len(finding.steps)} steps.

{story}

Run: pytest {path}
It fails while the defect is there and passes once it is fixed.
"""

import pytest

from harness.explore import Step, replay

pytestmark = [pytest.mark.docker, pytest.mark.explore]

TARGET = {None if _is_reference(target) else str(target.path)!r}  # None: the bundled reference
ENV = {envs!r}
STEPS = [
{steps}]


def test_{name}() -> None:
    """Replays the shortest story explore found; fails naming {finding.invariant}."""
    replay(STEPS, target=TARGET, env=ENV)
'''
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(src, encoding="utf-8")
    return path


def _is_reference(target: Target) -> bool:
    return target.path == reference_target().path


def replay(steps: list[Step], *, target: str | Target | None = None,
           env: Mapping[str, Mapping[str, str]] | None = None) -> None:
    """Run steps on a fresh stack of the target (a config path; None: the bundled
    reference stack), judging after each as explore does; raises Violation (an
    AssertionError telling the story) at the first invariant that fails."""
    t = (target if isinstance(target, Target) else
         reference_target() if target is None else load_target(target))
    ensure_images(t)
    with Stack(t, env=env) as stack:
        ex = Explorer(stack)
        for step in steps:
            ex.do(step)
            verdict = ex.judge()
            if verdict is not None:
                raise Violation(ex.finding(verdict))


__all__ = ["HEALTH", "LEAVES", "NOT_JUDGED", "POOL", "Explorer", "Finding", "Progress",
           "Result", "Step", "Violation", "explore", "machine", "progress_display", "replay",
           "write_replay"]
