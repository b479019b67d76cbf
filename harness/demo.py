"""The smallest real check: a tiny tmpfs volume, a container writing into it, ENOSPC."""

from __future__ import annotations

from collections.abc import Iterator

from .sizes import format_size
from .stack import Stack
from .target import target_from_dict


def enospc_demo(size: int, inodes: int) -> Iterator[str]:
    """Start a one-volume stack, write twice its size as uid 1000, report what happened."""
    from . import engine

    target = target_from_dict({
        "name": "demo",
        "services": {"writer": {"image": engine.BASE_IMAGE, "command": ["sleep", "infinity"],
                                "user": "1000:1000"}},
        "volumes": {"tiny": {"size": size, "inodes": inodes, "owner": "1000:1000",
                             "mounts": [{"service": "writer", "path": "/data"}]}},
    }, file="<demo>")
    with Stack(target) as stack:
        vol = stack.volume("tiny")
        yield f"volume 'tiny': {vol.usage()}"
        _, out = stack.service("writer").exec(
            ["sh", "-c", f"head -c {size * 2} /dev/zero > /data/big; echo exit=$?"],
            user="1000:1000")
        after = vol.usage()
        yield (f"a container (uid 1000) tried to write {format_size(size * 2)} into /data: "
               f"{out.strip().splitlines()[0] if out.strip() else 'no output'}")
        if "No space left on device" in out:
            yield ("ENOSPC observed: the write failed with 'No space left on device' "
                   f"(errno 28) once the volume was full; now {after}")
        else:
            yield f"no ENOSPC seen (unexpected): {out.strip()}"
        free = vol.usage().inodes_free
        # The count is printed before the failing create, so the two never interleave.
        _, out = stack.service("writer").exec(
            ["sh", "-c", "i=0; while (: > /data/f$i) 2>/dev/null; do i=$((i+1)); done; "
             "echo \"$i\"; (: > /data/one-more) 2>&1 | sed 's/^sh: [0-9]*: //'"],
            user="1000:1000")
        lines = [ln for ln in out.strip().splitlines() if ln.strip()] or ["?"]
        error = lines[1] if len(lines) > 1 else "no error (unexpected)"
        yield (f"inode limit: {lines[0]} empty files fitted in the {free} free inodes "
               f"(empty files need no space, only inodes); the next one failed: {error}")
    yield "everything the demo created was removed"
