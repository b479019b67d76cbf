"""Volumes: small filesystems that can be filled, drained, measured and reset.

The ``Volume`` Protocol is what loads, probes and scenarios use; ``TmpfsVolume`` is the
docker backend (a docker local volume of type tmpfs). Its agent does the work: where this
process runs as root in the engine's mount namespace, ``HostAgent`` mounts each tmpfs on
the host itself (``hostfs``) and works on it here; elsewhere an ``Agent`` container of the
harness's own (from the base image) mounts every volume of a stack for the whole run. Both
keep the contents if a service crashes and run fills as the app's user, so target images
need no tools of ours. Services see a folder of the volume (``data`` or the mount's
``subdir``); ballast lives beside it in ``.fulldisk``, invisible to the app and its
cleaner.
"""

from __future__ import annotations

import shlex
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from . import engine, hostfs
from .errors import GuardError, InfrastructureError, UsageError
from .guard import GUARD, Owned
from .sizes import ballast_for, parse_size
from .target import VolumeSpec
from .timeline import Usage

ROOT = "/fulldisk/vol"
BALLAST = ".fulldisk"
DEFAULT_SUBDIR = "data"
MARKS = "/tmp/fulldisk-marks"  # in the agent's own filesystem, never on a volume
_GUARD_EXIT = 97


@dataclass(frozen=True)
class FillResult:
    """What a fill did: bytes or inodes added, and the usage after it."""

    added_bytes: int
    added_inodes: int
    usage: Usage
    note: str = ""


@runtime_checkable
class Volume(Protocol):
    """A size- and inode-limited filesystem the harness created (any backend)."""

    name: str
    spec: VolumeSpec

    def usage(self) -> Usage:
        """Measure bytes and inodes from inside the filesystem."""
        ...

    def fill(self, *, leave: int | str | None = None, percent: float | None = None) -> FillResult:
        """Add ballast until ``leave`` bytes stay free, or until ``percent`` is used."""
        ...

    def fill_inodes(self, *, leave: int = 0) -> FillResult:
        """Create empty files until ``leave`` inodes stay free."""
        ...

    def drain(self) -> int:
        """Remove the harness's own ballast (never the app's files); returns bytes freed."""
        ...

    def reset(self) -> None:
        """Empty the volume and restore its seed (the image's files)."""
        ...

    def read(self, path: str) -> bytes | None:
        """A file of the app's data on this volume, None when absent."""
        ...


def ballast_needed(measure: Callable[[], Usage], *, leave: int | str | None,
                   percent: float | None) -> tuple[Usage, int]:
    """Check a fill's arguments, then measure: the usage before and the bytes of ballast
    (whole pages) that leave ``leave`` bytes free or ``percent`` of the bytes used."""
    if (leave is None) == (percent is None):
        raise UsageError("fill needs exactly one of leave= or percent=",
                         "e.g. vol.fill(leave='64KiB') or vol.fill(percent=95)")
    if percent is not None and not 0 <= percent <= 100:
        raise UsageError(f"percent {percent} is outside 0-100", "use 0 to 100")
    before = measure()
    if percent is not None:
        target_free = before.bytes_total - int(before.bytes_total * percent / 100)
    else:
        target_free = parse_size(leave if leave is not None else 0, what="leave")
    return before, ballast_for(before.bytes_free, target_free)


