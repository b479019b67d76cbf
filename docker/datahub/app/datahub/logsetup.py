"""File logging: the hardened handler, and the ``log_blackhole`` defect.

Format: ``%(asctime)s %(levelname)s %(name)s: %(message)s``, one record per line.

Hardened (:class:`SafeFileHandler`): each record is one ``os.write`` of the whole
line on an O_APPEND fd, under an flock. A refused or short write is undone
(ftruncate back to the size before the write), the record is counted as dropped
and written to stderr together with the error. The next record that can be
written is preceded by a line announcing how many records were dropped.

Defect ``log_blackhole`` (:class:`BlackholeFileHandler`): a buffered
``logging.FileHandler`` whose errors are swallowed: no stderr, no count, no
marker; a short write leaves a torn line, and buffered leftovers may land later.

Defect ``torn_logs`` (:class:`TornFileHandler`): a buffered writer flushed once per
record, C stdio style: a flush that only partly fits (the unused tail of the file's
last page on a full disk) leaves a partial record in the file, and whatever the disk
refused is discarded, not retried. Python's default ``handleError`` reports the error
on stderr; the log file itself never says that records are missing, and the next
record written once space is back is glued to the partial one.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import sys
import threading

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_dropped_lock = threading.Lock()
_dropped_total = 0  # records this process could not write to a log file


def dropped_total() -> int:
    """Records this process could not write to a log file."""
    return _dropped_total


def _count_drop() -> None:
    global _dropped_total
    with _dropped_lock:
        _dropped_total += 1


class OneLineFormatter(logging.Formatter):
    """Escapes newlines (messages, tracebacks) so that every line is one whole record."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line."""
        text = super().format(record)
        return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


def _close_fd(handler: SafeFileHandler | TornFileHandler) -> None:
    if handler.fd is not None:
        try:
            os.close(handler.fd)
        except OSError:
            pass
        handler.fd = None


def _open_append(path: str) -> int:
    """The log file opened for appending, created if missing."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _stderr(text: str) -> None:
    data = text.encode("utf-8", "backslashreplace")
    try:
        while data:
            n = os.write(2, data)
            data = data[n:]
    except OSError:
        pass


class SafeFileHandler(logging.Handler):
    """Hardened: whole lines or nothing; losses go to stderr, are counted and announced."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.fd: int | None = None
        self.pending_drops = 0  # dropped since the last record that was written

    def _open(self) -> int:
        if self.fd is None:
            self.fd = _open_append(self.path)
        return self.fd

    def _write_whole(self, data: bytes) -> None:
        fd = self._open()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            before = os.fstat(fd).st_size
            try:
                n = os.write(fd, data)
            except OSError:
                self._undo(fd, before)
                raise
            if n != len(data):
                self._undo(fd, before)
                # a short write: the disk is full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        finally:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError:
                pass

    @staticmethod
    def _undo(fd: int, before: int) -> None:
        try:
            if os.fstat(fd).st_size > before:
                os.ftruncate(fd, before)
        except OSError:
            pass

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record, or drop it as the class says."""
        try:
            line = self.format(record) + "\n"
        except Exception:  # a broken record must not break the request
            self.handleError(record)
            return
        data = line.encode("utf-8", "backslashreplace")
        if self.pending_drops:
            marker = logging.LogRecord(
                "datahub.log", logging.WARNING, __file__, 0,
                "dropped %d log records while the disk was full", (self.pending_drops,), None,
            )
            data = (self.format(marker) + "\n").encode() + data
        try:
            self._write_whole(data)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) and self.fd is not None:
                # e.g. EBADF/EIO: reopen next time
                try:
                    os.close(self.fd)
                except OSError:
                    pass
                self.fd = None
            self.pending_drops += 1
            _count_drop()
            _stderr(f"logging: cannot write {self.path}: {exc}; record: {line}")
            return
        self.pending_drops = 0

    def close(self) -> None:
        """Close the file descriptor, then the handler."""
        self.acquire()
        try:
            _close_fd(self)
        finally:
            self.release()
        super().close()


class BlackholeFileHandler(logging.FileHandler):
    """Defect ``log_blackhole``: a plain buffered FileHandler; every error swallowed."""

    def __init__(self, path: str) -> None:
        super().__init__(path, mode="a", encoding="utf-8", delay=True)

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record, or drop it as the class says."""
        try:
            super().emit(record)  # may open the file: errors must not escape either
        except Exception:
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """Swallow the error."""
        pass  # the bug: nothing on stderr, no count, no marker


class TornFileHandler(logging.Handler):
    """Defect ``torn_logs``: flush per record, keep what fit, discard the rest, say nothing
    in the file."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.fd: int | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record, or drop it as the class says."""
        try:
            data = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
            if self.fd is None:
                self.fd = _open_append(self.path)
            os.write(self.fd, data)  # the bug: a short write is not retried, the rest is gone
        except Exception:
            self.handleError(record)  # stock logging: a traceback on stderr, nothing in the file

    def close(self) -> None:
        """Close the file descriptor, then the handler."""
        _close_fd(self)
        super().close()


def setup(logfile: str, blackhole: bool, stdout: bool = False, level: int = logging.INFO,
          torn: bool = False) -> logging.Handler:
    """Configure the root logger: one file handler (and, for the cleaner, stdout)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler: logging.Handler
    if blackhole:
        handler = BlackholeFileHandler(logfile)
    elif torn:
        handler = TornFileHandler(logfile)
    else:
        handler = SafeFileHandler(logfile)
    handler.setFormatter(OneLineFormatter(FORMAT))
    root.addHandler(handler)
    if stdout:
        sh = logging.StreamHandler(sys.stdout)
        sh.setFormatter(OneLineFormatter(FORMAT))
        root.addHandler(sh)
    root.setLevel(level)
    return handler
