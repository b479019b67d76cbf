"""Live progress of a run: which scenario, which phase, how long; for a person waiting.

On a terminal it is one live line (rich), gone when the run ends; in a CI log (not a
terminal, or ``TERM=dumb``) it is one plain line per phase. It listens to the battery's
phase hook and, as a pytest plugin object, counts finished tests.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import ExitStack
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from .battery import phase_listener


def terminal_console() -> Console:
    """A console on the process's original stderr, so pytest's output capture (which
    redirects the file descriptors while a test runs) cannot swallow the progress."""
    try:
        fd = os.dup(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # no real stream (e.g. click's CliRunner)
        return Console(stderr=True, highlight=False)
    return Console(file=os.fdopen(fd, "w", buffering=1, encoding="utf-8", errors="replace"),
                   highlight=False)


class RunProgress:
    """Shows the running scenario, its phase and the time spent; also a pytest plugin."""

    def __init__(self, console: Console, label: str = "") -> None:
        self.console = console
        self.label = label
        self.live = console.is_terminal and not console.is_dumb_terminal
        self.scenario = ""
        self.phase = ""
        self.t0 = time.monotonic()
        self.phase_t0 = self.t0
        self.total: int | None = None
        self.done = 0
        self.failed = 0
        self.phases_seen = 0
        self._spinner = Spinner("dots", style="cyan")
        self._stack = ExitStack()

    def __enter__(self) -> RunProgress:
        self.t0 = self.phase_t0 = time.monotonic()
        self._stack.enter_context(phase_listener(self.on_phase))
        if self.live:
            self._stack.enter_context(Live(
                get_renderable=self._render, console=self.console, refresh_per_second=8,
                transient=True, redirect_stdout=False, redirect_stderr=False))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stack.close()

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.t0

    def line(self) -> str:
        """The progress as one plain line."""
        where = f"{self.label}: " if self.label else ""
        now = (f"{self.scenario} · {self.phase} {time.monotonic() - self.phase_t0:4.1f} s"
               if self.scenario else "starting")
        tests = (f" · tests {self.done}/{self.total}" if self.total else
                 f" · tests {self.done}" if self.done else "")
        bad = f", {self.failed} failed" if self.failed else ""
        return f"{where}{now} · {self.elapsed():5.1f} s total{tests}{bad}"

    def _render(self) -> Spinner:
        self._spinner.update(text=Text(self.line()))
        return self._spinner

    def on_phase(self, scenario: str, phase: str) -> None:
        """Battery phase hook: a phase of a scenario starts (not once the run is stopped:
        its lanes are ending, not working)."""
        from . import signals

        if signals.cancelled():
            return
        self.scenario, self.phase, self.phase_t0 = scenario, phase, time.monotonic()
        self.phases_seen += 1
        if not self.live:
            where = f"{self.label}: " if self.label else ""
            self.console.print(f"[{self.elapsed():6.1f}s] {where}{scenario}: {phase}",
                               markup=False, highlight=False)

    def note(self, text: str) -> None:
        """A line above the live display (or a plain line)."""
        self.console.print(f"[{self.elapsed():6.1f}s] {text}", markup=False, highlight=False)

    def finished(self, outcome: str, name: str = "") -> None:
        """A test (or a straight run's case) ended: ``passed``, ``failed``, ``skipped``."""
        self.done += 1
        self.failed += int(outcome == "failed")
        if not self.live and not self.phases_seen:
            self.note(f"{self.done}/{self.total or '?'} {name} {outcome}")

    # --- pytest plugin hooks (the object is passed to pytest.main(plugins=[...])) --------
    def pytest_collection_finish(self, session: Any) -> None:
        """Know how many tests will run."""
        self.total = len(session.items)

    def pytest_runtest_logreport(self, report: Any) -> None:
        """Count finished tests; without phase events (xdist workers) print each one."""
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.finished(report.outcome, report.nodeid.split("::")[-1])
