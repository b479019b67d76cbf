"""Settings from the environment, and the defect switches (DATAHUB_DEFECTS)."""
from __future__ import annotations

import os
import sys

KNOWN_DEFECTS = (
    "silent_sessions",
    "log_blackhole",
    "unbounded_downloads",
    "lazy_cleanup",
    "miscounted_downloads",
    "poisoned_cache",
    "blind_health",
    "streamed_exports",
    "torn_logs",
    "stale_partial_exports",
)


def parse_defects(raw: str | None) -> frozenset[str]:
    """``name[,name...]``; blanks ignored. Raises ValueError naming an unknown switch."""
    names = [n.strip() for n in (raw or "").replace(" ", ",").split(",") if n.strip()]
    for name in names:
        if name not in KNOWN_DEFECTS:
            raise ValueError(name)
    return frozenset(names)


def load_defects() -> frozenset[str]:
    """Read DATAHUB_DEFECTS; an unknown name stops the process with exit code 2."""
    try:
        return parse_defects(os.environ.get("DATAHUB_DEFECTS", ""))
    except ValueError as exc:
        sys.stderr.write(
            f"datahub: unknown defect '{exc.args[0]}'; known: {', '.join(KNOWN_DEFECTS)}\n"
        )
        sys.stderr.flush()
        raise SystemExit(2) from None


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        return default


DEFECTS: frozenset[str] = load_defects()


def defect(name: str) -> bool:
    """Whether the defect switch ``name`` (a known one) is on."""
    assert name in KNOWN_DEFECTS, name
    return name in DEFECTS


SESSIONS_DIR = os.environ.get("DATAHUB_SESSIONS_DIR", "/var/lib/datahub/sessions")
CACHE_DIR = os.environ.get("DATAHUB_CACHE_DIR", "/var/cache/datahub")
DOWNLOADS_DIR = os.environ.get("DATAHUB_DOWNLOADS_DIR", "/var/lib/datahub/downloads")
DB_DIR = os.environ.get("DATAHUB_DB_DIR", "/var/lib/datahub/db")
DB_PATH = os.path.join(DB_DIR, "datahub.sqlite")
LOG_DIR = os.environ.get("DATAHUB_LOG_DIR", "/var/log/datahub")

# Every path the app writes, as reported by /health.
WRITABLE_PATHS = {
    "sessions": SESSIONS_DIR,
    "cache": CACHE_DIR,
    "downloads": DOWNLOADS_DIR,
    "db": DB_DIR,
    "logs": LOG_DIR,
}
# The web server's log folder, when this container can see it (one machine, one health).
WEB_LOG_DIR = os.environ.get("DATAHUB_WEB_LOG_DIR", "/var/log/nginx")
if os.path.isdir(WEB_LOG_DIR):
    WRITABLE_PATHS["weblogs"] = WEB_LOG_DIR

# /health thresholds (hardened).
HEALTH_DEGRADED_PCT = _env_float("DATAHUB_HEALTH_DEGRADED_PCT", 80.0)
HEALTH_MIN_FREE_BYTES = 2 * 4096

# Downloads: keep this share of the downloads filesystem free (bytes), and a few inodes.
DOWNLOAD_RESERVE_PCT = _env_float("DATAHUB_DOWNLOAD_RESERVE_PCT", 15.0)
DOWNLOAD_RESERVE_INODES = 4
DOWNLOAD_DEFAULT_SIZES = {"csv": 64 * 1024, "geojson": 2 * 1024 * 1024}
# stale_partial_exports: exports are generated in this work folder on the cache disk, then
# moved into the downloads folder.
EXPORT_WORK_DIR = os.environ.get("DATAHUB_EXPORT_WORK_DIR", os.path.join(CACHE_DIR, "exports"))
DOWNLOAD_MAX_SIZE = int(_env_float("DATAHUB_DOWNLOAD_MAX_SIZE", 256 * 1024 * 1024))

# Sessions older than this (mtime) are garbage-collected at login, like PHP's gc_maxlifetime.
SESSION_TTL = _env_float("DATAHUB_SESSION_TTL", 1440.0)

# Cleaner.
MAX_AGE = _env_float("DATAHUB_MAX_AGE", 60.0)
CLEANER_INTERVAL = _env_float("DATAHUB_CLEANER_INTERVAL", 0.1)
LAZY_CLEANER_INTERVAL = _env_float("DATAHUB_LAZY_CLEANER_INTERVAL", 3600.0)
CLEAN_HIGH_PCT = _env_float("DATAHUB_CLEAN_HIGH_PCT", 50.0)
CLEAN_LOW_PCT = _env_float("DATAHUB_CLEAN_LOW_PCT", 30.0)
