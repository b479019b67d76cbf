"""Error types: every message says what was observed and, after ``Hint:``, how to fix it
(how a stop from outside surfaces: ``harness.signals``)."""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error fulldisk raises on purpose; ``exit_code`` is what the CLI returns."""

    exit_code = 3

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message}\nHint: {hint}" if hint else message)

    def one_line(self) -> str:
        """The message and its hint on one line, for the CLI."""
        return f"{self.message} Hint: {self.hint}" if self.hint else self.message


class UsageError(HarnessError):
    """Bad input from the user: a flag, a size, a name that does not exist."""

    exit_code = 2


class ConfigError(UsageError):
    """A target config that does not validate; names the file, the key and the fix."""

    def __init__(self, message: str, hint: str | None = None, *, file: str | None = None,
                 key: str | None = None) -> None:
        self.file = file
        self.key = key
        where = ":".join(p for p in (file, key) if p)
        super().__init__(f"{where}: {message}" if where else message, hint)


class UnknownName(UsageError):
    """A service, volume or probe asked for at run time that the target does not declare:
    a mistake of the caller (a scenario, a test), not of the config."""


class TargetProblem(UsageError):
    """The target cannot be tested as configured: a probe fails on healthy, empty disks,
    or the image's files do not fit the volume declared for them. Exit 2, no verdicts."""


class InfrastructureError(HarnessError):
    """The machine cannot run the check: Docker down, image missing, port taken, service died."""

    exit_code = 3


class DockerUnavailable(InfrastructureError):
    """No Docker engine answers."""


class EngineLost(DockerUnavailable):
    """The Docker engine stopped answering during a run (its socket gone, a call cut)."""


class OutputError(InfrastructureError):
    """One of fulldisk's own outputs (a report, a starter config) could not be written:
    a full or read-only disk; names the path. Nothing half written is left."""


class GuardError(HarnessError):
    """Refused: the harness only fills, drains or resets filesystems it created itself."""

    exit_code = 2

