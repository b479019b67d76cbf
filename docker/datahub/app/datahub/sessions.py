"""Server-side session files: one JSON file per session, ``sess_<id>`` (like PHP).

Hardened save: temp file + single write + verify + fsync + rename + verify size; any
failure raises :class:`SessionSaveError` (the login then answers 503).

Defect ``silent_sessions`` (Flask-Session 0.3 / PHP files handler): ``open(path, 'w')``
then write, OSError swallowed. On a full disk the file is left empty (or is not
created at all) and the login still redirects as if it had worked.
"""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
from typing import Any

from . import config

log = logging.getLogger("datahub.sessions")

COOKIE = "datahub_session"
_ID_RE = re.compile(r"^[0-9a-f]{32}$")


class SessionSaveError(Exception):
    """The session could not be saved: the login answers 503."""


def _path(sid: str) -> str:
    return os.path.join(config.SESSIONS_DIR, f"sess_{sid}")


def new_id() -> str:
    """A new random session id (32 hex digits)."""
    return secrets.token_hex(16)


def save(sid: str, data: dict[str, Any]) -> None:
    """Write the session file (silent_sessions: errors swallowed)."""
    payload = json.dumps(data, sort_keys=True).encode()
    if config.defect("silent_sessions"):
        try:
            with open(_path(sid), "w") as f:
                f.write(payload.decode())
        except OSError:
            pass  # the bug: the session is lost and nobody is told
        return
    _save_atomic(sid, payload)


def _save_atomic(sid: str, payload: bytes) -> None:
    final = _path(sid)
    tmp = os.path.join(config.SESSIONS_DIR, f".tmp_{sid}_{secrets.token_hex(4)}")
    fd = -1
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        n = os.write(fd, payload)
        if n != len(payload):
            raise OSError(28, f"No space left on device (short write: {n} of {len(payload)} bytes)")
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, final)
        size = os.stat(final).st_size
        if size != len(payload):
            raise OSError(5, f"session file {final} has {size} of {len(payload)} bytes")
    except OSError as exc:
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass
        for p in (tmp,):
            try:
                os.unlink(p)
            except OSError:
                pass
        raise SessionSaveError(f"could not save session: {exc.strerror or exc}") from exc


def load(sid: str | None) -> dict[str, Any] | None:
    """The session named by the cookie; missing, empty or corrupt = logged out (as PHP)."""
    if not sid or not _ID_RE.match(sid):
        return None
    try:
        with open(_path(sid), "rb") as f:
            raw = f.read(65536)
        data = json.loads(raw) if raw else None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("user") else None


def delete(sid: str | None) -> None:
    """Remove the session file, if the id is well formed and the file exists."""
    if sid and _ID_RE.match(sid):
        try:
            os.unlink(_path(sid))
        except FileNotFoundError:
            pass


def gc(max_age: float = config.SESSION_TTL) -> int:
    """Delete sessions older than ``max_age`` seconds (PHP's session.gc_maxlifetime)."""
    removed = 0
    cutoff = time.time() - max_age
    try:
        entries = list(os.scandir(config.SESSIONS_DIR))
    except OSError:
        return 0
    for e in entries:
        if not (e.name.startswith("sess_") or e.name.startswith(".tmp_")):
            continue
        try:
            if e.stat().st_mtime < cutoff:
                os.unlink(e.path)
                removed += 1
        except OSError:
            pass
    return removed
