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
import hashlib
import io
import os
import posixpath
import re
import shlex
import subprocess
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import NoReturn
from urllib.parse import urljoin, urlsplit

import requests

from . import engine
from .errors import ConfigError, InfrastructureError, TargetProblem, UsageError
from .initrules import (
    DATA_TREES,
    ExecStub,
    exit_hint,
    is_log,
    is_scratch,
    log_named,
    merge,
    owned_data,
    server_stubs,
)
from .inittoml import FolderUse, Form, Seen, ServiceSpec, render
from .probes import make_body, new_nonce
from .sizes import PAGE
from .target import SYSTEM_DIRS, SYSTEM_TREES, image_problem, target_from_dict
from .writes import ADDED, DELETED, under, written_folders

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
MAX_PAGES = 30  # crawl bound per port
KIB = 1024
_APPEND = 0o2000
_CLIENTS = ("redis-cli", "mariadb", "mysql", "psql", "sqlite3", "python3", "php", "setpriv")
# One exec: "P uid comm" per process, "C name" per client found, then "D uid path" per
# folder a process user (not root) owns in the trees where images keep writable data.
_FACTS = r"""uids=""
for p in /proc/[0-9]*; do
  u=$(sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' "$p/status" 2>/dev/null) || continue
  c=$(cat "$p/comm" 2>/dev/null) || continue
  [ -n "$u" ] && echo "P $u $c" && uids="$uids $u"
done
for c in %s; do command -v "$c" >/dev/null 2>&1 && echo "C $c"; done
for u in $(echo $uids | tr ' ' '\n' | sort -u); do
  [ "$u" = 0 ] && continue
  for t in %s; do
    [ -d "$t" ] && find "$t" -xdev -type d -user "$u" 2>/dev/null | sed "s|^|D $u |"
  done
done
exit 0"""
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
        if not _NAME.fullmatch(name) or not image:
            raise UsageError(f"bad service {arg!r}", "write IMAGE or NAME=IMAGE with NAME in "
                             "lowercase letters, digits, '-' or '_', starting with a letter")
        why = image_problem(image)
        if why is not None:
            raise UsageError(f"bad service {arg!r}: {why}", "give an image of this machine "
                             "(`docker images` lists them), as IMAGE or NAME=IMAGE")
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
    def __init__(self, page: str) -> None:
        super().__init__()
        self.page = page
        self.links: list[str] = []
        self.forms: list[Form] = []
        self._form: dict[str, object] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        for k in ("href", "src"):
            if a.get(k):
                self.links.append(a[k])
        if tag == "form":
            self._form = {"action": a.get("action") or self.page,
                          "method": (a.get("method") or "get").upper(), "fields": [],
                          "hidden": [], "password": None}
        elif tag in ("input", "textarea", "select") and self._form is not None and a.get("name"):
            kind = a.get("type", "text").lower()
            if kind in ("submit", "button", "image", "reset"):
                return
            bucket = "hidden" if kind == "hidden" else "fields"
            cast = self._form[bucket]
            assert isinstance(cast, list)
            cast.append(a["name"])
            if kind == "password" and self._form["password"] is None:
                self._form["password"] = a["name"]

    def handle_endtag(self, tag: str) -> None:
        f = self._form
        if tag == "form" and f is not None:
            fields, hidden, pw = f["fields"], f["hidden"], f["password"]
            assert isinstance(fields, list) and isinstance(hidden, list)
            u = urlsplit(urljoin(self.page, str(f["action"])))  # a path, as steps take it
            action = (u.path or self.page) + (f"?{u.query}" if u.query else "")
            self.forms.append(Form(self.page, action, str(f["method"]),
                                   tuple(fields), tuple(hidden),
                                   pw if isinstance(pw, str) else None))
            self._form = None


