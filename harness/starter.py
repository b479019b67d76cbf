"""``fulldisk init``: a starter ``fulldisk.toml`` from images.

Each image runs briefly on a private network (ports on 127.0.0.1 only, labelled, always
removed), is warmed up (its answering ports crawled, or a given command), and then the
engine is asked which folders it wrote (``diff``) and which files its processes hold open
for appending (logs). The result is a target: a volume per written folder (size from
what it used, with margin; owner from the files it wrote), a probe stub per answering
port, log sources for the log files, and comments saying what to check by hand.
"""

from __future__ import annotations

import collections
import datetime
import io
import json
import os
import re
import shlex
import subprocess
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from posixpath import relpath
from urllib.parse import urljoin, urlsplit

import requests

from . import engine
from .errors import ConfigError, InfrastructureError, UsageError
from .sizes import PAGE, format_size
from .target import SYSTEM_DIRS, SYSTEM_TREES, target_from_dict
from .writes import ADDED, under, written_folders

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
MAX_PAGES = 30  # crawl bound per port
KIB = 1024
MIN_SIZE = 512 * KIB
_APPEND = 0o2000
_UIDS = r"""for p in /proc/[0-9]*; do
  sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' "$p/status"
done"""
_OPEN_FILES = r"""for p in /proc/[0-9]*; do
  for fd in "$p"/fd/*; do
    t=$(readlink "$fd" 2>/dev/null) || continue
    case "$t" in /*) ;; *) continue ;; esac
    f=$(sed -n 's/^flags:[[:space:]]*//p' "$p/fdinfo/${fd##*/}" 2>/dev/null)
    echo "$f $t"
  done
done"""


@dataclass(frozen=True)
class ServiceSpec:
    """One image to look at, under a service name, with an optional command."""

    name: str
    image: str
    command: tuple[str, ...] = ()


@dataclass(frozen=True)
class FolderUse:
    """A folder a service wrote, and what it held after the warm-up."""

    path: str
    used_bytes: int
    entries: int
    owner: str
    mode: str


@dataclass
class Seen:
    """What one service did during the warm-up."""

    spec: ServiceSpec
    user: str
    exposed: tuple[int, ...]
    ports: dict[int, int] = field(default_factory=dict)  # answering port -> status of GET /
    folders: list[FolderUse] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)  # files held open for appending
    unmountable: list[str] = field(default_factory=list)  # written system folders
    pages: int = 0


def parse_services(images: Sequence[str], commands: Sequence[str]) -> list[ServiceSpec]:
    """``IMAGE`` or ``NAME=IMAGE`` arguments, and ``NAME=COMMAND`` options, as services."""
    if not images:
        raise UsageError("no image given", "fulldisk init IMAGE [IMAGE...], e.g. "
                         "fulldisk init shop:latest, or web=shop:latest worker=shop:latest")
    out: dict[str, ServiceSpec] = {}
    for arg in images:
        name, eq, image = arg.partition("=")
        if not eq:
            image = arg
            name = re.sub(r"[^a-z0-9_-]+", "-", image.rsplit("/", 1)[-1].split(":")[0].lower())
            name = name.strip("-") or "app"
            if not name[0].isalpha():
                name = "svc-" + name
        if not _NAME.match(name) or not image:
            raise UsageError(f"bad service {arg!r}", "write IMAGE or NAME=IMAGE with NAME in "
                             "lowercase letters, digits, '-' or '_', starting with a letter")
        if name in out:
            raise UsageError(f"service name {name!r} given twice",
                             f"name them apart: {name}=IMAGE other={image}")
        out[name] = ServiceSpec(name, image)
    for opt in commands:
        name, eq, cmd = opt.partition("=")
        if not eq or name not in out or not cmd.strip():
            raise UsageError(f"bad --command {opt!r}",
                             f"write NAME=COMMAND with NAME one of: {', '.join(out)}")
        out[name] = ServiceSpec(name, out[name].image, tuple(shlex.split(cmd)))
    return list(out.values())


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for k, v in attrs:
            if k in ("href", "src") and v:
                self.links.append(v)


