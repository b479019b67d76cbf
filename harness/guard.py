"""The guard: fulldisk fills, drains and resets only filesystems it created itself.

Every backend registers the filesystems it makes; every write that consumes or frees
space asks the guard first. The check is by identity, not by name: a docker volume must
be registered by this run, carry this run's label and be of type tmpfs, and (checked in
the agent by the volume before every script) its path must be a tmpfs mountpoint.
Anything else raises GuardError.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import GuardError

_HINT = ("fulldisk only writes to filesystems it created in this run (Stack volumes, "
         "make_volume); point it at one of those")


@dataclass(frozen=True)
class Owned:
    """Identity of a filesystem this run created."""

    kind: str  # "docker-tmpfs"
    name: str
    run: str


class Guard:
    """Registry of owned filesystems, and the checks before any fill."""

    def __init__(self) -> None:
        self._owned: dict[tuple[str, str], Owned] = {}
        self._lock = threading.Lock()

    def register(self, owned: Owned) -> None:
        """Record a filesystem this run created."""
        with self._lock:
            self._owned[(owned.kind, owned.name)] = owned

    def forget(self, kind: str, name: str) -> None:
        """Drop a filesystem that was removed."""
        with self._lock:
            self._owned.pop((kind, name), None)

    def check_docker_volume(self, name: str, labels: Mapping[str, str] | None, run: str,
                            driver_opts: Mapping[str, str] | None) -> None:
        """Refuse a docker volume that is not this run's labelled tmpfs volume."""
        lbls = labels or {}
        opts = driver_opts or {}
        if ("docker-tmpfs", name) not in self._owned:
            raise GuardError(f"Refusing to write to docker volume {name!r}: this run did not "
                             "create it.", _HINT)
        if lbls.get("fulldisk.run") != run:
            raise GuardError(f"Refusing to write to docker volume {name!r}: its label "
                             f"fulldisk.run={lbls.get('fulldisk.run')!r} is not this run "
                             f"({run}).", _HINT)
        if opts.get("type") != "tmpfs":
            raise GuardError(f"Refusing to write to docker volume {name!r}: it is not a tmpfs "
                             "volume of fulldisk.", _HINT)


GUARD = Guard()
"""The process-wide guard every backend consults."""
