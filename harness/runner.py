"""The battery run straight, without pytest: what ``fulldisk run`` does by default.

The same cases, stacks, phases and invariants as ``pytest --fulldisk-battery -m chaos``
(pytest stays the engine of ``pytest -m chaos``, ``gate`` and ``run -k/-n``); only the
collection pass, pytest's plugins and its imports are left out. Stacks as the pytest form
has them (``harness.battery.run_case``): a long-lived plain and shared stack, started
when a case first needs it and removed once no later case does, and a stack of its own
for each case that leaves the app's data behind (``Case.fresh``).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .battery import Case, Outcome
from .errors import HarnessError
from .target import Target

if TYPE_CHECKING:
    from .stack import Stack

CaseDone = Callable[[Case, Outcome | None], None]
"""Called after each case with its outcome (None: the case broke without verdicts)."""


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
    """SIGTERM becomes KeyboardInterrupt while the run lasts, so every stack is torn down
    (as the pytest plugin does for its sessions)."""
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        yield
        return

    def _term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, _term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run_battery(target: Target, *, done: CaseDone = lambda c, o: None) -> BatteryRun:
    """Run every battery case of a target; a case that breaks is recorded, the rest run."""
    from . import engine
    from .battery import battery_cases
    from .stack import ensure_images

    ensure_images(target)
    result = BatteryRun()
    cases = battery_cases(target)
    with _sigterm_interrupts():
        try:
            engine.clean(stale_only=True)  # leftovers of runs whose process is gone
        except HarnessError:
            pass  # others' leftovers must not stop this run
        stacks = _Stacks(target)
        try:
            for i, case in enumerate(cases):
                if not _run_case(case, stacks, target.name, result, done):
                    break  # a fulldisk error repeats for every later case: report it once
                result.ran += 1
                stacks.release_unneeded(cases[i + 1:])
            stacks.stop_all(untested=True)
        except KeyboardInterrupt as e:
            result.interrupted = str(e) or "SIGINT"
        finally:
            stacks.stop_all()
            result.untested |= {(target.name, svc, p) for svc, ps in stacks.untested.items()
                                for p in ps}
            try:  # whatever an interrupt left half made (as the plugin's session end does)
                engine.clean(run=engine.run_id())
            except HarnessError:
                pass
    return result


class _Stacks:
    """The long-lived plain and shared stacks: each started when a case first needs it
    (a failed start is remembered, as pytest remembers a failed fixture), removed once no
    later case needs it, so no more stacks run at once than the cases need. Before one
    is removed, the folders its services wrote outside the volumes are read, once per
    stack rather than after every case (the engine's diff is cumulative and slow)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.running: dict[bool, Stack] = {}
        self.failed: dict[bool, HarnessError] = {}
        self.untested: dict[str, set[str]] = {}  # service -> folders

    def get(self, shared: bool) -> Stack:
        """The plain (False) or shared (True) stack, started on first use."""
        from .stack import Stack

        if shared in self.failed:
            raise self.failed[shared]
        if shared not in self.running:
            try:
                from .preflight import preflight

                s = Stack(self.target.shared() if shared else self.target).__enter__()
                self.running[shared] = s
                preflight(s)  # every probe passes on the empty disks, or nothing is filled
            except HarnessError as e:
                self.failed[shared] = e
                raise
        return self.running[shared]

    def release_unneeded(self, later: list[Case]) -> None:
        """Remove the stacks no later case runs on."""
        needed = {c.shared for c in later if not c.fresh}
        for shared in [s for s in self.running if s not in needed]:
            self._remove(self.running.pop(shared), untested=True)

    def stop_all(self, *, untested: bool = False) -> None:
        """Remove every stack still running (after an interrupt or error without reading
        what the services wrote: teardown comes first)."""
        while self.running:
            self._remove(self.running.popitem()[1], untested=untested)

    def _remove(self, stack: Stack, *, untested: bool) -> None:
        try:
            if untested:
                for svc, folders in stack.untested_paths().items():
                    self.untested.setdefault(svc, set()).update(folders)
        finally:
            stack.__exit__(None, None, None)


def _run_case(case: Case, stacks: _Stacks, target: str, result: BatteryRun,
              done: CaseDone) -> bool:
    from .battery import run_case

    t0 = time.monotonic()
    try:
        outcome = run_case(case, stacks.target, stacks.get, untested=False)
    except HarnessError as e:
        result.errors.append(e.one_line().replace("\n", " | "))
        result.error_exit = max(result.error_exit, e.exit_code)
        done(case, None)
        return False
    except Exception as e:  # a harness bug: reported like pytest reports a broken test
        result.errors.append(f"fulldisk::{case.id} (call): {type(e).__name__}: {e}")
        result.error_exit = 3
        done(case, None)
        return False
    result.seconds[case.id] = time.monotonic() - t0
    result.outcomes.append(outcome)
    # only the invariants the target feeds, as the pytest items judge them
    result.verdicts += [v.to_dict() for v in outcome.verdicts if v.invariant in case.invariants]
    result.untested |= {(target, svc, p) for svc, ps in outcome.untested.items() for p in ps}
    done(case, outcome)
    return True
