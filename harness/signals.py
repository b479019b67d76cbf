"""Stops from outside (Ctrl-C, SIGTERM, a closed terminal's SIGHUP) and the cleanup after.

The first signal stops the run at once (KeyboardInterrupt in the main thread; the straight
runner then cancels its lanes, whose next step raises ``Cancelled``); from then on the run
only cleans up, and a second or third signal only makes it say so: a cleanup cut short
would leave containers and mounts behind. A signal that arrives while teardown is already
under way (``shielded``) is remembered, so the run still ends as interrupted (exit 130)
once it is clean.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}
_lock = threading.RLock()  # the handler may run while the main thread holds it
_received: list[str] = []  # the signals seen, first first
_tearing_down = threading.Event()  # from the first signal (or a shielded teardown) on
_shield_depth = 0
_cancelled = threading.Event()
_stopped: set[int] = set()  # threads that stopped their work on a cancel (idents)


class Cancelled(Exception):
    """Raised in a lane's next step once its run is stopped (a signal, or another lane's
    failure that ends the run); what it broke is not a result."""


def cancel() -> None:
    """Stop every lane at its next step (``check``)."""
    _cancelled.set()


def cancelled() -> bool:
    """Whether the running battery was stopped."""
    return _cancelled.is_set()


def end_run() -> None:
    """The run that cancelled its lanes is over (they are joined or gone): a later run
    in this process starts uncancelled (a signal received stays received)."""
    with _lock:
        _cancelled.clear()
        _stopped.clear()


def check() -> None:
    """Raise ``Cancelled`` when the run was stopped: called before each step of a load or
    probe, so that a lane stops within one step rather than at its next phase."""
    if _cancelled.is_set():
        stopped_here()
        raise Cancelled("the run was stopped")


def stopped_here() -> None:
    """Note that this thread stopped its work on the cancel (it may still be cleaning up)."""
    with _lock:
        _stopped.add(threading.get_ident())


def stopped(thread: threading.Thread) -> bool:
    """Whether a thread stopped its work on the cancel."""
    with _lock:
        return thread.ident in _stopped


def reset() -> None:
    """A new run in this process: nothing is cancelled or received yet."""
    global _shield_depth
    with _lock:
        _cancelled.clear()
        _tearing_down.clear()
        _received.clear()
        _stopped.clear()
        _shield_depth = 0


def received() -> str | None:
    """The first signal received (``SIGINT``, ``SIGTERM``, ``SIGHUP``), if any."""
    with _lock:
        return _received[0] if _received else None


def _say(text: str) -> None:
    try:  # os.write: safe inside a signal handler, unlike a buffered stream
        os.write(2, text.encode())
    except OSError:
        pass


def _handler(signum: int, frame: FrameType | None) -> None:
    name = _NAMES.get(signal.Signals(signum), str(signum))
    with _lock:
        first = not _received
        _received.append(name)
        stop = first and not _tearing_down.is_set() and _shield_depth == 0
        if stop:
            _tearing_down.set()
    if stop:  # the code that catches it cancels its lanes (``cancel``)
        raise KeyboardInterrupt(name)
    _say(f"fulldisk: {name}: finishing the cleanup first, so that nothing is left behind "
         "(it ends by itself; a SIGKILL would leave it to `fulldisk clean --stale`)\n")


def install() -> None:
    """Handle SIGINT, SIGTERM and SIGHUP as above (in the main thread). A signal the
    process was started with ignored (a background job's SIGINT, ``nohup``'s SIGHUP) stays
    ignored, as does one whose handler someone else installed."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in _NAMES:
        now = signal.getsignal(sig)
        ours = now is _handler
        default = now in (signal.SIG_DFL, None) or (
            sig == signal.SIGINT and now is signal.default_int_handler)
        if default and not ours:
            signal.signal(sig, _handler)


def installed() -> bool:
    """Whether this module's handler serves SIGINT or SIGTERM."""
    return _handler in (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))


def ignore_further() -> None:
    """The process is ending after an interrupt and its cleanup is done: later signals
    are ignored (the interpreter's own exit would otherwise die of them, exit -2)."""
    if threading.current_thread() is threading.main_thread():
        for sig in _NAMES:
            if signal.getsignal(sig) is _handler:
                signal.signal(sig, signal.SIG_IGN)


@contextmanager
def shielded() -> Iterator[None]:
    """Teardown: a signal in here only records itself and says the cleanup is finishing
    (``received`` tells the caller afterwards that the run was interrupted)."""
    global _shield_depth
    with _lock:
        _shield_depth += 1
    try:
        yield
    finally:
        with _lock:
            _shield_depth -= 1
