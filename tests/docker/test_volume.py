"""The floor: real tmpfs volumes in real containers give ENOSPC, as the harness measures.

Docker-backed: these never skip in CI (the plugin fails the session when no engine answers).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import GuardError, Stack, Target
from harness.sizes import PAGE
from harness.target import target_from_dict

pytestmark = pytest.mark.docker

KiB = 1024


def floor_target() -> Target:
    from harness.engine import BASE_IMAGE

    svc = {"image": BASE_IMAGE, "command": ["sleep", "infinity"], "user": "1000:1000"}
    return target_from_dict({
        "name": "floor",
        "services": {"one": svc, "two": svc},
        "volumes": {
            "tiny": {"size": "1MiB", "inodes": 64, "owner": "1000:1000",
                     "mounts": [{"service": "one", "path": "/data"}]},
            "few": {"size": "1MiB", "inodes": 24, "owner": "1000:1000",
                    "mounts": [{"service": "one", "path": "/few"}]},
            "both": {"size": "512KiB", "inodes": 64, "owner": "1000:1000",
                     "mounts": [{"service": "one", "path": "/shared"},
                                {"service": "two", "path": "/shared"}]},
        },
    }, file="<floor>")


@pytest.fixture(scope="module", params=["host", "container"])
def floor(request: pytest.FixtureRequest, fulldisk_make_stack: Callable[..., Stack]) -> Stack:
    """The floor target, its volumes worked on by each kind of agent: this process on the
    engine's host (hostfs, where CI runs) and the agent container (everywhere else)."""
    from harness import hostfs

    if request.param == "host" and hostfs.unavailable("auto") is not None \
            and not os.environ.get("CI"):
        pytest.skip(f"volumes cannot be mounted here: {hostfs.unavailable('auto')}")
    return fulldisk_make_stack(floor_target(), agent=request.param)


@pytest.fixture
def fl(floor: Stack) -> Iterator[Stack]:
    floor.reset()
    yield floor


def sh(stack: Stack, service: str, script: str) -> tuple[int, str]:
    return stack.service(service).exec(["sh", "-c", script], user="1000:1000")


def test_write_into_1mib_volume_gets_enospc_and_usage_says_full(fl: Stack) -> None:
    code, out = sh(fl, "one", "head -c 2097152 /dev/zero > /data/big")
    assert code != 0
    assert "No space left on device" in out
    u = fl.volume("tiny").usage()
    assert u.full and u.bytes_free < PAGE
    assert u.bytes_total == 1024 * KiB


def test_inode_exhaustion_refuses_new_files_while_bytes_are_free(fl: Stack) -> None:
    code, out = sh(fl, "one", "i=0; while true 2>/dev/null > /few/f$i; do i=$((i+1)); done; "
                              "echo made=$i; true > /few/last")
    assert code != 0 and "No space left on device" in out
    u = fl.volume("few").usage()
    assert u.inodes_free == 0
    assert u.bytes_free > 512 * KiB  # bytes to spare: it is the inodes that ran out
    assert u.full


def test_shared_volume_one_container_fills_the_other_sees_enospc(fl: Stack) -> None:
    code, _ = sh(fl, "one", "head -c 1048576 /dev/zero > /shared/fill")
    assert code != 0
    code, out = sh(fl, "two", "head -c 8192 /dev/zero > /shared/mine")
    assert code != 0 and "No space left on device" in out


def test_fill_leave_64kib_leaves_between_64kib_and_one_page_more(fl: Stack) -> None:
    vol = fl.volume("tiny")
    res = vol.fill(leave="64KiB")
    assert 64 * KiB <= res.usage.bytes_free < 64 * KiB + PAGE
    assert 64 * KiB <= vol.usage().bytes_free < 64 * KiB + PAGE


