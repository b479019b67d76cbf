"""``fulldisk init --compose``: a starter target from a docker-compose.yml.

The compose file stays the source of the services (the starter names it with ``compose``);
what Compose does not know is measured. The services run as the target will run them (a
Stack of the compose-backed target, each named volume a generous disk owned as the image's
folder is), answering ports are crawled, and each volume's use is read back: the starter
sizes it from that, with a floor that holds a battery's writes.
"""

from __future__ import annotations

import datetime
import io
import os
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from . import engine, seedcache
from .compose import map_compose
from .errors import ConfigError, InfrastructureError, UsageError
from .inittoml import _q
from .sizes import format_size
from .stack import Stack, ensure_images
from .starter import _crawl
from .target import Target, target_from_dict

MIB = 1024 * 1024
FLOOR = 4 * MIB
"""Smallest size proposed: the seed, a battery's probe writes and its log lines fit."""
WARM_SIZE = 32 * MIB  # each volume during the warm-up: room to see what the app uses
WARM_INODES = 16384
READY = 15.0  # seconds a published port may take to answer (a worker may never serve one)
ANY_LINE = "."  # the ready log of a service whose healthcheck fulldisk cannot ask


def size_for(used: int) -> int:
    """What the warm-up used, doubled, plus 1 MiB; at least FLOOR, in whole MiB."""
    want = max(FLOOR, used * 2 + MIB)
    return -(-want // MIB) * MIB


def _image_folder(image: str, path: str) -> tuple[str, str] | None:
    """(owner uid:gid, mode) of a folder in an image, as a new named volume gets them."""
    digest = engine.image_id(image)
    hit, data = seedcache.get(digest, path)
    if not hit:
        reader = engine.inspect_created(image)
        try:
            data = reader.get_archive(path)
        finally:
            reader.remove()
        seedcache.put(digest, path, data)
    if not data:
        return None
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        top = t.next()
        return (f"{top.uid}:{top.gid}", f"{top.mode & 0o7777:04o}") if top else None


def _owner(image: str, path: str, user: str | None) -> tuple[str, str]:
    """Owner and mode for a volume: the image's folder's, else the service's numeric
    user's, else root's."""
    found = _image_folder(image, path)
    if found is not None:
        return found
    uid, _, gid = (user or "").partition(":")
    if uid.isdigit() and (not gid or gid.isdigit()):
        return f"{uid}:{gid or uid}", "0755"
    return "0:0", "0755"


def _mapping(compose: Path, root: Path) -> tuple[Any, set[str]]:
    """The compose file's services, and those whose healthcheck is not an HTTP check
    fulldisk can ask (they get a ready line to edit)."""
    own: set[str] = set()
    for _ in range(64):  # one retry per such service, bounded
        try:
            return map_compose(compose, root, own_ready=frozenset(own)), own
        except ConfigError as e:
            svc = (e.key or "").removeprefix("services.").removesuffix(".healthcheck")
            if not (e.key or "").endswith(".healthcheck") or svc in own:
                raise
            own.add(svc)
    raise UsageError(f"{compose}: too many services", "pick fewer services")


def _first_answer(http: requests.Session, base: str, until: float) -> int | None:
    """The status of GET / once the port answers (polled until ``until``), else None."""
    while True:
        try:
            return http.get(base + "/", timeout=5, allow_redirects=False).status_code
        except requests.RequestException:
            if time.monotonic() >= until:
                return None
        threading.Event().wait(0.2)  # poll interval inside a deadline-bounded loop


def _config(name: str, compose_rel: str, own: set[str], volumes: dict[str, dict[str, Any]]
            ) -> dict[str, Any]:
    return {"name": name, "compose": compose_rel,
            "services": {s: {"ready": {"log": ANY_LINE, "timeout": 60}} for s in sorted(own)},
            "volumes": volumes}


@dataclass
class Warmup:
    """What the warm-up saw: its target, bytes and inodes used per volume, the answering
    ports ((service, port) -> status of GET /), services without an HTTP healthcheck."""

    target: Target
    used: dict[str, int]
    inodes: dict[str, int]
    answered: dict[tuple[str, int], int]
    own: set[str]


def observe_compose(compose: Path, out: Path, *, name: str, seconds: float = 2.0,
                    timeout: float = 90.0, progress: Callable[[str], None] = lambda s: None
                    ) -> Warmup:
    """Run the compose-backed target with generous volumes, crawl it, read the volumes'
    use."""
    root = out.parent.resolve()
    mapped, own = _mapping(compose, root)
    rel = os.path.relpath(compose.resolve(), root)
    warm = {"size": WARM_SIZE, "inodes": WARM_INODES}
    built = ensure_images(target_from_dict(  # images first: owners are read from them
        _config(name, rel, own, {v: warm for v in mapped.mounts}), file=str(out),
        root=str(root)))
    if built:
        progress(f"built {', '.join(built)}")
    volumes: dict[str, dict[str, Any]] = {}
    for vol, where in mapped.mounts.items():
        svc, path = where[0]
        table = mapped.services[svc]
        owner, mode = _owner(table["image"], path, table.get("user"))
        volumes[vol] = {**warm, "owner": owner, "mode": mode}
    target = target_from_dict(_config(name, rel, own, volumes), file=str(out), root=str(root))
    deadline = time.monotonic() + timeout
    answered: dict[tuple[str, int], int] = {}
    with Stack(target) as stack, stack.session() as http:
        progress(f"started {', '.join(target.services)}")
        for sname, svc in target.services.items():
            for port in svc.ports:
                base = stack.url(sname, port)
                status = _first_answer(http, base, min(deadline, time.monotonic() + READY))
                if status is None:
                    progress(f"{sname}:{port} did not answer HTTP within {READY:g} s")
                    continue
                answered[(sname, port)] = status
                pages = _crawl(base, deadline)
                progress(f"warm-up: crawled {sname}:{port}, {pages} pages")
        # a deliberate observation window: background writers (cleaners, log flushes)
        threading.Event().wait(max(0.0, min(seconds, deadline - time.monotonic())))
        stack.check_alive()  # a service that died meanwhile: its log lines, never volumes
        usage = stack.usage()
    used = {v: u.bytes_used for v, u in usage.items()}
    inodes = {v: u.inodes_total - u.inodes_free for v, u in usage.items()}
    for v in used:
        progress(f"{v} used {format_size(used[v])}, {inodes[v]} inodes")
    return Warmup(target, used, inodes, answered, own)


def render(w: Warmup) -> str:
    """The starter: the compose file for services, measured volumes, probe stubs."""
    target, used, inodes, answered, own = w.target, w.used, w.inodes, w.answered, w.own
    lines = [
        f"# Starter target written by `fulldisk init --compose` on {datetime.date.today()}.",
        f"# Services, ports, environment and named volumes come from {target.compose}; the",
        "# services ran as this target runs them, each named volume on a generous disk, the",
        "# answering ports were crawled, and each volume's use was read back. CHECK BY HAND:",
        "#  - sizes: what the warm-up used, doubled, plus 1 MiB, at least 4 MiB. A crawl never",
        "#    logs in or uploads: size for what your users write, too.",
        "#  - role = \"bulk\" on user data that may fill (downloads, uploads): core flows",
        "#    must survive it full.",
        "#  - probes: the stubs only GET /; write the real flows (see README, 'A logged-in",
        "#    write') and set core = true.",
        f"name = {_q(target.name)}",
        f"compose = {_q(target.compose)}",
        "",
    ]
    for sname in sorted(own):
        lines += [f"[services.{sname}]",
                  "# its healthcheck is not an HTTP check fulldisk can ask: CHANGE this to a",
                  "# line it prints once it is up, or to http = \"/path\" on a port it publishes",
                  f"ready = {{ log = {_q(ANY_LINE)}, timeout = 60 }}", ""]
    for sname, svc in target.services.items():
        port = min((p for (n, p) in answered if n == sname), default=None)
        if sname not in own and svc.ready is None and port is not None:
            lines += [f"[services.{sname}]  # compose gives no healthcheck; this port answered",
                      f'ready = {{ http = "/", port = {port}, timeout = 60 }}', ""]
    for vname, spec in target.volumes.items():
        where = ", ".join(f"{m.service}:{m.path}" for m in spec.mounts)
        lines += [f"[volumes.{vname}]  # {where}",
                  f"size = {_q(format_size(size_for(used.get(vname, 0))))}  # used "
                  f"{format_size(used.get(vname, 0))} during the warm-up",
                  f"inodes = {max(256, -(-inodes.get(vname, 0) * 4 // 64) * 64)}  # used "
                  f"{inodes.get(vname, 0)}",
                  f"owner = {_q(spec.owner)}  # the image's folder's owner",
                  f"mode = {_q(spec.mode)}",
                  '# role = "bulk"  # if this holds user data that may fill', ""]
    taken: set[str] = set()
    for (sname, port), status in sorted(answered.items()):
        pname = f"{sname}-{port}"[:40] if f"{sname}-{port}" not in taken else f"{sname}-p{port}"
        taken.add(pname)
        lines += [f"[probes.{pname}]", f"service = {_q(sname)}", f"port = {port}",
                  "# a stub: replace with a real flow of your app, and set core = true",
                  f"steps = [{{ path = \"/\", expect_status = [{status}] }}]", ""]
    for sname in target.services:
        lines += ["[[logs]]", 'kind = "container"', f"service = {_q(sname)}", ""]
    return "\n".join(lines)


def write_compose_starter(compose: Path, out: Path, *, force: bool = False,
                          name: str | None = None, seconds: float = 2.0,
                          timeout: float = 90.0,
                          progress: Callable[[str], None] = lambda s: None) -> Path:
    """Measure a compose file's services and write a validated starter target to ``out``."""
    if out.exists() and not force:
        raise UsageError(f"{out} exists", "pass --force to overwrite it, or --output elsewhere")
    if not compose.is_file():
        raise UsageError(f"no compose file {str(compose)!r}",
                         "give the path of a docker-compose.yml")
    stem = compose.resolve().parent.name.lower()
    default = "".join(c if c.isalnum() or c in "-_" else "-" for c in stem).strip("-_")
    tname = name or (default if default[:1].isalpha() else "app")
    text = render(observe_compose(compose, out, name=tname, seconds=seconds, timeout=timeout,
                                  progress=progress))
    import tomllib

    try:
        target_from_dict(tomllib.loads(text), file=str(out), root=str(out.parent.resolve()))
    except (ConfigError, tomllib.TOMLDecodeError) as e:  # a bug of ours: say so, keep the text
        raise InfrastructureError(f"fulldisk init wrote an invalid target ({e}):\n{text}",
                                  "report this; edit the text above by hand meanwhile") from e
    out.write_text(text, encoding="utf-8")
    return out