class VolumeAgent:
    """What works on a stack's volumes: runs scripts on them, puts and gets files, and
    holds them until ``remove`` (their contents go with it)."""

    host = False  # True: this process mounted the volumes on the engine's host
    marks = MARKS

    def __init__(self, name: str) -> None:
        self.name = name
        # An interrupt removes a stack from another thread while its start may still be
        # laying out folders or starting services: once closed, nothing is written and no
        # service is started with a bind of a folder (with the tmpfs gone it would land on
        # the host's own disk), and closing waits for a block that does either.
        self._lock = threading.RLock()
        self._closed = False

    def path(self, key: str, docker_name: str) -> str:
        """Where the agent's scripts see a volume."""
        raise NotImplementedError

    def mountpoint(self, docker_name: str) -> str:
        """The volume's tmpfs on the engine's host (services bind its folders)."""
        raise NotImplementedError

    def shell(self, script: str, *, user: str = "0:0") -> tuple[int, bytes]:
        """Run a shell script as ``uid:gid``; exit code and combined output."""
        raise NotImplementedError

    def sh(self, script: str, *, user: str = "0:0") -> tuple[int, str]:
        """:meth:`shell`, its output as text."""
        code, out = self.shell(script, user=user)
        return code, out.decode("utf-8", "replace")

    def put_archive(self, path: str, data: bytes) -> None:
        """Extract a tar into a folder of a volume."""
        raise NotImplementedError

    def get_archive(self, path: str) -> bytes | None:
        """A tar of the file at ``path`` (None when absent)."""
        raise NotImplementedError

    def remove(self) -> None:
        """Let the volumes go (their contents with them)."""
        raise NotImplementedError

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Keep the volumes while the block runs (services being started bind their
        folders): ``close`` from another thread waits for the block to end, and the block
        raises once closed."""
        with self._lock:
            if self._closed:
                raise InfrastructureError(f"{self.name}: the stack is being removed",
                                          "nothing to do: the run is ending")
            yield

    def close(self) -> None:
        """No more work on the volumes (waits for a block ``holding`` them)."""
        with self._lock:
            self._closed = True


class Agent(VolumeAgent):
    """The harness's own container that holds and works on every volume of a stack."""

    def __init__(self, name: str, volumes: dict[str, str]) -> None:
        # no network: it works on volumes only, and starts while the stack's network is made
        spec = engine.ContainerSpec(
            name=name, image=engine.BASE_IMAGE, command=["sleep", "infinity"], env={},
            user="0:0", ports=(), network="", aliases=(), binds={},
            volumes={vol: f"{ROOT}/{key}" for key, vol in volumes.items()}, role="agent",
            cap_add=("CHOWN", "DAC_OVERRIDE", "FOWNER"))
        super().__init__(name)
        self.handle = engine.start(spec)

    def path(self, key: str, docker_name: str) -> str:
        return f"{ROOT}/{key}"

    def mountpoint(self, docker_name: str) -> str:
        # where the engine mounted it (valid while the agent holds it)
        return str(engine.volume_attrs(docker_name)["Mountpoint"])

    def shell(self, script: str, *, user: str = "0:0") -> tuple[int, bytes]:
        # through the container's long-lived shell
        return self.handle.shell(script, user=user)

    def put_archive(self, path: str, data: bytes) -> None:
        self.handle.put_archive(path, data)

    def get_archive(self, path: str) -> bytes | None:
        return self.handle.get_archive(path)

    def remove(self) -> None:
        """Remove the agent (the volumes' last holder: their contents go with it)."""
        self.handle.remove()


class HostAgent(VolumeAgent):
    """The agent's work done by this process on the engine's host (see ``hostfs``): it
    mounts each volume's tmpfs itself and runs the same scripts with the host's shell, so
    services start without waiting for a container and each step costs a fork, not an
    exec through the engine."""

    host = True

    def __init__(self, name: str, volumes: dict[str, str],
                 options: dict[str, str]) -> None:
        super().__init__(name)
        self.docker_names = list(volumes.values())
        self.marks = ""
        self._mounted: list[str] = []
        try:
            for vol in self.docker_names:
                self._mounted.append(vol)  # before the mount: a failed one is cleaned too
                hostfs.mount_tmpfs(vol, options[vol])
        except BaseException:
            self.remove()
            raise
        if self.docker_names:
            self.marks = f"{hostfs.path_of(self.docker_names[0])}.marks"

    def path(self, key: str, docker_name: str) -> str:
        return hostfs.path_of(docker_name)

    def mountpoint(self, docker_name: str) -> str:
        return hostfs.path_of(docker_name)

    def shell(self, script: str, *, user: str = "0:0") -> tuple[int, bytes]:
        with self.holding():
            return hostfs.shell(script, user=user)

    def put_archive(self, path: str, data: bytes) -> None:
        with self.holding():
            hostfs.require_ours(path)
            hostfs.put_tar(path, data)

    def get_archive(self, path: str) -> bytes | None:
        with self.holding():
            return hostfs.get_tar(path)

    def remove(self) -> None:
        """Unmount every volume's tmpfs (their contents go with it); all are tried.
        Waits for a block ``holding`` the volumes, and none runs after."""
        errors = []
        with self._lock:
            self.close()
            while self._mounted:
                vol = self._mounted.pop()
                try:
                    hostfs.release(vol)
                except InfrastructureError as e:
                    errors.append(str(e))
        if errors:
            raise InfrastructureError("; ".join(errors), "run `fulldisk clean` as root")


