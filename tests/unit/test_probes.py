"""Probes against tiny local HTTP servers (no Docker): body completeness done right
(encoded length, HEAD, a total-time bound, close-delimited bodies), {nonce} and
generated bodies with a digest readback, and one client that never takes a proxy."""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, cast

import pytest
import requests

from harness import http
from harness.backend import ExecResult
from harness.probes import Prober, make_body, new_nonce
from harness.stack import Stack
from harness.target import Target, target_from_dict
from harness.timeline import LoadEvent, ProbeResult, StepResult, Timeline

GZ = gzip.compress(b"compressed hello " * 500)


class Handler(BaseHTTPRequestHandler):
    """Routes that misbehave in the ways real servers do."""

    store: ClassVar[dict[str, bytes]] = {}
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        headers.setdefault("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_PUT(self) -> None:
        n = int(self.headers.get("Content-Length", "0"))
        self.store[self.path] = self.rfile.read(n)
        self._send(201, b"stored")

    def do_GET(self) -> None:
        p = self.path
        if p == "/ok":
            self._send(200, b"all fine here")
        elif p == "/health":
            self._send(200, b'{"status": "ok"}')
        elif p == "/gzip":
            self._send(200, GZ, Content_Encoding="gzip")
        elif p == "/short":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.close_connection = True
        elif p == "/chunked-cut":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"5\r\nhello\r\n")
            self.wfile.flush()
            self.close_connection = True
        elif p == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"t")
                    self.wfile.flush()
                    time.sleep(0.05)  # the misbehaviour under test: a body that trickles
            except OSError:
                pass
            self.close_connection = True
        elif p.startswith("/close/"):
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"c" * int(p.rsplit("/", 1)[1]))
            self.close_connection = True
        elif p.startswith("/half/"):  # what was stored, cut in half, no length: a cut
            data = self.store.get("/r/" + p.rsplit("/", 1)[1], b"")
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.close_connection = True
        elif p in self.store:
            self._send(200, self.store[p])
        else:
            self._send(404, b"no such thing")


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


class FakeStack:
    """Just enough of a Stack for HTTP probes: the target and a base URL."""

    logs_synchronous = False

    def __init__(self, target: Target, port: int) -> None:
        self.target = target
        self.port = port
        self.marks_shown: bool | None = None

    def url(self, service: str, port: int | None = None) -> str:
        return f"http://127.0.0.1:{self.port}"

    def session(self) -> requests.Session:
        return http.session()  # what Stack.session() hands out


def prober(port: int, probes: dict[str, Any], **extra: Any) -> Prober:
    t = target_from_dict({
        "name": "local", "services": {"web": {"image": "x", "ports": [8080]}},
        "volumes": {"v": {"size": "1MiB", "mounts": [{"service": "web", "path": "/v"}]}},
        "probes": probes, **extra}, file="<local>")
    return Prober(cast(Stack, FakeStack(t, port)), Timeline(scenario="unit"))


def one(server: int, **step: Any) -> ProbeResult:
    return prober(server, {"p": {"service": "web", "steps": [step]}}).run("p")


def test_gzip_with_content_length_is_whole(server: int) -> None:
    s = one(server, path="/gzip", expect_text="compressed hello").steps[0]
    assert s.passed and s.body_complete, s.error
    assert s.bytes_received == len(b"compressed hello " * 500) > len(GZ)  # decoded size


def test_head_is_never_cut(server: int) -> None:
    s = one(server, method="HEAD", path="/ok").steps[0]
    assert s.passed and s.body_complete and s.bytes_received == 0, s.error


@pytest.mark.parametrize("path", ["/short", "/chunked-cut"])
def test_cut_bodies_are_not_complete(server: int, path: str) -> None:
    s = one(server, path=path).steps[0]
    assert not s.passed and not s.body_complete, s
    assert s.failed_request