def _crawl(base: str, deadline: float, forms: list[Form] | None = None) -> int:
    """GET same-origin links breadth-first from ``/``; bounded in count and time. The
    forms of the pages are added to ``forms`` (once per action and method)."""
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
                parser = _Links(path)
                parser.feed(r.text[:200_000])
                links += parser.links
                if forms is not None:
                    known = {(f.action, f.method) for f in forms}
                    forms += [f for f in parser.forms if (f.action, f.method) not in known]
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
                _exited(n, seen[n].spec.image, h)
            for port in seen[n].exposed:
                if port not in seen[n].ports:
                    status = _answer(f"http://{engine.LOOPBACK}:{h.host_port(port)}/")
                    if status is not None:
                        seen[n].ports[port] = status
            if seen[n].ports:
                pending.discard(n)
        if pending:
            time.sleep(0.2)  # poll interval of a deadline-bounded readiness loop


def _exited(name: str, image: str, h: engine.Handle) -> NoReturn:
    """A service that stopped during the warm-up: what it wrote says nothing of what it
    needs, so nothing is proposed; its last log lines and the fix they point to are."""
    tail = h.last_lines()
    raise InfrastructureError(
        f"{name} ({image}) exited during the warm-up (exit code {h.exit_code()}); nothing "
        f"is proposed from it. Last log lines:\n{tail}", exit_hint(tail, name))


def _run_warmup(command: str, seen: dict[str, Seen], handles: dict[str, engine.Handle],
                deadline: float) -> str:
    """Run the warm-up command; its output (the last lines) is returned to be shown."""
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
    return "\n".join((p.stdout + p.stderr).strip().splitlines()[-10:])


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


