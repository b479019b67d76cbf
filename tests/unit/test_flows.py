"""HTTP flows against a small local app (no Docker): a flow stops at its first failed step,
a step whose {value} was never captured is never sent, and the judge sees only the
failure the app caused (graceful_refusal does not count the consequences)."""

from __future__ import annotations

import email.parser
import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, cast

import pytest
import requests

from harness import http
from harness.errors import ConfigError
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
    login_broken: ClassVar[bool] = False  # the login's own write (a session row) fails
    uploads: ClassVar[dict[str, tuple[str, bytes, str]]] = {}  # filename -> (field, data, type)
    fields: ClassVar[dict[str, str]] = {}
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
        elif self.path.startswith("/photos/") and self.path[8:] in self.uploads:
            self._send(200, self.uploads[self.path[8:]][1])
        elif self.path.startswith("/notes/") and "sid=1" in self.headers.get("Cookie", ""):
            self._send(200, b"your note")
        else:
            self._send(403 if self.path.startswith("/notes/") else 404, b"no")

    def _multipart(self) -> None:
        """Store each uploaded file under its file name, as a photo upload does."""
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        msg = email.parser.BytesParser().parsebytes(head + raw)
        if not msg.is_multipart():
            self._send(400, b"not multipart")
            return
        for part in msg.get_payload():  # type: ignore[union-attr]
            name = part.get_param("name", header="content-disposition")
            data = part.get_payload(decode=True)
            filename = part.get_filename()
            if filename:
                self.uploads[filename] = (name, data, part.get_content_type())
            else:
                self.fields[name] = data.decode()
        self._send(500, b"disk full") if self.broken else self._send(201, b"stored")

    def do_POST(self) -> None:
        if self.path == "/upload":
            self.seen.append("POST /upload")
            self._multipart()
            return
        self._read()
        self.seen.append(f"POST {self.path}")
        if self.path == "/login/":
            if self.broken or self.login_broken:
                self._send(500, b"Internal Server Error")
            else:
                self._send(302, b"", Location="/notes/", **{"Set-Cookie": "sid=1; Path=/"})
        elif self.path == "/notes/" and "sid=1" not in self.headers.get("Cookie", ""):
            self._send(403, b"log in first")
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
    NotesApp.login_broken = False
    NotesApp.uploads.clear()
    NotesApp.fields.clear()
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


def prober(port: int, steps: list[dict[str, Any]], tl: Timeline | None = None,
           **probes: dict[str, Any]) -> Prober:
    t = target_from_dict({
        "name": "local", "services": {"web": {"image": "x", "ports": [8080]}},
        "volumes": {"v": {"size": "1MiB", "mounts": [{"service": "web", "path": "/v"}]}},
        "probes": {"p": {"service": "web", "steps": steps}, **probes}}, file="<local>")
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


UPLOAD = [
    {"name": "upload", "method": "POST", "path": "/upload", "form": {"album": "a-{nonce}"},
     "files": {"photo": {"body_size": "64KiB", "filename": "x-{nonce}.jpg",
                         "content_type": "image/jpeg"},
               "thumb": {"body_size": "4KiB"}},
     "expect_status": [201], "write": True},
    {"name": "view", "path": "/photos/x-{nonce}.jpg", "expect_bytes": "64KiB",
     "expect_sha256": "{body_sha256}", "readback": True},
]


def test_a_multipart_upload_sends_fresh_files_and_reads_back_by_digest(app: int) -> None:
    pr = prober(app, UPLOAD)
    a, b = pr.run("p"), pr.run("p")
    assert a.passed and b.passed, (a, b)
    photos = {k: v for k, v in NotesApp.uploads.items() if k.startswith("x-")}
    assert len(photos) == 2  # one per run, named with the run's nonce
    digests = {hashlib.sha256(data).hexdigest() for _, data, _ in photos.values()}
    assert len(digests) == 2  # fresh content per run
    field, data, ctype = next(iter(photos.values()))
    assert field == "photo" and len(data) == 64 * 1024 and ctype == "image/jpeg"
    thumbs = [v for k, v in NotesApp.uploads.items() if k.startswith("fulldisk-")]
    assert len(thumbs) == 2 and all(len(d) == 4096 and t == "application/octet-stream"
                                    for _, d, t in thumbs)
    assert not {hashlib.sha256(d).hexdigest() for _, d, _ in thumbs} & digests
    assert NotesApp.fields["album"].startswith("a-fd")  # form values go beside the files


