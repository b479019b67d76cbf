"""Capabilities: images that start as root and drop to a service user start under the
harness; a target that narrows the set too far gets a hint naming the capability keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness import Stack
from harness.errors import InfrastructureError
from harness.stack import cap_hint
from harness.target import Target, target_from_dict

Inspect = Callable[[str], dict[str, Any]]

# What a root-started server does at start: chown its folders, then drop to its user.
DROP = ("mkdir -p /run/app && chown 1000:1000 /run/app && "
        "exec setpriv --reuid=1000 --regid=1000 --clear-groups "
        "sh -c 'echo started as $(id -u); exec sleep infinity'")


def root_target(**svc: object) -> Target:
    from harness.engine import BASE_IMAGE

    return target_from_dict({
        "name": "rootstart",
        "services": {"srv": {"image": BASE_IMAGE, "command": ["sh", "-c", DROP], "user": "0:0",
                             "ready": {"log": "started as 1000", "timeout": 20}, **svc}},
        "volumes": {"data": {"size": "256KiB", "owner": "1000:1000",
                             "mounts": [{"service": "srv", "path": "/data"}]}},
    }, file="<rootstart>")


def _svc(**kw: object) -> object:
    return root_target(**kw).services["srv"]


def test_hint_names_the_capability_keys_for_typical_refusals() -> None:
    svc = _svc(cap_drop=["ALL"])
    for line, cap in [
        ('nginx: [emerg] chown("/var/lib/nginx/body", 33) failed (1: Operation not permitted)',
         "CHOWN"),
        ("setgid: unable to set group id: Operation not permitted", "SETGID"),
        ("(2)No such file: AH00024: setuid: unable to change to uid: 33", "SETUID"),
        ("unable to bind listening socket for address '[::]:80': Permission denied",
         "NET_BIND_SERVICE"),
    ]:
        hint = cap_hint("srv", svc, f"starting\n{line}\n")  # type: ignore[arg-type]
        assert hint is not None, line
        assert "cap_add" in hint and "cap_drop" in hint and cap in hint, (line, hint)
        assert "services.srv" in hint
    assert cap_hint("srv", svc, "listening on :8080\nready\n") is None  # type: ignore[arg-type]


@pytest.mark.docker
def test_root_started_image_runs_with_default_capabilities(
        fulldisk_make_stack: Callable[..., Stack], inspect_container: Inspect) -> None:
    s = fulldisk_make_stack(root_target())
    code, out = s.service("srv").exec(["stat", "-c", "%u", "/run/app"])
    assert code == 0 and out.split()[0] == "1000", out
    hc = inspect_container(s.service("srv").name)["HostConfig"]
    assert "no-new-privileges" in hc["SecurityOpt"] and not hc.get("CapDrop")


@pytest.mark.docker
def test_narrowed_capabilities_fail_at_start_with_the_hint(
        fulldisk_make_stack: Callable[..., Stack]) -> None:
    with pytest.raises(InfrastructureError) as e:
        fulldisk_make_stack(root_target(cap_drop=["CHOWN"]))
    text = str(e.value)
    assert "Operation not permitted" in text  # the service's own log line
    assert "cap_add = ['CHOWN']" in text and "cap_drop" in text, text


@pytest.mark.docker
def test_cap_add_gives_back_what_cap_drop_all_removed(fulldisk_make_stack: Callable[..., Stack],
                                                      inspect_container: Inspect) -> None:
    s = fulldisk_make_stack(root_target(cap_drop=["ALL"], cap_add=["CHOWN", "SETUID", "SETGID"]))
    hc = inspect_container(s.service("srv").name)["HostConfig"]
    assert hc["CapDrop"] == ["ALL"] and set(hc["CapAdd"]) == {"CHOWN", "SETUID", "SETGID"}
