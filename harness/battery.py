"""The battery: generic scenarios over any target, and the incident told as scenarios.

Each scenario drives a Stack through explicit phases (steady, fill, act, free, recover)
into a Timeline and judges it with Invariants. Freeing always runs, also when a phase
fails or the run is interrupted. The same functions serve pytest (``scenarios/``),
``fulldisk run|gate`` and ``fulldisk selftest``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .backend import Backend
from .invariants import Rules, Verdict, evaluate
from .loads import Downloads, ballast, drain, log_marks, sessions
from .probes import Prober
from .stack import Stack
from .stack import announce as _announce
from .timeline import PhaseName, ProbeResult, Timeline

PER_VOLUME = ("no_silent_write_loss", "errors_surface", "graceful_refusal", "recovery",
              "health_truthful", "log_integrity")
MARKS = 3
PhaseListener = Callable[[str, str], None]
"""Called with (scenario, phase) as each phase starts: progress displays, tests."""
_LISTENERS: list[PhaseListener] = []
FLOOD = 40  # marked requests while full: more than a page of log lines, so the unused
            # tail of a log file's last page cannot absorb them all (tmpfs allocates pages)


@dataclass
class Outcome:
    """A finished scenario: its timeline and the verdicts of the invariants it checks."""

    scenario: str
    volume: str | None
    timeline: Timeline = field(repr=False)  # thousands of events: too long for a report
    verdicts: list[Verdict] = field(default_factory=list)
    error: str | None = None
    untested: dict[str, list[str]] = field(default_factory=dict)  # service -> folders written
                                                                  # outside the volumes

    def verdict(self, invariant: str) -> Verdict:
        """The verdict of one invariant."""
        for v in self.verdicts:
            if v.invariant == invariant:
                return v
        raise KeyError(f"{self.scenario} did not check {invariant}")

    @property
    def passed(self) -> bool:
        """No checked invariant failed and nothing broke (not judged is not a failure)."""
        return self.error is None and not any(v.failed for v in self.verdicts)


class Run:
    """One scenario run: the stack, its timeline and prober, and phase bookkeeping."""

    def __init__(self, stack: Backend, scenario: str, volume: str | None = None) -> None:
        self.stack = stack
        self.tl = Timeline(scenario=scenario, volume=volume)
        self.pr = Prober(stack, self.tl)
        self.rules = Rules.from_target(stack.target)
        self.volume = volume
        self.tl.facts["restarts_before"] = stack.restarts()

    @contextmanager
    def phase(self, name: PhaseName, note: str = "") -> Iterator[None]:
        """Mark a phase; an exception inside names the phase it broke in."""
        self.tl.phase(name, self.volume, note)
        _announce(name)
        for listener in tuple(_LISTENERS):
            listener(self.tl.scenario, name)
        try:
            yield
        except Exception as e:
            e.add_note(f"fulldisk: failed during phase {name!r} of {self.tl.scenario}")
            raise

    def observe(self, *, marks: int = 0, downloads: bool = True) -> None:
        """Run every probe once, sample disks, health and counters, and read the logs."""
        self.pr.disk()
        self.pr.health()
        for name in self.stack.target.probes:
            if self.stack.target.downloads and name == self.stack.target.downloads.probe:
                if downloads:
                    Downloads(self.pr, seed=len(self.tl.events)).one(
                        seq=10_000 + len(self.tl.events))
                continue
            self.pr.run(name)
        if marks:
            log_marks(self.pr, marks)
        self.pr.collect_logs()

    def recover(self, *, baseline: set[str]) -> None:
        """Poll every probe until the baseline is green again or the bound passes."""
        deadline = time.monotonic() + self.stack.target.bounds.recovery_seconds
        start = self.tl.now()
        attempt = 0
        while True:
            attempt += 1
            self.observe(marks=1 if attempt == 1 else 0)
            last = {p.probe: p.passed for p in self.tl.probes() if p.t >= start}
            if all(last.get(n, False) for n in baseline) or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # poll interval inside a deadline-bounded loop
        self.pr.final_logs()

    def finish(self, invariants: tuple[str, ...]) -> Outcome:
        """Record restarts and judge the timeline."""
        before = self.tl.facts.get("restarts_before", {})
        after = self.stack.restarts()
        self.tl.facts["restarts"] = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        verdicts = evaluate(self.tl, self.rules, list(invariants))
        untested = self.stack.untested_paths()
        self.tl.facts["untested_paths"] = untested
        return Outcome(self.tl.scenario, self.volume, self.tl, verdicts, untested=untested)

    def baseline(self) -> set[str]:
        """Probes that passed in the steady phase."""
        return {p.probe for p in self.tl.in_phase(ProbeResult, "steady") if p.passed}


@contextmanager
def phase_listener(listener: PhaseListener) -> Iterator[None]:
    """Call ``listener(scenario, phase)`` as each phase of any scenario starts, while the
    block runs (in this process; xdist workers run their own)."""
    _LISTENERS.append(listener)
    try:
        yield
    finally:
        _LISTENERS.remove(listener)


def volume_scenario(stack: Backend, volume: str, *, scenario: str | None = None) -> Outcome:
    """Steady, fill one volume to the last byte, act with every probe, free, recover."""
    run = Run(stack, scenario or f"battery-{volume}", volume)
    vol = stack.volume(volume)
    invariants = PER_VOLUME + (("core_isolation",) if volume in run.rules.bulk_volumes else ())
    try:
        with run.phase("steady"):
            run.observe()
            # Back to the seed before filling, so the fill meets fresh writes (cache misses,
            # new sessions) as a real disk would; log files are truncated in place.
            vol.reset()
            log_marks(run.pr, MARKS)
            run.pr.collect_logs()
        with run.phase("fill"):
            ballast(run.pr, vol, leave=0)
            run.pr.disk()
        with run.phase("act"):
            run.observe(marks=FLOOD)
            run.observe()
    finally:
        with run.phase("free"):
            drain(run.pr, vol)
            run.pr.disk()
    with run.phase("recover"):
        run.recover(baseline=run.baseline())
    return run.finish(invariants)


def downloads_fill_shared_disk(stack: Stack) -> Outcome:
    """Exversion: downloads pile up on the one disk until logins stop sticking."""
    target = stack.target
    assert target.downloads is not None
    run = Run(stack, "incident-downloads-fill-shared-disk", target.downloads.volume)
    cleaner = target.cleanup.service if target.cleanup else None
    try:
        with run.phase("steady"):
            run.observe()
        if cleaner:
            stack.service(cleaner).container.pause()  # the cron that ran too rarely
        with run.phase("fill", "downloads until the app refuses or the disk is full"):
            Downloads(run.pr, seed=1).until_refused(max_count=300, deadline=40)
            run.pr.disk()
        with run.phase("act"):
            run.observe(downloads=False)
            run.observe(downloads=False)
    finally:
        if cleaner:
            stack.service(cleaner).container.unpause()
        with run.phase("free"):
            stack.volume(target.downloads.volume).reset()
            run.pr.disk()
    with run.phase("recover"):
        run.recover(baseline=run.baseline())
    # graceful_refusal is judged by the volume cases: an app that keeps its reserve never
    # lets this disk fill, so here it would have nothing to judge
    return run.finish(("core_isolation", "recovery"))


def cleanup_under_load(stack: Stack) -> Outcome:
    """The app's own cleanup against a sustained download rate: how full, how long full."""
    target = stack.target
    assert target.cleanup is not None
    run = Run(stack, "incident-cleanup-under-load", target.cleanup.volume)
    with run.phase("steady"):
        run.observe()
    with run.phase("act", f"{target.cleanup.rate:g}/s for {target.cleanup.duration:g} s"):
        Downloads(run.pr, seed=2).at_rate(target.cleanup.rate, target.cleanup.duration,
                                          sample=target.cleanup.volume)
    with run.phase("free"):
        stack.volume(target.cleanup.volume).reset()
    with run.phase("recover"):
        run.recover(baseline=run.baseline())
    return run.finish(("cleanup_keeps_up",))


