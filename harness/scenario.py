"""Scenario scripts: a team's own full-disk scenario in a few lines of pytest.

``ScenarioStack`` (the ``fulldisk_stack`` fixture) wraps a battery ``Run`` over a running
Stack, so a script reads like the incident: arrange (``full``), act (``probe``,
``downloads``, ``log_flood``, ``session_flood``), assert (``judge``). Phases are marked
as it goes (steady before the first action, fill/act/free around ``full``, recover
before judging), freeing always runs, and verdicts come from the same invariants as the
stock battery, with their evidence attached to the test report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from .battery import FLOOD, Outcome, Run, with_untested
from .errors import UnknownName, UsageError
from .invariants import INVARIANTS
from .loads import Downloads, ballast, drain, front_service, log_marks, sessions
from .sizes import parse_size
from .stack import Stack
from .target import Probe, Step, Target
from .timeline import PhaseName, ProbeResult, Timeline, Usage
from .volume import FillResult

Recorder = Callable[[Outcome], None]


class ScenarioStack:
    """A running target seen by a scenario script: fill, probe, load, recover, judge."""

    def __init__(self, stack: Stack, name: str, *, record: Recorder | None = None) -> None:
        self.stack = stack
        self.run = Run(stack, name)
        self._record = record
        self._phase: PhaseName | None = None
        self._filled = False
        self._recovered = False
        self._seed = 0

    # --- what a script reads --------------------------------------------------------------
    @property
    def target(self) -> Target:
        """The target config under test."""
        return self.stack.target

    @property
    def timeline(self) -> Timeline:
        """Everything recorded so far (probes, loads, disk samples, logs)."""
        return self.run.tl

    def usage(self, volume: str) -> Usage:
        """A volume's bytes and inodes right now (also recorded in the timeline)."""
        self._begin()
        self.run.pr.disk(volume)
        return self.stack.usage(volume)[volume]

    def url(self, service: str | None = None) -> str:
        """Base URL (127.0.0.1) of a service; the front service by default."""
        return self.stack.url(service or self._front())

    # --- phases ---------------------------------------------------------------------------
    @contextmanager
    def phase(self, name: PhaseName, note: str = "") -> Iterator[None]:
        """Mark a phase explicitly (the helpers below mark them for you)."""
        self._begin()
        self._phase = name
        with self.run.phase(name, note):
            yield

    def _begin(self) -> None:
        """The steady phase, once, before the first action: every probe, disk, health, logs."""
        if self._phase is None:
            self._phase = "steady"
            with self.run.phase("steady"):
                self.run.observe()
                self._counters()

    def _counters(self) -> None:
        for name in self.target.counters:
            self.run.pr.counter(name)

    def _acting(self) -> None:
        """A load after the steady phase starts the act phase (once)."""
        self._begin()
        self._filled = True  # a load consumes space: recovery is part of the story
        if self._phase == "steady":
            self._phase = "act"
            self.run.tl.phase("act", self.run.volume)

    @contextmanager
    def full(self, volume: str, *, leave: int | str = 0, percent: float | None = None,
             fresh: bool = False) -> Iterator[FillResult]:
        """Fill a volume with ballast as its owner (the app's user) for the ``with`` body;
        the ballast is always removed afterwards, also when the body fails. ``fresh``
        first puts the volume back to the image's files, so the body meets fresh writes
        (cache misses, new sessions) rather than what the steady phase left."""
        vol = self.stack.volume(volume)
        self._begin()
        self.run.volume = volume
        self._filled = True
        try:
            self._phase = "fill"
            with self.run.phase("fill", volume):
                if fresh:
                    vol.reset()
                res = ballast(self.run.pr, vol, leave=leave, percent=percent)
                self.run.pr.disk()
            self._phase = "act"
            with self.run.phase("act", volume):
                yield res
                self.run.pr.disk()
                self.run.pr.collect_logs()  # read while still full: records written now count
        finally:
            self._phase = "free"
            with self.run.phase("free", volume):
                drain(self.run.pr, vol)
                self.run.pr.disk()

    def clear(self, volume: str) -> None:
        """Free a volume as an operator would: delete what the app wrote there, back to
        the image's files (open log files are truncated in place)."""
        vol = self.stack.volume(volume)
        self._begin()
        self._phase = "free"
        with self.run.phase("free", f"{volume} cleared"):
            vol.reset()
            self.run.pr.disk()

    @contextmanager
    def paused(self, service: str) -> Iterator[None]:
        """Pause a service (a cleaner, a cron) for the ``with`` body; always resumed."""
        handle = self.stack.service(service)
        handle.pause()
        try:
            yield
        finally:
            handle.unpause()

    # --- acting ---------------------------------------------------------------------------
    def probe(self, name: str, *, method: str = "GET", form: Mapping[str, str] | None = None,
              expect_status: Sequence[int] = (200,), expect_text: str | None = None,
              service: str | None = None, write: bool = False) -> ProbeResult:
        """Run a declared probe by name, or an ad hoc request by path (``"/upload"``)."""
        self._begin()
        if name in self.target.probes:
            return self.run.pr.run(name)
        if not name.startswith("/"):
            raise UnknownName(f"unknown probe {name!r}",
                              f"use a declared probe ({', '.join(self.target.probes) or 'none'})"
                              " or an ad hoc request path starting with '/'")
        step = Step.model_validate({"path": name, "method": method.upper(),
                                    "form": dict(form or {}),
                                    "expect_status": list(expect_status),
                                    "expect_text": expect_text, "write": write})
        adhoc = Probe.model_validate({"service": service or self._front(), "steps": [step]})
        return self.run.pr.run_probe(f"{step.method} {name}", adhoc)

    def observe(self) -> None:
        """Run every declared probe once, sample disks and health, read the logs."""
        self._begin()
        self.run.observe()

    def downloads(self, n: int, sizes: Sequence[int | str] | None = None, *,
                  until_refused: bool = False, repeat: bool = False,
                  deadline: float = 30.0) -> list[ProbeResult]:
        """``n`` downloads through the app's own download probe (sizes drawn from ``sizes``,
        else the target's), or until the app refuses three in a row. Each call asks for new
        exports; ``repeat=True`` asks for the previous call's exports again (cache hits)."""
        self._acting()
        if not repeat or not self._seed:
            self._seed += 1
        dl = Downloads(self.run.pr, seed=self._seed)
        dl.seq = 1000 * self._seed  # fresh exports per call, never a cache hit by accident
        if sizes:
            dl.sizes = [parse_size(s) for s in sizes]
        if until_refused:
            return dl.until_refused(max_count=n, deadline=deadline)
        return dl.burst(n, deadline=deadline)

    def log_flood(self, n: int = FLOOD, *, service: str | None = None) -> list[str]:
        """``n`` requests with unique marks in their path, so gaps in a log can be proven."""
        self._acting()
        marks = log_marks(self.run.pr, n, service=service)
        self.run.pr.collect_logs()
        return marks

    def session_flood(self, n: int = 400, *, probe: str | None = None,
                      deadline: float = 30.0) -> int:
        """Run a login-like (write) probe up to ``n`` times, each leaving a session behind,
        stopping after three failures in a row; returns how many ran."""
        self._acting()
        name = probe or self._writer()
        return sessions(self.run.pr, name, n, deadline=deadline, stop_after_failures=3)

    # --- asserting ------------------------------------------------------------------------
    def wait_recovered(self) -> bool:
        """Poll every probe green in the steady phase until it is green again (within the
        target's recovery bound); True when all are."""
        self._begin()
        baseline = self.run.baseline()
        start = self.run.tl.now()
        self._phase = "recover"
        with self.run.phase("recover"):
            self.run.recover(baseline=baseline)
        self._recovered = True
        last = {p.probe: p.passed for p in self.run.tl.probes() if p.t >= start}
        return all(last.get(n, False) for n in baseline)

    def judge(self, *invariants: str) -> Outcome:
        """Judge the timeline by the named invariants (every one when none is named) and
        fail the test with the evidence of each that failed or could not be judged."""
        unknown = [i for i in invariants if i not in INVARIANTS]
        if unknown:
            raise UsageError(f"unknown invariant(s): {', '.join(unknown)}",
                             f"choose from {', '.join(INVARIANTS)}")
        self._begin()
        if self._filled and not self._recovered:
            self.wait_recovered()  # phases always complete: recovery is part of the story
        else:
            self.run.pr.final_logs()
        self._counters()
        outcome = with_untested(self.run.finish(invariants or tuple(INVARIANTS)), self.stack)
        if self._record is not None:
            self._record(outcome)
        # Named invariants must be judged (nothing passes on nothing); with none named,
        # only failures count and the rest is reported as not judged.
        problems = [v for v in outcome.verdicts
                    if (v.judged and not v.passed) or (invariants and not v.judged)]
        if problems:
            import pytest

            from .report import verdict_text

            pytest.fail("\n".join(
                verdict_text(v.to_dict()) if v.judged else
                f"{v.invariant} NOT JUDGED: {v.reason or v.summary} (the script gathered no "
                "evidence for it)" for v in problems), pytrace=False)
        return outcome

    # --- helpers --------------------------------------------------------------------------
    def _front(self) -> str:
        svc = front_service(self.run.pr)
        if svc is None:
            raise UsageError("no service of the target publishes an HTTP port",
                             "give the front service 'ports', or name the service")
        return svc

    def _writer(self) -> str:
        writers = [n for n, p in self.target.probes.items() if p.write]
        if not writers:
            raise UsageError("the target declares no write probe for a session flood",
                             "pass probe='login', or mark a step of a probe write = true")
        return sorted(writers, key=lambda n: not self.target.probes[n].core)[0]