def test_a_refused_upload_is_not_read_back(app: int) -> None:
    NotesApp.broken = True
    res = prober(app, UPLOAD).run("p")
    assert [s.status for s in res.steps] == [500] and res.not_run == ("view",)


@pytest.mark.parametrize(("step", "said"), [
    ({"multipart": {}}, "unknown key 'multipart'; accepted here: name, method, path, form, "
                        "files, json,"),
    ({"files": {"photo": {"sizee": "1KiB", "body_size": "1KiB"}}},
     "unknown key 'sizee'; accepted here: body_size, filename, content_type"),
    ({"method": "GET", "files": {"photo": {"body_size": "1KiB"}}}, "files on a GET"),
    ({"files": {"photo": {"body_size": "1KiB", "filename": "../x"}}}, "one plain file name"),
    ({"files": {"photo": {"body_size": "1KiB", "content_type": "jpeg"}}}, "media type"),
    ({"body_size": "1KiB", "files": {"photo": {"body_size": "1KiB"}}}, "own body_size"),
])
def test_a_bad_upload_step_is_refused_with_the_keys_it_accepts(
        step: dict[str, Any], said: str) -> None:
    with pytest.raises(ConfigError) as e:
        prober(1, [{"method": "POST", "path": "/upload", **step}])
    assert said in e.value.message, e.value


NOTE = {"service": "web", "session": "p", "steps": [
    {"name": "create", "method": "POST", "path": "/notes/", "form": {"text": "{nonce}"},
     "expect_status": [201], "capture": {"note": r"id=(\w+)"}, "write": True},
    {"name": "view", "path": "/notes/{note}/", "expect_text": "your note", "readback": True},
]}


def test_a_logged_in_write_while_full_uses_the_session_made_before_the_fill(app: int) -> None:
    tl = Timeline(scenario="unit", volume="v")
    pr = prober(app, LOGIN_FLOW, tl, note=NOTE)
    tl.phase("steady")
    first = pr.run("note")  # no session yet: the login probe runs first, then the note
    assert first.passed, first
    logins = tl.probes("p", tag="session")
    assert len(logins) == 1 and logins[0].passed and logins[0].t < first.t
    tl.phase("fill")
    NotesApp.login_broken = True  # the login's own write fails while full
    NotesApp.seen.clear()
    assert not pr.run("p").passed  # a login while full fails, and leaves the session alone
    NotesApp.seen.clear()
    note = pr.run("note")
    assert note.passed, note
    assert NotesApp.seen == ["POST /notes/", "GET /notes/n42/"]  # the write is its only write


def test_without_a_session_made_before_the_fill_nothing_is_sent(app: int) -> None:
    tl = Timeline(scenario="unit", volume="v")
    pr = prober(app, LOGIN_FLOW, tl, note=NOTE)
    tl.phase("fill")
    res = pr.run("note")
    assert res.steps == () and res.not_run == ("create", "view") and not res.passed
    assert "session probe 'p' had no green run before the fill" in res.stopped
    assert NotesApp.seen == []


def test_a_probe_without_the_session_is_refused_by_the_app(app: int) -> None:
    """The other way: the same note flow with no session is answered 403 (so the test
    above passes because of the session, not because the app lets anyone write)."""
    res = prober(app, LOGIN_FLOW, note={**NOTE, "session": None}).run("note")
    assert [s.status for s in res.steps] == [403]


@pytest.mark.parametrize(("session", "said"), [
    ("nope", "unknown probe 'nope'"),
    ("note", "name another http probe"),
])
def test_a_bad_session_is_refused(session: str, said: str) -> None:
    with pytest.raises(ConfigError) as e:
        prober(1, LOGIN_FLOW, note={**NOTE, "session": session})
    assert said in e.value.message and "probes.note.session" in e.value.message


def test_the_readme_django_pattern_loads() -> None:
    """README's logged-in write example is a valid config (its probes with a service)."""
    import re
    import tomllib
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```toml\n(.*?)```", text, re.S)
                 if 'session = "login"' in b)
    t = target_from_dict({
        "name": "django", "services": {"web": {"image": "x", "ports": [8000]}},
        "volumes": {"v": {"size": "1MiB", "mounts": [{"service": "web", "path": "/v"}]}},
        **tomllib.loads(block)}, file="README.md")
    assert t.probes["note"].session == "login" and t.probes["note"].write
