"""The battery run straight, without pytest: what ``fulldisk run`` does by default.

The same cases, stacks, phases and invariants as ``pytest --fulldisk-battery -m chaos``
(pytest stays the engine of ``pytest -m chaos``, ``gate`` and ``run -k/-n``); only the
collection pass, pytest's plugins and its imports are left out. Stacks as the pytest form
has them (``harness.battery.run_case``): a long-lived plain and shared stack, started
when a case first needs it and removed after its last case, and a stack of its own for
each case that leaves the app's data behind (``Case.fresh``).

Cases on different stacks run at once, in lanes: the plain stack's cases in order, the
shared stack's, and each fresh case. No two cases ever share a stack at the same time, so
each case meets exactly the stack it would meet run one after another, and the results
keep the cases' order.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import signals
from .battery import Case, Outcome, phase_listener
from .errors import HarnessError
from .target import Target

if TYPE_CHECKING:
    from .stack import Stack

CaseDone = Callable[[Case, Outcome | None], None]
"""Called after each case with its outcome (None: the case broke without verdicts); from
the thread of the case's lane, one call at a time."""
STACKS_AT_ONCE = 5  # lanes running at once: a plain, a shared and three fresh stacks
PREFLIGHT_WAIT = 300.0  # how long a fresh lane waits for the pre-flight of a long-lived stack
STOP_SECONDS = 1.0  # after an interrupt: how long the lanes get to stop working (a step)
JOIN_SECONDS = 10.0  # after an interrupt: how long lanes may take to notice (next phase);
                    # then the run's label removes what is left, daemon lanes end with it


