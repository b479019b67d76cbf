"""The rules ``fulldisk init`` applies to what it saw: which folders make a volume (merged
to the folder a team would mount), which files are logs and which are a database's data,
how large a volume must be, why a service that exited did so, and the exec write+readback
probe of a server it recognises. Pure functions: ``starter`` gathers the observations.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from posixpath import basename, dirname

from .writes import under

KIB = 1024
MIB = 1024 * KIB
# A battery writes into a data volume while it is steady, full and recovering: probe
# writes of up to 64 KiB with fresh content per run (tens of runs, some repeated after
# recovery), log floods and session files. 4 MiB holds about 60 such writes beyond what the
# app keeps there; a logs volume needs less (a flood is 40 lines).
FLOOR = {"data": 4 * MIB, "logs": 1 * MIB}
STEP = 1 * MIB

# Folders that hold many packages' or users' things: never the folder a team mounts for
# one app, so written subfolders are not merged into them.
SHARED = frozenset({
    "/", "/var", "/var/lib", "/var/cache", "/var/log", "/var/spool", "/var/tmp", "/var/www",
    "/var/opt", "/var/mail", "/var/local", "/srv", "/opt", "/home", "/root", "/mnt", "/media",
    "/usr", "/usr/local", "/usr/share", "/usr/local/share", "/usr/lib", "/usr/local/lib",
    "/etc", "/data", "/tmp", "/run", "/var/run", "/var/lock", "/run/lock",
})
# Scratch and runtime folders: pid files, sockets, locks, temp files. A small disk there
# tests nothing a team cares about, and a tmpfs over /tmp or /run hides what the image put.
SCRATCH = ("/tmp", "/var/tmp", "/run", "/var/run", "/var/lock", "/dev/shm")
# Where a folder the app's user owns but the warm-up did not write is still proposed:
# the trees packages and images put their writable data in.
DATA_TREES = ("/var/lib", "/var/cache", "/var/spool", "/srv", "/data", "/var/www", "/opt",
              "/var/opt")

# A database's own files: append-only files, write-ahead logs, redo logs and journals are
# data (lose them and you lose writes), however "log"-like their names or their opening.
_DATA_FILE = re.compile(
    r"(\.aof|\.rdb|\.wal|-wal|-shm|-journal|\.sqlite\d?|\.db|\.ibd|\.frm|\.MY[DI]|\.MA[DI])$"
    r"|^(appendonly|ibdata\d*|ib_logfile\d*|ib_buffer_pool|aria_log\b|aria_log_control"
    r"|undo\d+|ibtmp\d*|ddl_recovery|mysql-bin\.|binlog\.|[0-9A-F]{24}$)", re.IGNORECASE)
_DATA_DIRS = ("pg_wal", "pg_xlog", "appendonlydir", "wal", "journal")


def is_data_file(path: str) -> bool:
    """A database's data, append-only or write-ahead file (never a log source)."""
    parts = path.split("/")
    return bool(_DATA_FILE.search(basename(path))) or any(p in _DATA_DIRS for p in parts[:-1])


def log_named(path: str) -> bool:
    """Named like a log file: ``*.log`` (also rotated ``*.log.1``), or a file in /var/log."""
    if is_data_file(path):
        return False
    name = basename(path)
    return bool(re.search(r"\.log(\.\d+)?$", name)) or (under(path, "/var/log") and "." in name)


