"""In-process Stack: a WSGI app called in this process, its writable paths on fake disks.

The same target config, probes, loads, Timeline and invariants as the container battery,
in milliseconds and with no Docker: HTTP probes go through the app's WSGI callable (Flask,
Django, any WSGI app) instead of a port, the volumes whose writes are Python-level are
:mod:`~harness.fakedisk` disks at the paths the app writes, and the app's output is what
its own sinks keep: its log files on those disks, plus everything it writes to
stdout/stderr (``sys.stdout``/``sys.stderr``, ``os.write`` to fd 1/2, ``logging`` stream
handlers), read as the container log source of the service the app stands for.

What it cannot see: writes from C extensions (SQLite and most database drivers open
files themselves), from other processes (gunicorn's master and workers, nginx, a
cleaner or cron job), and anything about the real server in front (buffering, cut
bodies of a proxy). Those volumes stay out of the in-process battery; the container
battery judges them. A request runs in the test's own thread: a handler that hangs
hangs the test (no time bound can stop it).
"""

from __future__ import annotations

import io
import logging
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from http.client import HTTPMessage
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote_to_bytes, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ProtocolError

from .backend import ExecResult, Runner
from .battery import Outcome, counter_against_served, volume_scenario
from .errors import UnknownName, UsageError
from .fakedisk import FakeDisk, FakeDisks
from .target import Target
from .timeline import Usage

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
RECOVERY_SECONDS = 1.0
"""In-process recovery bound: nothing runs in the background, so an app that recovers
does so on the next request; a long bound would only make failing runs slow."""


class Output(io.TextIOBase):
    """The app's stdout and stderr: whole lines, each with the wall time it was written."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[float | None, str]] = []
        self._partial = ""

    def writable(self) -> bool:
        """Always."""
        return True

    def write(self, text: str) -> int:
        """Keep whole lines, stamped now; a line without its newline waits for the rest."""
        now = time.time()
        *whole, self._partial = (self._partial + text).split("\n")
        self.lines.extend((now, line) for line in whole)
        return len(text)

    def end(self) -> None:
        """Keep a last line that never got its newline."""
        if self._partial:
            self.lines.append((time.time(), self._partial))
            self._partial = ""


class _Body(io.RawIOBase):
    """A WSGI response body read lazily, as a socket would deliver it: an exception in
    the app's iterator cuts the body (logged to stderr, as a server does)."""

    def __init__(self, head: list[bytes], rest: Iterator[bytes], result: Iterable[bytes],
                 errors: Output) -> None:
        super().__init__()
        self._buf = b"".join(head)
        self._rest: Iterator[bytes] | None = rest
        self._result = result
        self._errors = errors

    def readable(self) -> bool:
        """Always."""
        return True

    def readinto(self, b: Any) -> int:
        """Fill ``b`` from the app's iterator; 0 at the end."""
        while not self._buf and self._rest is not None:
            try:
                self._buf = next(self._rest)
            except StopIteration:
                self._rest = None
            except Exception as e:
                self._rest = None
                self._errors.write("[in-process server] Error handling request (response "
                                   "cut short)\n" + traceback.format_exc())
                self.close()
                raise ProtocolError("response cut short by the app", e) from e
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        if n == 0:
            self.close()
        return n

    def close(self) -> None:
        """Close the app's iterable (WSGI requires it) once."""
        if not self.closed:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        super().close()


class WSGIAdapter(HTTPAdapter):
    """A requests transport that calls a WSGI app instead of opening a connection."""

    def __init__(self, app: WSGIApp, errors: Output) -> None:
        super().__init__()
        self.app = app
        self.errors = errors

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: Any = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        """Run the app on the request; the response streams from its iterator."""
        url = urlsplit(request.url or "/")
        body = request.body or b""
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method or "GET",
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(url.path or "/").decode("latin-1"),
            "QUERY_STRING": url.query,
            "SERVER_NAME": url.hostname or "127.0.0.1",
            "SERVER_PORT": str(url.port or 80),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_LENGTH": str(len(data)),
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": url.scheme or "http",
            "wsgi.input": io.BytesIO(data),
            "wsgi.errors": self.errors,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for k, v in request.headers.items():
            key = k.upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[f"HTTP_{key}"] = v
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            started[:] = [status, headers]
            return lambda chunk: None  # the legacy write() callable: unused by modern apps

        try:
            result = self.app(environ, start_response)
            it = iter(result)
            head: list[bytes] = []
            while not started:  # a generator app calls start_response on its first item
                head.append(next(it))
        except Exception:
            # What a WSGI server does with an exception before the response: log, 500.
            self.errors.write("[in-process server] Error handling request\n"
                              + traceback.format_exc())
            result, it, head = [b"Internal Server Error"], iter(()), [b"Internal Server Error"]
            started[:] = ["500 Internal Server Error",
                          [("Content-Type", "text/plain"), ("Content-Length", "21")]]
        status, headers = started
        msg = HTTPMessage()
        for k, v in headers:
            msg[k] = v
        body_io = _Body(head, it, result, self.errors)
        raw = urllib3.HTTPResponse(
            body=body_io, headers=headers,
            status=int(status.split(" ", 1)[0]), reason=status.partition(" ")[2],
            preload_content=False, decode_content=False,
            original_response=_Original(msg, body_io),  # type: ignore[arg-type]
            request_url=request.url)
        return self.build_response(request, raw)


