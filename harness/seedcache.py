"""Seeds cached per image id: the image's files at a path, read once per image build.

Reading a seed costs a created container, an archive read and a removal on every stack
start; an image id (a digest of its content) names the same files forever, so the tar is
kept in this process and on disk (``$FULLDISK_SEED_CACHE``, default
``~/.cache/fulldisk/seeds``; ``off`` keeps it in memory only). A rebuilt image has a new
id, so a stale seed can never be served.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

MAX_ON_DISK = 64 * 1024 * 1024  # larger seeds stay in memory only
_ABSENT = b"fulldisk: no such path in the image\n"
_memory: dict[tuple[str, str], bytes | None] = {}
_lock = threading.Lock()


def _folder() -> Path | None:
    where = os.environ.get("FULLDISK_SEED_CACHE", "")
    if where == "off":
        return None
    if where:
        return Path(where)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fulldisk" / "seeds"


def _file(image_id: str, path: str) -> Path | None:
    folder = _folder()
    if folder is None:
        return None
    key = hashlib.sha256(f"{image_id}\0{path}".encode()).hexdigest()[:32]
    return folder / f"{key}.tar"


def get(image_id: str, path: str) -> tuple[bool, bytes | None]:
    """(found, tar of the path or None when the image has no such path)."""
    with _lock:
        if (image_id, path) in _memory:
            return True, _memory[(image_id, path)]
    f = _file(image_id, path)
    try:
        data = f.read_bytes() if f is not None else None
    except OSError:
        return False, None
    if data is None:
        return False, None
    value = None if data == _ABSENT else data
    with _lock:
        _memory[(image_id, path)] = value
    return True, value


def put(image_id: str, path: str, data: bytes | None) -> None:
    """Remember a seed (None: the image has no such path)."""
    with _lock:
        _memory[(image_id, path)] = data
    f = _file(image_id, path)
    if f is None or (data is not None and len(data) > MAX_ON_DISK):
        return
    try:
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(_ABSENT if data is None else data)
        tmp.replace(f)  # atomic: a concurrent reader sees the old file or the whole new one
    except OSError:
        pass  # a read-only home: the memory cache still serves this process
