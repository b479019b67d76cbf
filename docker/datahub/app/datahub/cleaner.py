"""The cleaner: deletes generated downloads (Exversion's cron job), in its own container.

Hardened: every DATAHUB_CLEANER_INTERVAL (0.1 s) deletes downloads older than
DATAHUB_MAX_AGE (60 s) and, when the downloads filesystem is above
DATAHUB_CLEAN_HIGH_PCT (50 %) of bytes or inodes, deletes oldest first until it is
below DATAHUB_CLEAN_LOW_PCT (30 %).

Defect ``lazy_cleanup``: runs every DATAHUB_LAZY_CLEANER_INTERVAL (3600 s), by age
only, never on pressure (the cron job that ran too rarely).
"""
from __future__ import annotations

import logging
import os
import re
import signal
import sys
import time

from . import config, logsetup

log = logging.getLogger("datahub.cleaner")
TMP_PREFIX = ".tmp-"
# Only generated exports are ever deleted (<name>-<size>.<format>, and the app's temp
# files for them): the downloads path may share a disk and even a directory with
# sessions, cache, the database and the logs.
EXPORT_RE = re.compile(r"^(\.tmp-)?[A-Za-z0-9][A-Za-z0-9_.-]*-[0-9]+\.(csv|geojson)(-[0-9a-f]+)?$")
_last_stuck_log = [0.0]


def _used_pct(path: str) -> float:
    st = os.statvfs(path)
    b = 100.0 * (st.f_blocks - st.f_bavail) / st.f_blocks if st.f_blocks else 0.0
    i = 100.0 * (st.f_files - st.f_favail) / st.f_files if st.f_files else 0.0
    return max(b, i)


def _scan(path: str) -> list[tuple[float, int, str, str]]:
    """(mtime, blocks bytes, path, name) of every regular file; vanished files skipped."""
    out: list[tuple[float, int, str, str]] = []
    try:
        entries = list(os.scandir(path))
    except OSError as exc:
        log.error("cannot list %s: %s", path, exc)
        return out
    for e in entries:
        try:
            st = e.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot stat %s: %s", e.path, exc)
            continue
        if e.is_file(follow_symlinks=False) and EXPORT_RE.match(e.name):
            out.append((st.st_mtime, st.st_blocks * 512, e.path, e.name))
    return out


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False  # deleted concurrently: fine
    except OSError as exc:
        log.error("cannot delete %s: %s", path, exc)
        return False


def sweep(path: str, max_age: float, pressure: bool) -> None:
    """Delete exports older than ``max_age``; under ``pressure``, oldest first to the low mark."""
    now = time.time()
    files = _scan(path)
    freed_age = freed_pressure = 0
    n_age = n_pressure = 0
    keep = []
    for mtime, size, p, name in files:
        # a generation in progress owns its temp file; only stale temps are removed
        if now - mtime > max_age:
            if _unlink(p):
                n_age += 1
                freed_age += size
        elif not name.startswith(TMP_PREFIX):
            keep.append((mtime, size, p, name))
    if n_age:
        log.info("freed %d files (%d bytes) older than %gs in %s", n_age, freed_age, max_age, path)
    if not pressure:
        return
    try:
        used = _used_pct(path)
    except OSError as exc:
        log.error("cannot stat %s: %s", path, exc)
        return
    if used <= config.CLEAN_HIGH_PCT:
        return
    start = used
    keep.sort()
    for _mtime, size, p, _name in keep:
        if used < config.CLEAN_LOW_PCT:
            break
        if _unlink(p):
            n_pressure += 1
            freed_pressure += size
        try:
            used = _used_pct(path)
        except OSError:
            break
    if n_pressure:
        log.info(
            "disk pressure on %s: %.1f%% used > %g%%: freed %d files (%d bytes), oldest first; "
            "now %.1f%% used",
            path, start, config.CLEAN_HIGH_PCT, n_pressure, freed_pressure, used,
        )
    elif time.monotonic() - _last_stuck_log[0] > 30:
        _last_stuck_log[0] = time.monotonic()
        log.warning(
            "disk pressure on %s: %.1f%% used > %g%% and no download left to delete "
            "(space held by other files)",
            path, used, config.CLEAN_HIGH_PCT,
        )


def main() -> None:
    """Sweep every interval until SIGTERM or SIGINT."""
    lazy = config.defect("lazy_cleanup")
    logsetup.setup(os.path.join(config.LOG_DIR, "cleaner.log"),
                   blackhole=config.defect("log_blackhole"), stdout=True,
                   torn=config.defect("torn_logs"))
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    interval = config.LAZY_CLEANER_INTERVAL if lazy else config.CLEANER_INTERVAL
    path = config.DOWNLOADS_DIR
    log.info(
        "cleaner started: %s every %gs, max age %gs, %s (defects: %s)",
        path, interval, config.MAX_AGE,
        "age only" if lazy
        else f"pressure above {config.CLEAN_HIGH_PCT:g}% down to {config.CLEAN_LOW_PCT:g}%",
        ",".join(sorted(config.DEFECTS)) or "none",
    )
    next_run = time.monotonic() + (interval if lazy else 0)
    while not stopping:
        now = time.monotonic()
        if now >= next_run:
            try:
                sweep(path, config.MAX_AGE, pressure=not lazy)
            except Exception as exc:  # keep cleaning whatever happens
                log.error("sweep failed: %s: %s", type(exc).__name__, exc)
            next_run = time.monotonic() + interval
        time.sleep(max(0.0, min(0.5, next_run - time.monotonic())))
    log.info("cleaner stopping")
    sys.exit(0)


if __name__ == "__main__":
    main()
