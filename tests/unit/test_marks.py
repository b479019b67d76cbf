"""Log marks reach the app: they go to a request the app itself answers, with a marker
query string, and a log_integrity verdict names the files it judged."""

from __future__ import annotations

from typing import Any

import pytest

from harness.errors import ConfigError
from harness.loads import mark_request
from harness.target import target_from_dict


def _target(**extra: Any) -> Any:
    return target_from_dict({
        "name": "m",
        "services": {"web": {"image": "m:dev", "ports": [80]},
                     "api": {"image": "a:dev", "ports": [8080]}},
        "volumes": {"v": {"size": "64KiB", "mounts": [{"service": "web", "path": "/v"}]}},
        "probes": {
            "item": {"service": "api", "steps": [{"path": "/item/{nonce}"}]},
            "home": {"service": "web", "core": True, "steps": [{"path": "/index.php"}]},
        },
        **extra,
    }, file="<m>")


def test_marks_go_to_a_path_the_app_answers() -> None:
    assert mark_request(_target()) == ("web", None, "/index.php")  # core probe's GET
    assert mark_request(_target(mark="/ping?x=1")) == ("web", None, "/ping?x=1")


def test_without_a_plain_get_the_marker_is_the_path() -> None:
    t = target_from_dict({
        "name": "m", "services": {"web": {"image": "m:dev", "ports": [80]}},
        "volumes": {"v": {"size": "64KiB", "mounts": [{"service": "web", "path": "/v"}]}},
        "probes": {"put": {"service": "web", "steps": [
            {"method": "PUT", "path": "/f/{nonce}", "body_size": "8KiB", "write": True}]}},
    }, file="<m>")
    assert mark_request(t) == ("web", None, None)


@pytest.mark.parametrize("bad", ["index.php", "http://x/", "/p/{nonce}"])
def test_a_mark_that_is_not_a_plain_path_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="mark"):
        _target(mark=bad)