class _Original:
    """The parts of an http.client response that requests (cookies) and urllib3 read."""

    def __init__(self, msg: HTTPMessage, body: _Body) -> None:
        self.msg = msg
        self._body = body

    def isclosed(self) -> bool:
        """Whether the body was read to its end (or cut)."""
        return self._body.closed

    def close(self) -> None:
        """Drop the body (closes the app's iterable)."""
        self._body.close()


class _NoExec:
    """Exec probes cannot run in-process."""

    def __init__(self, name: str) -> None:
        self.name = name

    def exec(self, cmd: Sequence[str]) -> tuple[int, str]:
        """Refuse with the fix."""
        raise UsageError(f"exec probe on service {self.name!r} cannot run in-process",
                         "leave exec probes to the container battery (fulldisk run)")

    def exec_bounded(self, cmd: Sequence[str], *, timeout: float, user: str = "") -> ExecResult:
        """Refuse with the fix, as ``exec`` does."""
        self.exec(cmd)
        raise AssertionError("unreachable: exec refuses")


class InProcessStack:
    """A target's WSGI app in this process, its Python-written volumes on fake disks.

    ``app`` is a factory called once at start, after the disks exist (an app that opens
    its log file at import then opens it on its disk). ``service`` is the target service
    the app stands for (its container log source gets the app's stdout/stderr); every
    HTTP probe, whatever its service, reaches the app. ``volumes`` are the volumes whose
    writes are Python-level (default: every volume mounted into ``service``); the other
    mount paths of the service exist as plain folders without a size limit.
    """

    logs_synchronous = True  # the app's records are written as it answers

    def __init__(self, target: Target, app: Callable[[], WSGIApp], *, disks: FakeDisks,
                 service: str | None = None, volumes: Iterable[str] | None = None,
                 recovery_seconds: float = RECOVERY_SECONDS) -> None:
        svc = service or _front(target)
        if svc not in target.services:
            raise UnknownName(f"unknown service {svc!r}",
                              f"one of: {', '.join(target.services)}")
        mounted: dict[str, dict[str, str]] = {}  # volume -> {folder: path in the service}
        for v, spec in target.volumes.items():
            for m in spec.mounts:
                if m.service == svc:
                    mounted.setdefault(v, {})[m.subdir or v] = m.path
        chosen = list(volumes) if volumes is not None else list(mounted)
        unknown = [v for v in chosen if v not in mounted]
        if unknown:
            raise UsageError(f"volume(s) {', '.join(unknown)} are not mounted into service "
                             f"{svc!r}", f"choose from {', '.join(mounted) or 'none'}")
        bounds = target.bounds.model_copy(update={"recovery_seconds": min(
            recovery_seconds, target.bounds.recovery_seconds)})
        self.target = target.model_copy(update={"bounds": bounds})
        self.service_name = svc
        self.disks = disks
        self._factory = app
        self._paths = mounted
        self._chosen = chosen
        self.volumes: dict[str, FakeDisk] = {}
        self.out = Output()
        self.app: WSGIApp | None = None
        self._saved: tuple[Any, ...] | None = None
        self.marks_shown: bool | None = None

    # --- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> Self:
        """Disks at the volumes' paths, output captured, then the app made."""
        fs = self.disks.fs
        for name in self._chosen:
            roots = {f: fs.absnormpath(p) for f, p in self._paths[name].items()}
            spec = self.target.volumes[name]
            declared = self.disks.disks.get(next(iter(roots.values())))
            if declared is None:
                logs = {m.subdir or name for m in spec.mounts
                        if m.logs or spec.role == "logs"}
                declared = self.disks.disk(roots, spec.size, inodes=spec.inodes, name=name,
                                           logs=logs & set(roots))
            declared.name = name  # a disk the test declared there itself takes the name
            self.volumes[name] = declared
        for paths in self._paths.values():
            for path in paths.values():
                fs.makedirs(path, exist_ok=True)
        root = logging.getLogger()
        self._saved = (sys.stdout, sys.stderr, list(root.handlers), root.level,
                       self._redirect_stream_handlers())
        sys.stdout = sys.stderr = self.out
        # The app starts as in a fresh process: no handler on the root logger (pytest's
        # capture handler would swallow its records, and Flask adds its stderr handler
        # only when no handler exists); they come back at stop.
        for h in list(root.handlers):
            root.removeHandler(h)
        self.app = self._factory()
        return self

    def _redirect_stream_handlers(self) -> list[tuple[logging.StreamHandler[Any], Any]]:
        """Point logging handlers that write to the real stdout/stderr at the capture."""
        std = {id(s) for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)}
        moved: list[tuple[logging.StreamHandler[Any], Any]] = []
        loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values()
                                          if isinstance(lg, logging.Logger))]
        for lg in loggers:
            for h in lg.handlers:
                if (isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
                        and id(h.stream) in std):
                    moved.append((h, h.setStream(self.out)))
        return moved

    def stop(self) -> None:
        """Restore stdout, stderr and logging; close the log handlers the app added (their
        files live on the fake disks, gone after the test)."""
        self.out.end()
        if self._saved is None:
            return
        out, err, handlers, level, moved = self._saved
        self._saved = None
        sys.stdout, sys.stderr = out, err
        root = logging.getLogger()
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
                try:
                    h.close()
                except Exception:  # a handler that cannot close must not hide the verdicts
                    pass
        for h in handlers:
            if h not in root.handlers:
                root.addHandler(h)
        root.setLevel(level)
        for h, stream in moved:
            h.setStream(stream)

    # --- Backend -----------------------------------------------------------------------
    def url(self, service: str, port: int | None = None) -> str:
        """A nominal base URL (the session sends it to the app, never to the network)."""
        ports = self.target.services[service].ports
        p = port if port is not None else (ports[0] if ports else 80)
        return f"http://127.0.0.1:{p}"

    def session(self) -> requests.Session:
        """A session whose every request (http or https, any host) goes to the app."""
        if self.app is None:
            raise UsageError("the in-process stack is not started",
                             "use it as a context manager: with InProcessStack(...) as stack")
        http = requests.Session()
        http.trust_env = False
        adapter = WSGIAdapter(self.app, self.out)
        http.mount("http://", adapter)
        http.mount("https://", adapter)
        return http

    def service(self, name: str) -> Runner:
        """Exec probes have no process to run in: refused with the fix."""
        return _NoExec(name)

    def volume(self, name: str) -> FakeDisk:
        """An in-process volume (a fake disk) by its config name."""
        if name not in self.volumes:
            raise UsageError(f"volume {name!r} is not in-process here",
                             f"in-process volumes: {', '.join(self.volumes) or 'none'}; "
                             "volumes written by C extensions or other processes need the "
                             "container battery")
        return self.volumes[name]

    def usage(self, *names: str) -> dict[str, Usage]:
        """Usage of the in-process volumes (all of them when none is named)."""
        return {n: self.volume(n).usage() for n in names or tuple(self.volumes)}

    def check_alive(self) -> None:
        """An in-process app cannot exit apart from this process."""

    def restarts(self) -> dict[str, int]:
        """An in-process app never restarts."""
        return {self.service_name: 0}

    def untested_paths(self) -> dict[str, list[str]]:
        """Nothing to report: an in-process app has no container filesystem to diff."""
        return {}

    def reset(self) -> None:
        """Every in-process volume emptied (log files truncated in place)."""
        for d in self.volumes.values():
            d.reset()

    def log_lines(self, service: str) -> list[tuple[float | None, str]]:
        """The app's stdout/stderr when ``service`` is the one it stands for."""
        return list(self.out.lines) if service == self.service_name else []

    def read_file(self, service: str, path: str) -> bytes | None:
        """An in-process app has no container filesystem: such log files are not here."""
        return None

    def file_kind(self, service: str, path: str) -> str | None:
        """No container filesystem: nothing is there."""
        return None

    def read_tails(self, items: list[tuple[str, str, int]]) -> list[tuple[int, bytes]]:
        """Log files on the in-process volumes, from byte offsets (-1: not here)."""
        out: list[tuple[int, bytes]] = []
        for vol, path, offset in items:
            data = self.volumes[vol].read(path) if vol in self.volumes else None
            out.append((-1, b"") if data is None else (len(data), data[offset:]))
        return out


def _front(target: Target) -> str:
    for p in target.probes.values():
        if p.kind == "http" and p.core:
            return p.service
    return next(iter(target.services))


def battery(stack: InProcessStack) -> list[Outcome]:
    """The battery's volume scenario (steady, fill, act, free, recover) on every
    in-process volume, and its counter scenario when the target counts downloads on an
    in-process volume; judged by the same invariants as in the container battery. Every
    volume is reset before each scenario (the container battery never resets: cases that
    leave the app's data behind get a stack of their own there)."""
    out = []
    for name in stack.volumes:
        stack.reset()
        # settle 0: no cleaner or other process frees space behind the app's back here
        out.append(volume_scenario(stack, name, scenario=f"inprocess-{name}", settle=0))
    dl = stack.target.downloads
    if dl is not None and stack.target.counters and dl.volume in stack.volumes:
        stack.reset()
        out.append(counter_against_served(stack))
    return out
