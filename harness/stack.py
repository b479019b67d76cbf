"""Stack: a target's services on a private network (a lone service: the engine's default
bridge), with every writable path on a Volume.

Start order: the network, made while the volumes (together), the agent that holds them
(on no network) and the seeds copied from the images (cached per image id) are; then the
services (ports on 127.0.0.1 only; those that do not depend on each other together),
then readiness with deadlines. Teardown always runs, also when start fails half way;
everything is labelled for ``clean``.
"""

from __future__ import annotations

import graphlib
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Generic, Self, TypeVar

import requests

from . import engine, hostfs, seedcache, signals
from .errors import (
    ConfigError,
    HarnessError,
    InfrastructureError,
    TargetProblem,
    UnknownName,
)
from .guard import GUARD
from .http import deadline, loopback, session
from .patterns import UserPattern
from .sizes import PAGE, format_size
from .target import Ready, Service, Target
from .timeline import Usage
from .volume import (
    DEFAULT_SUBDIR,
    TmpfsVolume,
    VolumeAgent,
    lay_out,
    measure,
    read_tails,
    start_agent,
)

_HOLDS_RELEASED = threading.Event()


def release_holds() -> None:
    """End every hold of ``announce`` now: a run that is ending (interrupted in its main
    thread) does not leave its other threads waiting for a test's release file."""
    _HOLDS_RELEASED.set()


