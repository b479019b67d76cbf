"""The one HTTP client of the harness: a requests Session that never takes a proxy from
the environment and sends nothing but to 127.0.0.1. Flows, health, counters, log marks
and readiness all use it."""

from __future__ import annotations

import requests

from .errors import InfrastructureError

LOOPBACK = "127.0.0.1"


def session() -> requests.Session:
    """A new Session (its own cookie jar) that ignores proxy variables of the environment."""
    s = requests.Session()
    s.trust_env = False  # never a proxy, never ~/.netrc: services are on loopback only
    return s


def loopback(url: str) -> str:
    """The one gate every request passes: nothing but 127.0.0.1 is ever a target."""
    if not url.startswith(f"http://{LOOPBACK}:"):
        raise InfrastructureError(f"refusing to send a request to {url!r}",
                                  "fulldisk reaches services only on 127.0.0.1")
    return url