def start_agent(name: str, volumes: dict[str, tuple[str, VolumeSpec]], *,
                host: bool) -> VolumeAgent:
    """The agent of a stack's volumes (key -> (docker volume, spec)): this process on the
    engine's host (``host``: the caller asked ``hostfs.unavailable``), else a container."""
    names = {k: dv for k, (dv, _) in volumes.items()}
    if host:
        return HostAgent(name, names, {
            dv: engine.tmpfs_options(size=s.size, inodes=s.inodes, uid=s.uid, gid=s.gid,
                                     mode=s.mode) for dv, s in volumes.values()})
    return Agent(name, names)


def measure(volumes: list[TmpfsVolume]) -> list[Usage]:
    """Usage of volumes that share an agent, with one statvfs call in one exec.

    Each exec costs tens of milliseconds; a scenario samples every volume many times.
    """
    if not volumes:
        return []
    agent = volumes[0].agent
    assert all(v.agent is agent for v in volumes)
    if agent.host:  # statvfs here: microseconds, no process at all
        with agent.holding():
            return [v._usage(*st) for v, st in
                    zip(volumes, hostfs.statvfs(*(v.path for v in volumes)), strict=True)]
    paths = " ".join(shlex.quote(v.path) for v in volumes)
    for _ in range(3):  # under load docker exec can hand back an empty stream
        code, out = agent.sh(f"stat -f -c '%S %b %a %c %d' {paths}")
        lines = [ln for ln in out.strip().splitlines() if ln.replace(" ", "").isdigit()]
        if code == 0 and len(lines) == len(volumes):
            return [v._parse(ln) for v, ln in zip(volumes, lines, strict=True)]
    raise InfrastructureError(f"could not measure volumes {paths} (exit {code}): "
                              f"{out.strip()[-200:]!r}",
                              "is the agent container still running? see `docker ps`")


def lay_out(volumes: list[TmpfsVolume]) -> None:
    """The guard's check (a tmpfs mountpoint in the agent) of volumes that share an agent,
    then their folders (:meth:`TmpfsVolume.layout_script`), all in one exec."""
    if not volumes:
        return
    agent = volumes[0].agent
    if agent.host:  # made here: no shell and its six processes on the stack's start path
        with agent.holding():
            hostfs.require_ours(*(v.path for v in volumes))
            for v in volumes:
                v.lay_out_here()
        return
    checks = "".join(v._check() for v in volumes[1:])
    volumes[0]._run(checks + " && ".join(v.layout_script() for v in volumes), user="0:0")


def read_tails(items: list[tuple[TmpfsVolume, str, int]]) -> list[tuple[int, bytes]]:
    """For each (volume, path in it, offset): the file's size and its bytes from offset,
    all in one agent exec (size -1 when the file does not exist)."""
    if not items:
        return []
    agent = items[0][0].agent
    for vol, path, _ in items:
        assert vol.agent is agent
        if path.startswith("/") or ".." in path.split("/"):
            raise UsageError(f"path {path!r} must be relative to the volume", "e.g. 'app.log'")
    if agent.host:  # read here from the offsets (no link followed), no process at all
        with agent.holding():
            return [hostfs.read_tail(vol.path, path, offset) for vol, path, offset in items]
    token = f"==fulldisk-{uuid.uuid4().hex}=="
    parts = []
    for i, (vol, path, offset) in enumerate(items):
        f = shlex.quote(f"{vol.path}/{path}")
        parts.append(f"printf '\\n{token} {i} %s\\n' \"$(stat -c %s {f} 2>/dev/null || "
                     f"echo -1)\"; tail -c +{offset + 1} {f} 2>/dev/null")
    # The exit code is that of the last tail (a missing file is not an error here); a cut
    # stream leaves files at size -1, read again on the next call from the same offset.
    _, out = agent.shell("; ".join(parts))
    result: list[tuple[int, bytes]] = [(-1, b"")] * len(items)
    for seg in out.split(f"\n{token} ".encode())[1:]:
        head, _, body = seg.partition(b"\n")
        idx, size = (int(x) for x in head.split())
        result[idx] = (size, body)
    return result




