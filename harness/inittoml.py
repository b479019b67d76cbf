"""The text ``fulldisk init`` writes: what it saw of each service (the records
``starter`` fills in) rendered as a commented starter ``fulldisk.toml``."""

from __future__ import annotations

import collections
import datetime
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from posixpath import relpath

from .initrules import ExecStub, size_for
from .sizes import format_size
from .writes import under


@dataclass(frozen=True)
class ServiceSpec:
    """One image to look at, under a service name, with an optional command."""

    name: str
    image: str
    command: tuple[str, ...] = ()


@dataclass(frozen=True)
class FolderUse:
    """A folder a service wrote (or the image declares, or its user owns), and what it
    held after the warm-up."""

    path: str
    used_bytes: int
    entries: int
    owner: str
    mode: str
    why: str = "written"  # "written", "VOLUME" (the image declares it), "owned by UID"
    data_files: tuple[str, ...] = ()  # written files that are not logs


@dataclass(frozen=True)
class Form:
    """A form the crawl found: the page, where it posts, and its fields."""

    page: str
    action: str
    method: str
    fields: tuple[str, ...]
    hidden: tuple[str, ...] = ()  # hidden fields: a CSRF token to capture, usually
    password: str | None = None  # the password field's name: a login form


@dataclass
class Seen:
    """What one service did during the warm-up."""

    spec: ServiceSpec
    user: str
    exposed: tuple[int, ...]
    ports: dict[int, int] = field(default_factory=dict)  # answering port -> status of GET /
    folders: list[FolderUse] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)  # files the server logs to
    unmountable: list[str] = field(default_factory=list)  # written system folders
    scratch: list[str] = field(default_factory=list)  # written /tmp, /run: not volumes
    big_owned: list[str] = field(default_factory=list)  # owned trees of many folders: code?
    pages: int = 0
    forms: list[Form] = field(default_factory=list)
    stubs: list[tuple[ExecStub, str | None]] = field(default_factory=list)  # None: it worked

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


def _q(value: object) -> str:
    return json.dumps(value)  # a JSON string or list is valid TOML


def _role(users: Sequence[tuple[Seen, FolderUse]], logs: Sequence[str]) -> str:
    """"logs" when everything written there is a log file, else "data" (a database's
    append-only file or WAL makes its folder data, whatever it is named)."""
    written = [f for _, f in users if f.why == "written"]
    if logs and written and not any(f.data_files for f in written):
        return "logs"
    return "data"


def _stub_lines(s: Seen, stub: ExecStub, why: str | None, taken: set[str]) -> list[str]:
    """An exec probe for a recognised server; commented out when its trial failed."""
    pname = _volume_name(f"{s.spec.name}-{stub.server.split('/')[0].lower()}", taken)
    taken.add(pname)
    body = [f"[probes.{pname}]", 'kind = "exec"', f"service = {_q(s.spec.name)}",
            "description = " + _q(f"{stub.server}: write {stub.body_size} of fresh content, "
                                  "read it back by digest"),
            "write = true", f"timeout = {stub.timeout:g}  # a server that waits for space is "
            "a hang, judged as one", f"body_size = {_q(stub.body_size)}",
            f"command = {_q(stub.command)}"]
    if stub.expect_output:
        body.append(f"expect_output = {_q(stub.expect_output)}")
    body += [f"readback = {_q(stub.readback)}",
             f"readback_expect = {_q(stub.readback_expect)}"]
    head = [f"# {stub.server} found in {s.spec.name}: {stub.note}."]
    if why is None:
        head.append("# init ran this write and its readback once: they worked. Set core = true "
                    "if this write matters.")
        return [*head, *body, ""]
    head.append(f"# init ran it once and it FAILED ({why}); fix it, then uncomment.")
    return [*head, *("# " + ln for ln in body), ""]


def _login_lines(s: Seen, port: int, form: Form, taken: set[str]) -> list[str]:
    """A commented login flow for a login form, capturing its hidden fields (CSRF)."""
    pname = _volume_name(f"{s.spec.name}-login", taken)
    taken.add(pname)
    token = next((h for h in form.hidden if re.search(r"csrf|token|nonce|authenticity", h, re.I)),
                 form.hidden[0] if form.hidden else None)
    fields = {f: ("{user}" if f != form.password else "{password}") for f in form.fields}
    if token:
        fields[token] = "{csrf}"
    get: dict[str, object] = {"name": "form", "path": form.page}
    if token:
        get["capture"] = {"csrf": f'name="{token}"[^>]*value="([^"]+)"'}
    flow = [
        f"# A login form was found on {form.page} ({form.method} {form.action}). A stub of",
        "# the flow: put a test account's values for {user} and {password}, the page only",
        "# a logged-in user sees, and uncomment. The login writes (a session): write = true.",
        f"# [probes.{pname}]", f"# service = {_q(s.spec.name)}", f"# port = {port}",
        "# core = true", "# steps = [",
        f"#   {_inline(get)},",
        "#   " + _inline({"name": "login", "method": form.method, "path": form.action,
                         "form": fields, "expect_status": [200, 302, 303],
                         "write": True}) + ",",
        "#   { name = \"check\", path = \"/a-page-for-logged-in-users\", "
        "expect_text = \"Log out\", readback = true },",
        "# ]", ""]
    return flow


