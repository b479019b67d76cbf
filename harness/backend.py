"""Backend: what probes, loads and the volume scenario need from a running target.

Two things provide it: the container :class:`~harness.stack.Stack` (services in Docker,
volumes on tmpfs) and the in-process :class:`~harness.inprocess.InProcessStack` (a WSGI
app called in this process, volumes on pyfakefs). Scenarios written against this
Protocol run on both, judged by the same invariants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import requests

    from .target import Target
    from .timeline import Usage
    from .volume import Volume


@dataclass(frozen=True)
class ExecResult:
    """What a bounded exec did: exit code (None if it did not end), combined output."""

    code: int | None
    output: bytes
    timed_out: bool = False
    killed: bool = False  # the harness killed it at the deadline (False: it may still run)
    # The service had stopped (a server that aborted): nothing ran; ``output`` holds the
    # service's last log lines, the evidence of why it is down.
    not_running: bool = False


class Runner(Protocol):
    """A service that can run a command (exec probes)."""

    def exec(self, cmd: Sequence[str]) -> tuple[int, str]:
        """Run a command; (exit code, output)."""
        ...

    def exec_bounded(self, cmd: Sequence[str], *, timeout: float, user: str = "") -> ExecResult:
        """Run a command for at most ``timeout`` seconds; killed and marked after that."""
        ...


class Backend(Protocol):
    """A running target: its config, HTTP access, volumes, logs and restarts."""

    target: Target
    # Whether its log sources have shown a log mark: None until a run has learnt it.
    marks_shown: bool | None
    # Its log records are written as it answers (an in-process app): reading them needs
    # no wait for a server's late flush.
    logs_synchronous: bool

    def url(self, service: str, port: int | None = None) -> str:
        """Base URL of a service (always http://127.0.0.1:PORT)."""
        ...

    def session(self) -> requests.Session:
        """A fresh HTTP session that reaches the target and nothing else."""
        ...

    def service(self, name: str) -> Runner:
        """A service that runs exec probes."""
        ...

    def volume(self, name: str) -> Volume:
        """A volume by its config name."""
        ...

    def usage(self, *names: str) -> dict[str, Usage]:
        """Usage of the named volumes (all measurable ones when none is named)."""
        ...

    def check_alive(self) -> None:
        """Raise a HarnessError naming a service that is no longer running."""
        ...

    def restarts(self) -> dict[str, int]:
        """Restarts (and exits) per service since start."""
        ...

    def reset(self) -> None:
        """Every volume back to its seed."""
        ...

    def untested_paths(self) -> dict[str, list[str]]:
        """Per service, folders it wrote outside the target's volumes (never on a small disk)."""
        ...

    def log_lines(self, service: str) -> list[tuple[float | None, str]]:
        """Every line a service wrote to stdout/stderr so far, with its unix time if known."""
        ...

    def read_tails(self, items: list[tuple[str, str, int]]) -> list[tuple[int, bytes]]:
        """For each (volume, path in it, offset): the file's size (-1 if absent) and its
        bytes from offset."""
        ...

    def read_file(self, service: str, path: str) -> bytes | None:
        """A file on a service's own filesystem (absolute path), None when absent."""
        ...

    def file_kind(self, service: str, path: str) -> str | None:
        """What a path on a service's own filesystem is ("file", "link", "folder",
        "device", ...), None when absent or unknown."""
        ...
