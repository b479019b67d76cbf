"""HTTP flows against a small local app (no Docker): a flow stops at its first failed step,
a step whose {value} was never captured is never sent, and the judge sees only the
failure the app caused (graceful_refusal does not count the consequences)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, cast

import pytest
import requests

from harness import http
from harness.invariants import Rules, graceful_refusal
from harness.probes import Prober
from harness.stack import Stack
from harness.target import target_from_dict
from harness.timeline import DiskSample, ProbeResult, Timeline


class NotesApp(BaseHTTPRequestHandler):
    """A login and notes app: login fails with 500 while ``broken``; a note page without
    a session is 403, an unknown note 404 (what a flow that runs on would be told)."""

    seen: ClassVar[list[str]] = []
    broken: ClassVar[bool] = False
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _read(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def do_GET(self) -> None:
        self.seen.append(f"GET {self.path}")
        if self.path == "/login/":
            self._send(200, b'<form><input name="csrf" value="tok123"></form>')
        elif self.path == "/login-without-token/":
            self._send(200, b"<form>no token here</form>")
        elif self.path.startswith("/notes/") and "sid=1" in self.headers.get("Cookie", ""):
            self._send(200, b"your note")
        else:
            self._send(403 if self.path.startswith("/notes/") else 404, b"no")

    def do_POST(self) -> None:
        self._read()
        self.seen.append(f"POST {self.path}")
        if self.path == "/login/":
            if self.broken:
                self._send(500, b"Internal Server Error")
            else:
                self._send(302, b"", Location="/notes/", **{"Set-Cookie": "sid=1; Path=/"})
        elif self.path == "/notes/":
            self._send(201, b"note id=n42") if not self.broken else self._send(500, b"error")
        else:
            self._send(404, b"no")


@pytest.fixture(scope="module")
def app() -> Iterator[int]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), NotesApp)
    srv.daemon_threads = True
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    NotesApp.seen.clear()
    NotesApp.broken = False
    yield
    NotesApp.broken = False


class FakeStack:
    """Just enough of a Stack for HTTP probes: the target and a base URL."""

    def __init__(self, target: Any, port: int) -> None:
        self.target = target
        self.port = port

    def url(self, service: str, port: int | None = None) -> str:
        return f"http://127.0.0.1:{self.port}"

    def session(self) -> requests.Session:
        return http.session()


LOGIN_FLOW = [
    {"name": "form", "path": "/login/", "capture": {"csrf": 'name="csrf" value="([^"]+)"'}},
    {"name": "login", "method": "POST", "path": "/login/",
     "form": {"csrf": "{csrf}", "user": "u", "password": "secret"}, "expect_status": [302],
     "write": True},
    {"name": "list", "path": "/notes/", "expect_text": "your note"},
    {"name": "create", "method": "POST", "path": "/notes/", "form": {"text": "{nonce}"},
     "expect_status": [201], "capture": {"note": r"id=(\w+)"}},
    {"name": "view", "path": "/notes/{note}/", "expect_text": "your note", "readback": True},
]


def prober(port: int, steps: list[dict[str, Any]], tl: Timeline | None = None) -> Prober:
    t = target_from_dict({
        "name": "local", "services": {"web": {"image": "x", "ports": [8080]}},
        "volumes": {"v": {"size": "1MiB", "mounts": [{"service": "web", "path": "/v"}]}},
        "probes": {"p": {"service": "web", "steps": steps}}}, file="<local>")
    return Prober(cast(Stack, FakeStack(t, port)), tl or Timeline(scenario="unit"))


def test_a_healthy_flow_runs_every_step(app: int) -> None:
    res = prober(app, LOGIN_FLOW).run("p")
    assert res.passed, res
    assert [s.status for s in res.steps] == [200, 302, 200, 201, 200]
    assert res.not_run == () and res.stopped == ""


def test_a_flow_stops_at_its_first_failed_step(app: int) -> None:
    NotesApp.broken = True
    res = prober(app, LOGIN_FLOW).run("p")
    assert [s.status for s in res.steps] == [200, 500]
    assert NotesApp.seen == ["GET /login/", "POST /login/"]  # nothing after the failure
    assert res.not_run == ("list", "create", "view")
    assert "'login' failed" in res.stopped and "status 500" in res.stopped
    assert not res.passed


def test_a_capture_that_finds_nothing_fails_its_step_and_nothing_is_sent_with_braces(
        app: int) -> None:
    steps = [{**LOGIN_FLOW[0], "path": "/login-without-token/"}, *LOGIN_FLOW[1:]]
    res = prober(app, steps).run("p")
    assert len(res.steps) == 1 and not res.steps[0].passed
    assert "capture 'csrf' found no match" in (res.steps[0].error or "")
    assert res.not_run == ("login", "list", "create", "view")
    assert not any("{" in r for r in NotesApp.seen)


def test_a_reread_without_the_captured_value_sends_nothing(app: int) -> None:
    pr = prober(app, LOGIN_FLOW)
    NotesApp.broken = True
    first = pr.run("p")  # stopped at the login: {note} was never captured
    NotesApp.seen.clear()
    again = pr.reread(first)
    assert again is not None and again.steps == ()
    assert again.not_run == ("view",) and "{note} has no value" in again.stopped
    assert NotesApp.seen == [] and not again.passed


def _judged(app: int) -> Any:
    tl = Timeline(scenario="unit", volume="v")
    pr = prober(app, LOGIN_FLOW, tl)
    full = {"bytes_total": 1 << 20, "bytes_free": 0, "inodes_total": 256, "inodes_free": 200}
    tl.phase("steady")
    assert pr.run("p").passed
    tl.phase("fill")
    tl.add(DiskSample(t=tl.now(), volume="v", **full))
    tl.phase("act")
    NotesApp.broken = True
    res = pr.run("p")
    return graceful_refusal(tl, Rules()), res


def test_graceful_refusal_judges_the_first_failure_only(app: int) -> None:
    v, res = _judged(app)
    assert res.not_run  # without the stop, a 403/404 would follow the 500
    assert v.applicable and v.passed, v
    assert "judged 2 requests" in v.summary


def test_a_flow_that_runs_on_would_fail_graceful_refusal(app: int) -> None:
    """The other way: the same timeline with the consequences recorded as sent steps is
    judged a failure, so the test above proves the stop is what makes the difference."""
    tl = Timeline(scenario="unit", volume="v")
    pr = prober(app, LOGIN_FLOW, tl)
    tl.phase("steady")
    assert pr.run("p").passed
    tl.phase("act")
    tl.add(DiskSample(t=tl.now(), volume="v", bytes_total=1 << 20, bytes_free=0,
                      inodes_total=256, inodes_free=200))
    NotesApp.broken = True
    res = pr.run("p")
    base = pr.stack.url("web")
    with http.session() as s:  # what the old flow sent after the failed login
        extra = [pr.request(s, base, step, {"nonce": "x", "csrf": "tok123", "note": "{note}"})
                 for step in pr.target.probes["p"].steps[2:]]
    runon = ProbeResult(res.t, res.probe, res.kind, (*res.steps, *extra), write=True)
    tl.events[tl.events.index(res)] = runon
    v = graceful_refusal(tl, Rules())
    assert v.applicable and not v.passed, v
    assert "client error 403" in v.summary
