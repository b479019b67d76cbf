"""SQLite: users and the counters (the download counter of the Exversion story).

Counters live in SQLite so that they survive gunicorn workers and restarts. The db
volume may itself be full: an increment that cannot be committed is kept in memory
(``_pending``) and folded in at the next successful write; reading never raises.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading

from werkzeug.security import check_password_hash, generate_password_hash

from . import config

log = logging.getLogger("datahub.db")

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS downloads (
    dataset TEXT NOT NULL,
    format TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (dataset, format)
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL DEFAULT 0
);
"""

USERS = {"alice": "wonderland", "bob": "builder"}
# Cheap hashes: the harness logs in often; this is a test fixture, not a vault.
HASH_METHOD = "pbkdf2:sha256:10000"

_lock = threading.Lock()
_pending: dict[tuple[str, str], int] = {}  # uncommitted increments: (table key) -> delta


def connect(path: str | None = None) -> sqlite3.Connection:
    """A connection in autocommit mode that waits up to 5 s for a lock."""
    conn = sqlite3.connect(path or config.DB_PATH, timeout=5.0, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def init_db(path: str) -> bool:
    """Create schema and the two users if missing. Returns True if anything was written."""
    conn = connect(path)
    try:
        have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        users = set()
        if "users" in have:
            users = {r[0] for r in conn.execute("SELECT name FROM users")}
        if {"users", "downloads", "counters"} <= have and set(USERS) <= users:
            return False
        conn.execute("BEGIN IMMEDIATE")
        for stmt in SCHEMA.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        for name, password in USERS.items():
            conn.execute(
                "INSERT OR IGNORE INTO users (name, password_hash) VALUES (?, ?)",
                (name, generate_password_hash(password, method=HASH_METHOD)),
            )
        conn.execute("COMMIT")
        return True
    finally:
        conn.close()


def ensure_db() -> None:
    """At start: the db volume may be an empty tmpfs. Never fatal."""
    try:
        os.makedirs(config.DB_DIR, exist_ok=True)
        if init_db(config.DB_PATH):
            log.warning("created database %s (schema and users were missing)", config.DB_PATH)
    except (OSError, sqlite3.Error) as exc:
        log.error("cannot initialise database %s: %s", config.DB_PATH, exc)


def check_user(name: str, password: str) -> bool:
    """Whether the user exists and the password matches its hash."""
    conn = connect()
    try:
        row = conn.execute("SELECT password_hash FROM users WHERE name = ?", (name,)).fetchone()
    finally:
        conn.close()
    return bool(row) and check_password_hash(row[0], password)


def _apply(conn: sqlite3.Connection, key: tuple[str, str], delta: int) -> None:
    kind, name = key
    if kind == "download":
        dataset, fmt = name.split("\0", 1)
        conn.execute(
            "INSERT INTO downloads (dataset, format, count) VALUES (?, ?, ?) "
            "ON CONFLICT (dataset, format) DO UPDATE SET count = count + excluded.count",
            (dataset, fmt, delta),
        )
    else:
        conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            (name, delta),
        )


def _increment(key: tuple[str, str]) -> None:
    with _lock:
        _pending[key] = _pending.get(key, 0) + 1
        batch = dict(_pending)
        try:
            conn = connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
                for k, d in batch.items():
                    _apply(conn, k, d)
                conn.execute("COMMIT")
            finally:
                conn.close()
        except (OSError, sqlite3.Error) as exc:
            log.error("cannot update counter %s in %s: %s (kept in memory)",
                      key[1].replace("\0", "/"), config.DB_PATH, exc)
            return
        for k, d in batch.items():
            left = _pending.get(k, 0) - d
            if left:
                _pending[k] = left
            else:
                _pending.pop(k, None)


def count_download(dataset: str, fmt: str) -> None:
    """Count one download served in full."""
    _increment(("download", f"{dataset}\0{fmt}"))


def count(name: str) -> None:
    """Add one to the counter ``name``."""
    _increment(("counter", name))


def read_counters() -> tuple[dict[str, int], list[str]]:
    """{'downloads_served': n, <counter>: n, ...}, plus errors. Never raises."""
    values: dict[str, int] = {}
    errors: list[str] = []
    try:
        conn = connect()
        try:
            conn.execute("PRAGMA query_only = ON")
            total = conn.execute("SELECT COALESCE(SUM(count), 0) FROM downloads").fetchone()
            values["downloads_served"] = total[0]
            for name, value in conn.execute("SELECT name, value FROM counters"):
                values[name] = value
        finally:
            conn.close()
    except (OSError, sqlite3.Error) as exc:
        errors.append(f"cannot read {config.DB_PATH}: {exc}")
    with _lock:
        for (kind, name), delta in _pending.items():
            key = "downloads_served" if kind == "download" else name
            values[key] = values.get(key, 0) + delta
    return values, errors
