"""The one HTTP client of the harness: a requests Session that never takes a proxy from
the environment and sends nothing but to 127.0.0.1. Flows, health, counters, log marks
and readiness all use it.

Its connections keep one deadline per request (``deadline()``) over connect, sending,
the status line and the headers: requests' own timeout bounds each socket read, so a
server trickling its headers a byte a second would otherwise hold a request for minutes.
Interim 1xx answers (103 Early Hints) are skipped to the final status."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool

from .errors import InfrastructureError

LOOPBACK = "127.0.0.1"
INTERIM_MAX = 20  # 1xx answers skipped before one is taken as final (a bounded loop)
HEADER_LINES_MAX = 100  # as http.client: lines of one interim answer's header block


@dataclass
class Deadline:
    """When the request must have its status and headers, and whether it was cut there."""

    at: float
    expired: bool = False


_current = threading.local()


@contextmanager
def deadline(at: float) -> Iterator[Deadline]:
    """Requests this thread sends inside the block must have status line and headers by
    ``at`` (a ``time.monotonic()`` value); past it the socket is shut and the request fails
    with a transport error, and the yielded Deadline says ``expired``."""
    d = Deadline(at)
    before = getattr(_current, "deadline", None)
    _current.deadline = d
    try:
        yield d
    finally:
        _current.deadline = before


class _FinalResponse(http.client.HTTPResponse):
    """http.client skips only 100 Continue; this skips every interim 1xx but 101."""

    def _read_status(self) -> tuple[str, int, str]:
        read: Callable[[], tuple[str, int, str]] = super()._read_status  # type: ignore[misc]
        for _ in range(INTERIM_MAX):
            version, status, reason = read()
            if not 100 <= status < 200 or status in (100, 101):
                return version, status, reason  # 100 is http.client's own to skip
            for _ in range(HEADER_LINES_MAX + 1):  # the interim answer's headers
                line = self.fp.readline(65537)
                if line in (b"\r\n", b"\n", b""):
                    break
        return read()


class _Connection(urllib3.connection.HTTPConnection):
    """A connection whose send and header read end at this thread's deadline."""

    response_class = _FinalResponse
    _watch: threading.Timer | None = None

    def _wake(self, d: Deadline) -> None:
        d.expired = True
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked in http.client
            except OSError:
                pass

    def _stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    def request(self, *args: Any, **kwargs: Any) -> None:
        d: Deadline | None = getattr(_current, "deadline", None)
        self._stop()
        if d is not None:
            self._watch = threading.Timer(max(0.0, d.at - time.monotonic()), self._wake, (d,))
            self._watch.daemon = True
            self._watch.start()
        try:
            super().request(*args, **kwargs)
        except BaseException:
            self._stop()
            raise

    def getresponse(self) -> Any:
        try:
            return super().getresponse()
        finally:
            self._stop()


class _Pool(urllib3.connectionpool.HTTPConnectionPool):
    """A pool of deadline-keeping connections."""

    ConnectionCls = _Connection


class _Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter with the deadline-keeping pool for http://."""

    def send(self, request: requests.PreparedRequest, *args: Any,
             **kwargs: Any) -> requests.Response:
        """Outside a ``deadline()`` block a request's status and headers are due within
        its (total) timeout, not within that much per socket read."""
        timeout = kwargs.get("timeout")
        if getattr(_current, "deadline", None) is not None or \
                not isinstance(timeout, int | float):
            return super().send(request, *args, **kwargs)
        with deadline(time.monotonic() + timeout):
            return super().send(request, *args, **kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {**self.poolmanager.pool_classes_by_scheme,
                                                   "http": _Pool}


def session() -> requests.Session:
    """A new Session (its own cookie jar) that ignores proxy variables of the environment."""
    s = requests.Session()
    s.trust_env = False  # never a proxy, never ~/.netrc: services are on loopback only
    s.mount("http://", _Adapter())
    return s


def loopback(url: str) -> str:
    """The one gate every request passes: nothing but 127.0.0.1 is ever a target."""
    if not url.startswith(f"http://{LOOPBACK}:"):
        raise InfrastructureError(f"refusing to send a request to {url!r}",
                                  "fulldisk reaches services only on 127.0.0.1")
    return url