def test_fill_percent_and_fill_on_full_volume_is_a_noop(fl: Stack) -> None:
    vol = fl.volume("tiny")
    vol.fill(percent=50)
    used = vol.usage()
    assert abs((used.bytes_total - used.bytes_free) - used.bytes_total // 2) <= PAGE
    vol.fill(leave=0)
    again = vol.fill(leave=0)
    assert again.added_bytes == 0 and "already" in again.note


def test_drain_works_on_a_full_volume_and_keeps_app_files(fl: Stack) -> None:
    vol = fl.volume("tiny")
    assert sh(fl, "one", "echo keep > /data/app-file")[0] == 0
    vol.fill(leave=0)
    assert vol.usage().full
    freed = vol.drain()
    assert freed > 512 * KiB
    assert sh(fl, "one", "cat /data/app-file")[1].strip() == "keep"


def test_reset_empties_the_volume(fl: Stack) -> None:
    vol = fl.volume("tiny")
    sh(fl, "one", "head -c 100000 /dev/zero > /data/x")
    vol.fill(leave="128KiB")
    vol.reset()
    assert vol.usage().bytes_free > 1000 * KiB
    assert sh(fl, "one", "ls /data")[1].strip() == ""


def test_fill_inodes_leaves_the_asked_number(fl: Stack) -> None:
    vol = fl.volume("tiny")
    res = vol.fill_inodes(leave=5)
    assert res.usage.inodes_free == 5


def test_guard_refuses_a_volume_without_our_label(floor: Stack) -> None:
    """Registered with the guard (so the registry check passes), but labelled for another
    run: the label check itself must refuse; then a volume of ours that is not tmpfs."""
    from harness import engine
    from harness.guard import GUARD, Owned
    from harness.volume import TmpfsVolume

    assert floor.agent is not None
    spec = floor.volume("tiny").spec
    name = f"{engine.run_id()}-foreign"
    engine.client().volumes.create(name, driver="local", driver_opts={
        "type": "tmpfs", "device": "tmpfs", "o": "size=64k"}, labels={"fulldisk.run": "other"})
    GUARD.register(Owned("docker-tmpfs", name, engine.run_id()))
    try:
        foreign = TmpfsVolume("foreign", name, spec, floor.agent)
        with pytest.raises(GuardError, match=r"label fulldisk\.run='other' is not this run"):
            foreign.fill(leave=0)
    finally:
        GUARD.forget("docker-tmpfs", name)
        engine.client().volumes.get(name).remove(force=True)
    plain = f"{engine.run_id()}-plain"
    engine.client().volumes.create(plain, driver="local",
                                   labels={"fulldisk.run": engine.run_id()})
    GUARD.register(Owned("docker-tmpfs", plain, engine.run_id()))
    try:
        with pytest.raises(GuardError, match="not a tmpfs volume of fulldisk"):
            TmpfsVolume("plain", plain, spec, floor.agent).fill(leave=0)
    finally:
        GUARD.forget("docker-tmpfs", plain)
        engine.client().volumes.get(plain).remove(force=True)


def test_guard_refuses_a_path_that_is_not_the_tmpfs_mount_in_the_agent(
        floor: Stack, tmp_path: Path) -> None:
    """The second check production runs before every write, inside the agent: the path
    must be a tmpfs mountpoint. A real volume of ours pointed at a plain folder is refused,
    and nothing was written there."""
    from harness.volume import TmpfsVolume

    assert floor.agent is not None
    real = floor.volume("tiny")
    assert isinstance(real, TmpfsVolume)
    wrong = TmpfsVolume("tiny", real.docker_name, real.spec, floor.agent)
    if floor.agent.host:  # a plain folder of the host (on its /tmp, itself maybe a tmpfs)
        wrong.path = str(tmp_path)
        with pytest.raises(GuardError, match="not a tmpfs this run mounted"):
            wrong.fill(leave=0)
        # the check each script gets (here: the mount table, before the script runs)
        with pytest.raises(GuardError, match="not a tmpfs this run mounted"):
            wrong._run("touch x", user="0:0")
        with pytest.raises(GuardError, match="not a tmpfs this run mounted"):
            floor.agent.put_archive(str(tmp_path), b"")
        assert os.listdir(tmp_path) == []
        return
    wrong.path = "/tmp"  # the agent's own filesystem, not a fulldisk volume
    with pytest.raises(GuardError, match="not a fulldisk tmpfs mount"):
        wrong.fill(leave=0)
    code, out = floor.agent.sh("ls -A /tmp")
    assert code == 0 and ".fulldisk" not in out


def test_containers_run_with_least_privilege_and_loopback_ports(
        floor: Stack, fulldisk_module_stack: Stack,
        inspect_container: Callable[[str], dict[str, Any]]) -> None:
    """No --privileged and no-new-privileges everywhere; services keep the engine's default
    capabilities unless the target narrows them (the reference stack drops ALL: it runs as
    uid 1000); the agent gets back only what it needs to manage other users' files; ports
    on 127.0.0.1 only."""
    from harness.volume import Agent

    stack = fulldisk_module_stack
    handles = [*floor.services.values(), *stack.services.values()]
    agent = floor.agent
    assert agent is not None
    extra = [agent.handle] if isinstance(agent, Agent) else []  # the host agent: no container
    seen = {h.name: inspect_container(h.name) for h in [*handles, *extra]}
    for name, attrs in seen.items():
        hc = attrs["HostConfig"]
        assert hc["Privileged"] is False, name
        assert "no-new-privileges" in (hc.get("SecurityOpt") or []), name
        for bindings in (attrs["NetworkSettings"]["Ports"] or {}).values():
            for b in bindings or []:
                assert b["HostIp"] == "127.0.0.1", (name, b)
    for h in floor.services.values():  # no cap keys: the engine's default set, untouched
        assert not seen[h.name]["HostConfig"].get("CapDrop"), h.name
        assert not seen[h.name]["HostConfig"].get("CapAdd"), h.name
    for h in stack.services.values():  # the reference target declares cap_drop = ["ALL"]
        assert seen[h.name]["HostConfig"].get("CapDrop") == ["ALL"], h.name
    if isinstance(agent, Agent):
        hc = seen[agent.handle.name]["HostConfig"]
        assert hc.get("CapDrop") == ["ALL"]
        assert set(hc["CapAdd"]) == {"CHOWN", "DAC_OVERRIDE", "FOWNER"}
    assert any(seen[h.name]["NetworkSettings"]["Ports"] for h in handles)
