"""Which folders a container wrote: the engine's diff of its filesystem against its image,
reduced to the folders that were written into.

After a run, the folders a service wrote outside fulldisk's volumes are listed as "not
tested on a small disk" (a forgotten writable path becomes visible); ``fulldisk init``
proposes a Volume per folder an image writes. Pure functions: the diff comes from
``engine.changes``.
"""

from __future__ import annotations

from collections.abc import Iterable
from posixpath import dirname

ADDED = 1
DELETED = 2
# Paths the engine itself writes into every container (the --init binary, mount points
# of files it manages); never the app's doing.
ENGINE_PATHS = ("/usr/sbin/docker-init", "/dev", "/proc", "/sys", "/etc/hosts",
                "/etc/hostname", "/etc/resolv.conf", "/etc/mtab", "/.dockerenv")


def under(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or inside it."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def written_folders(changes: Iterable[tuple[str, int]], *,
                    covered: Iterable[str] = ()) -> list[str]:
    """The folders (that existed in the image) into which files were added, changed or
    deleted, outside the ``covered`` paths; nested folders fold into the outermost."""
    changes = list(changes)
    covered = [c for c in covered if c]
    added = {p for p, kind in changes if kind == ADDED}
    parents = {dirname(p) for p, _ in changes}
    found: set[str] = set()
    for path, _ in changes:
        if path in parents:  # a folder with listed changes inside: its leaves speak for it
            continue
        if any(under(path, n) for n in ENGINE_PATHS) or any(under(path, c) for c in covered):
            continue
        folder = dirname(path)
        while folder in added and folder != "/":  # a folder the app created: go to its parent
            folder = dirname(folder)
        found.add(folder)
    return sorted(f for f in found if not any(g != f and under(f, g) for g in found))