def _folders(volumes: list[TmpfsVolume], logs: bool = False) -> str:
    return " ".join(shlex.quote(f"{v.path}/{sub}") for v in volumes
                    for sub in (v.log_folders() if logs else v.subdirs()))


def mark(volumes: list[TmpfsVolume]) -> None:
    """Remember every path in the volumes' service folders now (what the app made at
    start), in one agent exec, so ``rewind`` can later remove only what came after."""
    if not volumes:
        return
    agent = volumes[0].agent
    assert all(v.agent is agent for v in volumes)
    code, out = agent.sh(f"find {_folders(volumes)} -mindepth 1 > {agent.marks}")
    if code != 0:
        raise InfrastructureError(f"could not list the volumes' files (exit {code}): "
                                  f"{out.strip()[-200:]}", "is the agent container running?")


def rewind(volumes: list[TmpfsVolume]) -> list[Usage]:
    """Back to the state ``mark`` saw, without touching what the app made at start: remove
    the ballast and every path made since, truncate log files in place (the servers keep
    them open). One agent exec for all volumes; returns their usage afterwards.

    Files that existed at the mark keep their current content (a database keeps its rows),
    and what a service holds in memory is not rewound."""
    if not volumes:
        return []
    agent = volumes[0].agent
    assert all(v.agent is agent for v in volumes)
    for v in volumes:
        v._guard()
    paths = " ".join(shlex.quote(v.path) for v in volumes)
    ballast = " ".join(shlex.quote(f"{v.path}/{BALLAST}") for v in volumes)
    logs = _folders(volumes, logs=True)
    script = (
        "".join(v._check() for v in volumes)
        + f"find {ballast} -mindepth 1 -delete; "
        # Without a marks file nothing is removed: what the app made at start must stay.
        + f"[ -f {agent.marks} ] && find {_folders(volumes)} -mindepth 1 "
        f"| grep -vxF -f {agent.marks} "
        "| xargs -r -d '\\n' rm -rf --; "
        + (f"find {logs} -type f -exec truncate -s 0 {{}} +; " if logs else "")
        + f"stat -f -c '%S %b %a %c %d' {paths}")
    code, out = agent.sh(script)
    if code == _GUARD_EXIT:
        raise GuardError(f"Refusing to rewind: {out.strip()[-200:]}",
                         "fulldisk only writes to tmpfs volumes it created")
    lines = [ln for ln in out.strip().splitlines() if ln.replace(" ", "").isdigit()]
    if len(lines) != len(volumes):
        return measure(volumes)
    return [v._parse(ln) for v, ln in zip(volumes, lines, strict=True)]