def test_a_trickling_body_is_bounded_in_total_time(server: int) -> None:
    t0 = time.monotonic()
    s = one(server, path="/trickle", timeout=0.5).steps[0]
    took = time.monotonic() - t0
    assert took < 2.0, took  # 100 bytes at 20/s would take 5 s
    assert not s.passed and not s.body_complete and s.timed_out, s
    assert "within 0.5 s" in (s.error or "")


def test_close_delimited_body_checked_by_expected_size(server: int) -> None:
    ok = one(server, path="/close/5000", expect_bytes=5000).steps[0]
    assert ok.passed and ok.body_complete, ok.error
    cut = one(server, path="/close/3000", expect_bytes=5000).steps[0]
    assert not cut.passed and not cut.body_complete  # no framing: a short body may be cut
    assert "close-delimited" in (cut.error or "")


def test_close_delimited_prefix_of_the_write_is_cut_other_text_is_an_answer(
        server: int) -> None:
    pr = prober(server, {"put": {"service": "web", "steps": [
        {"method": "PUT", "path": "/r/{nonce}", "body_size": "16KiB", "expect_status": [201],
         "write": True},
        {"path": "/half/{nonce}", "expect_sha256": "{body_sha256}", "readback": True}]}})
    s = pr.run("put").steps[1]
    assert not s.passed and not s.body_complete and "cut short" in (s.error or ""), s
    other = one(server, path="/close/100", expect_text="not there").steps[0]
    assert not other.passed and other.body_complete  # an answer without it, not a cut


def test_put_of_generated_body_reads_back_by_digest_and_size(server: int) -> None:
    pr = prober(server, {"put": {"service": "web", "steps": [
        {"method": "PUT", "path": "/files/{nonce}.txt", "body_size": "16KiB",
         "expect_status": [201], "write": True},
        {"path": "/files/{nonce}.txt", "expect_bytes": "16KiB",
         "expect_sha256": "{body_sha256}", "expect_text": "{nonce}", "readback": True}]}})
    a, b = pr.run("put"), pr.run("put")
    assert a.passed and b.passed, (a.steps, b.steps)
    assert a.steps[0].target != b.steps[0].target  # a fresh nonce per run
    stored = [v for k, v in Handler.store.items() if k.startswith("/files/")]
    assert len(stored) >= 2 and all(len(v) == 16384 for v in stored)
    assert len({hashlib.sha256(v).hexdigest() for v in stored}) == len(stored)  # fresh content


def test_framed_body_with_other_content_is_whole_but_fails(server: int) -> None:
    """A framed answer with the wrong content is a real answer (a loss), not a cut body."""
    Handler.store["/files/known"] = b"old content"
    s = one(server, path="/files/known", expect_bytes=16384).steps[0]
    assert s.body_complete and not s.passed and "expected 16384" in (s.error or "")


def test_reread_repeats_with_the_same_nonce(server: int) -> None:
    pr = prober(server, {"put": {"service": "web", "steps": [
        {"method": "PUT", "path": "/r/{nonce}", "body_size": "8KiB", "expect_status": [201],
         "write": True},
        {"path": "/r/{nonce}", "expect_sha256": "{body_sha256}", "readback": True}]}})
    first = pr.run("put")
    again = pr.reread(first)
    assert again is not None and again.reread_of == first.t and "reread" in again.tags
    assert [s.readback for s in again.steps] == [True]  # the readback only, not the write
    assert again.steps[0].target == first.steps[1].target and again.passed
    Handler.store[first.steps[0].target] = b"damaged"  # damage that persists
    assert not pr.reread(first).passed  # type: ignore[union-attr]