def announce(phase: str) -> None:
    """Test hook: report the phase to ``$FULLDISK_PHASE_FILE`` and, when it is
    ``$FULLDISK_HOLD_PHASE``, hold there (at most 60 s) so a test can kill the run in it,
    or let it go on by creating ``$FULLDISK_PHASE_FILE.release``."""
    path = os.environ.get("FULLDISK_PHASE_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(phase + "\n")
    if os.environ.get("FULLDISK_HOLD_PHASE") == phase:
        release = f"{path}.release" if path else None
        end = time.monotonic() + 60
        while time.monotonic() < end and not (release and os.path.exists(release)):
            # polled; the signal the test sends (or release_holds) ends it early
            if _HOLDS_RELEASED.wait(0.05):
                break


def _levels(services: Mapping[str, Service]) -> list[list[str]]:
    """Services grouped by ``depends_on`` depth: each level only after the one before.

    The config refused cycles (Target validation), so every service gets a level."""
    order = graphlib.TopologicalSorter({n: s.depends_on for n, s in services.items()})
    order.prepare()
    levels: list[list[str]] = []
    while order.is_active():
        ready = set(order.get_ready())
        levels.append([n for n in services if n in ready])
        order.done(*ready)
    return levels


_NET = " network"  # the network's key among the volumes' (never a volume's name)
_WORKERS = 8  # engine calls in flight at once: the engine does the work, threads only wait
T = TypeVar("T")


@dataclass
class _Each(Generic[T]):
    """Results of calls made at once: those that returned, and those that raised."""

    done: dict[str, T] = field(default_factory=dict)
    failed: dict[str, BaseException] = field(default_factory=dict)

    def raise_first(self) -> None:
        """Raise the first failure (by name order), if any."""
        for name in sorted(self.failed):
            raise self.failed[name]


def _each(pool: ThreadPoolExecutor, calls: Mapping[str, Callable[[], T]]) -> _Each[T]:
    """Make the calls at once and wait for all of them (none is left running)."""
    futures = {name: pool.submit(fn) for name, fn in calls.items()}
    out: _Each[T] = _Each()
    for name, fut in futures.items():
        try:
            out.done[name] = fut.result()
        except BaseException as e:  # collected; the caller raises the first
            out.failed[name] = e
    return out


def ensure_images(target: Target, *, rebuild: bool = False) -> list[str]:
    """Build the images of services that have a build context (when missing or asked)."""
    built: list[str] = []
    seen: set[str] = set()
    for name, svc in target.services.items():
        if svc.image in seen:
            continue
        seen.add(svc.image)
        if svc.build is None:
            engine.require_image(svc.image, f"services.{name}.image: build or load it, or give "
                                 "the service a 'build' context")
            continue
        if rebuild or not engine.image_exists(svc.image):
            ctx = Path(target.root) / svc.build
            if not ctx.is_dir():
                raise ConfigError(f"build context {str(ctx)!r} is not a folder",
                                  "give a folder relative to the config file",
                                  file=target.path, key=f"services.{name}.build")
            engine.build_image(str(ctx), svc.image, dockerfile=svc.dockerfile,
                               buildargs={"BASE": engine.BASE_IMAGE, **svc.build_args})
            built.append(svc.image)
    return built


_PRIV = re.compile(r"Operation not permitted|setgid|setuid|setgroups|initgroups|chown|"
                   r"unable to (set|switch|change) (user|group)|capabilit|"
                   r"bind\b.*Permission denied", re.I)
_CAPS_FOR = (("chown", "CHOWN"), ("setgid", "SETGID"), ("setgroups", "SETGID"),
             ("initgroups", "SETGID"), ("group id", "SETGID"), ("set group", "SETGID"),
             ("setuid", "SETUID"), ("user id", "SETUID"), ("set user", "SETUID"),
             ("switch user", "SETUID"), ("bind", "NET_BIND_SERVICE"))


def cap_hint(name: str, svc: Service, log_tail: str) -> str | None:
    """A hint naming the capability keys when a service's log says a privileged start-up
    step (chown, setuid, setgid, binding a low port) was refused; None otherwise."""
    if not _PRIV.search(log_tail):
        return None
    text = log_tail.lower()
    caps = sorted({cap for word, cap in _CAPS_FOR if word in text} or {"CHOWN", "SETUID",
                                                                        "SETGID"})
    dropped = f" (it declares cap_drop = {svc.cap_drop})" if svc.cap_drop else ""
    return (f"services.{name} was refused a privileged start-up step{dropped}: images that "
            "start as root and drop to a service user need the engine's default capabilities "
            f"(CHOWN, SETUID, SETGID, ...). Remove 'cap_drop' or add cap_add = {caps} to "
            f"services.{name}; README 'Bringing your own app' explains the capability keys")


class Stack:
    """A running target: services, network, volumes and the agent, torn down together."""

    remote_reads = True  # each log read is a round trip to the engine: worth making at once
    logs_synchronous = False  # servers flush their logs late (lighttpd: about once a second)

    def __init__(self, target: Target, *, env: Mapping[str, Mapping[str, str]] | None = None,
                 name: str | None = None, agent: str = "auto") -> None:
        self.target = target
        self.agent_kind = agent  # who works on the volumes: see hostfs.unavailable
        self.id = name or f"{engine.run_id()}-{uuid.uuid4().hex[:6]}"
        self.env_overrides = {k: dict(v) for k, v in (env or {}).items()}
        # A lone service has no one to reach by name: it joins the engine's default
        # bridge, which costs nothing to make and remove (a network: 0.2 s of a short run).
        # Either way it is reached only on its ports published on 127.0.0.1.
        self.network = engine.DEFAULT_BRIDGE if len(target.services) == 1 \
            else f"{self.id}-net"
        self.volumes: dict[str, TmpfsVolume] = {}
        self.services: dict[str, engine.Handle] = {}
        self.agent: VolumeAgent | None = None
        self._network_made = False
        self._docker_volumes: list[str] = []
        self._making = threading.Lock()  # held while the volumes and their agent are made
        self._stopped = False  # stop() began: a start under way makes nothing more
        self._started = False
        self.marks_shown: bool | None = None  # learnt by the first run that sends marks

    # --- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> Self:
        """Start everything and wait until each service is ready.

        Independent steps run at once: the network is made while the volumes are created
        together, the seeds read (or found in the cache) and the agent (which needs no
        network) started, and services start level by level of ``depends_on`` (compose's
        order: after what they depend on has started).
        """
        with self._making:
            if self._stopped and not self._started:  # removed before it ever started
                raise InfrastructureError(f"{self.id}: the stack is being removed",
                                          "nothing to do: the run is ending")
            self._stopped, self._started = False, True  # a stop and start again: a restart
        signals.check()  # a stopped run starts no stack
        engine.require_image(engine.BASE_IMAGE, "run ci/setup to build the base image the "
                             "agent container runs from")
        for svc in self.target.services.values():
            engine.require_image(svc.image, "run `fulldisk build` (reference stack) or build "
                                 "the target's images; `fulldisk doctor` checks")
        with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            seeds = pool.submit(self._read_seeds)
            # the pool's end waits for it, so a start that fails later still removes it
            network = pool.submit(self._make_network)
            # who mounts the volumes is decided first: their labels say it (see clean)
            host = hostfs.unavailable(self.agent_kind) is None
            # A stop from another thread (an interrupt) waits until the agent holds the
            # volumes: an agent container started after they were removed would have the
            # engine create unlabelled volumes of the same names, which nothing removes.
            with self._making:
                if self._stopped:
                    raise InfrastructureError(f"{self.id}: the stack is being removed",
                                              "nothing to do: the run is ending")
                made = _each(pool, {key: partial(TmpfsVolume.create, key, f"{self.id}-{key}",
                                                 spec, host=host)
                                    for key, spec in self.target.volumes.items()})
                self._docker_volumes += made.done.values()
                made.raise_first()
                # the agent needs the volumes only (no network): it starts while that is made
                self.agent = start_agent(f"{self.id}-agent", {
                    k: (f"{self.id}-{k}", spec) for k, spec in self.target.volumes.items()},
                    host=host)
            for key, spec in self.target.volumes.items():
                self.volumes[key] = TmpfsVolume(key, f"{self.id}-{key}", spec, self.agent)
            self._seed(pool, seeds.result())
            network.result()
            announce("start")  # volumes and agent are up, services about to start
            with self.agent.holding():  # a stop from another thread waits for the binds
                for level in _levels(self.target.services):
                    started = _each(pool, {n: partial(engine.start, self._spec(n))
                                           for n in level})
                    self.services.update(started.done)
                    started.raise_first()
        announce("ready-wait")
        self._wait_ready(time.monotonic())
        return self

    def stop(self) -> None:
        """Remove services and agent (together), then the volumes and the network
        (together); safe to call twice."""
        errors: list[str] = []
        with self._making:  # a start in another thread has its agent, or makes nothing
            self._stopped = True
        if self.agent is not None:  # ... and ends its binds first
            self.agent.close()
        # with the volumes the engine made for the image's VOLUME paths: nobody else uses
        # them, and they carry no label a later clean could find them by
        holders: dict[str, Callable[[], object]] = {
            h.name: partial(h.remove, anonymous_volumes=True) for h in self.services.values()}
        if self.agent is not None:
            holders["agent"] = self.agent.remove
        with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            gone = _each(pool, holders)  # keeps tearing down the rest when one fails
            errors += [f"{name}: {e}" for name, e in gone.failed.items()]
            self.services.clear()
            self.agent = None
            net = {_NET: partial(engine.network_remove, self.network)} \
                if self._network_made else {}
            vols = _each(pool, net | {dv: partial(engine.remove_volume, dv)
                                      for dv in self._docker_volumes})
            errors += [f"network: {e}" if dv == _NET else f"volume {dv}: {e}"
                       for dv, e in vols.failed.items()]
            self._network_made = False
        for dv in self._docker_volumes:
            GUARD.forget("docker-tmpfs", dv)
        self._docker_volumes.clear()
        for e in (*gone.failed.values(), *vols.failed.values()):
            lost = engine.engine_error(e)
            if lost is not None:  # the engine is gone: that is the one thing to say
                raise lost from e
        if errors:
            raise InfrastructureError("teardown left something behind: " + "; ".join(errors),
                                      "run `fulldisk clean`")

    # --- parts -------------------------------------------------------------------------
    def _make_network(self) -> None:
        if self.network == engine.DEFAULT_BRIDGE:
            return
        engine.network_create(self.network)
        self._network_made = True

    def _read_seeds(self) -> dict[tuple[str, str], bytes | None]:
        """The image's files at each seeded mount path (tmpfs starts empty), by (image,
        path): from the seed cache, else read out of a created (never started) container."""
        wanted = {(self.target.services[m.service].image, m.path)
                  for vol in self.target.volumes.values() if vol.seed for m in vol.mounts}
        out: dict[tuple[str, str], bytes | None] = {}
        readers: dict[str, engine.Handle] = {}
        try:
            for image, path in sorted(wanted):
                digest = engine.image_id(image)
                hit, data = seedcache.get(digest, path)
                if not hit:
                    if image not in readers:
                        readers[image] = engine.inspect_created(image)
                    data = readers[image].get_archive(path)
                    seedcache.put(digest, path, data)
                out[(image, path)] = data
        finally:
            for r in readers.values():
                r.remove()
        return out

    def _seed(self, pool: ThreadPoolExecutor, found: dict[tuple[str, str], bytes | None]
              ) -> None:
        """Lay out every volume (guard check and empty folders: one exec for all), then put
        the seeds (re-rooted at their service folders) in place, one archive per seeded
        volume, all at once."""
        for vol in self.volumes.values():
            seeds: dict[str, bytes] = {}
            where: list[str] = []
            if vol.spec.seed:
                for m in vol.spec.mounts:
                    sub = m.subdir or DEFAULT_SUBDIR
                    data = found.get((self.target.services[m.service].image, m.path))
                    if sub not in seeds and data is not None:
                        # the image's owner and mode, unless the target sets them
                        given = vol.spec.model_fields_set
                        seeds[sub] = engine.retar(
                            data, sub,
                            uid=vol.spec.uid if "owner" in given else None,
                            gid=vol.spec.gid if "owner" in given else None,
                            mode=int(vol.spec.mode, 8) if "mode" in given else None)
                        where.append(f"{m.service}:{m.path}")
            self._seed_fits(vol, seeds, where)
            vol.seeds = seeds
        lay_out(list(self.volumes.values()))
        _each(pool, {v.name: partial(v.prepare, v.seeds, laid_out=True)
                     for v in self.volumes.values() if v.seeds}).raise_first()

    def _seed_fits(self, vol: TmpfsVolume, seeds: dict[str, bytes], where: list[str]) -> None:
        """The image's files must fit the volume with room to spare, or the app would
        start on a full disk: say which path and how much it needs."""
        nbytes = ninodes = 0
        for data in seeds.values():
            for size, _ in engine.tar_sizes(data):
                nbytes += -(-size // PAGE) * PAGE  # tmpfs allocates whole pages
                ninodes += 1
        spec = vol.spec
        if nbytes + PAGE > spec.size or ninodes + 2 > spec.inodes:
            mib = 1024 * 1024
            need = format_size(max(spec.size, -(-2 * (nbytes + PAGE) // mib) * mib))
            raise TargetProblem(
                f"volume {vol.name!r}: the image's files at {', '.join(where)} need "
                f"{format_size(nbytes)} and {ninodes} inodes, but the volume has "
                f"{format_size(spec.size)} and {spec.inodes} inodes, so the app would start "
                "on a full disk",
                f"in {self.target.path} set volumes.{vol.name}.size to at least {need} and "
                f"inodes to at least {max(spec.inodes, 2 * ninodes + 16)}, or seed = false if "
                "the app creates its files itself")

    def _spec(self, name: str) -> engine.ContainerSpec:
        svc = self.target.services[name]
        binds: dict[str, str] = {}
        for vol in self.volumes.values():
            for m in vol.spec.mounts:
                if m.service == name:
                    binds[vol.host_path(m.subdir or DEFAULT_SUBDIR)] = m.path
        env = {**svc.env, **self.env_overrides.get(name, {})}
        return engine.ContainerSpec(
            name=f"{self.id}-{name}", image=svc.image, command=svc.command, env=env,
            user=svc.user, ports=svc.ports, network=self.network, aliases=(name,),
            binds=binds, volumes={}, role="service", privileged=svc.privileged,
            cap_drop=svc.cap_drop, cap_add=svc.cap_add,
            extra_labels={"fulldisk.service": name}, entrypoint=svc.entrypoint,
            tmpfs=svc.tmpfs)

    def _wait_ready(self, t0: float) -> None:
        pending = {n: s.ready for n, s in self.target.services.items() if s.ready}
        attempts: dict[str, str] = {}
        with self.session() as http:
            self._poll_ready(pending, attempts, http, t0)
        for name, h in self.services.items():  # those without a readiness check
            if self.target.services[name].ready is None and h.status not in ("running",
                                                                              "created"):
                raise self._died(name)

    def _poll_ready(self, pending: dict[str, Ready], attempts: dict[str, str],
                    http: requests.Session, t0: float) -> None:
        checked: dict[str, float] = {}  # when each service's state was last inspected
        lines = {n: UserPattern(r.log, f"services.{n}.ready.log", file=self.target.path)
                 for n, r in pending.items() if r.log is not None}
        searched: dict[str, int] = {}  # where the next search of a service's output starts
        while pending:
            signals.check()  # a stopped run waits no longer
            for name, ready in list(pending.items()):
                h = self.services[name]
                # a service that answers is running: its state is inspected only while it
                # does not, at most every 0.25 s (an inspect per poll was most of the wait)
                if time.monotonic() - checked.get(name, t0) > 0.25:
                    checked[name] = time.monotonic()
                    if h.status not in ("running", "created"):
                        raise self._died(name)
                if ready.http is not None:
                    port = self.target.port_of(name, ready.port)
                    try:
                        host_port = h.host_port(port)
                    except InfrastructureError:  # an exited container publishes no port
                        if h.status not in ("running", "created"):
                            raise self._died(name) from None
                        raise
                    url = loopback(f"http://{engine.LOOPBACK}:{host_port}{ready.http}")
                    attempts[name] = url
                    # one deadline for the whole request (a trickled answer included),
                    # never past the ready timeout
                    wait = max(0.01, min(1.0, t0 + ready.timeout - time.monotonic()))
                    try:
                        with deadline(time.monotonic() + wait), \
                                http.get(url, timeout=wait, allow_redirects=False,
                                         stream=True) as r:  # the body is not needed
                            ok = r.status_code < 500
                    except requests.RequestException:
                        ok = False
                else:
                    attempts[name] = f"log line /{ready.log}/"
                    text = h.logs(timestamps=False)
                    # from the last line searched on: each search sees a few new lines,
                    # not the whole output again (50 MB of start-up output, every poll)
                    ok = lines[name].search(text, searched.get(name, 0)) is not None
                    searched[name] = text.rfind("\n") + 1
                if ok:
                    del pending[name]
                elif time.monotonic() - t0 > ready.timeout:
                    tail = h.last_lines()
                    raise InfrastructureError(
                        f"Service {name!r} not ready within {ready.timeout:g} s "
                        f"(tried {attempts[name]}). Last log lines:\n{tail}",
                        cap_hint(name, self.target.services[name], tail)
                        or f"check services.{name}.ready and the service's last log lines "
                        "in this message")
            if pending:  # poll interval of a deadline-bounded readiness loop: short while
                # a server is most likely to come up, then easier on a slow one
                time.sleep(0.005 if time.monotonic() - t0 < 1.0 else 0.05)

    def check_alive(self) -> None:
        """Raise the "exited at start" error of the first service that is no longer running
        (one that died just after its start check fails the pre-flight for that reason)."""
        for name, h in self.services.items():
            if h.status not in ("running", "created", "paused"):
                raise self._died(name)

    def _died(self, name: str) -> HarnessError:
        h = self.services[name]
        code = h.exit_code()
        tail = h.last_lines()
        return InfrastructureError(f"Service {name!r} exited at start (exit code {code}). "
                                   f"Last log lines:\n{tail}",
                                   cap_hint(name, self.target.services[name], tail)
                                   or f"fix services.{name} (command, env, image); its last "
                                   "log lines are in this message")

    # --- access ------------------------------------------------------------------------
    def url(self, service: str, port: int | None = None) -> str:
        """Base URL of a service's published port, always on 127.0.0.1."""
        p = self.target.port_of(service, port)
        return f"http://{engine.LOOPBACK}:{self.services[service].host_port(p)}"

    def session(self) -> requests.Session:
        """A fresh HTTP session that never uses a proxy (services are on 127.0.0.1)."""
        return session()

    def file_kind(self, service: str, path: str) -> str | None:
        """What a path on a service's own filesystem is (None when absent)."""
        h = self.services.get(service)
        return None if h is None else h.file_kind(path)

    def read_file(self, service: str, path: str) -> bytes | None:
        """A file on a service's own filesystem (archive API), None when absent."""
        h = self.services.get(service)
        return None if h is None else h.read_file(path)

    def log_lines(self, service: str) -> list[tuple[float | None, str]]:
        """A service's stdout+stderr so far, each line with the engine's timestamp."""
        h = self.services.get(service)
        if h is None:
            return []
        return h.log_lines()

    def read_tails(self, items: list[tuple[str, str, int]]) -> list[tuple[int, bytes]]:
        """For each (volume, path in it, offset): size and bytes from offset, one exec."""
        return read_tails([(self.volume(v), self.volume(v).resolve(p), off)
                           for v, p, off in items])

    def service(self, name: str) -> engine.Handle:
        """A running service's handle (exec, logs)."""
        if name not in self.services:
            raise UnknownName(f"unknown service {name!r}",
                              f"use one the target declares: {', '.join(self.services)}")
        return self.services[name]

    def volume(self, name: str) -> TmpfsVolume:
        """A volume by its config name."""
        if name not in self.volumes:
            raise UnknownName(f"unknown volume {name!r}",
                              f"use one the target declares: {', '.join(self.volumes)}")
        return self.volumes[name]

    def usage(self, *names: str) -> dict[str, Usage]:
        """Usage of several volumes (all when none named), measured in one agent exec."""
        vols = [self.volume(n) for n in names or tuple(self.volumes)]
        return dict(zip([v.name for v in vols], measure(vols), strict=True))

    def restarts(self) -> dict[str, int]:
        """Restart count and exits per service (a crash counts as one)."""
        out: dict[str, int] = {}
        for n, h in self.services.items():
            count, status = h.restarts_and_status()
            out[n] = count + (0 if status == "running" else 1)
        return out

    def untested_paths(self) -> dict[str, list[str]]:
        """Per service, the folders it wrote outside fulldisk's volumes (the engine's diff):
        writable paths this run never put on a small disk."""
        from .writes import written_folders

        # Where the overlay layers cannot be read here the engine's diff takes about half
        # a second whatever its size: ask for all services' at once.
        with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            diffs = _each(pool, {n: h.changes for n, h in self.services.items()})
        for e in diffs.failed.values():
            if not isinstance(e, HarnessError):
                raise e
        out: dict[str, list[str]] = {}
        for name, changes in diffs.done.items():  # a service that is gone tells nothing more
            mounts = [m.path for v in self.target.volumes.values() for m in v.mounts
                      if m.service == name]
            folders = written_folders(changes, covered=mounts)
            if folders:
                out[name] = folders
        return out

    def reset(self) -> None:
        """Reset every volume to its seed (per-test isolation)."""
        for v in self.volumes.values():
            v.reset()