def _crawl(base: str, deadline: float) -> int:
    """GET same-origin links breadth-first from ``/``; bounded in count and time."""
    queue, seen, done = collections.deque(["/"]), {"/"}, 0
    with requests.Session() as http:
        http.trust_env = False  # loopback only, never a proxy
        while queue and done < MAX_PAGES and time.monotonic() < deadline:
            path = queue.popleft()
            done += 1
            try:
                r = http.get(base + path, timeout=5, allow_redirects=False)
            except requests.RequestException:
                continue
            links = [r.headers["Location"]] if r.is_redirect and "Location" in r.headers else []
            if "html" in r.headers.get("Content-Type", ""):
                parser = _Links()
                parser.feed(r.text[:200_000])
                links += parser.links
            for link in links:
                u = urlsplit(urljoin(base + path, link))
                if f"{u.scheme}://{u.netloc}" != base or "logout" in u.path:
                    continue
                nxt = u.path + (f"?{u.query}" if u.query else "")
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
    return done


def _answer(url: str) -> int | None:
    try:
        with requests.get(url, timeout=1.0, allow_redirects=False) as r:
            return r.status_code
    except requests.RequestException:
        return None


def _wait_ports(seen: dict[str, Seen], handles: dict[str, engine.Handle],
                deadline: float) -> None:
    """Until each service with exposed ports answers on one (then one more look at its
    other ports), or the deadline; a service that exits is an error with its log."""
    pending = {n for n, s in seen.items() if s.exposed}
    while pending and time.monotonic() < deadline:
        for n in sorted(pending):
            h = handles[n]
            if h.status not in ("running", "created"):
                tail = h.last_lines()
                raise InfrastructureError(
                    f"{n} ({seen[n].spec.image}) exited during the warm-up. Last log lines:"
                    f"\n{tail}", f"give its command: --command {n}='...'")
            for port in seen[n].exposed:
                if port not in seen[n].ports:
                    status = _answer(f"http://{engine.LOOPBACK}:{h.host_port(port)}/")
                    if status is not None:
                        seen[n].ports[port] = status
            if seen[n].ports:
                pending.discard(n)
        if pending:
            time.sleep(0.2)  # poll interval of a deadline-bounded readiness loop


