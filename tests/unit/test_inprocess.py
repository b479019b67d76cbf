"""The in-process Stack: WSGI transport, output capture, and the battery on a small app."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from harness.errors import UsageError
from harness.fakedisk import FakeDisks
from harness.inprocess import InProcessStack, WSGIApp, battery
from harness.probes import Prober
from harness.target import Target, target_from_dict
from harness.timeline import Timeline

SESS = "/var/lib/notes/sessions"


def notes_target(**extra: Any) -> Target:
    """A one-service target with a login whose session lives on a small volume."""
    return target_from_dict({
        "name": "notes",
        "services": {"web": {"image": "notes:dev", "ports": [8000]}},
        "volumes": {"sessions": {"size": "64KiB", "inodes": 64, "mounts": [
            {"service": "web", "path": SESS}]}},
        "probes": {"login": {"service": "web", "core": True, "steps": [
            {"name": "login", "method": "POST", "path": "/login", "form": {"user": "ann"},
             "expect_status": [302], "write": True},
            {"name": "next", "path": "/", "expect_text": "Logged in as ann", "readback": True},
        ]}},
        "logs": [{"kind": "container", "service": "web"}],
        **extra,
    }, file="<notes>")


def notes_app(swallow: bool) -> WSGIApp:
    """A plain WSGI app (no framework): login writes a session file; ``swallow`` is the bug."""
    def app(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
        if path == "/login" and method == "POST":
            user = environ["wsgi.input"].read().decode().partition("=")[2]
            sid = os.urandom(8).hex()
            try:
                with open(f"{SESS}/{sid}", "w") as f:
                    f.write(user * 2000)  # two pages: a full disk cannot take it
            except OSError as e:
                if not swallow:
                    print(f"session not saved: {e}", file=sys.stderr)
                    start("503 Service Unavailable", [("Content-Type", "text/plain")])
                    return [b"could not save session"]
            start("302 Found", [("Location", "/"), ("Set-Cookie", f"sid={sid}; Path=/")])
            return [b""]
        if path == "/":
            cookie = environ.get("HTTP_COOKIE", "").partition("sid=")[2]
            try:
                with open(f"{SESS}/{cookie}") as f:
                    who = f.read()[:3]
            except OSError:
                who = ""
            body = f"Logged in as {who}" if who else "Log in"
            start("200 OK", [("Content-Type", "text/plain")])
            return [body.encode()]
        start("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such page"]
    return app


def test_hardened_app_passes_and_the_swallowed_error_is_caught(fulldisk_fs: FakeDisks) -> None:
    target = notes_target()
    with InProcessStack(target, lambda: notes_app(swallow=False), disks=fulldisk_fs) as st:
        [good] = battery(st)
    assert good.passed, [v.summary for v in good.verdicts if not v.passed]
    assert good.verdict("no_silent_write_loss").status == "pass"
    assert good.verdict("errors_surface").status == "pass"  # stderr named the cause
    with InProcessStack(target, lambda: notes_app(swallow=True), disks=fulldisk_fs) as st:
        [bad] = battery(st)
    v = bad.verdict("no_silent_write_loss")
    assert v.status == "fail" and "Logged in as ann" in "\n".join(v.evidence)


def test_requests_cookies_and_output_go_through_the_app(fulldisk_fs: FakeDisks) -> None:
    with InProcessStack(notes_target(), lambda: notes_app(False), disks=fulldisk_fs) as st:
        with st.session() as http:
            r = http.post(st.url("web") + "/login", data={"user": "ann"}, allow_redirects=False)
            assert r.status_code == 302 and "sid" in http.cookies
            assert http.get(st.url("web") + "/").text == "Logged in as ann"
            st.volume("sessions").fill(leave=0)
            assert http.post(st.url("web") + "/login", data={"user": "ann"}).status_code == 503
        lines = [text for _, text in st.log_lines("web")]
        assert any("No space left on device" in t for t in lines)
        assert st.log_lines("other") == []
        assert set(st.usage()) == {"sessions"} and st.usage()["sessions"].full


def stream_app(environ: dict[str, Any], start: Callable[..., Any]) -> Iterator[bytes]:
    """Declares 3 chunks, fails after one (a streamed export hitting ENOSPC), or raises
    before answering."""
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("broken before the answer")
    start("200 OK", [("Content-Length", "30")])
    yield b"x" * 10
    raise OSError(28, "No space left on device")


def test_a_body_cut_by_the_app_is_a_cut_body_and_errors_reach_stderr(fulldisk_fs: FakeDisks
                                                                     ) -> None:
    target = notes_target(probes={"export": {"service": "web", "steps": [
        {"path": "/export"}]}, "boom": {"service": "web", "steps": [{"path": "/boom"}]}})
    with InProcessStack(target, lambda: stream_app, disks=fulldisk_fs, volumes=[]) as st:
        tl = Timeline()
        pr = Prober(st, tl)
        [cut] = pr.run("export").steps
        assert cut.status == 200 and not cut.body_complete and cut.failed_request
        [boom] = pr.run("boom").steps
        assert boom.status == 500
        pr.final_logs()
    text = "\n".join(r.text for r in tl.logs("web:stdout+stderr"))
    assert "No space left on device" in text and "broken before the answer" in text


def test_logging_and_streams_are_restored_after_the_stack(fulldisk_fs: FakeDisks) -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level, sys.stderr)

    def app_with_logging() -> WSGIApp:
        handler = logging.StreamHandler()  # made while stderr is captured
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.DEBUG)
        logging.getLogger("notes").warning("disk check")
        return notes_app(False)

    with InProcessStack(notes_target(), app_with_logging, disks=fulldisk_fs) as st:
        assert any("disk check" in t for _, t in st.log_lines("web"))
    assert (list(root.handlers), root.level, sys.stderr) == before


def test_what_cannot_run_in_process_is_refused_with_the_fix(fulldisk_fs: FakeDisks) -> None:
    target = notes_target()
    with pytest.raises(UsageError, match="not mounted into service"):
        InProcessStack(target, lambda: notes_app(False), disks=fulldisk_fs, volumes=["db"])
    with pytest.raises(UsageError, match="unknown service"):
        InProcessStack(target, lambda: notes_app(False), disks=fulldisk_fs, service="nginx")
    with InProcessStack(target, lambda: notes_app(False), disks=fulldisk_fs,
                        volumes=[]) as st:
        with pytest.raises(UsageError, match="container battery") as e:
            st.service("web").exec(["true"])
        assert "Hint:" in str(e.value)
        with pytest.raises(UsageError, match="not in-process"):
            st.volume("sessions")
        assert os.path.isdir(SESS)  # a volume left out is a plain folder, no size limit
    assert st.target.bounds.recovery_seconds <= 1.0


def with_access_log(app: WSGIApp) -> WSGIApp:
    """The same app with one access-log line per request on stderr (as a server writes)."""
    def logged(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        def start_logged(status: str, headers: Any, *a: Any) -> Any:
            print(f'"{environ["REQUEST_METHOD"]} {environ["PATH_INFO"]}" {status[:3]}',
                  file=sys.stderr)
            return start(status, headers, *a)
        return app(environ, start_logged)
    return logged


@pytest.mark.parametrize("access_log", [False, True], ids=["no-access-log", "access-log"])
def test_an_app_without_an_access_log_is_not_waited_for(
        fulldisk_fs: FakeDisks, monkeypatch: pytest.MonkeyPatch, access_log: bool) -> None:
    """Log marks only an access log shows: with none, the battery neither waits for them nor
    judges by them, and reaches the same verdicts as the same app with an access log. An
    in-process app writes its records as it answers, so nothing is ever polled for."""
    import harness.probes as probes

    polls: list[float] = []
    monkeypatch.setattr(probes.time, "sleep", polls.append)
    app = notes_app(False)
    factory = (lambda: with_access_log(app)) if access_log else (lambda: app)
    with InProcessStack(notes_target(logs=[]), factory, disks=fulldisk_fs) as st:
        [outcome] = battery(st)
    assert polls == []  # no wait for a late flush
    assert st.marks_shown is access_log
    assert ("log_marks_shown" in outcome.timeline.facts) is not access_log
    assert outcome.passed and outcome.verdict("errors_surface").status == "pass"
