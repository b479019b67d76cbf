"""Pause and unpause under a racing engine: a refusal whose state is not reached is asked
again within a deadline; one whose state is reached counts as done; a dead container fails."""
from __future__ import annotations

from typing import Any

import docker.errors
import pytest

from harness import engine
from harness.errors import InfrastructureError


class Racing:
    """A container whose engine record lags: the first ``refusals`` unpause calls are
    refused with "not paused" while it still reports paused (a late containerd event)."""

    def __init__(self, refusals: int, *, status: str = "paused") -> None:
        self.refusals = refusals
        self.status = status
        self.calls = 0
        self.attrs: dict[str, Any] = {"State": {"StartedAt": "t0", "ExitCode": 0}}
        self.id = "c0ffee"

    def reload(self) -> None:
        pass

    def unpause(self) -> None:
        self.calls += 1
        if self.calls <= self.refusals:
            raise docker.errors.APIError("500 Server Error",
                                         explanation="Container c0ffee is not paused")
        self.status = "running"

    def logs(self, **_: Any) -> bytes:
        return b"last words\n"


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "STATE_SETTLE_SECONDS", 1.0)
    monkeypatch.setattr(engine, "STATE_REASK_SECONDS", 0.1)


def handle(c: Racing) -> engine.Handle:
    return engine.Handle("fd-x-cleaner", c, _started_at="t0")  # type: ignore[arg-type]


def test_a_refused_unpause_still_paused_is_asked_again() -> None:
    c = Racing(refusals=2)
    handle(c).unpause()
    assert (c.calls, c.status) == (3, "running")


def test_a_refusal_whose_state_is_reached_is_done_without_asking_again() -> None:
    c = Racing(refusals=1, status="running")
    handle(c).unpause()
    assert c.calls == 1


def test_an_unpause_refused_past_the_deadline_fails_with_the_engines_words() -> None:
    c = Racing(refusals=1000)
    with pytest.raises(InfrastructureError) as e:
        handle(c).unpause()
    assert "it is paused" in str(e.value) and "Container c0ffee is not paused" in str(e.value)
    assert 2 <= c.calls <= 12


def test_an_exited_container_fails_at_once() -> None:
    c = Racing(refusals=1000, status="exited")
    with pytest.raises(InfrastructureError, match="exited"):
        handle(c).unpause()
    assert c.calls == 1