class TmpfsVolume:
    """A docker local volume of type tmpfs, worked on through the Agent."""

    def __init__(self, key: str, docker_name: str, spec: VolumeSpec, agent: VolumeAgent) -> None:
        self.name = key
        self.docker_name = docker_name
        self.spec = spec
        self.agent = agent
        self.path = agent.path(key, docker_name)
        self.user = spec.owner
        self.seeds: dict[str, bytes] = {}  # subdir -> tar re-rooted at the subdir
        self._mountpoint: str | None = None
        self._attrs: dict[str, Any] | None = None
        self._seq = 0

    @classmethod
    def create(cls, key: str, docker_name: str, spec: VolumeSpec, *, host: bool = False) -> str:
        """Create the docker volume and register it with the guard (``host``: its tmpfs
        will be mounted by this process on the engine's host, and the label says so)."""
        engine.create_tmpfs_volume(docker_name, size=spec.size, inodes=spec.inodes,
                                   uid=spec.uid, gid=spec.gid, mode=spec.mode,
                                   extra_labels={"fulldisk.volume": key,
                                                 **({hostfs.LABEL: "1"} if host else {})})
        GUARD.register(Owned("docker-tmpfs", docker_name, engine.run_id()))
        return docker_name

    @property
    def mountpoint(self) -> str:
        """Where the engine mounted the tmpfs (valid while the agent holds it)."""
        if self._mountpoint is None:
            self._mountpoint = self.agent.mountpoint(self.docker_name)
        return self._mountpoint

    def subdirs(self) -> list[str]:
        """Folders of this volume that services see."""
        subs = {m.subdir or DEFAULT_SUBDIR for m in self.spec.mounts}
        return sorted(subs)

    def host_path(self, subdir: str) -> str:
        """Host path of a service folder, for a bind mount."""
        return f"{self.mountpoint}/{subdir}"

    # --- guard -------------------------------------------------------------------------
    def _guard(self) -> None:
        """Refuse unless the engine's record says this run created this tmpfs volume."""
        if self._attrs is None:  # the engine's record: labels and options never change
            self._attrs = engine.volume_attrs(self.docker_name)
        attrs = self._attrs
        GUARD.check_docker_volume(self.docker_name, attrs.get("Labels"), engine.run_id(),
                                  attrs.get("Options"))

    def _check(self) -> str:
        """Shell prefix: refuse unless the path is a tmpfs mountpoint in the agent (on the
        host: checked here, in the mount table, before the script runs)."""
        if self.agent.host:
            hostfs.require_ours(self.path)
            return ""
        p = shlex.quote(self.path)
        return (f'[ "$(stat -f -c %T {p})" = tmpfs ] && mountpoint -q {p} '
                f"|| {{ echo 'not a fulldisk tmpfs mount'; exit {_GUARD_EXIT}; }}; ")

    def _run(self, script: str, *, user: str | None = None, guarded: bool = True) -> str:
        pre = self._check() if guarded else ""
        code, out = self.agent.sh(pre + script, user=user or self.user)
        if code == _GUARD_EXIT:
            raise GuardError(f"Refusing to write to volume {self.name!r}: {out.strip()}.",
                             "fulldisk only writes to tmpfs volumes it created")
        if code != 0:
            raise InfrastructureError(f"volume {self.name}: command failed (exit {code}): "
                                      f"{out.strip()[-300:]}",
                                      "is the agent container still running?")
        return out

    _STAT = "stat -f -c '%S %b %a %c %d' {p}"

    def _stat(self) -> str:
        """A script's last command, its usage (``_usage_in``); on the host none: statvfs
        here afterwards costs no process."""
        return "" if self.agent.host else self._STAT.format(p=self.path)

    def _usage(self, bs: int, blocks: int, avail: int, files: int, ffree: int) -> Usage:
        """Usage from statvfs's numbers (as ``_STAT`` prints them)."""
        return Usage(bs * blocks, bs * avail, files, ffree, self.user)

    def _parse(self, line: str) -> Usage:
        return self._usage(*(int(x) for x in line.split()))

    def _usage_in(self, out: str) -> Usage | None:
        """The usage printed by a script ending in ``_STAT``; None if the stream came back
        empty or cut (docker exec under load)."""
        lines = out.strip().splitlines()
        if lines and len(lines[-1].split()) == 5 and lines[-1].replace(" ", "").isdigit():
            return self._parse(lines[-1])
        return None

    def usage(self) -> Usage:
        """Measure bytes and inodes with statvfs inside the volume."""
        if self.agent.host:
            return measure([self])[0]
        out = ""
        for _ in range(3):  # under load docker exec can hand back an empty stream
            out = self._run(self._STAT.format(p=shlex.quote(self.path)), guarded=False)
            measured = self._usage_in(out)
            if measured is not None:
                return measured
        raise InfrastructureError(f"volume {self.name}: could not measure usage "
                                  f"(stat said {out.strip()[-200:]!r})",
                                  "is the agent container still running? see `docker ps`")

    # --- setup -------------------------------------------------------------------------
    def prepare(self, seeds: dict[str, bytes], *, laid_out: bool = False) -> None:
        """Create the ballast folder and the service folders, restoring seeds
        (``laid_out``: :func:`lay_out` made the folders already; only seeds remain)."""
        self.seeds = seeds
        if not laid_out:
            lay_out([self])
        seeded = [self._tree(sub) for sub in self.subdirs() if sub in seeds]
        if seeded:
            self.agent.put_archive(self.path, engine.join_tars(seeded))

    def _layout(self) -> list[tuple[str, str | None]]:
        """The folders a stack start makes, each with its mode (None: the umask's): the
        ballast folder and every service folder without a seed, all the owner's (no
        archive call for an empty folder)."""
        return [(BALLAST, None)] + [(sub, self.spec.mode) for sub in self.subdirs()
                                    if sub not in self.seeds]

    def layout_script(self) -> str:
        """Shell that makes :meth:`_layout`'s folders (in an agent container)."""
        own = f"{self.spec.uid}:{self.spec.gid}"
        parts = []
        for name, mode in self._layout():
            d = shlex.quote(f"{self.path}/{name}")
            parts.append(f"mkdir -p {d} && chown {own} {d}"
                         + (f" && chmod {mode} {d}" if mode else ""))
        return " && ".join(parts)

    def lay_out_here(self) -> None:
        """:meth:`_layout`'s folders made by this process (a host agent)."""
        for name, mode in self._layout():
            hostfs.make_dir(self.path, name, self.spec.uid, self.spec.gid,
                            None if mode is None else int(mode, 8))

    def _tree(self, sub: str) -> bytes:
        return self.seeds.get(sub) or engine.mkdir_tar(sub, self.spec.uid, self.spec.gid,
                                                       int(self.spec.mode, 8))

    def _restore(self) -> None:
        self.agent.put_archive(self.path, engine.join_tars(
            [self._tree(sub) for sub in self.subdirs()]))

    # --- fills -------------------------------------------------------------------------
    def fill(self, *, leave: int | str | None = None, percent: float | None = None) -> FillResult:
        """Add ballast (fallocate as the owner) so ``leave`` bytes stay free, or ``percent``
        of bytes are used. On a volume already that full it is a no-op and says so."""
        self._guard()
        before, n = ballast_needed(self.usage, leave=leave, percent=percent)
        if n == 0:
            return FillResult(0, 0, before, f"already at or below the target: {before}")
        # fallocate reserves without writing; fall back to writing zeros where unsupported.
        after = self._add_ballast("ballast", "fallocate -l {n} {p} 2>/dev/null || "
                                  "head -c {n} /dev/zero > {p} || true", n)
        return FillResult(before.bytes_free - after.bytes_free, 0, after)

    def fill_inodes(self, *, leave: int = 0) -> FillResult:
        """Create empty files as the owner until ``leave`` inodes stay free."""
        self._guard()
        before = self.usage()
        n = max(0, before.inodes_free - leave)
        if n == 0:
            return FillResult(0, 0, before, f"no inode to take: {before}")
        # The folder takes one inode, the files the rest; `true` (not `:`) so that a failed
        # redirection ends the loop instead of the shell.
        after = self._add_ballast("inodes", "mkdir {p} && cd {p} && i=1; while [ $i -lt {n} ]; "
                                  "do true > f$i || break; i=$((i+1)); done", n)
        return FillResult(0, before.inodes_free - after.inodes_free, after)

    def _add_ballast(self, kind: str, script: str, n: int) -> Usage:
        """Run a ballast script (``{p}``: a new path in the ballast folder, ``{n}``: how
        much) as the owner, and return the usage measured in the same exec."""
        self._seq += 1
        p = f"{self.path}/{BALLAST}/{kind}-{self._seq}"
        # Skipped when the path exists, so a re-run of the same script (the agent shell's
        # fallback) cannot add ballast twice.
        out = self._run(f"[ -e {p} ] || {{ {script.format(p=p, n=n)}; }}; {self._stat()}")
        return self._usage_in(out) or self.usage()

    def drain(self) -> int:
        """Remove the ballast only; works on a 100 % full volume (deleting needs no space)."""
        self._guard()
        delete = f"find {self.path}/{BALLAST} -mindepth 1 -delete"
        if self.agent.host:
            before = self.usage()
            self._run(delete)
            return self.usage().bytes_free - before.bytes_free
        stat = self._STAT.format(p=self.path)
        out = self._run(f"{stat}; {delete}; {stat}")
        lines = [ln for ln in out.strip().splitlines() if ln.replace(" ", "").isdigit()]
        if len(lines) == 2:  # one exec: usage before, delete, usage after
            return self._parse(lines[1]).bytes_free - self._parse(lines[0]).bytes_free
        return -1  # the stream came back cut; the ballast is gone all the same

    def release(self, fraction: float) -> int:
        """Shrink every ballast file by ``fraction`` of its size (0 < fraction <= 1), so
        part of the space comes back and the rest stays taken; returns bytes freed."""
        if not 0 < fraction <= 1:
            raise UsageError(f"fraction {fraction} is outside (0, 1]", "e.g. 0.5 for half")
        self._guard()
        before = self.usage()
        out = self._run(f"find {self.path}/{BALLAST} -mindepth 1 -maxdepth 1 -type f "
                        "-printf '%s %f\\n'")
        sizes = [(int(n), name) for n, _, name in (ln.partition(" ") for ln in out.splitlines())
                 if n.isdigit() and name]
        if not sizes:
            return 0
        # Absolute sizes, so the agent shell's re-run fallback cannot shrink twice.
        cuts = "; ".join(f"truncate -s {int(n * (1 - fraction))} {self.path}/{BALLAST}/"
                         f"{shlex.quote(name)}" for n, name in sizes)
        after = self._usage_in(self._run(f"{cuts}; {self._stat()}"))
        return (after or self.usage()).bytes_free - before.bytes_free

    def log_folders(self) -> list[str]:
        """Service folders that hold open log files (emptied by truncating in place)."""
        return sorted({m.subdir or DEFAULT_SUBDIR for m in self.spec.mounts
                       if m.logs or self.spec.role == "logs"})

    def reset(self) -> None:
        """Empty the volume (app files and ballast) and restore the seeds.

        Folders holding log files are emptied by truncating files in place (as logrotate's
        copytruncate does): a server keeps writing to the file it has open, and deleting
        it would send every later record into an unlinked inode no one can read.
        """
        self._guard()
        logs = set(self.log_folders())
        script = [f"find {self.path}/{BALLAST} -mindepth 1 -delete"]
        for sub in self.subdirs():
            d = shlex.quote(f"{self.path}/{sub}")
            if sub in logs:
                script.append(f"find {d} -type f -exec truncate -s 0 {{}} +")
            else:  # empty, never remove: services hold bind mounts of the folder itself
                script.append(f"find {d} -mindepth 1 -delete")
        self._run(" ; ".join(script), user="0:0")
        self._restore()

    def read(self, path: str) -> bytes | None:
        """A file below the volume's root (e.g. ``data/app.log``), None when absent."""
        if path.startswith("/") or ".." in path.split("/"):
            raise UsageError(f"path {path!r} must be relative to the volume",
                             "e.g. 'app.log' or 'applogs/app.log'")
        data = self.agent.get_archive(f"{self.path}/{path}")
        if data is None:
            return None
        for _, content in engine.files_in_tar(data):
            return content
        return None

    def resolve(self, path: str) -> str:
        """Map a path relative to the volume's service folders to the agent's layout."""
        subs = self.subdirs()
        first = path.split("/", 1)[0]
        if first in subs and len(subs) > 1:
            return path
        return f"{subs[0]}/{path}"