def _folder_use(h: engine.Handle, folder: str, changed: set[str], added: set[str],
                appended: set[str], why: str) -> tuple[FolderUse, list[str], list[str]]:
    """What a folder holds (one archive of it): its use, and the files in it that are
    logs and SQLite databases (path and owner, largest first)."""
    data = h.get_archive(folder) or b""
    used, entries, owners = 0, 0, collections.Counter[str]()
    top_owner, mode = "0:0", "0755"
    logs: list[str] = []
    datafiles: list[str] = []
    sqlite: list[tuple[int, str]] = []
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for i, m in enumerate(t.getmembers()):
            entries += 1
            used += -(-m.size // PAGE) * PAGE if m.isfile() else 0
            inside = folder.rstrip("/") + "/" + m.name.split("/", 1)[1] if "/" in m.name else folder
            if i == 0:
                top_owner, mode = f"{m.uid}:{m.gid}", f"{m.mode & 0o7777:04o}"
            elif inside in added:
                owners[f"{m.uid}:{m.gid}"] += 1
            if not m.isfile():
                continue
            fh = t.extractfile(m)
            head = fh.read(16) if fh else b""
            if head == b"SQLite format 3\0":
                sqlite.append((m.size, f"{inside} {m.uid}:{m.gid}"))
            if inside not in changed and inside not in appended:
                continue
            tail = b""
            if fh:
                fh.seek(max(0, m.size - 4096))
                tail = fh.read(4096)
            if is_log(inside, appended=inside in appended, sample=tail):
                logs.append(inside)
            else:
                datafiles.append(inside)
    owner = owners.most_common(1)[0][0] if owners else top_owner
    use = FolderUse(folder, used, entries, owner, mode, why, tuple(sorted(datafiles)))
    return use, sorted(logs), [s for _, s in sorted(sqlite, reverse=True)]


def _facts(h: engine.Handle) -> tuple[set[str], set[str], dict[str, str]]:
    """Process names, the clients the image has, and the folders a process user (not
    root) owns under the data trees (path -> uid), from one exec; empty where the image
    has no shell."""
    script = _FACTS % (" ".join(_CLIENTS), " ".join(DATA_TREES))
    try:
        _, text = h.exec(["sh", "-c", script], user="0")
    except InfrastructureError:
        return set(), set(), {}
    procs: set[str] = set()
    clients: set[str] = set()
    owned: dict[str, str] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "P":
            procs.add(rest.partition(" ")[2].strip())
        elif kind == "C":
            clients.add(rest.strip())
        elif kind == "D" and " /" in rest:
            uid, _, path = rest.partition(" ")
            owned.setdefault(path.rstrip("/"), uid)
    return procs, clients, owned


def _listing(h: engine.Handle, folder: str) -> list[str] | None:
    """The entries of a folder (full paths), None when they cannot be listed."""
    try:
        code, text = h.exec(["find", folder, "-mindepth", "1", "-maxdepth", "1"], user="0")
    except InfrastructureError:
        return None
    return [ln for ln in text.splitlines() if ln.startswith("/")] if code == 0 else None


def _try_stub(h: engine.Handle, stub: ExecStub) -> str | None:
    """Run a stub's write and readback once with fresh content: None when the readback
    holds the content, else what went wrong (the stub is then written commented out)."""
    nonce = new_nonce()
    body = make_body(nonce, 16 * KIB)
    values = {"nonce": nonce, "body": body.decode("ascii"),
              "body_sha256": hashlib.sha256(body).hexdigest()}

    def fill(args: list[str]) -> list[str]:
        return [re.sub(r"\{(nonce|body|body_sha256)\}", lambda m: values[m[1]], a)
                for a in args]

    for args, what in ((stub.command, "write"), (stub.readback, "readback")):
        try:
            r = h.exec_bounded(fill(args), timeout=stub.timeout)
        except InfrastructureError as e:
            return f"the {what} could not run: {str(e)[:200]}"
        out = r.output.decode("utf-8", "replace")
        if r.timed_out:
            return f"the {what} did not end within {stub.timeout:g} s"
        if r.code != 0 or (what == "write" and stub.expect_output
                           and stub.expect_output not in out):
            return f"the {what} answered exit {r.code}: {out.strip()[-200:]}"
    if fill([stub.readback_expect])[0] not in out:
        return f"the readback did not hold the content: {out.strip()[-200:]}"
    return None


def _inspect(sv: Seen, h: engine.Handle, volumes: Sequence[str]) -> None:
    """Fill in what one service wrote: folders (merged), logs, servers, exec stubs."""
    changes = h.changes()
    added = {p for p, kind in changes if kind == ADDED}
    changed = {p for p, kind in changes if kind != DELETED}
    procs, clients, owned = _facts(h)
    candidates: dict[str, str] = {}
    for folder in written_folders(changes, covered=volumes):  # their mount points too
        if folder in SYSTEM_DIRS or any(under(folder, t) for t in SYSTEM_TREES):
            sv.unmountable.append(folder)
        elif is_scratch(folder):
            sv.scratch.append(folder)
        else:
            candidates[folder] = "written"
    for v in volumes:
        candidates.setdefault(v.rstrip("/") or "/", "VOLUME")
    keep, sv.big_owned = owned_data(owned)
    for path in keep:
        candidates.setdefault(path, f"owned by uid {owned[path]}")
    parents = collections.Counter(posixpath.dirname(f) for f in candidates)
    children = {p: _listing(h, p) for p, n in parents.items() if n > 1}
    merged = merge(candidates, children)
    appended = set(_open_logs(h)) | {p for p in added if log_named(p)}
    sqlite: list[str] = []
    for folder in merged:
        inside = [w for f, w in candidates.items() if under(f, folder)]
        why = "written" if "written" in inside else inside[0]
        use, logs, dbs = _folder_use(h, folder, changed, added, appended, why)
        sv.folders.append(use)
        sv.logs += logs
        sqlite += dbs
    sqlite_files = [(s.rsplit(" ", 1)[0], s.rsplit(" ", 1)[1]) for s in sqlite]
    for stub in server_stubs(procs, clients, sqlite_files, exec_user=sv.user):
        sv.stubs.append((stub, _try_stub(h, stub)))


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
    volumes: dict[str, tuple[str, ...]] = {}
    made_net = False
    try:
        engine.network_create(net)
        made_net = True
        for s in specs:
            cfg = engine.image_config(s.image)
            seen[s.name] = Seen(s, cfg.user, cfg.ports)
            volumes[s.name] = cfg.volumes
            handles[s.name] = engine.start(engine.ContainerSpec(
                name=f"{net}-{s.name}", image=s.image, command=list(s.command) or None, env={},
                user=None, ports=cfg.ports, network=net, aliases=(s.name,), binds={},
                volumes={}, role="init", extra_labels={"fulldisk.service": s.name},
                cap_drop=()))  # as the image is meant to run: many start as root
            progress(f"started {s.name} ({s.image}), exposes {list(cfg.ports) or 'no ports'}"
                     + (f", declares VOLUME {list(cfg.volumes)}" if cfg.volumes else ""))
        _wait_ports(seen, handles, min(deadline, time.monotonic() + ready_timeout))
        for n, sv in seen.items():  # one more look at ports slower than the first
            for port in sv.exposed:
                if port not in sv.ports and (st := _answer(
                        f"http://{engine.LOOPBACK}:{handles[n].host_port(port)}/")):
                    sv.ports[port] = st
        if warmup:
            out = _run_warmup(warmup, seen, handles, deadline)
            progress(f"warm-up: {warmup}: ended" + (f"; its output:\n{out}" if out
                                                    else " (no output)"))
        else:
            for n, sv in seen.items():
                for port in sorted(sv.ports):
                    sv.pages += _crawl(f"http://{engine.LOOPBACK}:{handles[n].host_port(port)}",
                                       deadline, sv.forms)
                if not sv.ports:
                    progress(f"warm-up: {n}: no port answered HTTP, nothing crawled "
                             "(give --warmup a script that uses it as clients do)")
                    continue
                progress(f"warm-up: crawled {n}: {sv.pages} pages, {len(sv.forms)} forms")
                for f in sv.forms:
                    progress(f"  form on {f.page}: {f.method} {f.action} fields "
                             f"{list(f.fields + f.hidden)}"
                             + (" (a login form: a flow stub is written)" if f.password
                                else ""))
        # a deliberate observation window: background writers (cleaners, log flushes)
        threading.Event().wait(max(0.0, min(seconds, deadline - time.monotonic())))
        for n, sv in seen.items():
            h = handles[n]
            if h.status not in ("running", "created"):  # what it wrote says nothing of it
                _exited(n, sv.spec.image, h)
            _inspect(sv, h, volumes[n])
            progress(f"{n} wrote {', '.join(f.path for f in sv.folders) or 'nothing'}"
                     + (f"; not proposed (scratch): {', '.join(sv.scratch)}" if sv.scratch
                        else ""))
            for stub, why in sv.stubs:
                progress(f"{n}: {stub.server} found; its write+readback probe "
                         + ("worked" if why is None else f"failed ({why}): written commented"))
    finally:
        for h in handles.values():
            h.remove(anonymous_volumes=True)
        if made_net:
            engine.network_remove(net)
    return list(seen.values())


def write_starter(specs: Sequence[ServiceSpec], out: Path, *, force: bool = False,
                  name: str | None = None, warmup: str | None = None, seconds: float = 2.0,
                  timeout: float = 60.0, ready_timeout: float = 15.0,
                  progress: Callable[[str], None] = lambda s: None) -> Path:
    """Observe the images and write a validated starter target to ``out``."""
    if out.exists() and not force:
        raise UsageError(f"{out} exists", "pass --force to overwrite it, or --output elsewhere")
    seen = observe(specs, warmup=warmup, seconds=seconds, timeout=timeout,
                   ready_timeout=ready_timeout, progress=progress)
    if not any(sv.folders for sv in seen):
        images = ", ".join(sv.spec.image for sv in seen)
        raise TargetProblem(
            f"nothing written, nothing to propose: {images} wrote no folder during the "
            f"warm-up and the {seconds:g} s after it, so there is no path to put on a small "
            "disk", "make it write as your users do: --warmup 'a script that logs in, "
            "uploads, downloads' (it gets FULLDISK_URL_<SERVICE>), or --seconds longer")
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
    return first if _NAME.fullmatch(first) else "app"