def test_no_proxy_from_the_environment(server: int, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    pr = prober(server, {"p": {"service": "web", "steps": [{"path": "/ok"}]}},
                health={"service": "web", "path": "/health"})
    assert pr.run("p").passed
    h = pr.health()
    assert h is not None and h.status == "healthy"


def test_generated_bodies() -> None:
    n1, n2 = new_nonce(), new_nonce()
    assert n1 != n2 and n1.isalnum() and n1.islower()
    b = make_body(n1, 16384)
    assert len(b) == 16384 and b == make_body(n1, 16384) and b != make_body(n2, 16384)
    assert n1.encode() in b[:100] and not b.endswith((b"\n", b" "))
    assert len(make_body(n1, 1)) == 1 and make_body(n1, 0) == b""


class FakeService:
    """A service whose every command exits ``code`` printing ``out``."""

    def __init__(self, code: int, out: bytes) -> None:
        self.code, self.out = code, out

    def exec_bounded(self, cmd: Any, *, timeout: float, user: str = "") -> ExecResult:
        return ExecResult(self.code, self.out)


def exec_prober(svc: FakeService) -> Prober:
    t = target_from_dict({
        "name": "local", "services": {"db": {"image": "x"}},
        "volumes": {"v": {"size": "1MiB", "mounts": [{"service": "db", "path": "/v"}]}},
        "probes": {"set": {"kind": "exec", "service": "db", "write": True,
                           "command": ["redis-cli", "SET", "k{nonce}", "v"],
                           "expect_output": "OK", "readback": ["redis-cli", "GET", "k{nonce}"],
                           "readback_expect": "v"}}}, file="<local>")
    stack = FakeStack(t, 9)
    stack.service = lambda name: svc  # type: ignore[attr-defined]
    return Prober(cast(Stack, stack), Timeline(scenario="unit"))


def test_exec_write_refused_in_words_with_exit_0_is_not_acknowledged() -> None:
    """redis-cli exits 0 on an error reply: without its expected output it is a refusal."""
    refused = exec_prober(FakeService(
        0, b"MISCONF Errors writing to the AOF file: No space left on device\n")).run("set")
    s = refused.steps[0]
    assert s.write and s.status == 0 and s.text_missing
    assert not s.acknowledged and s.failed_request and len(refused.steps) == 1
    ok = exec_prober(FakeService(0, b"OK\nv\n")).run("set")
    assert ok.steps[0].acknowledged and ok.passed and len(ok.steps) == 2
    assert not exec_prober(FakeService(1, b"OK\n")).run("set").steps[0].acknowledged


def test_http_write_without_its_expected_text_is_not_acknowledged(server: int) -> None:
    """A 2xx answer that lacks the step's expect_text (api.php's 200 with an error) is no
    acknowledgement; with the text it is one."""
    def put(text: str) -> Any:
        return one(server, method="PUT", path="/w/{nonce}", body_size=8,
                   expect_status=[201], expect_text=text, write=True).steps[0]
    assert put("stored").acknowledged
    refused = put("saved")
    assert refused.status == 201 and refused.text_missing and not refused.acknowledged


def test_exec_into_a_stopped_service_is_a_failed_step_with_its_last_log_lines() -> None:
    """A server that aborted (engine 409) answers nothing: a failed request whose evidence is
    why it died, not an infrastructure error that ends the scenario."""
    crash = b"[FATAL] InnoDB: Error (Out of disk space) in rollback\nmysqld got signal 6 ;"
    run = exec_prober(FakeServiceDown(crash)).run("set")
    s = run.steps[0]
    assert not run.passed and s.failed_request and not s.acknowledged and s.status is None
    assert "not running" in (s.error or "") and "got signal 6" in s.body_excerpt
    assert s.service_down and not s.timed_out and not s.could_not_run


class FakeServiceDown(FakeService):
    """A service that has stopped: every exec is refused by the engine."""

    def exec_bounded(self, cmd: Any, *, timeout: float, user: str = "") -> ExecResult:
        return ExecResult(None, self.out, not_running=True)

    def __init__(self, tail: bytes) -> None:
        super().__init__(-1, tail)


def test_engine_409_on_exec_is_reported_as_not_running(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's answer for a stopped container (409 at the exec's creation, or an
    error at its start for one that died in between) becomes ``not_running`` with the log
    tail; any other engine error, the container still running, stays an infrastructure
    error."""
    import docker.errors
    import requests as rq

    from harness import engine
    from harness.errors import InfrastructureError

    def refusal(code: int) -> docker.errors.APIError:
        resp = rq.Response()
        resp.status_code = code
        return docker.errors.APIError("container abc is not running", response=resp)

    class Api:
        code = 409
        at = "create"

        def exec_create(self, *a: Any, **kw: Any) -> Any:
            if self.at == "create":
                raise refusal(self.code)
            return {"Id": "e1"}

        def exec_start(self, *a: Any, **kw: Any) -> Any:
            raise refusal(self.code)

    class Container:
        id = "abc"
        status = "running"
        attrs: ClassVar[dict[str, Any]] = {}

        def reload(self) -> None:
            pass

        def logs(self, **kw: Any) -> bytes:
            return b"".join(b"line %d\n" % i for i in range(40)) + b"mysqld got signal 6 ;\n"

    api = Api()
    monkeypatch.setattr(engine, "client", lambda: type("C", (), {"api": api})())
    ctr = Container()
    h = engine.Handle("db", cast(Any, ctr))
    res = h.exec_bounded(["mysql"], timeout=1.0)
    assert res.not_running and res.code is None and not res.timed_out
    assert res.output.decode().splitlines()[-1] == "mysqld got signal 6 ;"
    assert len(res.output.decode().splitlines()) == 15
    api.code = 500  # an engine error while the container runs
    with pytest.raises(InfrastructureError):
        h.exec_bounded(["mysql"], timeout=1.0)
    api.at = "start"  # created while it ran, started after it died: the engine says 500
    with pytest.raises(InfrastructureError):
        h.exec_bounded(["mysql"], timeout=1.0)
    ctr.status = "exited"
    res = h.exec_bounded(["mysql"], timeout=1.0)
    assert res.not_running and res.output.decode().endswith("mysqld got signal 6 ;")


class LateLogStack(FakeStack):
    """A service whose log shows its lines only from the ``flush_at``-th read on (a server
    that flushes its access log about once a second)."""

    def __init__(self, target: Target, lines: list[str], flush_at: int | None) -> None:
        super().__init__(target, 9)
        self.lines, self.flush_at, self.reads = lines, flush_at, 0

    def log_lines(self, service: str) -> list[tuple[float | None, str]]:
        self.reads += 1
        shown = self.flush_at is not None and self.reads >= self.flush_at
        return [(None, ln) for ln in self.lines] if shown else []

    def read_tails(self, items: Any) -> list[tuple[int, bytes]]:
        return []


def settle(flush_at: int | None, *,
           failed: bool = True) -> tuple[LateLogStack, float, Timeline]:
    t = target_from_dict({
        "name": "late", "services": {"web": {"image": "x", "ports": [8080]}},
        "volumes": {"v": {"size": "1MiB", "mounts": [{"service": "web", "path": "/v"}]}},
        "logs": [{"kind": "container", "service": "web"}],
        "bounds": {"error_record_seconds": 1.5}}, file="<late>")
    stack = LateLogStack(t, ['127.0.0.1 - - "PUT /dav/x HTTP/1.1" 507 0'], flush_at)
    pr = Prober(cast(Stack, stack), Timeline(scenario="unit"))
    s = StepResult(name="put", method="PUT", target="/dav/x", status=507 if failed else 201,
                   passed=not failed, elapsed=0.01, write=True)
    pr.tl.add(ProbeResult(t=pr.tl.now(), probe="put", kind="http", steps=(s,), write=True))
    t0 = time.monotonic()
    pr.final_logs()
    return stack, time.monotonic() - t0, pr.tl


def test_final_logs_wait_for_a_late_flush_and_only_as_long_as_needed() -> None:
    """The record of a failed request flushed late is read before judging; reading stops as
    soon as it is there, and waits at most the error-record bound when it never comes."""
    late, took, tl = settle(flush_at=4)
    assert late.reads >= 4 and took < 1.5
    assert [r.text for r in tl.logs()] == ['127.0.0.1 - - "PUT /dav/x HTTP/1.1" 507 0']
    prompt, took, _ = settle(flush_at=1)
    assert prompt.reads == 1 and took < 0.5  # nothing awaited: no extra reads
    calm, took, _ = settle(flush_at=None, failed=False)
    assert calm.reads == 1 and took < 0.5  # no failed request: nothing to wait for
    never, took, _ = settle(flush_at=None)
    assert 1.2 <= took < 3.0 and never.reads > 3  # polled up to the bound, then judged


def marks_settle(stack: LateLogStack, marks: list[str]) -> tuple[float, Timeline]:
    """Log marks sent (recorded as the battery records them), then the final read."""
    pr = Prober(cast(Stack, stack), Timeline(scenario="unit"))
    for m in marks:
        pr.tl.add(LoadEvent(pr.tl.now(), "log_mark", None, 0, m))
    t0 = time.monotonic()
    pr.final_logs()
    return time.monotonic() - t0, pr.tl


def late_target(**extra: Any) -> Target:
    return target_from_dict({
        "name": "late", "services": {"web": {"image": "x", "ports": [8080]}},
        "volumes": {"v": {"size": "1MiB", "mounts": [{"service": "web", "path": "/v"}]}},
        "bounds": {"error_record_seconds": 1.0}, **extra}, file="<late>")


def test_marks_no_source_shows_are_waited_for_once_per_stack() -> None:
    """An app whose logs never show a request (no access log): the first run waits one bound
    for its first mark, learns that none comes, and later runs on the stack do not wait."""
    stack = LateLogStack(late_target(), ["app started"], flush_at=1)
    took, tl = marks_settle(stack, ["fulldisk-mark-a-1", "fulldisk-mark-a-2"])
    assert 0.8 <= took < 2.5 and stack.marks_shown is False
    assert "log_marks_shown" in tl.facts
    stack.reads = 0
    took, tl = marks_settle(stack, ["fulldisk-mark-b-1"])
    assert stack.reads == 1 and took < 0.5  # nothing awaited: one read, no poll
    assert "log_marks_shown" in tl.facts


def test_marks_a_source_shows_are_awaited_until_they_appear() -> None:
    """Once a source has shown a mark, a mark not shown yet is waited for (a late flush)."""
    stack = LateLogStack(late_target(), ["GET /fulldisk-mark-a-1 200",
                                         "GET /fulldisk-mark-a-2 200"], flush_at=3)
    took, tl = marks_settle(stack, ["fulldisk-mark-a-1", "fulldisk-mark-a-2"])
    assert stack.marks_shown is True and stack.reads >= 3 and took < 1.0
    assert "log_marks_shown" not in tl.facts
    stack.reads = 0
    took, _ = marks_settle(stack, ["fulldisk-mark-c-9"])  # never shown: waited a bound
    assert 0.8 <= took < 2.5 and stack.marks_shown is True


def test_synchronous_logs_are_read_once() -> None:
    """An in-process app writes its records as it answers: no wait for a late flush,
    whether a mark or the record of a failed request is missing."""
    stack = LateLogStack(late_target(), [], flush_at=None)
    stack.logs_synchronous = True  # type: ignore[misc]
    took, _ = marks_settle(stack, ["fulldisk-mark-a-1"])
    assert stack.reads == 1 and took < 0.5 and stack.marks_shown is False


def test_no_log_source_means_no_wait() -> None:
    """A target whose every service opts out of its container output has no sink: nothing
    is read or waited for."""
    t = late_target(services={"web": {"image": "x", "ports": [8080], "log_output": False}})
    assert t.logs == []
    stack = LateLogStack(t, [], flush_at=None)
    took, _ = marks_settle(stack, ["fulldisk-mark-a-1"])
    assert stack.reads == 0 and took < 0.5
