"""A pre-flight failure quotes the app's own words: the error line the service wrote while
the failing probe ran, under that probe, and a hint that says "probe or app"."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from harness.errors import TargetProblem
from harness.fakedisk import FakeDisks
from harness.inprocess import InProcessStack, WSGIApp
from harness.preflight import preflight
from harness.target import target_from_dict

PHP = ('2026/12/07 21:40:02 [error] 7#7: *1 FastCGI sent in stderr: "PHP message: PHP '
       'Warning:  session_start(): open(/var/lib/php/sessions/sess_k2, O_RDWR) failed: '
       'Permission denied (13) in /var/www/html/login.php on line 3"')


def app(broken: bool) -> WSGIApp:
    def handle(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        print("INFO started handling", environ["PATH_INFO"], file=sys.stderr)
        if environ["PATH_INFO"] == "/login" and broken:
            print(PHP, file=sys.stderr)
            start("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"error"]
        start("200 OK", [("Content-Type", "text/plain")])
        return [b"Welcome"]
    return handle


def target() -> Any:
    return target_from_dict({
        "name": "php",
        "services": {"web": {"image": "php:dev", "ports": [8000]}},
        "volumes": {"sessions": {"size": "64KiB", "mounts": [
            {"service": "web", "path": "/var/lib/php/sessions"}]}},
        "probes": {
            "home": {"service": "web", "steps": [{"path": "/"}]},
            "login": {"service": "web", "steps": [{"path": "/login", "expect_text": "Welcome"}]},
        },
        "logs": [{"kind": "container", "service": "web"}],
        "bounds": {"error_record_seconds": 1},
    }, file="<php>")


def test_a_failing_probe_is_shown_with_the_error_line_the_app_wrote(
        fulldisk_fs: FakeDisks) -> None:
    with (InProcessStack(target(), lambda: app(broken=True), disks=fulldisk_fs) as st,
          pytest.raises(TargetProblem) as e):
        preflight(st)
    text = str(e.value)
    login = next(part for part in text.split("; probe ") if "'login'" in part)
    assert "the app said:" in login and "Permission denied (13)" in login, text
    assert "started handling" not in login  # only error lines, not every line
    assert "probe or app" in text and "Hint:" in text


def test_a_healthy_app_passes_the_pre_flight(fulldisk_fs: FakeDisks) -> None:
    with InProcessStack(target(), lambda: app(broken=False), disks=fulldisk_fs) as st:
        preflight(st)
