"""The battery run straight, without pytest: what ``fulldisk run`` does by default.

The same cases, stacks, phases and invariants as ``pytest --fulldisk-battery -m chaos``
(pytest stays the engine of ``pytest -m chaos``, ``gate`` and ``run -k/-n``); only the
collection pass, pytest's plugins and its imports are left out. One stack per target
variant (each writable path on its own volume, then all on one shared disk), started
when its first case needs it, reset between cases and removed before the next one
starts, so at most one stack runs at a time.
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
    seconds: dict[str, float] = field(default_factory=dict)  # case id -> its run, reset incl.

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
    from .plugin import battery_cases
    from .stack import ensure_images

    ensure_images(target)
    result = BatteryRun()
    cases = battery_cases(target)
    with _sigterm_interrupts():
        try:
            engine.clean(stale_only=True)  # leftovers of runs whose process is gone
        except HarnessError:
            pass  # others' leftovers must not stop this run
        try:
            for shared in (False, True):
                group = [c for c in cases if c.shared == shared]
                if group:
                    _run_group(target.shared() if shared else target, group, result, done,
                               target.name)
        finally:  # whatever an interrupt left half made (as the plugin's session end does)
            try:
                engine.clean(run=engine.run_id())
            except HarnessError:
                pass
    return result


def _run_group(variant: Target, group: list[Case], result: BatteryRun, done: CaseDone,
               name: str) -> None:
    """The cases of one target variant on one stack, reset between cases."""
    from .stack import Stack

    try:
        stack = Stack(variant).__enter__()
    except HarnessError as e:
        for case in group:
            result.errors.append(f"fulldisk::{case.id} (setup): {e.one_line()}")
            done(case, None)
        return
    try:
        for i, case in enumerate(group):
            _run_case(case, stack, i == 0, name, result, done)
    finally:
        stack.__exit__(None, None, None)


def _run_case(case: Case, stack: Stack, fresh: bool, target: str, result: BatteryRun,
              done: CaseDone) -> None:
    t0 = time.monotonic()
    try:
        if not fresh:  # a stack just started is at its seed already
            stack.reset()
        outcome = case.run(stack)
    except HarnessError as e:
        result.errors.append(f"fulldisk::{case.id} (call): {e.one_line()}")
        done(case, None)
        return
    except Exception as e:  # a harness bug: reported like pytest reports a broken test
        result.errors.append(f"fulldisk::{case.id} (call): {type(e).__name__}: {e}")
        done(case, None)
        return
    result.seconds[case.id] = time.monotonic() - t0
    result.outcomes.append(outcome)
    # only the invariants the target feeds, as the pytest items judge them
    result.verdicts += [v.to_dict() for v in outcome.verdicts if v.invariant in case.invariants]
    result.untested |= {(target, svc, p) for svc, ps in outcome.untested.items() for p in ps}
    done(case, outcome)