def counter_against_served(stack: Backend) -> Outcome:
    """The download counter against downloads actually served: new, repeated, refused."""
    target = stack.target
    assert target.downloads is not None
    run = Run(stack, "incident-counter", target.downloads.volume)
    names = list(target.counters)
    dl = Downloads(run.pr, seed=3)
    with run.phase("steady"):
        for c in names:
            run.pr.counter(c)
        for _ in range(3):
            dl.one()
        for seq in (1, 2, 1):
            dl.one(seq=seq)  # the same export again: served from the file already made
    vol = stack.volume(target.downloads.volume)
    try:
        with run.phase("fill"):
            ballast(run.pr, vol, leave=0)
            run.pr.disk()
        with run.phase("act"):
            dl.burst(3)
            dl.one(seq=2)
    finally:
        with run.phase("free"):
            drain(run.pr, vol)
            run.pr.disk()
    with run.phase("recover"):
        dl.one(seq=3)
        for c in names:
            run.pr.counter(c)
    return run.finish(("counter_accuracy",))


def session_flood(stack: Stack) -> Outcome:
    """"Locked out": logins pile up until a session can no longer be written. Each login
    must then fail loudly (or stick), never redirect as if fine and forget the user."""
    writers = [n for n, p in stack.target.probes.items() if p.write]
    writers.sort(key=lambda n: not stack.target.probes[n].core)
    run = Run(stack, "session-flood")
    try:
        with run.phase("steady"):
            run.observe()
        with run.phase("fill", f"{writers[0]} until it fails"):
            sessions(run.pr, writers[0], 400, deadline=30, stop_after_failures=3)
        with run.phase("act"):
            run.observe(marks=FLOOD)
    finally:
        with run.phase("free"):
            stack.reset()
            run.pr.disk()
    with run.phase("recover"):
        run.recover(baseline=run.baseline())
    return run.finish(("no_silent_write_loss", "errors_surface", "graceful_refusal",
                       "recovery"))


@dataclass(frozen=True)
class Case:
    """A named scenario of the battery and the invariants it judges."""

    id: str
    volume: str | None
    shared: bool
    run: Callable[[Stack], Outcome]
    invariants: tuple[str, ...]
    incident: bool = False  # told as a named story in harness/stock.py


def cases(volumes: list[str], bulk: set[str], *, downloads: bool, cleanup: bool,
          counters: bool, writes: bool = False) -> list[Case]:
    """Every case of the battery for a target with these volumes and features."""
    out: list[Case] = []
    for v in volumes:
        inv = PER_VOLUME + (("core_isolation",) if v in bulk else ())
        out.append(Case(v, v, False, lambda s, v=v: volume_scenario(s, v), inv))  # type: ignore[misc]
    out.append(Case("shared", "shared", True, lambda s: volume_scenario(s, "shared"), PER_VOLUME))
    if writes:
        out.append(Case("session-flood", None, False, session_flood,
                        ("no_silent_write_loss", "errors_surface", "graceful_refusal",
                         "recovery")))
    if downloads:
        out.append(Case("downloads-fill-shared-disk", None, True, downloads_fill_shared_disk,
                        ("core_isolation", "recovery"), True))
    if cleanup:
        out.append(Case("cleanup-under-load", None, False, cleanup_under_load,
                        ("cleanup_keeps_up",), True))
    if downloads and counters:
        out.append(Case("counter", None, False, counter_against_served, ("counter_accuracy",),
                        True))
    return out
