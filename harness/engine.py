"""The Docker engine, seen through one module: client, labels, images, containers, cleanup.

This is the only module that imports ``docker`` and ``testcontainers``. Everything it
creates carries ``fulldisk.run=<run id>`` and ``fulldisk.pid=<owner pid>`` so that
``fulldisk clean`` and the next session remove leftovers even after a SIGKILL.

Stale means proven gone: before its first resource, a process creates a small lease
container (started when its first renewal is due) and touches a file in it every few seconds.
``clean --stale`` reaps a run only when every lease of it has gone unrenewed past its grace
period (judged on the engine's clock; a lease never started, on its creation time) and its
pid is not alive here; a pid alone proves nothing across PID namespaces.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import stat
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

# testcontainers reads these at import: no reaper image (no registry here), and the
# mapped ports are reached on 127.0.0.1, never on the bridge gateway it would guess.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
os.environ.setdefault("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")

import docker.errors
from docker.models.containers import Container
from docker.types import EndpointConfig
from testcontainers.core.container import DockerContainer

import docker

from . import hostfs
from .backend import ExecResult
from .errors import DockerUnavailable, EngineLost, InfrastructureError, UsageError

RUN_LABEL = "fulldisk.run"
PID_LABEL = "fulldisk.pid"
HOST_LABEL = "fulldisk.host"
ROLE_LABEL = "fulldisk.role"
GRACE_LABEL = "fulldisk.lease.grace"  # seconds a lease may go unrenewed before it proves death
LEASE_FILE = "/tmp/fulldisk-lease"
GRACE_FACTOR = 12  # missed renewals before a lease counts as expired (a loaded engine is slow)
BASE_IMAGE = os.environ.get("FULLDISK_BASE_IMAGE", "fulldisk/base:bookworm")
LOOPBACK = "127.0.0.1"
# The archive API's file mode is Go's (os.FileMode): the type bits that are not a file
_KINDS = ((1 << 31, "folder"), (1 << 26, "device"), (1 << 21, "device"),
          (1 << 25, "named pipe"), (1 << 24, "socket"), (1 << 19, "irregular file"))
_NOT_A_FILE = sum({bit for bit, _ in _KINDS})

_lock = threading.Lock()
_client: docker.DockerClient | None = None
_run_id: str | None = None


def run_id() -> str:
    """This process's run id (``FULLDISK_RUN_ID`` overrides, e.g. for one xdist worker)."""
    global _run_id
    if _run_id is None:
        _run_id = os.environ.get("FULLDISK_RUN_ID") or f"fd-{uuid.uuid4().hex[:10]}"
    return _run_id


def labels(role: str, **extra: str) -> dict[str, str]:
    """Labels for a resource of this run; the first one starts the run's lease."""
    if role != "lease":
        _lease.ensure()
    return {RUN_LABEL: run_id(), PID_LABEL: str(os.getpid()), HOST_LABEL: socket.gethostname(),
            ROLE_LABEL: role, **extra}