def _inline(value: object) -> str:
    """A TOML inline table or value (json for strings and lists, which TOML accepts)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_q(k) if not re.fullmatch(r'[A-Za-z_][A-Za-z0-9_-]*', k) else k}"
                                f" = {_inline(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    return _q(value)


def _volume_lines(path: str, users: Sequence[tuple[Seen, FolderUse]], vname: str
                  ) -> tuple[list[str], list[str]]:
    """One [volumes.X] table, and the log files in it (relative paths)."""
    used = max(f.used_bytes for _, f in users)
    entries = max(f.entries for _, f in users)
    f0 = users[0][1]
    logs = sorted({lg for s, _ in users for lg in s.logs if under(lg, path)})
    role = _role(users, logs)
    size, how = size_for(used, role)
    lines = [f"[volumes.{vname}]"]
    if f0.why == "VOLUME":
        lines.append("# the image declares it a VOLUME")
    elif f0.why != "written":
        lines.append(f"# not written during the warm-up, but {f0.why}, the user its processes "
                     "run as: a folder the app may write. Keep it if yours does, else remove it")
    lines.append(f"size = {_q(format_size(size))}  # {how}; used {format_size(used)} in "
                 f"{entries} {'entry' if entries == 1 else 'entries'} after the warm-up")
    lines.append(f"inodes = {max(256, -(-entries * 4 // 16) * 16)}")
    lines.append(f"owner = {_q(f0.owner)}  # owner of the files it wrote"
                 if f0.why == "written" else f"owner = {_q(f0.owner)}  # the folder's owner")
    lines.append(f"mode = {_q(f0.mode)}")
    if role == "logs":
        lines.append('role = "logs"  # only log files were written here')
    else:
        lines.append('# role = "bulk"  # if this holds user data that may fill')
    mounts = ", ".join(
        "{ service = " + _q(s.spec.name) + ", path = " + _q(path)
        + (", logs = true" if role == "logs" else "") + " }" for s, _ in users)
    lines.append(f"mounts = [{mounts}]")
    lines.append("")
    return lines, [relpath(lg, path) for lg in logs]


def render(seen: Sequence[Seen], *, name: str, warmup: str | None, seconds: float) -> str:
    """The starter fulldisk.toml, commented with what to check by hand."""
    how = (f"the command {warmup!r}" if warmup else
           "a crawl of the links from / on each answering port")
    lines = [
        f"# Starter target written by `fulldisk init` on {datetime.date.today()} from: "
        + " ".join(f"{s.spec.name}={s.spec.image}" for s in seen),
        f"# Each image ran on a private network, warmed up by {how}, then {seconds:g} s",
        "# more; the engine's diff named the folders it wrote (merged to the folder one",
        "# would mount), the image's VOLUME paths and the folders its processes' user owns",
        "# were added, and /proc named the files its processes append to (logs; a",
        "# database's append-only file or WAL is data). CHECK BY HAND before trusting it:",
        "#  - volumes: every folder your app writes belongs here. A warm-up that never",
        "#    logged in, uploaded or downloaded did not see those folders written: run",
        "#    `fulldisk init ... --warmup 'your script'` (it gets FULLDISK_URL_<SERVICE>).",
        "#  - role = \"bulk\" on user data that may fill (downloads, uploads): core flows",
        "#    must survive it full. Sizes: twice what the warm-up used plus 1 MiB, at",
        "#    least 4 MiB (1 MiB for logs) so the battery's writes fit before the fill.",
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
        for f in s.scratch:
            lines.append(f"# wrote into {f} (pid files, sockets, temp files): not a volume")
        for f in s.big_owned:
            lines.append(f"# its user owns {f}, a tree of many folders (code, not data?): "
                         "not proposed; add the folders in it the app writes")
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
        vlines, logs = _volume_lines(path, users, vname)
        lines += vlines
        log_sources += [(vname, rel) for rel in logs]
    for s in seen:
        for port, status in sorted(s.ports.items()):
            lines.append(f"[probes.{_volume_name(f'{s.spec.name}-{port}', taken)}]")
            taken.add(f"{s.spec.name}-{port}")
            lines.append(f"service = {_q(s.spec.name)}")
            lines.append(f"port = {port}")
            lines.append("# a stub: replace with a real flow of your app, and set core = true")
            lines.append(f'steps = [{{ path = "/", expect_status = [{status}] }}]')
            lines.append("")
        for stub, why in s.stubs:
            lines += _stub_lines(s, stub, why, taken)
        login = next((f for f in s.forms if f.password), None)
        if login and s.ports:
            lines += _login_lines(s, sorted(s.ports)[0], login, taken)
    for s in seen:
        lines += ["[[logs]]", 'kind = "container"', f"service = {_q(s.spec.name)}", ""]
    for vname, rel in log_sources:
        lines += ["[[logs]]", 'kind = "file"', f"volume = {_q(vname)}", f"path = {_q(rel)}",
                  "# line_pattern = '^...'  # a whole record, so torn lines can be found", ""]
    return "\n".join(lines)
