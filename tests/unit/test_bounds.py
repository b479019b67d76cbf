"""Bounds on what a user or a server hands fulldisk (issue 23): user regexes with a time
bound, one deadline per request, interim 1xx answers skipped, response bodies counted and
hashed past what is kept in memory, sizes and ${VAR} expansion that never overflow or
silently turn into nothing."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from harness import probes
from harness.errors import ConfigError, UsageError
from harness.http import deadline, session
from harness.patterns import UserPattern
from harness.sizes import MAX_BODY_SIZE, parse_size
from harness.target import image_problem, target_from_dict


@pytest.fixture
def server() -> Iterator[Callable[[Callable[[socket.socket], None]], str]]:
    """A one-connection-at-a-time TCP server on 127.0.0.1 answering with a given function."""
    socks: list[socket.socket] = []

    def start(answer: Callable[[socket.socket], None]) -> str:
        srv = socket.create_server(("127.0.0.1", 0))
        socks.append(srv)

        def loop() -> None:
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                with conn:
                    conn.recv(65536)
                    try:
                        answer(conn)
                    except OSError:
                        pass

        threading.Thread(target=loop, daemon=True).start()
        return f"http://127.0.0.1:{srv.getsockname()[1]}/"

    yield start
    for s in socks:
        s.close()


def test_a_catastrophic_user_regex_is_a_config_error_naming_its_key() -> None:
    rx = UserPattern(r"(a|a)+\d", "probes.p.steps[0].capture.t", file="f.toml", seconds=0.1)
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as e:
        rx.search("a" * 40)
    assert time.monotonic() - t0 < 5
    assert e.value.exit_code == 2
    assert e.value.message.startswith("f.toml:probes.p.steps[0].capture.t: the regex")
    # the patterns of the reproductions (C01, P08) end at once in this engine
    assert UserPattern(r"(?:a+)+(b)", "k").search("a" * 34) is None
    assert UserPattern(r"(\d+)", "k").search("id 42").group(1) == "42"  # type: ignore[union-attr]


def test_trickled_headers_end_at_the_request_deadline(server: Callable[..., str]) -> None:
    def trickle(conn: socket.socket) -> None:
        for b in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:
            conn.sendall(bytes([b]))
            time.sleep(0.1)

    url = server(trickle)
    t0 = time.monotonic()
    with session() as http, deadline(time.monotonic() + 1.0) as d, \
            pytest.raises(requests.RequestException) as e:
        http.get(url, timeout=1.0, stream=True)  # each byte comes well within 1 s
    took = time.monotonic() - t0
    assert d.expired and 0.9 < took < 3, (took, e.value)


def test_without_a_deadline_block_the_timeout_bounds_the_headers(
        server: Callable[..., str]) -> None:
    def trickle(conn: socket.socket) -> None:
        for b in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:
            conn.sendall(bytes([b]))
            time.sleep(0.1)

    url = server(trickle)
    t0 = time.monotonic()
    with session() as http, pytest.raises(requests.RequestException):
        http.get(url, timeout=1.0)
    assert time.monotonic() - t0 < 3
    ok = server(lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    with session() as http:
        assert http.get(ok, timeout=2).text == "ok"


def test_interim_answers_are_skipped_to_the_final_status(server: Callable[..., str]) -> None:
    url = server(lambda c: c.sendall(
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 102 Processing\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone"))
    with session() as http, deadline(time.monotonic() + 3):
        r = http.get(url, timeout=2)
    assert (r.status_code, r.text) == (201, "done")


def test_a_body_past_what_is_kept_is_still_counted_and_hashed(
        server: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytes(range(256)) * 40
    url = server(lambda c: c.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data) + data))
    monkeypatch.setattr(probes, "MAX_BODY_KEPT", 1000)
    with session() as http:
        resp = http.get(url, timeout=2, stream=True)
        kept, size, sha, error = probes._Body(resp, time.monotonic() + 5).read()
    assert (kept, size, sha, error) == (data[:1000], len(data),
                                        hashlib.sha256(data).hexdigest(), None)


def test_body_in_a_header_is_one_line_of_the_same_records() -> None:
    lines = probes.make_body("fdx", 4096)
    one = probes.make_body("fdx", 4096, one_line=True)
    assert b"\n" in lines and b"\n" not in one and b"\r" not in one
    assert len(one) == len(lines) == 4096 and lines.replace(b"\n", b" ") == one


def test_sizes_never_overflow() -> None:
    with pytest.raises(UsageError, match="too large"):
        parse_size("9" * 400)
    with pytest.raises(UsageError, match="too large"):
        parse_size(f"{'9' * 30}.5GiB")
    assert parse_size("1.5GiB") == 3 * 2**29
    assert MAX_BODY_SIZE == 16 * 2**20


def _target(image: str, env: dict[str, str] | None = None) -> dict[str, object]:
    return {"name": "t", "services": {"web": {"image": image, "env": env or {}}},
            "volumes": {"v": {"size": "1MiB", "mounts": [{"service": "web", "path": "/d"}]}}}


def test_variables_expand_and_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FD_TEST_TAG", "7")
    monkeypatch.delenv("FD_TEST_UNSET", raising=False)
    t = target_from_dict(_target("app:${FD_TEST_TAG}",
                                 {"A": "$${HOME}", "B": "${FD_TEST_UNSET:-}"}))
    assert t.services["web"].image == "app:7"
    assert t.services["web"].env == {"A": "${HOME}", "B": ""}
    assert t.shared().services["web"].env["A"] == "${HOME}"  # not expanded a second time
    with pytest.raises(ConfigError, match=r"services\.web\.env\.A: \$\{FD_TEST_UNSET\} is not"):
        target_from_dict(_target("app:1", {"A": "${FD_TEST_UNSET}"}))


@pytest.mark.parametrize("ref", ["app", "app:1", "team/app:1.2-rc_3", "localhost:5000/a/b:x",
                                 "registry.example.com/a__b/c-d:1",
                                 "fulldisk/datahub:dev@sha256:" + "a" * 64, "sha256:" + "0" * 64])
def test_image_references_the_engine_takes(ref: str) -> None:
    assert image_problem(ref) is None


@pytest.mark.parametrize("ref", ["", " ", "Bad Image!", "App:1", "app:", "a//b", "-app",
                                 "app:1:2", "a" * 600])
def test_image_references_the_engine_refuses(ref: str) -> None:
    assert image_problem(ref) is not None
