"""The guard's registry check, without Docker: a docker volume is written to only when
this run registered it, labelled it with this run and made it a tmpfs (the engine-backed
half, the mountpoint check in the agent, is in test_volume.py)."""

from __future__ import annotations

import pytest

from harness.errors import GuardError
from harness.guard import Guard, Owned

OURS = {"fulldisk.run": "fd-1"}
TMPFS = {"type": "tmpfs", "device": "tmpfs", "o": "size=64k"}


def test_a_registered_labelled_tmpfs_volume_of_this_run_passes() -> None:
    g = Guard()
    g.register(Owned("docker-tmpfs", "fd-1-cache", "fd-1"))
    g.check_docker_volume("fd-1-cache", OURS, "fd-1", TMPFS)


@pytest.mark.parametrize(("registered", "labels", "opts", "why"), [
    (False, OURS, TMPFS, "this run did not create it"),
    (True, {"fulldisk.run": "fd-2"}, TMPFS, r"label fulldisk\.run='fd-2' is not this run"),
    (True, None, TMPFS, "label fulldisk.run=None is not this run"),
    (True, OURS, {"type": "none", "o": "bind", "device": "/"}, "not a tmpfs volume"),
    (True, OURS, None, "not a tmpfs volume"),
])
def test_anything_else_is_refused_with_the_reason(registered: bool, labels: dict[str, str] | None,
                                                  opts: dict[str, str] | None, why: str) -> None:
    g = Guard()
    if registered:
        g.register(Owned("docker-tmpfs", "fd-1-cache", "fd-1"))
    with pytest.raises(GuardError, match=why) as e:
        g.check_docker_volume("fd-1-cache", labels, "fd-1", opts)
    assert e.value.hint  # names the fix


def test_a_forgotten_volume_is_refused_again() -> None:
    g = Guard()
    g.register(Owned("docker-tmpfs", "fd-1-cache", "fd-1"))
    g.forget("docker-tmpfs", "fd-1-cache")
    with pytest.raises(GuardError, match="did not create"):
        g.check_docker_volume("fd-1-cache", OURS, "fd-1", TMPFS)