def reads_as_log(sample: bytes) -> bool:
    """Whether the tail of a file reads as log records: text lines of some length with
    words in them (a Redis AOF is text too, but lines like ``*3`` and ``$3``)."""
    if not sample or b"\0" in sample:
        return False
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        return False
    lines = [ln for ln in text.splitlines()[1:] if ln.strip()] or text.splitlines()
    if not lines:
        return False
    lengths = sorted(len(ln) for ln in lines)
    worded = sum(1 for ln in lines if " " in ln.strip())
    return lengths[len(lengths) // 2] >= 20 and worded * 2 >= len(lines)


def _binary(sample: bytes) -> bool:
    """Not text: a NUL, or more than a tenth of control characters or invalid UTF-8."""
    if b"\0" in sample:
        return True
    text = sample.decode("utf-8", "replace")
    odd = sum(1 for c in text if c == "\ufffd" or (ord(c) < 32 and c not in "\n\r\t"))
    return odd * 10 > len(text)


def is_log(path: str, *, appended: bool, sample: bytes | None) -> bool:
    """A file the server logs to: named like one (and text, where its tail was read), or
    held open for appending and reading as log records; never a database's data file."""
    if is_data_file(path):
        return False
    if log_named(path):
        return not sample or not _binary(sample)
    return appended and sample is not None and reads_as_log(sample)


def is_scratch(path: str) -> bool:
    """A runtime or temp folder: pid files, sockets, locks (never proposed as a volume)."""
    return any(under(path, s) for s in SCRATCH)


MAX_OWNED_FOLDERS = 50  # an owned tree with more folders is an app's code, not its data


def owned_data(owned: Iterable[str]) -> tuple[list[str], list[str]]:
    """Of the folders a process user owns, those proposed as volumes (outermost, outside
    scratch and log folders) and those left out because their tree holds more than
    MAX_OWNED_FOLDERS folders (code deployed as the app's user, such as /var/www/html)."""
    paths = sorted({p for p in owned if not is_scratch(p) and not under(p, "/var/log")})
    roots = [p for p in paths if not any(q != p and under(p, q) for q in paths)]
    keep: list[str] = []
    big: list[str] = []
    for r in roots:
        (big if sum(1 for p in paths if under(p, r)) > MAX_OWNED_FOLDERS else keep).append(r)
    return keep, big


def merge(folders: Iterable[str], children: Mapping[str, Sequence[str] | None]) -> list[str]:
    """Folders merged to the folder a team would mount: two or more written folders under
    one parent that is not a shared folder, and whose entries are all among them (the
    listing ``children`` gives, None when unknown), become that parent; nested ones fold
    into the outermost."""
    found = set(folders)
    changed = True
    while changed:
        changed = False
        found = {f for f in found if not any(g != f and under(f, g) for g in found)}
        by_parent: dict[str, set[str]] = {}
        for f in found:
            by_parent.setdefault(dirname(f), set()).add(f)
        for parent, kids in sorted(by_parent.items()):
            listing = children.get(parent)
            if (len(kids) < 2 or parent in SHARED or is_scratch(parent) or listing is None
                    or not set(listing) <= kids):
                continue
            found = (found - kids) | {parent}
            changed = True
    return sorted(found)


def size_for(used: int, role: str) -> tuple[int, str]:
    """A volume's size and why: what the app used, doubled, plus 1 MiB, rounded up to
    whole MiB, and never below the floor a battery's writes need."""
    floor = FLOOR["logs" if role == "logs" else "data"]
    want = used * 2 + STEP
    size = -(-max(floor, want) // STEP) * STEP
    why = ("twice what it used plus 1 MiB" if want > floor else
           f"the floor for a {'logs' if role == 'logs' else 'data'} volume, room for the "
           "battery's probe writes and floods")
    return size, why


_PATH = re.compile(r"""["'`]?(/[^\s"'`:,;()]+)""")


def exit_hint(tail: str, service: str) -> str:
    """The fix for a service that exited during the warm-up, from its last log lines."""
    for line in reversed(tail.splitlines()):
        low = line.lower()
        paths = _PATH.findall(line)
        where = paths[0] if paths else "a path it writes"
        if "permission denied" in low or "operation not permitted" in low:
            return (f"{where} is not writable by the user the image runs as: chown it to "
                    "that user in the image, or where a volume is mounted there set its "
                    "owner = \"uid:gid\" to the service's user")
        if "read-only file system" in low:
            return f"{where} is read-only: it needs a writable folder (a volume) there"
        if "no space left on device" in low or "disk full" in low or "is full" in low:
            return f"{where} has no space left: free the disk the engine writes to"
        if "no such file or directory" in low or "does not exist" in low:
            return (f"{where} is missing: the image expects a folder, file or volume there "
                    "(create it in the image, or mount one)")
    return (f"give it the command that keeps it serving: --command {service}='...', or "
            "read the log lines above")


@dataclass(frozen=True)
class ExecStub:
    """An exec write+readback probe for a server found in a service."""

    server: str
    command: list[str]
    readback: list[str]
    readback_expect: str
    body_size: str = "16KiB"
    timeout: float = 10.0
    expect_output: str | None = None
    note: str = ""


def _as(owner: str | None, cmd: list[str], setpriv: bool) -> list[str]:
    """``cmd`` run as ``owner`` (uid:gid) through util-linux's setpriv where it is needed:
    a file written as root in the app's folder would lock the app out of it."""
    if not owner or owner.startswith("0:") or not setpriv:
        return cmd
    uid, _, gid = owner.partition(":")
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *cmd]


def server_stubs(processes: Iterable[str], clients: Iterable[str],
                 sqlite_files: Sequence[tuple[str, str]], *,
                 exec_user: str = "") -> list[ExecStub]:
    """Exec probes for the servers found: Redis, PostgreSQL, MariaDB/MySQL by their
    process names (with their client in the image), SQLite by its files (the largest,
    through sqlite3, python3 or php, as the file's owner when execs run as root; the
    image's ``exec_user`` otherwise, which cannot change user)."""
    procs, have = set(processes), set(clients)
    out: list[ExecStub] = []
    if "redis-server" in procs and "redis-cli" in have:
        out.append(ExecStub(
            "Redis", ["sh", "-c", "printf %s '{body}' | redis-cli -x SET fulldisk:{nonce}"],
            ["sh", "-c", "printf %s \"$(redis-cli GET fulldisk:{nonce})\" | sha256sum"],
            "{body_sha256}", expect_output="OK",
            note="redis-cli exits 0 on an error reply: the write must answer OK"))
    sql = next((c for c in ("mariadb", "mysql") if c in have), None)
    if procs & {"mariadbd", "mysqld"} and sql:
        table = "fulldisk_probe.t"
        out.append(ExecStub(
            "MariaDB/MySQL",
            [sql, "-e", "CREATE DATABASE IF NOT EXISTS fulldisk_probe; CREATE TABLE IF NOT "
             f"EXISTS {table} (k VARCHAR(40) PRIMARY KEY, v LONGTEXT) ENGINE=InnoDB; "
             f"INSERT INTO {table} VALUES ('{{nonce}}', '{{body}}')"],
            [sql, "-N", "-B", "-e", f"SELECT SHA2(v, 256) FROM {table} WHERE k = '{{nonce}}'"],
            "{body_sha256}", note="as the image's exec user (root: unix-socket login on "
            "Debian); add -u USER -pPASSWORD where the server wants a password"))
    if "postgres" in procs and "psql" in have:
        out.append(ExecStub(
            "PostgreSQL",
            ["psql", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c", "CREATE TABLE IF NOT "
             "EXISTS fulldisk_probe (k text PRIMARY KEY, v text)", "-c",
             "INSERT INTO fulldisk_probe VALUES ('{nonce}', '{body}')"],
            ["psql", "-U", "postgres", "-tA", "-c", "SELECT encode(sha256(convert_to(v, "
             "'UTF8')), 'hex') FROM fulldisk_probe WHERE k = '{nonce}'"],
            "{body_sha256}", timeout=20.0, note="PostgreSQL acknowledges writes into its "
            "preallocated WAL for megabytes after the disk is full: keep body_size large"))
    if sqlite_files:
        path, owner = sqlite_files[0]
        setpriv = "setpriv" in have and exec_user.split(":")[0] in ("", "0", "root")
        create = "CREATE TABLE IF NOT EXISTS fulldisk_probe (k TEXT PRIMARY KEY, v TEXT)"
        if "sqlite3" in have:
            cmd = ["sqlite3", path, f"{create}; INSERT INTO fulldisk_probe VALUES "
                   "('{nonce}', '{body}');"]
            back = ["sh", "-c", f"printf %s \"$(sqlite3 {path} \"SELECT v FROM fulldisk_probe "
                    "WHERE k = '{nonce}'\")\" | sha256sum"]
        elif "python3" in have:
            cmd = ["python3", "-c", f"import sqlite3, sys; d = sqlite3.connect({path!r}); "
                   f"d.execute({create!r}); d.execute('INSERT INTO fulldisk_probe VALUES "
                   "(?, ?)', sys.argv[1:]); d.commit()", "{nonce}", "{body}"]
            back = ["python3", "-c", "import hashlib, sqlite3, sys; d = sqlite3.connect("
                    f"{path!r}); v = d.execute('SELECT v FROM fulldisk_probe WHERE k = ?', "
                    "sys.argv[1:]).fetchone(); print(hashlib.sha256(v[0].encode()).hexdigest()"
                    " if v else 'missing')", "{nonce}"]
        elif "php" in have:
            cmd = ["php", "-r", f"$d = new PDO('sqlite:{path}'); $d->exec('{create}'); "
                   "$d->prepare('INSERT INTO fulldisk_probe VALUES (?, ?)')->execute("
                   "[$argv[1], $argv[2]]);", "{nonce}", "{body}"]
            back = ["php", "-r", f"$d = new PDO('sqlite:{path}'); $s = $d->prepare('SELECT v "
                    "FROM fulldisk_probe WHERE k = ?'); $s->execute([$argv[1]]); "
                    "echo hash('sha256', (string) $s->fetchColumn());", "{nonce}"]
        else:
            return out
        out.append(ExecStub(
            "SQLite", _as(owner, cmd, setpriv), _as(owner, back, setpriv), "{body_sha256}",
            note=f"a table of its own in the app's database {path}, written as its "
            "owner; point it at another file to keep the app's schema untouched"))
    return out