class _Lease:
    """This process's lease: a container whose file it touches every ``interval`` seconds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.container: Container | None = None
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.failed: str | None = None  # why the renewing thread could not start the lease

    @property
    def interval(self) -> float:
        """Seconds between renewals: ``FULLDISK_LEASE_INTERVAL`` (0.1-3600), default 5."""
        text = os.environ.get("FULLDISK_LEASE_INTERVAL", "5")
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0 < value <= 3600:  # also nan and inf
            raise UsageError(f"FULLDISK_LEASE_INTERVAL={text[:40]!r} is not a number of "
                             "seconds from 0.1 to 3600",
                             "set it to e.g. 5 (seconds between lease renewals), or unset it")
        return max(0.1, value)

    def ensure(self) -> None:
        """Create the lease (resources may follow at once: see ``stale_runs``) and start
        it in the renewing thread; a start that failed is raised here, next time."""
        with self.lock:
            if self.failed is not None:
                failed, self.failed = self.failed, None
                raise InfrastructureError(f"Cannot start this run's lease container: "
                                          f"{failed}", "see `fulldisk doctor`")
            if self.container is not None and self.thread is not None \
                    and self.thread.is_alive():
                return
            require_image(BASE_IMAGE, "run ci/setup to build the base image")
            grace = max(2.0, GRACE_FACTOR * self.interval)
            name = f"{run_id()}-lease-{os.getpid()}"
            api = client().api
            try:
                # the low-level call: the model's create inspects the container afterwards,
                # and every resource of the run waits for this one
                made = api.create_container(
                    BASE_IMAGE, ["sh", "-c", f"touch {LEASE_FILE} && exec sleep infinity"],
                    detach=True, name=name, network_disabled=True, user="65534:65534",
                    labels=labels("lease", **{GRACE_LABEL: f"{grace:g}"}),
                    host_config=api.create_host_config(
                        init=True, cap_drop=["ALL"], security_opt=["no-new-privileges"],
                        mem_limit="16m"))
                self.container = Container(attrs={"Id": made["Id"], "Name": f"/{name}"},
                                           client=client(), collection=client().containers)
            except docker.errors.APIError as e:
                if e.status_code == 409:  # this pid's lease of this run already exists
                    self.container = client().containers.get(name)
                else:
                    raise InfrastructureError(f"Cannot create this run's lease container: "
                                              f"{_short(e)}", "see `fulldisk doctor`") from e
            assert self.container is not None
            self.stop = threading.Event()
            self.thread = threading.Thread(target=self._renew, args=(self.container, self.stop),
                                           name="fulldisk-lease", daemon=True)
            self.thread.start()

    def _renew(self, c: Container, stop: threading.Event) -> None:
        # The start (a container start: most of the lease's cost) waits until the first
        # renewal is due: a lease never started is judged on its creation time
        # (``_lease_age``), so a run shorter than the interval never pays for it, and the
        # engine is not starting it while the run's own containers start.
        if stop.wait(self.interval):
            return
        try:
            c.start()
        except docker.errors.APIError as e:
            if not (e.status_code == 304 or "already" in str(e)):  # 304: running already
                self.failed = _short(e)
                return
        except Exception:  # the engine gone: the run's next call says so; a lease never
            return         # started expires on its creation time (``_lease_age``)
        while not stop.wait(self.interval):
            try:
                c.exec_run(["touch", LEASE_FILE], user="65534:65534")
            except docker.errors.NotFound:
                return  # removed by this run's clean: nothing left to keep alive
            except Exception:  # a slow or busy engine: the grace period covers a miss
                continue

    def release(self) -> None:
        with self.lock:
            self.stop.set()
            c, self.container, self.thread = self.container, None, None
        if c is not None:
            _gone(partial(c.remove, force=True), time.monotonic() + 30, str(c.name))


_lease = _Lease()


def start_lease() -> None:
    """Make this process's lease now, in the background, so that the first resource
    (which waits for it) finds it made instead of paying for its create. A failure here
    is only retried there, where it is reported."""

    def make() -> None:
        try:
            _lease.ensure()
        except Exception:  # the first labels() call ensures again and raises the error
            pass

    threading.Thread(target=make, name="fulldisk-lease-start", daemon=True).start()


def release_lease(*, unless_left: bool = False) -> None:
    """Stop renewing and remove this process's lease (its run's other resources are gone).
    ``unless_left``: while anything else of the run is left (a teardown that failed), the
    lease stays, unrenewed: it is what proves the run gone to ``clean --stale``."""
    if unless_left and _lease.container is not None:
        left = count_labelled(run_id())
        if left.total > 1:  # more than the lease itself
            _lease.stop.set()
            return
    _lease.release()


DOCKER_HINT = ("run ci/setup (it installs and starts a Docker engine), or start dockerd "
               "yourself; `fulldisk doctor` checks")


def engine_error(e: BaseException) -> DockerUnavailable | None:
    """The one infrastructure error for an engine that stopped answering (its socket gone,
    a call or an exec's stream cut), found in ``e`` or its causes; None for anything else
    (a request to the app that failed is the app's, judged by the probes)."""
    seen: set[int] = set()
    x: BaseException | None = e
    while x is not None and id(x) not in seen:
        seen.add(id(x))
        if isinstance(x, DockerUnavailable):
            return x
        if _engine_call(x) or isinstance(x, ConnectionError):
            return EngineLost(f"The Docker engine stopped answering during the run "
                              f"({_short(x)})",
                              "check that dockerd runs (`fulldisk doctor`); once it answers, "
                              "`fulldisk clean --stale` removes what this run left")
        x = x.__cause__ or x.__context__
    return None


def _engine_call(x: BaseException) -> bool:
    """A call to the engine's API that got no answer (not one to an app's port)."""
    import requests

    if not isinstance(x, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return False
    url = str(getattr(getattr(x, "request", None), "url", "") or "")
    base = _client.api.base_url if _client is not None else "http+docker://"
    return url.startswith(("http+docker://", base))


def client() -> docker.DockerClient:
    """A Docker client that answered a ping, or DockerUnavailable with the fix."""
    global _client
    with _lock:
        if _client is None:
            try:
                c = _negotiated()
            except Exception as e:  # docker raises several unrelated types here
                raise DockerUnavailable(f"No Docker engine answers ({_short(e)}).",
                                        DOCKER_HINT) from e
            _client = c
        return _client


def _negotiated() -> docker.DockerClient:
    """A client speaking the engine's API version, learnt from the ping that proves the
    engine answers (its API-Version header): docker-py's own negotiation asks /version
    first, a second round trip that the engine answers slowly (it gathers its components)."""
    probe = docker.from_env(version=MIN_API_VERSION, timeout=60)
    try:
        answer = probe.api.get(f"{probe.api.base_url}/_ping", timeout=60)
        answer.raise_for_status()
        version = answer.headers.get("API-Version")
    finally:
        probe.close()
    if version:
        c = docker.from_env(version=version, timeout=60)
    else:  # an engine without the header: docker-py negotiates as usual
        c = docker.from_env(timeout=60)
        c.ping()
    if c.api.base_url.startswith("http+docker://"):
        # a local socket: no proxy applies, so requests need not look for one, nor for
        # ~/.netrc, before every call (a remote engine keeps the environment's proxy)
        c.api.trust_env = False
    return c


def require() -> None:
    """Raise DockerUnavailable, naming the fix, unless a Docker engine answers."""
    client()


def overlay_changes(upper: str, lowers: Sequence[str]) -> list[tuple[str, int]]:
    """An overlay2 container's changes as the engine's diff reports them (moby's
    ``ChangesDirs`` rules): a whiteout is a deletion, a path in no lower layer an
    addition, a file whose mode, owner, size or mtime differ from the lower's a change (a
    folder's size and mtime are not a measure of change), and every folder above a
    listed path is a change."""
    found: dict[str, int] = {}
    for root, dirs, files in os.walk(upper):
        for name in dirs + files:
            full = os.path.join(root, name)
            path = "/" + os.path.relpath(full, upper)
            st = os.lstat(full)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                kind: int | None = 2  # an overlay whiteout: deleted from a lower layer
            else:
                kind = 1
                for layer in lowers:
                    try:
                        old = os.lstat(layer + path)
                    except FileNotFoundError:
                        continue
                    kind = 0 if _differs(old, st) else None
                    break
            if kind is None:
                continue
            found[path] = kind
            parent = os.path.dirname(path)
            while parent != "/" and parent not in found:
                found[parent] = 0
                parent = os.path.dirname(parent)
    return sorted(found.items())


def _differs(old: os.stat_result, new: os.stat_result) -> bool:
    """moby's ``statDifferent``: mode, owner, device; for a file also size and mtime."""
    if (old.st_mode, old.st_uid, old.st_gid, old.st_rdev) != \
            (new.st_mode, new.st_uid, new.st_gid, new.st_rdev):
        return True
    return not stat.S_ISDIR(new.st_mode) and (
        old.st_size != new.st_size or old.st_mtime_ns != new.st_mtime_ns)


def _short(e: BaseException) -> str:
    # docker-py's message starts with the request's URL; the engine's own words say why.
    said = getattr(e, "explanation", None) if isinstance(e, docker.errors.APIError) else None
    text = str(said or e).splitlines()[0] if str(said or e) else type(e).__name__
    return text[:300]


@dataclass(frozen=True)
class EngineInfo:
    """What ``fulldisk doctor`` reports about the engine."""

    version: str
    api_version: str
    base_image: str
    base_image_present: bool


def info() -> EngineInfo:
    """Engine version and whether the base image exists."""
    c = client()
    v = c.version()
    return EngineInfo(str(v.get("Version", "?")), str(v.get("ApiVersion", "?")), BASE_IMAGE,
                      image_exists(BASE_IMAGE))


def image_exists(tag: str) -> bool:
    """Whether an image is present locally. A tag found once is not asked again in this
    process (a stack start asked up to five times): one removed since fails its
    container's create, which names the image and the fix as this check would."""
    if tag in _present:
        return True
    try:
        client().images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as e:
        if e.status_code == 400:  # "invalid reference format": a typo, not the engine
            raise UsageError(f"image {tag!r} is not a valid image reference ({_short(e)})",
                             "give a reference such as \"myapp:1.2\" (`docker images` lists "
                             "this machine's)") from None
        raise InfrastructureError(f"Cannot look up image {tag!r}: {_short(e)}",
                                  "see `fulldisk doctor`") from e
    _present.add(tag)
    return True


_present: set[str] = set()  # tags image_exists found


@dataclass(frozen=True)
class ImageConfig:
    """What an image declares: its exposed TCP ports, default user and VOLUME paths."""

    ports: tuple[int, ...]
    user: str
    volumes: tuple[str, ...] = ()


def image_config(tag: str) -> ImageConfig:
    """An image's exposed TCP ports and default user (``fulldisk init``)."""
    require_image(tag, "build or load the image first (there is no registry to pull from)")
    cfg = client().images.get(tag).attrs.get("Config") or {}
    ports = sorted(int(p.split("/")[0]) for p in (cfg.get("ExposedPorts") or {})
                   if p.endswith("/tcp"))
    return ImageConfig(tuple(ports), str(cfg.get("User") or ""),
                       tuple(sorted(str(v) for v in (cfg.get("Volumes") or {}))))


def image_id(tag: str) -> str:
    """An image's id (the digest of its content), InfrastructureError when missing."""
    try:
        return str(client().images.get(tag).id)
    except docker.errors.ImageNotFound:
        raise InfrastructureError(f"Image {tag!r} is not on this machine (no registry to "
                                  "pull from).", "build or load the image first") from None


def require_image(tag: str, hint: str) -> None:
    """Raise InfrastructureError naming the fix when an image is missing."""
    if not image_exists(tag):
        raise InfrastructureError(f"Image {tag!r} is not on this machine (no registry to pull "
                                  "from).", hint)


def build_image(context: str, tag: str, *, dockerfile: str | None = None,
                buildargs: Mapping[str, str] | None = None) -> str:
    """Build an image from a context folder (cached by Docker); returns the build log tail."""
    require_image(BASE_IMAGE, "run ci/setup to build the base image")
    lines: list[str] = []
    try:
        for chunk in client().api.build(path=context, tag=tag, dockerfile=dockerfile,
                                        buildargs=dict(buildargs or {}), rm=True, decode=True,
                                        forcerm=True,  # a failed step leaves no container
                                        labels={"fulldisk.image": "1"}):
            if "stream" in chunk:
                lines.extend(str(chunk["stream"]).splitlines())
            if "error" in chunk:
                tail = "\n".join(lines[-15:])
                raise InfrastructureError(f"Building {tag} from {context} failed: "
                                          f"{chunk['error'].strip()}\n{tail}",
                                          "fix the Dockerfile; the build log is above")
    except (docker.errors.APIError, docker.errors.BuildError, TypeError) as e:
        raise InfrastructureError(f"Building {tag} from {context} failed: {_short(e)}",
                                  "check the build context and the Dockerfile") from e
    return "\n".join(lines[-5:])


# --- volumes ---------------------------------------------------------------------------

def tmpfs_options(*, size: int, inodes: int, uid: int, gid: int, mode: str) -> str:
    """A tmpfs's mount options (the engine's for a volume, and mount(2)'s)."""
    return f"size={size},nr_inodes={inodes},uid={uid},gid={gid},mode={mode}"


def create_tmpfs_volume(name: str, *, size: int, inodes: int, uid: int, gid: int,
                        mode: str, extra_labels: Mapping[str, str]) -> str:
    """Create a docker local volume of type tmpfs; returns its name."""
    opts = tmpfs_options(size=size, inodes=inodes, uid=uid, gid=gid, mode=mode)
    try:
        v = client().volumes.create(name=name, driver="local",
                                    driver_opts={"type": "tmpfs", "device": "tmpfs", "o": opts},
                                    labels=labels("volume", **extra_labels))
    except docker.errors.APIError as e:
        raise InfrastructureError(f"Cannot create volume {name}: {_short(e)}",
                                  "run `fulldisk clean` and retry") from e
    return str(v.name)


def remove_volume(name: str, *, deadline: float = 30.0) -> None:
    """Remove a volume, ignoring one already gone; retried while a container just removed
    still holds it (the engine releases it a moment later)."""
    hostfs.release(name)  # a tmpfs this process mounted for it goes first (hostfs)
    try:
        vol = client().volumes.get(name)
    except docker.errors.NotFound:
        return
    _gone(partial(vol.remove, force=True), time.monotonic() + deadline, name)


def volume_attrs(name: str) -> dict[str, Any]:
    """The engine's record of a volume (labels, options, mountpoint)."""
    try:
        return dict(client().volumes.get(name).attrs)
    except docker.errors.NotFound:
        raise UsageError(f"No Docker volume named {name!r}.",
                         "use a Volume created by this run (Stack.volumes)") from None


# --- containers ------------------------------------------------------------------------

@dataclass
class Handle:
    """A container of this run. Callers get what they may do with it (exec, logs, archives,
    pause); the docker-py object stays inside this module."""

    name: str
    _container: Container
    _shells: dict[str, _Shell] = field(default_factory=dict)
    # published ports of the current start (a restart may publish others): every probe
    # request asks for its URL, and an inspect per request was most of a run's engine calls
    _ports: dict[int, int] = field(default_factory=dict)
    _started_at: str = ""
    _log: _JsonLog | None = None  # its json-file log read here (``log_lines``)

    @property
    def id(self) -> str:
        """The engine's id of the container."""
        return str(self._container.id)

    def reload(self) -> None:
        """Refresh state from the engine."""
        self._container.reload()
        started = str((self._container.attrs.get("State") or {}).get("StartedAt", ""))
        if started != self._started_at:
            self._ports.clear()
            self._started_at = started

    def exit_code(self) -> int | None:
        """The exit code the engine records, freshly inspected (0 while it runs)."""
        self.reload()
        code = (self._container.attrs.get("State") or {}).get("ExitCode")
        return None if code is None else int(code)

    def pause(self) -> None:
        """Freeze every process of the container (a cleaner or cron that stops running);
        one the engine already reports paused is left so."""
        self._state_change("pause", self._container.pause, "paused")

    def unpause(self) -> None:
        """Resume a paused container; one the engine already reports running is left so."""
        self._state_change("unpause", self._container.unpause, "running")

    def _state_change(self, what: str, call: Callable[[], Any], wanted: str) -> None:
        # The engine records pause and unpause twice: when the call returns and when
        # containerd's event arrives. Under load an event that arrives late undoes the
        # record, so the engine may answer "already paused" (409) or "not paused" (500)
        # to a change that is needed, or to one already made. The state is polled,
        # bounded: reached counts as done; still the other one, the change is asked again.
        end = time.monotonic() + STATE_SETTLE_SECONDS
        while True:
            try:
                call()
                return
            except docker.errors.APIError as e:
                error = e
            asked = time.monotonic()
            status = self.status
            while status != wanted and status in ("running", "paused", "restarting") \
                    and time.monotonic() < end and time.monotonic() - asked < STATE_REASK_SECONDS:
                time.sleep(0.05)  # poll interval of a deadline-bounded wait
                status = self.status
            if status == wanted:
                return
            if status not in ("running", "paused", "restarting") or time.monotonic() >= end:
                break
        why = f"it is {status}" + ("" if status in ("running", "paused") else
                                   f" (exit code {self.exit_code()}); last log lines:\n"
                                   f"{self.last_lines()}")
        raise InfrastructureError(f"{self.name}: {what} failed: {why}: {_short(error)}",
                                  "is the container still running? see its logs") from error

    @property
    def status(self) -> str:
        """running, exited, ..."""
        self.reload()
        return str(self._container.status)

    @property
    def restart_count(self) -> int:
        """How often the engine restarted it (0 unless a restart policy is set)."""
        self.reload()
        return int(self._container.attrs.get("RestartCount", 0))

    def restarts_and_status(self) -> tuple[int, str]:
        """Restart count and status from one inspect."""
        self.reload()
        return int(self._container.attrs.get("RestartCount", 0)), str(self._container.status)

    def host_port(self, port: int) -> int:
        """The 127.0.0.1 port published for a container port."""
        if port in self._ports:
            return self._ports[port]
        self.reload()
        bindings = (self._container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{port}/tcp")
        for b in bindings or []:
            if b.get("HostIp") in (LOOPBACK, "") and b.get("HostPort"):
                self._ports[port] = int(b["HostPort"])
                return self._ports[port]
        raise InfrastructureError(f"{self.name}: port {port} is not published on {LOOPBACK}.",
                                  "declare it in the service's 'ports'")

    def exec(self, cmd: Sequence[str], *, user: str = "") -> tuple[int, str]:
        """Run a command inside; returns (exit code, combined output as text)."""
        code, out = self.exec_raw(cmd, user=user)
        return code, out.decode("utf-8", "replace")

    def shell(self, script: str, *, user: str = "") -> tuple[int, bytes]:
        """Run a shell script in a long-lived ``sh`` of this container (one per user).

        A ``docker exec`` costs tens of milliseconds to set up; a scenario runs dozens of
        measurements, so they share one shell fed through stdin. Any trouble with it
        (opening it included) falls back to a fresh exec, so this is never less reliable
        than ``exec_raw``. The fallback may re-run a script that had started: the
        harness's agent scripts are idempotent (measure, fill up to a target, delete).
        """
        sh = self._shells.get(user)
        try:
            if sh is None or sh.broken:
                sh = self._shells[user] = _Shell(self, user)
            return sh.run(script)
        except (OSError, ValueError, docker.errors.APIError):
            if sh is not None:
                sh.close()
            return self.exec_raw(["sh", "-c", script], user=user)

    def exec_bounded(self, cmd: Sequence[str], *, timeout: float, user: str = "") -> ExecResult:
        """Run a command inside for at most ``timeout`` seconds; one still running then is
        killed (with its children) and reported as timed out. Never blocks longer."""
        api = client().api
        try:
            exec_id = api.exec_create(self._container.id, list(cmd), stdout=True, stderr=True,
                                      user=user)["Id"]
            sock = api.exec_start(exec_id, socket=True)
        except docker.errors.APIError as e:
            # 409 "container ... is not running": the app died, an answer. One that dies
            # between the exec's creation and its start gets a 500 from the start instead.
            if e.status_code == 409 or not self._running():
                return ExecResult(None, self.last_lines().encode("utf-8"), not_running=True)
            raise InfrastructureError(f"{self.name}: exec {cmd[0] if cmd else ''} failed: "
                                      f"{_short(e)}", "is the container still running? see "
                                      "its logs") from e
        raw: Any = getattr(sock, "_sock", sock)  # the socket under docker-py's SocketIO
        deadline = time.monotonic() + timeout
        buf = bytearray()
        timed_out = False
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                raw.settimeout(left)
                try:
                    chunk = raw.recv(65536)
                except TimeoutError:
                    timed_out = True
                    break
                if not chunk:
                    break
                buf += chunk
        finally:
            try:
                sock.close()
            except OSError:
                pass
        out = demux(bytes(buf))
        if timed_out:
            return ExecResult(None, out, timed_out=True, killed=_kill_exec(exec_id))
        # The stream ended with the process; its exit code can take a moment to be recorded.
        end = time.monotonic() + 5.0
        info = api.exec_inspect(exec_id)
        while info.get("Running") and time.monotonic() < end:
            time.sleep(0.01)  # poll of a deadline-bounded wait for the engine's record
            info = api.exec_inspect(exec_id)
        code = info.get("ExitCode")
        return ExecResult(None if code is None else int(code), out)

    def _running(self) -> bool:
        """Whether the engine says it runs now (a container gone says no)."""
        try:
            self.reload()
        except docker.errors.APIError:
            return False
        return str(self._container.status) == "running"

    def exec_raw(self, cmd: Sequence[str], *, user: str = "") -> tuple[int, bytes]:
        """Run a command inside; returns (exit code, combined output as bytes)."""
        try:
            code, out = self._container.exec_run(list(cmd), user=user, demux=False)
        except docker.errors.APIError as e:
            raise InfrastructureError(f"{self.name}: exec {cmd[0]} failed: {_short(e)}",
                                      "is the container still running? see its logs") from e
        return int(code if code is not None else -1), out if isinstance(out, bytes) else b""

    def logs(self, *, since: float | None = None, timestamps: bool = True) -> str:
        """stdout+stderr, optionally since a unix time."""
        kw: dict[str, Any] = {"stdout": True, "stderr": True, "timestamps": timestamps}
        if since is not None:
            kw["since"] = since
        try:
            raw = self._container.logs(**kw)
        except docker.errors.APIError:
            return ""
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""

    def log_lines(self) -> list[tuple[float | None, str]]:
        """Its stdout+stderr so far, each line with the engine's timestamp.

        Where the engine runs on this host and this process may read its folders (as for
        the overlay layers), the container's json-file log is read directly, on from where
        the last read stopped; elsewhere the engine's API sends the whole log again (and
        docker-py inspects the container first, every time). A scenario reads every
        service's log half a dozen times."""
        if self._log is None:
            if not (self._container.attrs or {}).get("LogPath"):
                self.reload()  # the engine names the file at the start
            self._log = _JsonLog.of(self._container)
        if self._log.usable:
            try:
                return self._log.lines()
            except (OSError, ValueError):
                self._log.usable = False  # from here on the engine's view, whole
        return [split_timestamp(line) for line in self.logs(timestamps=True).splitlines()]

    def last_lines(self, n: int = 15) -> str:
        """The last ``n`` lines of its output: why it stopped or is not ready."""
        return "\n".join(self.logs(timestamps=False).splitlines()[-n:])

    def get_archive(self, path: str) -> bytes | None:
        """A tar of a path inside the container, None if it does not exist."""
        try:
            stream, _ = self._container.get_archive(path)
        except docker.errors.NotFound:
            return None
        return b"".join(stream)

    def file_kind(self, path: str) -> str | None:
        """What a path of the container's own filesystem is: "file", "link", "folder",
        "device", "named pipe", "socket" (None when absent or the container is gone)."""
        try:
            stream, stat = self._container.get_archive(path)
        except docker.errors.APIError:
            return None
        if hasattr(stream, "close"):
            stream.close()  # only the stat was wanted
        mode = int((stat or {}).get("mode", 0))
        if mode & (1 << 27):
            return "link"
        return next((kind for bit, kind in _KINDS if mode & bit), "file")

    def read_file(self, path: str, *, follow: bool = True) -> bytes | None:
        """A regular file of the container's own filesystem, through the engine's archive
        API (no tools needed in the image); one symlink is followed. None when absent or
        not a regular file (or the container is gone): a folder or a device declared as a
        log file is never downloaded whole (/usr/lib, /dev/zero)."""
        try:
            stream, stat = self._container.get_archive(path)
        except docker.errors.APIError:  # NotFound included
            return None
        if int((stat or {}).get("mode", 0)) & _NOT_A_FILE:
            if hasattr(stream, "close"):
                stream.close()
            return None
        data = b"".join(stream)
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            for m in t.getmembers():
                if m.isfile():
                    f = t.extractfile(m)
                    return f.read() if f else b""
                if m.issym() and follow:
                    target = m.linkname if m.linkname.startswith("/") else \
                        f"{path.rsplit('/', 1)[0]}/{m.linkname}"
                    return self.read_file(target, follow=False)
        return None

    def changes(self) -> list[tuple[str, int]]:
        """The engine's diff of the container against its image: (path, kind), kind 0
        changed, 1 added, 2 deleted. Paths on mounted volumes are not in it.

        The engine spends about a second of its CPU per diff, whatever its size; when the
        container's overlay2 layers are readable here (the engine runs on this host and
        this process may read its folders) they are walked directly, by the engine's own
        rules, in milliseconds."""
        layers = self._overlay_dirs()
        if layers is not None:
            try:
                return overlay_changes(*layers)
            except OSError:
                pass  # a layer went away or cannot be read: ask the engine
        try:
            diff = self._container.diff() or []
        except docker.errors.APIError as e:
            raise InfrastructureError(f"{self.name}: cannot read its filesystem changes: "
                                      f"{_short(e)}", "is the container still there?") from e
        return [(str(d["Path"]), int(d["Kind"])) for d in diff]

    def _overlay_dirs(self) -> tuple[str, list[str]] | None:
        """(upper dir, lower dirs) of an overlay2 container whose folders this process can
        read, else None."""
        driver = self._container.attrs.get("GraphDriver") or {}
        data = driver.get("Data") or {}
        upper, lower = data.get("UpperDir"), data.get("LowerDir")
        if driver.get("Name") != "overlay2" or not upper or not lower:
            return None
        lowers = str(lower).split(":")
        if not all(os.access(d, os.R_OK | os.X_OK) for d in (upper, *lowers)):
            return None
        return str(upper), lowers

    def put_archive(self, path: str, data: bytes) -> None:
        """Extract a tar into a folder inside the container."""
        try:
            ok = self._container.put_archive(path, data)
        except docker.errors.APIError as e:
            raise InfrastructureError(f"{self.name}: could not copy files into {path}: "
                                      f"{_short(e)}", "is there room in the volume? (`fulldisk "
                                      "list` shows sizes)") from e
        if not ok:
            raise InfrastructureError(f"{self.name}: could not copy files into {path}",
                                      "is the path a folder in the container?")

    def remove(self, *, anonymous_volumes: bool = False) -> None:
        """Stop and remove, ignoring a container that is already gone; with
        ``anonymous_volumes`` also the volumes the engine made for the image's VOLUME
        paths (named volumes are never removed here)."""
        for sh in self._shells.values():
            sh.close()
        self._shells.clear()
        _gone(lambda: self._container.remove(force=True, v=anonymous_volumes),
              time.monotonic() + 30, self.name)


def demux(data: bytes) -> bytes:
    """The payload of a multiplexed exec stream (8-byte frame headers), in order; data that
    is not framed comes back as it is."""
    out = bytearray()
    i = 0
    while i + 8 <= len(data):
        kind, size = data[i], int.from_bytes(data[i + 4:i + 8], "big")
        if kind not in (0, 1, 2) or data[i + 1:i + 4] != b"\0\0\0":
            return data
        out += data[i + 8:i + 8 + size]
        i += 8 + size
    return bytes(out) if i >= len(data) else bytes(out) + data[i:]


def _kill_exec(exec_id: str) -> bool:
    """Kill an exec's process and its descendants (host pids, from the engine's record);
    True when it is gone afterwards."""
    api = client().api
    try:
        pid = int(api.exec_inspect(exec_id).get("Pid") or 0)
    except docker.errors.APIError:
        return False
    if pid > 0:
        children: dict[int, list[int]] = {}
        for stat in _proc_stats():
            children.setdefault(stat[1], []).append(stat[0])
        todo, family = [pid], []
        while todo:
            p = todo.pop()
            family.append(p)
            todo += children.get(p, [])
        for p in family:
            try:
                os.kill(p, 9)
            except (ProcessLookupError, PermissionError):
                pass
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        try:
            if not api.exec_inspect(exec_id).get("Running"):
                return True
        except docker.errors.APIError:
            return False
        time.sleep(0.02)  # poll of a deadline-bounded wait for the kill to land
    return False


def _proc_stats() -> Iterator[tuple[int, int]]:
    """(pid, parent pid) of every process this host shows in /proc."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            yield int(entry), int(rest[1])
        except (OSError, IndexError, ValueError):
            continue


class _Shell:
    """A ``sh`` kept open in a container; each script's end is marked by a sentinel line."""

    def __init__(self, handle: Handle, user: str) -> None:
        self.broken = False
        api = client().api
        exec_id = api.exec_create(handle.id, ["sh"], stdin=True, stdout=True,
                                  stderr=True, user=user)["Id"]
        self.sock: Any = api.exec_start(exec_id, socket=True)
        # docker-py hands back a SocketIO wrapping the socket; stdin needs the socket itself
        self.raw: Any = getattr(self.sock, "_sock", self.sock)
        self.raw.settimeout(120)
        self.buf = b""
        self.lock = threading.Lock()

    def run(self, script: str) -> tuple[int, bytes]:
        token = uuid.uuid4().hex
        marker = f"\n{token} ".encode()
        # The script runs in a subshell so that its `exit`, `cd` or `set -e` cannot touch
        # the long-lived shell; the sentinel carries its exit status.
        wrapped = f"( {script}\n) 2>&1 </dev/null; printf '\\n%s %d\\n' {token} $?\n"
        with self.lock:
            try:
                self.raw.sendall(wrapped.encode())
                while marker not in self.buf or not self.buf.split(marker, 1)[1].count(b"\n"):
                    self._frame()
            except BaseException:
                self.broken = True  # half-read output: never reuse this shell
                raise
            out, rest = self.buf.split(marker, 1)
            status, _, self.buf = rest.partition(b"\n")
            return int(status), out

    def _frame(self) -> None:
        header = self._exactly(8)
        size = int.from_bytes(header[4:8], "big")
        self.buf += self._exactly(size)

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.raw.recv(n - len(data))
            if not chunk:
                raise OSError("shell closed")
            data += chunk
        return data

    def close(self) -> None:
        self.broken = True
        try:
            self.sock.close()
        except OSError:
            pass


MIN_API_VERSION = "1.24"  # asked of an engine only to read its own version (its ping)
STATE_SETTLE_SECONDS = 3.0  # how long a refused pause/unpause may take to show as done
STATE_REASK_SECONDS = 0.5  # how long a refused one is polled before it is asked again
DEFAULT_BRIDGE = "bridge"  # the engine's own network: nothing to create or remove


def network_create(name: str) -> str:
    """Create a private bridge network of this run; returns its name."""
    try:
        client().networks.create(name, driver="bridge", labels=labels("network"))
    except docker.errors.APIError as e:
        raise InfrastructureError(f"Cannot create network {name}: {_short(e)}",
                                  "run `fulldisk clean` and retry") from e
    return name


def network_remove(name: str, *, deadline: float = 30.0) -> None:
    """Remove a network, ignoring one already gone; retried while the engine still holds
    endpoints of containers just removed (it releases them a moment later, under load)."""
    try:
        net = client().networks.get(name)
    except docker.errors.NotFound:
        return
    _gone(net.remove, time.monotonic() + deadline, name)


@dataclass(frozen=True)
class ContainerSpec:
    """What to start: everything a service needs, already resolved by the Stack."""

    name: str
    image: str
    command: list[str] | str | None
    env: Mapping[str, str]
    user: str | None
    ports: Sequence[int]
    network: str  # "": none at all (the agent reaches its volumes, never the network);
    # DEFAULT_BRIDGE: the engine's default network (a target's only service)
    aliases: Sequence[str]
    binds: Mapping[str, str]  # host path -> container path
    volumes: Mapping[str, str]  # volume name -> container path
    role: str = "service"
    privileged: bool = False
    # fulldisk's own containers: minimal; () keeps the engine's default set (images that
    # start as root and drop to a service user need chown/setuid/setgid)
    cap_drop: Sequence[str] = ("ALL",)
    cap_add: Sequence[str] = ()
    extra_labels: Mapping[str, str] | None = None
    entrypoint: list[str] | str | None = None  # None: the image's own
    tmpfs: Mapping[str, str] | None = None  # scratch tmpfs mounts: path -> options


def start(spec: ContainerSpec) -> Handle:
    """Start a container with no-new-privileges, the spec's capabilities and ports on
    127.0.0.1 only."""
    image_hint = ("build it (`fulldisk build` for the reference stack, or give the service "
                  "a 'build' context) or fix the image name")
    require_image(spec.image, image_hint)
    # testcontainers' public builder: command, env, name, mounts and docker-py's own
    # create() arguments (with_kwargs); the container it starts is kept, not the wrapper
    # its client speaks the API version ours negotiated (no second /version round trip)
    w = DockerContainer(spec.image, docker_client_kw={
        "version": client().api.api_version, "timeout": 60}).with_name(spec.name)
    if spec.command is not None:
        w.with_command(spec.command)
    w.with_envs(**spec.env)
    for p in spec.ports:
        # Published on loopback only, on a free port the engine picks: never 0.0.0.0.
        # with_bind_ports takes a host port, not a host address, so the binding goes into
        # the wrapper's port map (a public attribute docker-py receives as ``ports``) as
        # docker-py's (address, port) form, which that map's type does not declare.
        w.ports[f"{p}/tcp"] = (LOOPBACK, None)  # type: ignore[assignment]
    for host, path in spec.binds.items():
        w.with_volume_mapping(host, path, "rw")
    for vol, path in spec.volumes.items():
        w.with_volume_mapping(vol, path, "rw")  # docker-py takes a volume name here too
    kwargs: dict[str, Any] = {
        "labels": labels(spec.role, **(spec.extra_labels or {})),
        "hostname": spec.aliases[0] if spec.aliases else None,
        "security_opt": [] if spec.privileged else ["no-new-privileges"],
        "cap_drop": [] if spec.privileged else list(spec.cap_drop),
        "cap_add": list(spec.cap_add),
        "privileged": spec.privileged,
        "init": True,
    }
    # A network is always named: testcontainers looks for a "host network" to join (a
    # listing of every custom network) when a container has none.
    if spec.network == DEFAULT_BRIDGE:
        kwargs["network"] = DEFAULT_BRIDGE  # a lone service: nobody to talk to
    elif spec.network:
        # a network of this run made by network_create (with_network wants one made by
        # testcontainers), joined under the service's aliases
        kwargs["network"] = spec.network
        kwargs["networking_config"] = {spec.network: EndpointConfig(
            client().api.api_version, aliases=list(spec.aliases))}
    else:
        kwargs["network"] = "none"
    if spec.user:
        kwargs["user"] = spec.user
    if spec.entrypoint is not None:
        kwargs["entrypoint"] = spec.entrypoint
    for path, opts in (spec.tmpfs or {}).items():
        w.tmpfs[path] = opts  # the wrapper's map docker-py receives as ``tmpfs`` (path: options)
    w.with_kwargs(**kwargs)
    try:
        w.start()
    except docker.errors.APIError as e:
        text = _short(e)
        if "port is already allocated" in text or "address already in use" in text:
            raise InfrastructureError(f"{spec.name}: a port is already in use ({text}).",
                                      "free the port or let the engine pick one") from e
        if "No such image" in text:
            raise InfrastructureError(f"{spec.name}: image {spec.image!r} not found.",
                                      image_hint) from e
        raise InfrastructureError(f"{spec.name}: could not start: {text}",
                                  "see `docker logs` / the engine's log") from e
    return Handle(spec.name, w.get_wrapped_container())


def run_once(image: str, command: Sequence[str], *, role: str = "bench") -> int:
    """Create, start, wait for and remove one labelled container; returns its exit code
    (the engine's floor cost of a container, for ``fulldisk bench``)."""
    c = client().containers.run(image, list(command), detach=True, labels=labels(role))
    try:
        return int(c.wait().get("StatusCode", -1))
    finally:
        _gone(partial(c.remove, force=True), time.monotonic() + 30, str(c.name))


def inspect_created(image: str) -> Handle:
    """Create (not start) a container of an image, to read files out of it (seeding)."""
    require_image(image, "build or load the image first")
    c = client().containers.create(image, command=["true"], labels=labels("seed"),
                                   network_disabled=True)
    return Handle(str(c.name), c)


# --- cleanup ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Leftovers:
    """What ``clean`` found (and removed, unless only listing)."""

    containers: int
    volumes: int
    networks: int
    unproven: tuple[str, ...] = ()  # with --stale: runs kept because no lease proves them gone
    runs: tuple[str, ...] = ()  # the run ids found
    mounts: int = 0  # volumes' tmpfs mounted by fulldisk on this host (hostfs)
    # volumes mounted by fulldisk on the engine's host, left for a clean run there
    host_only: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        """Sum of all resources."""
        return self.containers + self.volumes + self.networks + self.mounts \
            + len(self.host_only)


def _alive(pid: str, host: str, *, local_only: bool = False) -> bool:
    """Whether a pid is alive here; another host's pid is unknown (True unless
    ``local_only``, where only a live local process counts)."""
    if host != socket.gethostname():
        return not local_only
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def engine_time() -> float:
    """The engine's clock (unix seconds): lease ages are judged on it, never on ours."""
    stamp = str(client().info().get("SystemTime", ""))
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", stamp)
    if not m:
        return time.time()
    from datetime import datetime

    tz = "+00:00" if m.group(3) in (None, "Z") else m.group(3)
    return datetime.fromisoformat(m.group(1) + tz).timestamp() + float("0" + (m.group(2) or ""))


def _lease_age(c: Container, now: float) -> float | None:
    """Seconds since a lease was last renewed (None when its file cannot be read)."""
    attrs = c.attrs or {}
    if attrs.get("State") == "created" and isinstance(attrs.get("Created"), int):
        # never started: its process starts it when the first renewal is due (an interval,
        # a twelfth of the grace period), so one still not started past the grace period
        # has no process behind it (engine's clock both)
        return now - float(attrs["Created"])
    try:
        stream, _ = c.get_archive(LEASE_FILE)
        data = b"".join(stream)
        member = tarfile.open(fileobj=io.BytesIO(data)).getmembers()[0]
    except (docker.errors.APIError, tarfile.TarError, IndexError):
        return None
    return now - member.mtime


def _run_of(lbls: Mapping[str, str] | None) -> str:
    return (lbls or {}).get(RUN_LABEL, "")


def _labels(x: Container) -> dict[str, str]:
    """A container's labels, from a sparse listing or a full inspect."""
    attrs = x.attrs or {}
    return dict(attrs.get("Labels") or (attrs.get("Config") or {}).get("Labels") or {})


def _name(x: Container) -> str:
    names = (x.attrs or {}).get("Names") or [(x.attrs or {}).get("Name") or x.id]
    return str(names[0]).lstrip("/")


def stale_runs(containers: Sequence[Container] | None = None) -> set[str]:
    """The labelled runs proven gone.

    Proven gone: every lease of the run has gone unrenewed past its grace period on the
    engine's clock, and no lease's pid is alive on this host. A run without any lease
    (an older fulldisk, or one half created) is never judged stale: ``clean --run`` it.
    """
    if containers is None:
        containers = client().containers.list(all=True, filters={"label": RUN_LABEL},
                                              sparse=True)
    leases: dict[str, list[Container]] = {}
    for x in containers:
        if _labels(x).get(ROLE_LABEL) == "lease":
            leases.setdefault(_run_of(_labels(x)), []).append(x)
    now = engine_time()
    gone: set[str] = set()
    for r, ls in leases.items():
        if r == run_id():
            continue  # this process is alive by definition
        expired = True
        for x in ls:
            lb = _labels(x)
            age = _lease_age(x, now)
            grace = float(lb.get(GRACE_LABEL, "60") or 60)
            if age is None or age <= grace or _alive(lb.get(PID_LABEL, ""),
                                                     lb.get(HOST_LABEL, ""), local_only=True):
                expired = False
        if expired:
            gone.add(r)
    return gone


def clean(run: str | None = None, *, stale_only: bool = False, dry_run: bool = False,
          deadline: float = 60.0) -> Leftovers:
    """Remove labelled containers, then volumes, then networks, then the runs' leases
    (all runs, one, or only runs proven gone: see ``stale_runs``)."""
    c = client()
    flt: dict[str, str | list[str] | bool] = {
        "label": f"{RUN_LABEL}={run}" if run else RUN_LABEL}
    # sparse: the list itself carries the labels; a full listing inspects every container
    # on the engine one by one (seconds on a busy shared engine)
    ctrs = list(c.containers.list(all=True, filters=flt, sparse=True))
    vols = list(c.volumes.list(filters=flt))
    nets = list(c.networks.list(filters=flt))
    runs = {_run_of(_labels(x)) for x in ctrs} | {_run_of(v.attrs.get("Labels")) for v in vols} \
        | {_run_of(n.attrs.get("Labels")) for n in nets}
    unproven: set[str] = set()
    if stale_only:
        gone = stale_runs(ctrs)
        unproven = runs - gone - {run_id()}
        ctrs = [x for x in ctrs if _run_of(_labels(x)) in gone]
        vols = [v for v in vols if _run_of(v.attrs.get("Labels")) in gone]
        nets = [n for n in nets if _run_of(n.attrs.get("Labels")) in gone]
    # A volume whose tmpfs fulldisk mounted on the engine's host is removed only by a
    # clean that can unmount it there (root, the engine's mount namespace): removed from
    # elsewhere, its mount would outlive it unseen.
    here = hostfs.reachable()
    elsewhere = [] if here else [v for v in vols
                                 if (v.attrs.get("Labels") or {}).get(hostfs.LABEL)]
    vols = [v for v in vols if v not in elsewhere]
    # ... and its run's lease stays with it: the proof a clean there needs (--stale)
    waiting = {_run_of(v.attrs.get("Labels")) for v in elsewhere}
    ctrs = [x for x in ctrs if not (_labels(x).get(ROLE_LABEL) == "lease"
                                    and _run_of(_labels(x)) in waiting)]
    # tmpfs this host's fulldisk mounted for the volumes (hostfs), named <run>-<stack>-<key>
    mounts = [] if not here else [m for m in hostfs.mounted()
              if (run is None and not stale_only) or any(m.startswith(f"{r}-") for r in
                                                          ({run} if run else runs))]
    if stale_only:
        mounts = [m for m in mounts if any(m.startswith(f"{r}-") for r in gone)]
    # The lease goes last: a clean cut short still leaves the proof that the run is gone.
    leases = [x for x in ctrs if _labels(x).get(ROLE_LABEL) == "lease"]
    others = [x for x in ctrs if x not in leases]
    end = time.monotonic() + deadline
    if not dry_run:
        for x in others:  # with the anonymous volumes of its image's VOLUME paths
            _gone(partial(x.remove, force=True, v=True), end, _name(x))
        for v in vols:
            hostfs.release(str(v.name))  # this process's tmpfs of it, if any (hostfs)
            _gone(partial(v.remove, force=True), end, str(v.name))
        for m in mounts:  # one whose volume is gone already (released with it otherwise)
            hostfs.release(m)
        for n in nets:
            _gone(n.remove, end, str(n.name))
        for x in leases:
            _gone(partial(x.remove, force=True, v=False), end, _name(x))
        if run is None or run == run_id():
            if not stale_only:
                _lease.release()
    return Leftovers(len(ctrs), len(vols), len(nets), tuple(sorted(unproven)),
                     tuple(sorted(runs)), len(mounts),
                     tuple(sorted(str(v.name) for v in elsewhere)))


def _gone(remove: Callable[[], Any], end: float, name: str) -> None:
    """Remove one resource. Already gone, or being removed by another run (two sessions
    may reap the same stale run), counts as removed; still in use (a container removal
    releasing a volume or network) is retried until the deadline."""
    while True:
        try:
            remove()
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as e:
            if "already in progress" in str(e):
                return
            if time.monotonic() > end:
                raise InfrastructureError(f"could not remove {name}: {_short(e)}",
                                          "run `fulldisk clean` again; `docker ps -a "
                                          "--filter label=fulldisk.run` shows what holds it"
                                          ) from e
            time.sleep(0.1)  # retry of a removal the engine is still releasing


def count_labelled(run: str | None = None) -> Leftovers:
    """Count labelled resources without touching them."""
    return clean(run, dry_run=True)


# --- archives --------------------------------------------------------------------------

def retar(data: bytes, new_root: str, *, uid: int | None = None, gid: int | None = None,
          mode: int | None = None) -> bytes:
    """Re-root a tar from ``get_archive`` (top folder = basename) under ``new_root``; each
    member keeps the image's owner and mode, the top one takes ``uid``/``gid``/``mode``
    where given (a target's explicit ``owner``/``mode`` for the folder the service sees)."""
    src = tarfile.open(fileobj=io.BytesIO(data))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as dst:
        for m in src.getmembers():
            parts = m.name.split("/", 1)
            m.name = new_root if len(parts) == 1 else f"{new_root}/{parts[1]}"
            if len(parts) == 1:
                m.uid = m.uid if uid is None else uid
                m.gid = m.gid if gid is None else gid
                m.mode = m.mode if mode is None else mode
            if m.isfile():
                dst.addfile(m, src.extractfile(m))
            else:
                dst.addfile(m)
    return out.getvalue()


def mkdir_tar(path: str, uid: int, gid: int, mode: int) -> bytes:
    """A tar holding one empty folder with the given owner and mode."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        info = tarfile.TarInfo(path)
        info.type = tarfile.DIRTYPE
        info.uid, info.gid, info.mode, info.mtime = uid, gid, mode, int(time.time())
        t.addfile(info)
    return out.getvalue()


def tar_sizes(data: bytes) -> Iterator[tuple[int, str]]:
    """(size, name) of every member of a tar (folders and links count 0 bytes)."""
    for m in tarfile.open(fileobj=io.BytesIO(data)).getmembers():
        yield (m.size if m.isfile() else 0), m.name


def join_tars(parts: Sequence[bytes]) -> bytes:
    """One tar holding the members of several (one archive call instead of several)."""
    if len(parts) == 1:
        return parts[0]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as dst:
        for data in parts:
            src = tarfile.open(fileobj=io.BytesIO(data))
            for m in src.getmembers():
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    return out.getvalue()


def files_in_tar(data: bytes) -> Iterator[tuple[str, bytes]]:
    """Regular files of a tar with their content."""
    t = tarfile.open(fileobj=io.BytesIO(data))
    for m in t.getmembers():
        if m.isfile():
            f = t.extractfile(m)
            yield m.name, f.read() if f else b""


_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) ?(.*)$")


@dataclass
class _JsonLog:
    """A container's json-file log read here, incrementally: one JSON object per line
    ({"log": text, "stream": ..., "time": RFC 3339}); a line over 16 KiB comes in pieces,
    all but the last without their newline, and is joined back. Usable only when this
    process can read the file (the engine on this host, root)."""

    path: str
    usable: bool
    offset: int = 0
    done: list[tuple[float | None, str]] = field(default_factory=list)
    piece: tuple[float | None, str] | None = None  # a long line's start, waiting for its end
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, c: Container) -> _JsonLog:
        attrs = c.attrs or {}
        kind = ((attrs.get("HostConfig") or {}).get("LogConfig") or {}).get("Type")
        path = str(attrs.get("LogPath") or "")
        return cls(path, kind == "json-file" and bool(path) and os.access(path, os.R_OK))

    def lines(self) -> list[tuple[float | None, str]]:
        with self.lock, open(self.path, "rb") as f:
            if os.fstat(f.fileno()).st_size < self.offset:
                raise ValueError("the log was rotated or cut")  # the engine's API then
            f.seek(self.offset)
            data = f.read()
            end = data.rfind(b"\n") + 1  # an entry still being written is read next time
            self.offset += end
            for raw in data[:end].splitlines():
                entry = json.loads(raw)
                t, _ = split_timestamp(f"{entry['time']} ")
                text = str(entry.get("log", ""))
                if self.piece is not None:
                    t, text = self.piece[0], self.piece[1] + text
                    self.piece = None
                if text.endswith("\n"):  # as the API's text would be split, stamped once
                    self.done += [(t, part) for part in text[:-1].splitlines() or [""]]
                else:
                    self.piece = (t, text)
            return list(self.done)


def split_timestamp(line: str) -> tuple[float | None, str]:
    """Split a ``docker logs --timestamps`` line into (unix time, text)."""
    m = _TS.match(line)
    if not m:
        return None, line
    from datetime import datetime

    stamp = m.group(1)
    head, _, frac = stamp[:-1].partition(".")
    t = datetime.fromisoformat(head + "+00:00").timestamp() + float("0." + (frac or "0"))
    return t, m.group(2)