def _run_warmup(command: str, seen: dict[str, Seen], handles: dict[str, engine.Handle],
                deadline: float) -> None:
    env = dict(os.environ)
    for n, s in seen.items():
        for i, port in enumerate(sorted(s.ports)):
            url = f"http://{engine.LOOPBACK}:{handles[n].host_port(port)}"
            key = re.sub(r"[^A-Z0-9]", "_", n.upper())
            env[f"FULLDISK_URL_{key}_{port}"] = url
            if i == 0:
                env[f"FULLDISK_URL_{key}"] = url
    try:
        p = subprocess.run(command, shell=True, env=env, capture_output=True, text=True,
                           timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise InfrastructureError(f"the warm-up command did not end in time: {command}",
                                  "make it shorter or raise --timeout") from None
    if p.returncode != 0:
        raise UsageError(f"the warm-up command failed (exit {p.returncode}): "
                         f"{(p.stderr or p.stdout).strip()[-300:]}",
                         "it gets FULLDISK_URL_<SERVICE> (and _<PORT>) in its environment")


def _open_logs(h: engine.Handle) -> list[str]:
    """Regular files the container's processes hold open for appending (log files)."""
    out: set[str] = set()
    try:  # /proc/PID/fd is readable only as the process's own user (no ptrace capability)
        _, uids = h.exec(["sh", "-c", _UIDS])
    except InfrastructureError:
        uids = ""
    users = sorted({u for u in uids.split() if u.isdigit()}) or [""]
    for user in users:
        try:
            _, text = h.exec(["sh", "-c", _OPEN_FILES], user=user)
        except InfrastructureError:
            continue
        for line in text.splitlines():
            flags, _, path = line.partition(" ")
            if not flags.isdigit() or any(under(path, t) for t in ("/dev", "/proc", "/sys")):
                continue
            mode = int(flags, 8)
            if mode & _APPEND and mode & 3 in (1, 2):
                out.add(path)
    return sorted(out)


def _log_name(path: str) -> bool:
    """Named like a log file: ``*.log`` (also rotated ``*.log.1``), or a file in /var/log."""
    name = path.rsplit("/", 1)[-1]
    return bool(re.search(r"\.log(\.\d+)?$", name)) or (under(path, "/var/log") and "." in name)


def _folder_use(h: engine.Handle, folder: str, added: set[str]) -> FolderUse:
    data = h.get_archive(folder) or b""
    used, entries, owners = 0, 0, collections.Counter[str]()
    top_owner, mode = "0:0", "0755"
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for i, m in enumerate(t.getmembers()):
            entries += 1
            used += -(-m.size // PAGE) * PAGE if m.isfile() else 0
            inside = folder.rstrip("/") + "/" + m.name.split("/", 1)[1] if "/" in m.name else folder
            if i == 0:
                top_owner, mode = f"{m.uid}:{m.gid}", f"{m.mode & 0o7777:04o}"
            elif inside in added:
                owners[f"{m.uid}:{m.gid}"] += 1
    owner = owners.most_common(1)[0][0] if owners else top_owner
    return FolderUse(folder, used, entries, owner, mode)


def observe(specs: Sequence[ServiceSpec], *, warmup: str | None = None,
            seconds: float = 2.0, timeout: float = 60.0, ready_timeout: float = 15.0,
            progress: Callable[[str], None] = lambda s: None) -> list[Seen]:
    """Run the images, warm them up and record what each wrote; everything is removed.
    A service waits at most ``ready_timeout`` s for one of its exposed ports to answer
    (a worker may expose ports it never serves)."""
    deadline = time.monotonic() + timeout
    net = f"{engine.run_id()}-init-{uuid.uuid4().hex[:6]}"
    handles: dict[str, engine.Handle] = {}
    seen: dict[str, Seen] = {}
    made_net = False
    try:
        engine.network_create(net)
        made_net = True
        for s in specs:
            cfg = engine.image_config(s.image)
            seen[s.name] = Seen(s, cfg.user, cfg.ports)
            handles[s.name] = engine.start(engine.ContainerSpec(
                name=f"{net}-{s.name}", image=s.image, command=list(s.command) or None, env={},
                user=None, ports=cfg.ports, network=net, aliases=(s.name,), binds={},
                volumes={}, role="init", extra_labels={"fulldisk.service": s.name},
                cap_drop=()))  # as the image is meant to run: many start as root
            progress(f"started {s.name} ({s.image}), exposes {list(cfg.ports) or 'no ports'}")
        _wait_ports(seen, handles, min(deadline, time.monotonic() + ready_timeout))
        for n, sv in seen.items():  # one more look at ports slower than the first
            for port in sv.exposed:
                if port not in sv.ports and (st := _answer(
                        f"http://{engine.LOOPBACK}:{handles[n].host_port(port)}/")):
                    sv.ports[port] = st
        if warmup:
            progress(f"warm-up: {warmup}")
            _run_warmup(warmup, seen, handles, deadline)
        else:
            for n, sv in seen.items():
                for port in sorted(sv.ports):
                    sv.pages += _crawl(f"http://{engine.LOOPBACK}:{handles[n].host_port(port)}",
                                       deadline)
            progress("warm-up: crawled " + ", ".join(f"{n} {sv.pages} pages"
                                                     for n, sv in seen.items() if sv.ports))
        # a deliberate observation window: background writers (cleaners, log flushes)
        threading.Event().wait(max(0.0, min(seconds, deadline - time.monotonic())))
        for n, sv in seen.items():
            h = handles[n]
            changes = h.changes()
            added = {p for p, kind in changes if kind == ADDED}
            for folder in written_folders(changes):
                if folder in SYSTEM_DIRS or any(under(folder, t) for t in SYSTEM_TREES):
                    sv.unmountable.append(folder)
                else:
                    sv.folders.append(_folder_use(h, folder, added))
            # open for appending, where /proc tells (a server that dropped to another
            # user hides its fds even from root); else named like a log file
            found = set(_open_logs(h)) | {p for p in added if _log_name(p)}
            sv.logs = sorted(p for p in found if any(under(p, f.path) for f in sv.folders))
            progress(f"{n} wrote {', '.join(f.path for f in sv.folders) or 'nothing'}")
    finally:
        for h in handles.values():
            h.remove()
        if made_net:
            engine.network_remove(net)
    return list(seen.values())


def _parts(path: str) -> list[str]:
    parts = [re.sub(r"[^a-z0-9_-]+", "-", p.lower()).strip("-") for p in path.split("/") if p]
    return [p for p in parts if p] or ["root"]


def _volume_name(path: str, taken: set[str], *, ambiguous: Iterable[str] = ()) -> str:
    """A volume name from a path: its last folder name, or the last two when another
    path ends in the same name (/var/log/app and /var/cache/app: log-app, cache-app)."""
    parts = _parts(path)
    first = "-".join(parts[-2:]) if parts[-1] in set(ambiguous) else parts[-1]
    for cand in (first, "-".join(parts[-2:]), "-".join(parts)):
        cand = cand[:40].strip("-")
        if not cand[:1].isalpha():
            cand = ("v-" + cand)[:40]
        if cand not in taken:
            return cand
    i = 2
    while f"{parts[-1][:36]}-{i}" in taken:
        i += 1
    return f"{parts[-1][:36]}-{i}"


def _size(used: int) -> int:
    """What it used, doubled, plus room; at least 512 KiB, in 256 KiB steps."""
    want = max(MIN_SIZE, used * 2 + 256 * KIB)
    return -(-want // (256 * KIB)) * 256 * KIB


def _q(value: object) -> str:
    return json.dumps(value)  # a JSON string or list is valid TOML


def render(seen: Sequence[Seen], *, name: str, warmup: str | None, seconds: float) -> str:
    """The starter fulldisk.toml, commented with what to check by hand."""
    how = (f"the command {warmup!r}" if warmup else
           "a crawl of the links from / on each answering port")
    lines = [
        f"# Starter target written by `fulldisk init` on {datetime.date.today()} from: "
        + " ".join(f"{s.spec.name}={s.spec.image}" for s in seen),
        f"# Each image ran on a private network, warmed up by {how}, then {seconds:g} s",
        "# more; the engine's diff named the folders it wrote, and /proc named the files",
        "# its processes append to (log files). CHECK BY HAND before trusting a verdict:",
        "#  - volumes: every folder your app writes belongs here. A warm-up that never",
        "#    logged in, uploaded or downloaded did not see those folders written: run",
        "#    `fulldisk init ... --warmup 'your script'` (it gets FULLDISK_URL_<SERVICE>).",
        "#  - role = \"bulk\" on user data that may fill (downloads, uploads): core flows",
        "#    must survive it full. Sizes are what the warm-up used, doubled, plus room.",
        "#  - probes: the stubs only GET /; write the real flows (log in, then check that",
        "#    the next page is logged in; mark the login step write = true) and core = true.",
        "#  - after a run, `fulldisk run` lists paths written outside these volumes as",
        "#    \"not tested on a small disk\".",
        f"name = {_q(name)}",
        "",
    ]
    for s in seen:
        lines.append(f"[services.{s.spec.name}]")
        lines.append(f"image = {_q(s.spec.image)}")
        if s.spec.command:
            lines.append(f"command = {_q(list(s.spec.command))}")
        if s.ports:
            lines.append(f"ports = {_q(sorted(s.ports))}")
            first = sorted(s.ports)[0]
            lines.append(f'ready = {{ http = "/", port = {first}, timeout = 60 }}')
        silent = [p for p in s.exposed if p not in s.ports]
        if silent:
            lines.append(f"# exposes {silent} but nothing answered HTTP there during the warm-up")
        if not s.ports:
            lines.append('# ready = { log = "a line it prints once it is up", timeout = 60 }')
        if s.user:
            lines.append(f"# runs as the image's user {s.user!r}; set user = \"uid:gid\" to pin it")
        for f in s.unmountable:
            lines.append(f"# wrote into {f}, a system folder that cannot be a volume: check why")
        lines.append("")
    taken: set[str] = set()
    by_path: dict[str, list[tuple[Seen, FolderUse]]] = {}
    for sv in seen:
        for fu in sv.folders:
            by_path.setdefault(fu.path, []).append((sv, fu))
    log_sources: list[tuple[str, str]] = []
    lasts = collections.Counter(_parts(p)[-1] for p in by_path)
    shared_names = [n for n, c in lasts.items() if c > 1]
    for path, users in sorted(by_path.items()):
        vname = _volume_name(path, taken, ambiguous=shared_names)
        taken.add(vname)
        used = max(f.used_bytes for _, f in users)
        entries = max(f.entries for _, f in users)
        f0 = users[0][1]
        logs = sorted({lg for s, _ in users for lg in s.logs if under(lg, path)})
        lines.append(f"[volumes.{vname}]")
        lines.append(f"size = {_q(format_size(_size(used)))}  # used {format_size(used)} in "
                     f"{entries} entries during the warm-up")
        lines.append(f"inodes = {max(64, -(-entries * 4 // 16) * 16)}")
        lines.append(f"owner = {_q(f0.owner)}  # owner of the files it wrote")
        lines.append(f"mode = {_q(f0.mode)}")
        if logs:
            lines.append('role = "logs"')
        else:
            lines.append('# role = "bulk"  # if this holds user data that may fill')
        mounts = ", ".join(
            "{ service = " + _q(s.spec.name) + ", path = " + _q(path)
            + (", logs = true" if logs else "") + " }" for s, _ in users)
        lines.append(f"mounts = [{mounts}]")
        lines.append("")
        log_sources += [(vname, relpath(lg, path)) for lg in logs]
    for s in seen:
        for port, status in sorted(s.ports.items()):
            lines.append(f"[probes.{_volume_name(f'{s.spec.name}-{port}', taken)}]")
            taken.add(f"{s.spec.name}-{port}")
            lines.append(f"service = {_q(s.spec.name)}")
            lines.append(f"port = {port}")
            lines.append("# a stub: replace with a real flow of your app, and set core = true")
            lines.append(f'steps = [{{ path = "/", expect_status = [{status}] }}]')
            lines.append("")
    for s in seen:
        lines += ["[[logs]]", 'kind = "container"', f"service = {_q(s.spec.name)}", ""]
    for vname, rel in log_sources:
        lines += ["[[logs]]", 'kind = "file"', f"volume = {_q(vname)}", f"path = {_q(rel)}",
                  "# line_pattern = '^...'  # a whole record, so torn lines can be found", ""]
    return "\n".join(lines)


def write_starter(specs: Sequence[ServiceSpec], out: Path, *, force: bool = False,
                  name: str | None = None, warmup: str | None = None, seconds: float = 2.0,
                  timeout: float = 60.0, ready_timeout: float = 15.0,
                  progress: Callable[[str], None] = lambda s: None) -> Path:
    """Observe the images and write a validated starter target to ``out``."""
    if out.exists() and not force:
        raise UsageError(f"{out} exists", "pass --force to overwrite it, or --output elsewhere")
    seen = observe(specs, warmup=warmup, seconds=seconds, timeout=timeout,
                   ready_timeout=ready_timeout, progress=progress)
    text = render(seen, name=name or _default_name(specs), warmup=warmup, seconds=seconds)
    import tomllib

    try:
        target_from_dict(tomllib.loads(text), file=str(out), root=str(out.parent))
    except (ConfigError, tomllib.TOMLDecodeError) as e:  # a bug of ours: say so, keep the text
        raise InfrastructureError(f"fulldisk init wrote an invalid target ({e}):\n{text}",
                                  "report this; edit the text above by hand meanwhile") from e
    from .report import output

    with output(out) as f:  # whole or not at all; a full disk is one error naming it
        f.write(text.encode("utf-8"))
    return out


def _default_name(specs: Iterable[ServiceSpec]) -> str:
    first = next(iter(specs)).name
    return first if _NAME.match(first) else "app"