@dataclass
class BatteryRun:
    """What a straight battery run produced: outcomes, the verdicts of the invariants each
    case judges, and what broke without a verdict (infrastructure)."""

    outcomes: list[Outcome] = field(default_factory=list)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    untested: set[tuple[str, str, str]] = field(default_factory=set)
    seconds: dict[str, float] = field(default_factory=dict)  # case id -> its run (with the
                                                             # start of a fresh case's stack)
    error_exit: int = 0  # 2: the target cannot be tested as configured; 3: infrastructure
    interrupted: str | None = None  # "SIGINT" or "SIGTERM" when a signal stopped the run
    ran: int = 0  # cases that finished

    @property
    def failed(self) -> bool:
        """A verdict failed or a case broke."""
        from .report import status

        return bool(self.errors) or any(status(v) == "fail" for v in self.verdicts)


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP stop the run and then let its teardown finish
    (``signals``) while the run lasts, also where no CLI installed that."""
    if threading.current_thread() is not threading.main_thread() or signals.installed():
        yield
        return
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    signals.install()
    try:
        yield
    finally:
        for s, h in saved.items():
            if h is not None:
                signal.signal(s, h)


def run_battery(target: Target, *, done: CaseDone = lambda c, o: None,
                at_once: int = STACKS_AT_ONCE,
                meanwhile: Callable[[list[Outcome]], None] | None = None) -> BatteryRun:
    """Run every battery case of a target, up to ``at_once`` stacks at a time; a case that
    breaks is recorded and no further case starts. ``meanwhile`` is called in this thread
    with the outcomes (in the cases' order) once the last case has ended, while the last
    stacks are still being removed (the report's charts are drawn in that time)."""
    from . import engine
    from .battery import battery_cases
    from .stack import ensure_images

    ensure_images(target)
    result = BatteryRun()
    if signals.received() is None:
        signals.reset()  # a run before this one in the process may have been cancelled
    with _sigterm_interrupts():
        # leftovers of runs whose process is gone, removed while this run removes its own
        # stacks (an engine wait): while they start, the engine's listing slowed the
        # first stack's start. Only runs proven gone are touched, never this one.
        stale = threading.Thread(target=_clean_stale, name="fulldisk-clean-stale", daemon=True)
        lanes = _Lanes(target, battery_cases(target), done)
        try:
            lanes.run(at_once, meanwhile, ending=stale.start)
        except KeyboardInterrupt as e:
            result.interrupted = str(e) or "SIGINT"
        finally:
            # teardown: a further signal only says the cleanup is finishing (signals)
            with signals.shielded():
                try:
                    lanes.close()
                except Exception as e:  # reported; the backstop below runs
                    lanes.lane_errors.append(_teardown_error(e))
                # others' leftovers: not what an interrupted run waits for (it ends now;
                # a clean cut short leaves a stale run stale, its lease goes last)
                if stale.ident is None and result.interrupted is None:
                    stale.start()  # the cases never all ended (an error)
                if stale.ident is not None:
                    stale.join(timeout=0.0 if result.interrupted else JOIN_SECONDS)
                try:  # whatever an interrupt left half made (as the plugin's session end does)
                    engine.clean(run=engine.run_id())
                except Exception as e:  # the engine lost: reported once
                    lanes.lane_errors.append(_teardown_error(e))
            # the lanes are joined or gone, also when an error ends the run here: a later
            # run (or test) in this process must not start cancelled
            signals.end_run()
        if result.interrupted is None:
            result.interrupted = signals.received()  # one that came during the teardown
        lanes.collect(result)
    return result


def _teardown_error(e: BaseException) -> str:
    """One line for what went wrong while the run's stacks were removed."""
    from .engine import engine_error

    lost = engine_error(e)
    if lost is not None:
        return lost.one_line()
    if isinstance(e, HarnessError):
        return e.one_line().replace("\n", " | ")
    return f"teardown: {type(e).__name__}: {e}"


def _meanwhile(call: Callable[[list[Outcome]], None], outcomes: list[Outcome]) -> None:
    try:
        call(outcomes)
    except Exception:  # work done ahead of time: done again, and reported, after the run
        pass


def _clean_stale() -> None:
    from . import engine

    try:
        engine.clean(stale_only=True)
    except Exception:  # others' leftovers must not stop (or print into) this run
        pass


class _Cancelled(Exception):
    """Raised in a lane at its next phase once the run is interrupted."""


class _Lanes:
    """The cases grouped by the stack they run on, each group run in order in a thread of
    its own: no two cases share a stack at once. Outcomes are kept by case index, so the
    results come out in the cases' order whichever lane finishes first."""

    def __init__(self, target: Target, cases: list[Case], done: CaseDone) -> None:
        self.target = target
        self.cases = cases
        self.done = done
        # set once a long-lived stack passed its pre-flight (or none will run one): fresh
        # lanes, which have none of their own, fill nothing before that
        self.checked = threading.Event()
        self.stacks = _Stacks(target, self.checked)
        self.results: dict[int, tuple[Outcome | None, str, int, float]] = {}
        self.lock = threading.Lock()
        self.broken = threading.Event()  # a case broke: no further case starts
        self.cancelled = threading.Event()  # interrupted: lanes stop at their next phase
        self.events: queue.Queue[str] = queue.Queue()  # "cases" (a lane's cases ended),
                                                       # "ended" (and its stack is gone)
        self.threads: list[threading.Thread] = []
        self.idle: set[int] = set()  # lanes (thread idents) whose cases are over
        self.lane_errors: list[str] = []

    def lanes(self) -> list[list[int]]:
        """Case indexes per lane: the long-lived stacks' lanes, then the fresh ones, each
        in the order of its first case."""
        plain = [i for i, c in enumerate(self.cases) if not c.fresh and not c.shared]
        shared = [i for i, c in enumerate(self.cases) if not c.fresh and c.shared]
        fresh = [[i] for i, c in enumerate(self.cases) if c.fresh]
        # the long-lived stacks' lanes first: their pre-flight lets the fresh lanes fill
        return sorted((lane for lane in (plain, shared, *fresh) if lane),
                      key=lambda lane: (self.cases[lane[0]].fresh, lane[0]))

    def run(self, at_once: int,
            meanwhile: Callable[[list[Outcome]], None] | None = None, *,
            ending: Callable[[], None] | None = None) -> None:
        """Run every lane, at most ``at_once`` at a time (a lane counts until its stack is
        removed); then remove the long-lived stacks (reading what their services wrote
        outside the volumes). ``meanwhile``: see ``run_battery``; ``ending`` is called
        once, first, at the same moment."""
        pending = deque(self.lanes())
        if all(c.fresh for c in self.cases):
            self.checked.set()
        active = busy = 0  # lanes not ended; lanes whose cases still run
        with phase_listener(self._on_phase, first=True):
            while pending or active:
                while pending and active < max(1, at_once) and not self.broken.is_set():
                    lane = pending.popleft()
                    t = threading.Thread(target=self._lane, args=(lane,), daemon=True,
                                         name=f"fulldisk-lane-{self.cases[lane[0]].id}")
                    self.threads.append(t)
                    t.start()
                    active += 1
                    busy += 1
                if not active:
                    break  # a case broke: the lanes not started never run
                event = self.events.get()  # a signal interrupts the wait
                if event == "ended":
                    active -= 1
                    continue
                busy -= 1
                if not busy and (not pending or self.broken.is_set()):
                    if ending is not None:
                        ending_now, ending = ending, None
                        ending_now()
                    if meanwhile:
                        call, meanwhile = meanwhile, None
                        _meanwhile(call, self.outcomes())
        with signals.shielded():
            self.stacks.stop_all(untested=True)

    def outcomes(self) -> list[Outcome]:
        """The outcomes so far, in the cases' order."""
        with self.lock:
            return [r[0] for _, r in sorted(self.results.items()) if r[0] is not None]

    def close(self) -> None:
        """Stop every lane and remove every stack, also after an interrupt: the long-lived
        stacks at once (lanes still using them fail at their next step), then wait (at
        most JOIN_SECONDS) for the lanes, which remove their fresh stacks as they end."""
        from .stack import announce, release_holds

        self.cancelled.set()
        signals.cancel()  # lanes still working stop at their next step
        if any(t.is_alive() for t in self.threads):
            release_holds()
        # each lane stops within a step (a request, a fill): waited for, briefly, so that
        # the stacks it uses are not removed under it while it still works
        end = time.monotonic() + STOP_SECONDS
        while time.monotonic() < end and not self._all_stopped():
            time.sleep(0.01)  # polling the lanes' state with a deadline
        if self._all_stopped():
            announce("lanes-stopped")  # test hook: when every lane had stopped working
        self.stacks.stop_all()
        end = time.monotonic() + JOIN_SECONDS
        for t in self.threads:
            t.join(timeout=max(0.0, end - time.monotonic()))
        self.stacks.stop_all()  # one a lane started while the others were being removed
        if not any(t.is_alive() for t in self.threads):
            signals.end_run()  # its lanes are over: later lanes in this process start anew

    def _all_stopped(self) -> bool:
        with self.lock:
            return all(not t.is_alive() or t.ident in self.idle or signals.stopped(t)
                       for t in self.threads)

    def collect(self, result: BatteryRun) -> None:
        """Outcomes and verdicts in the cases' order; the first broken case's error (a
        fulldisk error repeats for every later case: it is reported once)."""
        for i in sorted(self.results):
            outcome, error, code, secs = self.results[i]
            case = self.cases[i]
            if outcome is None:
                if not result.errors:
                    result.errors.append(error)
                    result.error_exit = code
                continue
            result.ran += 1
            result.seconds[case.id] = secs
            result.outcomes.append(outcome)
            # only the invariants the target feeds, as the pytest items judge them
            result.verdicts += [v.to_dict() for v in outcome.verdicts
                                if v.invariant in case.invariants]
            result.untested |= {(self.target.name, svc, p)
                                for svc, ps in outcome.untested.items() for p in ps}
        result.untested |= {(self.target.name, svc, p)
                            for svc, ps in self.stacks.untested.items() for p in ps}
        if self.lane_errors and not result.errors:
            result.errors += self.lane_errors[:1]
            result.error_exit = 3

    def _on_phase(self, scenario: str, phase: str) -> None:
        if phase != "steady":  # a fresh lane fills only once the pre-flight has passed
            end = time.monotonic() + PREFLIGHT_WAIT
            while not self.checked.is_set() and not self.cancelled.is_set() \
                    and time.monotonic() < end:
                self.checked.wait(0.05)  # also woken by a cancel within 50 ms
        if self.cancelled.is_set():
            signals.stopped_here()
            raise _Cancelled(f"interrupted before phase {phase!r} of {scenario}")

    def _lane(self, lane: list[int]) -> None:
        try:
            try:
                for i in lane:
                    if self.broken.is_set() or self.cancelled.is_set():
                        return
                    if not self._case(i):
                        self.broken.set()
                        # the run's outcome is this error: the other lanes stop before
                        # they fill anything (their verdicts would judge nothing)
                        self.cancelled.set()
                        signals.cancel()
                        return
            finally:
                with self.lock:
                    self.idle.add(threading.get_ident())  # its cases are over
                self.events.put("cases")
            last = self.cases[lane[-1]]
            if not last.fresh:  # its stack has no later case
                self.stacks.release(last.shared)
        except Exception as e:  # removing its stack failed: reported, the run goes on ending
            with self.lock:
                self.lane_errors.append(f"fulldisk::{self.cases[lane[-1]].id} (teardown): "
                                        f"{type(e).__name__}: {e}")
            self.broken.set()
        finally:
            self.events.put("ended")

    def _case(self, i: int) -> bool:
        from .battery import run_case

        case = self.cases[i]
        t0 = time.monotonic()
        outcome: Outcome | None = None
        error, code = "", 0
        try:
            outcome = run_case(case, self.target, self.stacks.get, untested=False)
        except HarnessError as e:
            error, code = e.one_line().replace("\n", " | "), e.exit_code
        except Exception as e:  # a harness bug: reported like pytest reports a broken test
            from .engine import engine_error

            lost = engine_error(e)
            error, code = ((lost.one_line(), lost.exit_code) if lost is not None else
                           (f"fulldisk::{case.id} (call): {type(e).__name__}: {e}", 3))
        with self.lock:
            if self.cancelled.is_set():
                return False  # what an interrupt broke is not a result
            self.results[i] = (outcome, error, code, time.monotonic() - t0)
            self.done(case, outcome)
        return outcome is not None


class _Stacks:
    """The long-lived plain and shared stacks: each started when a case first needs it
    (a failed start is remembered, as pytest remembers a failed fixture) and removed
    after its last case. Before one is removed, the folders its services wrote outside
    the volumes are read, once per stack rather than after every case (the engine's diff
    is cumulative and slow). Each is used by one lane only; removal may come from the
    main thread (an interrupt), hence the lock."""

    def __init__(self, target: Target, checked: threading.Event | None = None) -> None:
        self.target = target
        self.checked = checked or threading.Event()  # set once a stack's pre-flight passed
        self.running: dict[bool, Stack] = {}
        self.failed: dict[bool, HarnessError] = {}
        self.untested: dict[str, set[str]] = {}  # service -> folders
        self.lock = threading.Lock()
        self.closed = False

    def get(self, shared: bool) -> Stack:
        """The plain (False) or shared (True) stack, started on first use."""
        from .stack import Stack

        if shared in self.failed:
            raise self.failed[shared]
        if shared not in self.running:
            s = Stack(self.target.shared() if shared else self.target)
            with self.lock:
                if self.closed:
                    raise _Cancelled("the run is ending: no stack starts")
                self.running[shared] = s
            try:
                from .preflight import preflight

                s.__enter__()
                preflight(s)  # every probe passes on the empty disks, or nothing is filled
                self.checked.set()
            except HarnessError as e:
                self.failed[shared] = e
                raise
        return self.running[shared]

    def release(self, shared: bool) -> None:
        """Remove the plain or shared stack after its last case."""
        with self.lock:
            s = self.running.pop(shared, None)
        if s is not None:
            self._remove(s, untested=True)

    def stop_all(self, *, untested: bool = False) -> None:
        """Remove every stack still running (after an interrupt or error without reading
        what the services wrote: teardown comes first); no stack starts after this."""
        with self.lock:
            self.closed = True
            stacks = list(self.running.values())
            self.running.clear()
        for s in stacks:
            self._remove(s, untested=untested)

    def _remove(self, stack: Stack, *, untested: bool) -> None:
        try:
            if untested:
                paths = stack.untested_paths()
                with self.lock:
                    for svc, folders in paths.items():
                        self.untested.setdefault(svc, set()).update(folders)
        finally:
            stack.__exit__(None, None, None)
