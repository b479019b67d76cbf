"""Target config: ``fulldisk.toml`` or ``[tool.fulldisk]`` in a pyproject, as typed objects.

A Target names a team's services, the Volumes their writable paths live on, the probes
that exercise them, log sources, counters and health. Validation errors name the file,
the key and the fix. Values may use ``${VAR}`` / ``${VAR:-default}`` from the environment
(e.g. ``DATAHUB_DEFECTS``), so one file serves hardened and defect runs.
"""

from __future__ import annotations

import graphlib
import os
import posixpath
import re
import tomllib
import types
import typing
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from . import patterns
from .errors import ConfigError, UsageError
from .sizes import ACCEPTED, MAX_BODY_SIZE, PAGE, format_size, parse_percent, parse_size

DEFAULT_CAUSE_PATTERNS = (
    r"[Nn]o space left on device",  # strerror(ENOSPC); Go and others write it lower-case
    r"ENOSPC",
    r"[Ee]rrno:? ?28\b",
    r"[Dd]isk (is )?full",
    r"Insufficient Storage",
    r'" 507 ',  # an access-log line with status 507 (Insufficient Storage): lighttpd, Apache
    r"\berror:? 28\b",  # InnoDB: "preallocating ... failed with error 28"
    r"[Oo]ut of (disk )?space",  # InnoDB: "Error (Out of disk space)"
    r"database or disk is full",  # SQLite (SQLITE_FULL)
    r"[Tt]he table '[^']*' is full",  # MySQL/MariaDB error 1114
    r"[Dd]isk quota exceeded",  # EDQUOT: a quota, not the disk, ran out
)
DEFAULT_ERROR_PATTERNS = (
    r"\bERROR\b", r"\bCRITICAL\b", r"\bFATAL\b", r"Traceback",
    r"\[(?:[\w-]+:)?(?:error|crit|alert|emerg)\]",  # [error]; Apache 2.4: [cache_disk:error]
    r"\bException\b", r'" 5\d\d ',
)
SECRET_KEYS = re.compile(r"pass(word|wd)?|secret|token|api[_-]?key|credential", re.I)
_NAME = r"^[a-z][a-z0-9_-]{0,39}$"
# Values the harness sets in every probe run, usable as {name} in paths, forms, JSON,
# headers, commands and expected text; a capture may not shadow them.
BUILTIN_VARS = ("nonce", "body", "body_sha256", "body_bytes")
_CAP = re.compile(r"^(ALL|[A-Z][A-Z0-9_]{1,30})$")
# ${VAR} or ${VAR:-default} from the environment; $${ is a literal ${ (group 1 set)
_ENV = re.compile(r"\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# an image reference as the engine parses it: [registry[:port]/]path[:tag][@digest]
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    r"(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*"
    rf"[a-zA-Z0-9])?)*(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
    r"|sha256:[0-9a-f]{64})")
_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")  # a {placeholder} in a probe step
MAX_ID = 2**32 - 2  # the largest uid/gid Linux accepts (2^32 - 1 is "no id")
SYSTEM_TREES = ("/proc", "/sys", "/dev")  # kernel filesystems: never a tmpfs on or under
SYSTEM_DIRS = ("/", "/bin", "/sbin", "/lib", "/lib64", "/usr", "/etc", "/boot")  # exactly
RESERVED_VOLUMES = ("shared", "write-flood", "downloads-fill-shared-disk",
                    "cleanup-under-load", "counter")  # the battery's own case ids
RESERVED_SERVICES = ("agent",)  # the container that holds a stack's volumes
TMPFS_SHARE = 0.25  # at most this share of the available memory may back the volumes
DOCS = "README.md, 'Using it on your own app'"


def _uses_body(node: Any) -> bool:
    if isinstance(node, str):
        return "{body}" in node
    if isinstance(node, dict):
        return any(_uses_body(v) for v in node.values())
    if isinstance(node, list):
        return any(_uses_body(v) for v in node)
    return False


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _size(v: Any) -> int:
    try:
        return parse_size(v)
    except UsageError as e:
        why = e.message.rstrip(".") if "too large" in e.message else f"{v!r} is not a size"
        raise ValueError(f"{why}; use {ACCEPTED}") from e


# A size is written as bytes or as text ("512KiB", "16MiB"); the JSON Schema says both.
Size = Annotated[int, Field(ge=0), WithJsonSchema({
    "anyOf": [{"type": "integer", "minimum": 0},
              {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[A-Za-z]*\s*$"}],
    "description": ACCEPTED})]


def _body_size(n: int | None, v: Any) -> int | None:
    if n is not None and n > MAX_BODY_SIZE:
        raise ValueError(f"body_size {v!r} is above {format_size(MAX_BODY_SIZE)}, the most "
                         "fulldisk generates per request; a full-disk test of a few MiB "
                         "needs far less")
    return n


class Ready(_Model):
    """How to tell that a service is up: an HTTP path answering below 500, or a log line."""

    http: str | None = None
    port: int | None = None
    log: str | None = None
    timeout: float = Field(60.0, gt=0, le=600)

    @field_validator("http")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and (not v.startswith("/") or "://" in v):
            raise ValueError(f"ready path {v!r} must start with '/', such as \"/health\"")
        return v

    @field_validator("log")
    @classmethod
    def _log(cls, v: str | None) -> str | None:
        if v is not None:
            _regex(v, "ready log")
        return v

    @model_validator(mode="after")
    def _one(self) -> Ready:
        if (self.http is None) == (self.log is None):
            raise ValueError("a ready table needs exactly one of 'http' (a path such as "
                             "\"/health\") or 'log' (a regex of a start-up line)")
        return self


def _regex(rx: str, what: str) -> None:
    why = patterns.check(rx)
    if why is not None:
        raise ValueError(f"{what}: bad regex {rx!r} ({why})")


def image_problem(image: str) -> str | None:
    """Why an image reference is not one the engine accepts (None when it is)."""
    if not image.strip():
        return "the image is empty; give a reference such as \"myapp:1.2\""
    if len(image) > 512 or not _IMAGE.fullmatch(image):
        return (f"image {image[:200]!r} is not an image reference: lowercase name parts "
                "joined by '/', '.', '_' or '-', an optional [registry[:port]/] in front and "
                "an optional :tag, such as \"registry.example:5000/team/app:1.2\"")
    return None


def _ids(text: str, what: str) -> str:
    """Check a numeric ``uid[:gid]`` against Linux's id range (names pass through)."""
    for part in text.split(":"):
        if part.isdigit() and int(part) > MAX_ID:
            raise ValueError(f"{what} {text!r}: id {part} is above {MAX_ID}, the largest "
                             "uid/gid Linux accepts")
    return text


class Service(_Model):
    """A container of the target: an image (or build context), its command, env and ports."""

    image: str
    build: str | None = None  # build context, relative to the config file
    dockerfile: str | None = None
    command: list[str] | str | None = None
    entrypoint: list[str] | str | None = None  # replaces the image's ENTRYPOINT
    build_args: dict[str, str] = {}  # build-time ARGs (BASE defaults to fulldisk's base)
    env: dict[str, str] = {}
    user: str | None = None
    ports: list[int] = []
    # scratch tmpfs mounts the harness neither sizes nor fills: path -> mount options
    # ("size=64m,mode=1777"); for /run, /tmp and the like
    tmpfs: dict[str, str] = {}
    ready: Ready | None = None
    depends_on: list[str] = []
    privileged: bool = False  # only if the target says so
    # The engine's default capability set plus no-new-privileges; these narrow or extend it
    # (images that start as root and drop to a service user need CHOWN, SETUID, SETGID).
    cap_drop: list[str] = []
    cap_add: list[str] = []
    # Its standard output and error are an operator-visible sink (`docker logs`), read as a
    # log source without a [[logs]] entry; false where nobody collects them in production.
    log_output: bool = True

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        why = image_problem(v)
        if why is not None:
            raise ValueError(why)
        return v

    @field_validator("cap_drop", "cap_add")
    @classmethod
    def _caps(cls, v: list[str]) -> list[str]:
        out = []
        for c in v:
            name = c.strip().upper().removeprefix("CAP_")
            if not _CAP.match(name):
                raise ValueError(f"{c!r} is not a capability name; use e.g. \"CHOWN\", "
                                 "\"SETUID\", \"NET_BIND_SERVICE\" or \"ALL\"")
            out.append(name)
        return out

    @field_validator("tmpfs")
    @classmethod
    def _tmpfs(cls, v: dict[str, str]) -> dict[str, str]:
        out = {}
        for path, opts in v.items():
            if not re.fullmatch(r"[A-Za-z0-9=,._-]*", opts):
                raise ValueError(f"tmpfs {path!r}: options {opts!r} must be comma-separated "
                                 "key=value words, such as \"size=64m,mode=1777\"")
            out[Mount._abs(path)] = opts
        return out

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: list[int]) -> list[int]:
        for p in v:
            if not 1 <= p <= 65535:
                raise ValueError(f"port {p} is outside 1-65535")
        dup = sorted({p for p in v if v.count(p) > 1})
        if dup:
            raise ValueError(f"port {dup[0]} is listed twice; list each port once")
        return v

    @field_validator("user")
    @classmethod
    def _user(cls, v: str | None) -> str | None:
        if v is not None:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?", v):
                raise ValueError(f"user {v!r} must be uid[:gid] or name[:group], such as "
                                 "1000:1000")
            _ids(v, "user")
        return v


class Mount(_Model):
    """Where a volume appears inside a service."""

    service: str
    path: str
    subdir: str | None = None  # a folder of the volume instead of its root (shared disks)
    logs: bool = False  # holds open log files: a reset truncates them in place

    @field_validator("subdir")
    @classmethod
    def _sub(cls, v: str | None) -> str | None:
        if (v is not None and not re.fullmatch(r"[A-Za-z0-9._-]+", v)) or v in (".", ".."):
            raise ValueError(f"subdir {v!r} must be one plain folder name")
        return v

    @field_validator("path")
    @classmethod
    def _abs(cls, v: str) -> str:
        if not v.startswith("/") or ".." in PurePosixPath(v).parts:
            raise ValueError(f"mount path {v!r} must be an absolute path without '..'")
        norm = posixpath.normpath(v)
        norm = "/" + norm.lstrip("/")  # normpath keeps a leading '//'
        if norm in SYSTEM_DIRS or any(norm == t or norm.startswith(t + "/")
                                      for t in SYSTEM_TREES):
            raise ValueError(f"mount path {v!r} is a system folder; a tmpfs there would hide "
                             "what the container needs to run. Mount the app's own writable "
                             "folder (such as /var/lib/app)")
        return norm  # '/data/' and '/data' are one path


class VolumeSpec(_Model):
    """A small filesystem: size, inode limit, owner, and the service paths it backs."""

    size: Size
    inodes: int = Field(4096, ge=16, le=10_000_000)
    owner: str = "0:0"
    mode: str = "0755"
    mounts: list[Mount] = Field(min_length=1)
    seed: bool = True  # copy the image's files at the first mount path into the volume
    role: Literal["core", "bulk", "logs"] = "core"
    description: str = ""

    @field_validator("size", mode="before")
    @classmethod
    def _size_v(cls, v: Any) -> int:
        n = _size(v)
        if n == 0:
            raise ValueError(f"size {v!r} is zero, which tmpfs takes as unlimited: the disk "
                             f"could never fill; use at least {PAGE} bytes (4KiB)")
        if n < PAGE:
            raise ValueError(f"size {v!r} is below one {PAGE}-byte page, the unit tmpfs "
                             "allocates in; use at least 4KiB")
        return n

    @field_validator("owner")
    @classmethod
    def _owner(cls, v: str) -> str:
        if not re.fullmatch(r"\d+:\d+", v):
            raise ValueError(f"owner {v!r} must be numeric uid:gid such as 1000:1000")
        return _ids(v, "owner")

    @field_validator("mode")
    @classmethod
    def _mode(cls, v: str) -> str:
        if not re.fullmatch(r"0?[0-7]{3,4}", v):
            raise ValueError(f"mode {v!r} must be octal such as 0755")
        return v

    @property
    def uid(self) -> int:
        """Owner uid."""
        return int(self.owner.split(":")[0])

    @property
    def gid(self) -> int:
        """Owner gid."""
        return int(self.owner.split(":")[1])


class FilePart(_Model):
    """A file of a multipart upload: fresh content of ``body_size`` bytes per run (derived
    from ``{nonce}``), sent under ``filename`` with ``content_type``."""

    body_size: Size
    filename: str = "fulldisk-{nonce}.bin"
    content_type: str = "application/octet-stream"

    @field_validator("body_size", mode="before")
    @classmethod
    def _bsize(cls, v: Any) -> int:
        return _size(v)

    @field_validator("filename")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or "/" in v or "\\" in v or v in (".", ".."):
            raise ValueError(f"filename {v!r} must be one plain file name, such as "
                             "\"photo-{nonce}.jpg\"")
        return v

    @field_validator("content_type")
    @classmethod
    def _ctype(cls, v: str) -> str:
        if not re.fullmatch(r"[\w.+-]+/[\w.+-]+(;.*)?", v):
            raise ValueError(f"content_type {v!r} must be a media type such as \"image/jpeg\"")
        return v


class Step(_Model):
    """One request of an HTTP flow, with expectations and captures for later steps."""

    name: str = ""
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    path: str
    form: dict[str, str] = {}
    # a multipart/form-data upload: field name -> a file of fresh content (``form`` values
    # go beside it as plain fields); {body}, {body_sha256}, {body_bytes} are the first file's
    files: dict[str, FilePart] = {}
    json_body: dict[str, Any] | None = Field(None, alias="json")
    headers: dict[str, str] = {}
    expect_status: list[int] = [200]
    expect_text: str | None = None
    absent_text: str | None = None
    capture: dict[str, str] = {}  # name -> regex with one group, used as {name} later
    write: bool = False
    readback: bool = False
    timeout: float = Field(5.0, gt=0, le=120)  # total time: answer and whole body
    # Fresh content of this many bytes per run, derived from {nonce}: sent as the raw
    # body, or where a form/JSON/header value says {body}. Later steps may expect
    # {body_sha256} and {body_bytes}.
    body_size: Size | None = None
    expect_bytes: Size | None = None  # the body must be exactly this long (decoded)
    expect_sha256: str | None = None  # hex digest of the (decoded) body, or "{body_sha256}"

    @field_validator("body_size", "expect_bytes", mode="before")
    @classmethod
    def _sizes(cls, v: Any, info: ValidationInfo) -> int | None:
        n = None if v is None else _size(v)
        return _body_size(n, v) if info.field_name == "body_size" else n

    @field_validator("expect_sha256")
    @classmethod
    def _sha(cls, v: str | None) -> str | None:
        if v is not None and not (re.fullmatch(r"[0-9a-fA-F]{64}", v) or _VAR.search(v)):
            raise ValueError(f"expect_sha256 {v!r} must be 64 hex digits or a {{variable}} "
                             "such as \"{body_sha256}\"")
        return v.lower() if v is not None and not _VAR.search(v) else v

    @model_validator(mode="after")
    def _body(self) -> Step:
        if self.files:
            if self.method in ("GET", "HEAD", "DELETE"):
                raise ValueError(f"files on a {self.method}: an upload is a POST, PUT or PATCH")
            if self.body_size is not None or self.json_body is not None:
                raise ValueError("files with body_size or json: a multipart upload gives each "
                                 "file its own body_size, and sends form values beside them")
        if self.body_size is not None:
            if (self.form or self.json_body is not None) and not self._body_used():
                raise ValueError("body_size with 'form' or 'json': put \"{body}\" in one of "
                                 "their values, or drop them to send the content as the raw body")
            if self.method in ("GET", "HEAD", "DELETE") and not self._body_used():
                raise ValueError(f"body_size on a {self.method}: use {{body}} in form, json "
                                 "or headers, or use PUT/POST/PATCH for a raw body")
        if self.method == "HEAD" and (self.expect_bytes is not None or self.expect_sha256
                                      or self.expect_text):
            raise ValueError("a HEAD answer has no body: drop expect_bytes/expect_sha256/"
                             "expect_text")
        return self

    def _body_used(self) -> bool:
        return (any("{body}" in v for v in (*self.form.values(), *self.headers.values()))
                or (self.json_body is not None and _uses_body(self.json_body)))

    @property
    def raw_body(self) -> bool:
        """The generated content is the request body itself (no form/JSON carries it)."""
        return self.body_size is not None and not self.form and self.json_body is None

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/") or "://" in v:
            raise ValueError(f"path {v!r} must start with '/' (probes reach only the "
                             "service's published port on 127.0.0.1, never another host)")
        return v

    @field_validator("expect_status")
    @classmethod
    def _status(cls, v: list[int]) -> list[int]:
        bad = [c for c in v if not 100 <= c <= 599]
        if bad:
            raise ValueError(f"status {bad[0]} is not an HTTP status (100-599): the step "
                             "could never pass")
        if not v:
            raise ValueError("expect_status is empty: the step could never pass")
        return v

    @property
    def generates(self) -> bool:
        """The step makes fresh content ({body}, {body_sha256}, {body_bytes}): a raw body
        or value of ``body_size``, or the files of an upload."""
        return self.body_size is not None or bool(self.files)

    def placeholders(self) -> set[str]:
        """The ``{name}`` values the step uses (path, form and header values, file names)."""
        texts = [self.path, *self.form.values(), *self.headers.values(),
                 *(f.filename for f in self.files.values())]
        return {m for t in texts for m in _VAR.findall(t)}

    @field_validator("capture")
    @classmethod
    def _capture(cls, v: dict[str, str]) -> dict[str, str]:
        for k, rx in v.items():
            if k in BUILTIN_VARS:
                raise ValueError(f"capture {k!r}: the name is taken by a built-in variable "
                                 f"({', '.join(BUILTIN_VARS)}); pick another")
            why = patterns.check(rx)
            if why is not None:
                raise ValueError(f"capture {k!r}: bad regex ({why})")
            if patterns.groups(rx) != 1:
                raise ValueError(f"capture {k!r}: regex must have exactly one group")
        return v


class Probe(_Model):
    """An observation: an HTTP flow against a service port, or a command run in a service."""

    kind: Literal["http", "exec"] = "http"
    service: str
    port: int | None = None
    steps: list[Step] = []
    command: list[str] = []
    expect_exit: int = Field(0, ge=0, le=255)
    expect_output: str | None = None
    # exec probes: a write (``command``) read back by ``readback`` (a command whose stdout
    # must contain ``readback_expect``); both bounded by ``timeout`` seconds (a hang).
    # For http probes ``write`` is set from the steps (true when a step is a write).
    write: bool = False
    readback: list[str] = []
    readback_expect: str | None = None
    timeout: float = Field(10.0, gt=0, le=600)
    body_size: Size | None = None  # exec: {body} in the commands is this much fresh content
    core: bool = False
    description: str = ""
    # http: start each run with the cookies of the named probe's last green run made before
    # any fill (a login), so the write under test is the only write the probe makes while full
    session: str | None = None

    @field_validator("body_size", mode="before")
    @classmethod
    def _bsize(cls, v: Any) -> int | None:
        return None if v is None else _body_size(_size(v), v)

    @model_validator(mode="before")
    @classmethod
    def _write_from_steps(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind", "http") == "http" and data.get("steps"):
            steps = data["steps"]
            if isinstance(steps, list) and any(
                    (s.get("write") if isinstance(s, dict) else getattr(s, "write", False))
                    for s in steps):
                if data.get("write") is False:
                    raise ValueError("write = false on the probe, but a step is a write")
                data = {**data, "write": True}
            elif data.get("write"):
                raise ValueError("write = true on an http probe: mark the step that writes "
                                 "with write = true instead")
        return data

    @model_validator(mode="after")
    def _shape(self) -> Probe:
        if self.kind == "http" and not self.steps:
            raise ValueError("an http probe needs at least one entry in 'steps'")
        if self.kind == "exec" and not self.command:
            raise ValueError("an exec probe needs 'command' (a list of strings)")
        if self.kind == "http":
            wrong = [k for k in ("readback", "readback_expect", "body_size")
                     if getattr(self, k) not in ([], None)]
            if wrong or self.command:
                raise ValueError(f"{', '.join(wrong) or 'command'}: only for exec probes; an "
                                 "http probe reads back with a later step (readback = true)")
        if self.kind == "exec":
            if self.steps:
                raise ValueError("an exec probe has 'command', not 'steps'")
            if self.readback and not self.write:
                raise ValueError("'readback' needs write = true (it reads back the write)")
            if self.readback_expect is not None and not self.readback:
                raise ValueError("'readback_expect' needs a 'readback' command")
        seen_write = False
        for s in self.steps:
            if s.write:
                seen_write = True
            if s.readback and not seen_write:
                raise ValueError(f"step {s.path!r} is a readback but no earlier step is a write")
        return self


class Health(_Model):
    """The health endpoint and how to read its verdict."""

    service: str
    port: int | None = None
    path: str = "/health"
    field: str = "status"  # dotted path into the JSON body; empty means use the HTTP status
    healthy: list[str] = ["ok", "healthy", "pass"]
    degraded: list[str] = ["degraded", "warn", "warning"]
    failing: list[str] = ["failing", "fail", "error", "down"]

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return _local_path(v)


def _local_path(v: str) -> str:
    if not v.startswith("/") or "://" in v:
        raise ValueError(f"path {v!r} must start with '/' (fulldisk asks only the service's "
                         "published port on 127.0.0.1)")
    return v


class Counter(_Model):
    """A number the app reports, and the probe whose successful runs it should count."""

    service: str
    port: int | None = None
    path: str = "/metrics"
    metric: str | None = None  # Prometheus line name (with optional {labels})
    json_field: str | None = None
    counts: str  # probe name

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return _local_path(v)

    @model_validator(mode="after")
    def _one(self) -> Counter:
        if (self.metric is None) == (self.json_field is None):
            raise ValueError("set exactly one of 'metric' or 'json_field'")
        return self


class LogSource(_Model):
    """An operator-visible sink: a container stream, a file inside a volume, or a file on a
    service's own filesystem (read through the engine's archive API)."""

    kind: Literal["container", "file"]
    service: str | None = None
    volume: str | None = None
    path: str | None = None  # files: inside the volume, or absolute in the service
    line_pattern: str | None = None  # a whole record; lines not matching are torn
    drop_pattern: str | None = None  # a line announcing lost records

    @model_validator(mode="after")
    def _shape(self) -> LogSource:
        if self.kind == "container" and not self.service:
            raise ValueError("a container log source needs 'service'")
        if self.kind == "file":
            if not self.path or bool(self.volume) == bool(self.service):
                raise ValueError("a file log source needs 'path' and one of 'volume' (path "
                                 "inside the volume) or 'service' (absolute path in it)")
            parts = PurePosixPath(self.path).parts
            if ".." in parts:
                raise ValueError(f"log path {self.path!r} must not contain '..'")
            if self.service and not self.path.startswith("/"):
                raise ValueError(f"log path {self.path!r} must be absolute with 'service' "
                                 "(e.g. /var/log/apache2/error.log)")
            norm = posixpath.normpath(self.path)
            if self.path.endswith("/") or any(norm == t or norm.startswith(t + "/")
                                              for t in SYSTEM_TREES):
                raise ValueError(f"log path {self.path!r} is a folder or a kernel file "
                                 "(/dev, /proc, /sys), not a log; give the file the app "
                                 "writes its records to")
            if self.volume and self.path.startswith("/"):
                raise ValueError(f"log path {self.path!r} is absolute; with 'volume' give "
                                 "the path inside the volume, such as \"app.log\" (or give "
                                 "'service' for a file on a service's own filesystem)")
        for key in ("line_pattern", "drop_pattern"):
            rx = getattr(self, key)
            why = None if rx is None else patterns.check(rx)
            if why is not None:
                raise ValueError(f"{key}: bad regex ({why})")
        return self

    @property
    def label(self) -> str:
        """Stable name used in log records and evidence."""
        if self.kind == "container":
            return f"{self.service}:stdout+stderr"
        if self.service:
            return f"file:{self.service}:{self.path}"
        return f"file:{self.volume}/{self.path}"


class Downloads(_Model):
    """The app's own download endpoint, used by the download load.

    The probe's paths may hold ``{seq}`` (a fresh number per download, so each one makes
    a new file) and ``{size}`` (bytes drawn from ``sizes``).
    """

    probe: str
    volume: str
    sizes: list[Size] = [64 * 1024]  # bytes; a distribution: drawn uniformly from these

    @field_validator("sizes", mode="before")
    @classmethod
    def _sizes(cls, v: Any) -> Any:
        # parsed once here ("64KiB" -> 65536): the loads draw from ints
        return [_size(x) for x in v] if isinstance(v, list) else v


class Cleanup(_Model):
    """The app's own cleanup and what keeping up means."""

    volume: str
    service: str | None = None  # the cleaner's container, paused where the app is on its own
    ceiling: Annotated[float, WithJsonSchema({"anyOf": [
        {"type": "number"}, {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*%?\s*$"}],
        "description": "percent of bytes: 90 or \"90%\""})] = 90.0
    max_full_seconds: float = Field(1.0, ge=0, le=3600)
    rate: float = Field(20.0, gt=0, le=500)  # downloads per second
    duration: float = Field(4.0, gt=0, le=120)

    @field_validator("ceiling", mode="before")
    @classmethod
    def _c(cls, v: Any) -> float:
        try:
            return parse_percent(v, what="ceiling")
        except UsageError as e:
            raise ValueError(e.message) from None


class Bounds(_Model):
    """Time bounds the invariants use."""

    error_record_seconds: float = Field(default=5.0, gt=0, le=600)
    recovery_seconds: float = Field(default=10.0, gt=0, le=3600)
    request_timeout: float = Field(default=5.0, gt=0, le=120)
    # Write pressure while a volume is full: its write probes run until the first refusal,
    # at most this much fresh content (default: the volume's size) and this long.
    pressure_bytes: Size | None = None
    pressure_seconds: float = Field(default=20.0, gt=0, le=600)

    @field_validator("pressure_bytes", mode="before")
    @classmethod
    def _pressure(cls, v: Any) -> int | None:
        if v is None:
            return None
        n = _size(v)
        if n < PAGE:
            raise ValueError(f"pressure_bytes {v!r} is below one {PAGE}-byte page: a write "
                             "that small proves nothing on a full disk; use at least 4KiB")
        return n


class Target(_Model):
    """A whole target: what fulldisk starts, fills and judges."""

    name: str
    description: str = ""
    services: dict[str, Service]
    volumes: dict[str, VolumeSpec]
    probes: dict[str, Probe] = {}
    health: Health | None = None
    counters: dict[str, Counter] = {}
    logs: list[LogSource] = []
    downloads: Downloads | None = None
    cleanup: Cleanup | None = None
    bounds: Bounds = Bounds()
    # A path of the front service the app itself answers (its logs record it), for the log
    # marks; default: the first core probe's first GET step without {placeholders}.
    mark: str | None = None
    cause_patterns: list[str] = list(DEFAULT_CAUSE_PATTERNS)
    error_patterns: list[str] = list(DEFAULT_ERROR_PATTERNS)
    # A docker-compose.yml (relative to this file) whose services become ``services``
    # (harness/compose.py merges them in before validation); compose_services picks some.
    compose: str | None = None
    compose_services: list[str] = []
    # Set by the loader, never by the config (a config that names them has unknown keys).
    _path: str = PrivateAttr("")
    _root: str = PrivateAttr("")

    @property
    def path(self) -> str:
        """The file the config was loaded from."""
        return self._path

    @property
    def root(self) -> str:
        """The folder relative paths (build contexts) are taken from."""
        return self._root

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v.strip():  # printed in every progress line, summary and report
            raise ValueError("the target's name is empty; give it a short name such as "
                             "\"shop\"")
        return v

    @field_validator("mark")
    @classmethod
    def _mark(cls, v: str | None) -> str | None:
        if v is not None and (not v.startswith("/") or "://" in v or _VAR.search(v)):
            raise ValueError(f"mark {v!r} must be a path such as \"/index.php\" (no host, no "
                             "{placeholder}): the harness adds ?fulldisk-mark=<id> to it")
        return v

    @field_validator("services", "volumes", "probes", "counters")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not re.fullmatch(_NAME, name):  # match's $ passes "web\n"
                raise ValueError(f"name {name!r} must be lowercase letters, digits, '-' or '_' "
                                 "and start with a letter")
        return v

    @model_validator(mode="after")
    def _refs(self, info: ValidationInfo) -> Target:
        svc, vols, probes = set(self.services), set(self.volumes), set(self.probes)

        def need(kind: str, name: str | None, known: set[str], where: str) -> None:
            if name is not None and name not in known:
                choices = ", ".join(sorted(known)) or "none declared"
                raise ValueError(f"{where}: unknown {kind} {name!r} (declared: {choices})")

        if self.compose_services and not self.compose:
            raise ValueError("compose_services: picks services of a compose file; name the "
                             "file with compose = \"docker-compose.yml\"")
        for name in RESERVED_SERVICES:
            if name in svc:
                raise ValueError(f"services.{name}: the name {name!r} is fulldisk's own "
                                 "(the container that holds the volumes); rename the service")
        derived = bool(info.context and info.context.get("derived"))  # Target.shared()
        root = str(info.context.get("root", "")) if info.context else ""
        for name in RESERVED_VOLUMES:
            if name in vols and not derived:
                raise ValueError(f"volumes.{name}: the name {name!r} is a battery scenario's "
                                 "own (the shared-disk variant); rename the volume")
        graph: dict[str, list[str]] = {}
        for sname, s in self.services.items():
            for d in s.depends_on:
                need("service", d, svc, f"services.{sname}.depends_on")
                if d == sname:
                    raise ValueError(f"services.{sname}.depends_on: the service depends on "
                                     "itself; remove it from its own depends_on")
            graph[sname] = list(s.depends_on)
            if s.ready is not None and s.ready.http is not None:
                self._port(sname, s.ready.port, f"services.{sname}.ready")
            if root and s.build is not None:
                ctx = Path(root) / s.build
                if not ctx.is_dir():
                    raise ValueError(f"services.{sname}.build: build context {str(ctx)!r} is "
                                     "not a folder; give a folder relative to the config file")
                if s.dockerfile is not None and not (ctx / s.dockerfile).is_file():
                    raise ValueError(f"services.{sname}.dockerfile: {s.dockerfile!r} is not a "
                                     f"file in {str(ctx)!r}")
        try:
            tuple(graphlib.TopologicalSorter(graph).static_order())
        except graphlib.CycleError as e:
            cycle = " -> ".join(e.args[1][::-1])
            raise ValueError(f"services: depends_on forms a cycle ({cycle}); remove one of "
                             "these dependencies") from None
        seen: dict[tuple[str, str], str] = {}
        for vname, v in self.volumes.items():
            for m in v.mounts:
                need("service", m.service, svc, f"volumes.{vname}.mounts")
                key = (m.service, m.path)
                if key in seen:
                    raise ValueError(f"volumes.{vname}.mounts: {m.service}:{m.path} is already "
                                     f"mounted by volume {seen[key]!r} (paths compare after "
                                     "normalising, so '/data/' is '/data'); mount each path "
                                     "once")
                seen[key] = vname
                if m.path in self.services[m.service].tmpfs:
                    raise ValueError(f"volumes.{vname}.mounts: {m.service}:{m.path} is also "
                                     f"in services.{m.service}.tmpfs; a path is one mount "
                                     "(drop it from tmpfs, which fulldisk does not fill)")
        given = {"seq", "size"} if self.downloads else set()
        for pname, p in self.probes.items():
            need("service", p.service, svc, f"probes.{pname}.service")
            if p.session is not None:
                need("probe", p.session, probes, f"probes.{pname}.session")
                src = self.probes[p.session]
                if p.session == pname or p.kind != "http" or src.kind != "http" \
                        or src.session is not None:
                    raise ValueError(f"probes.{pname}.session: name another http probe that "
                                     "logs in by itself (not this probe, not an exec probe, "
                                     "not one that uses a session of its own)")
            if p.kind == "http":
                self._port(p.service, p.port, f"probes.{pname}")
            known = set(given) if self.downloads and self.downloads.probe == pname else set()
            known.add("nonce")
            for i, step in enumerate(p.steps):
                if step.generates:
                    known |= set(BUILTIN_VARS)
                missing = sorted(step.placeholders() - known)
                if missing:
                    raise ValueError(
                        f"probes.{pname}.steps[{i}]: {{{missing[0]}}} is never captured by an "
                        "earlier step, so the step could never pass; capture it first "
                        f"(capture = {{ {missing[0]} = 'regex with (one group)' }})")
                known |= set(step.capture)
        if self.health:
            need("service", self.health.service, svc, "health.service")
            self._port(self.health.service, self.health.port, "health")
        for cname, c in self.counters.items():
            need("service", c.service, svc, f"counters.{cname}.service")
            need("probe", c.counts, probes, f"counters.{cname}.counts")
            self._port(c.service, c.port, f"counters.{cname}")
        for i, log in enumerate(self.logs):
            need("service", log.service, svc, f"logs[{i}].service")
            need("volume", log.volume, vols, f"logs[{i}].volume")
            if log.kind == "container" and log.service and \
                    not self.services[log.service].log_output:
                raise ValueError(f"logs[{i}]: service {log.service!r} has log_output = "
                                 "false, yet its container output is declared a log source; "
                                 "remove one of the two")
        self._container_sources()
        if self.downloads:
            need("probe", self.downloads.probe, probes, "downloads.probe")
            need("volume", self.downloads.volume, vols, "downloads.volume")
        if self.cleanup:
            need("volume", self.cleanup.volume, vols, "cleanup.volume")
            need("service", self.cleanup.service, svc, "cleanup.service")
            if not self.downloads:
                raise ValueError("cleanup: needs a [downloads] section to generate the load")
        self._memory()
        for pkey, rxs in (("cause_patterns", self.cause_patterns),
                               ("error_patterns", self.error_patterns)):
            for rx in rxs:
                why = patterns.check(rx)
                if why is not None:
                    raise ValueError(f"{pkey}: bad regex {rx!r} ({why})")
        return self

    def _container_sources(self) -> None:
        """Every service's container output is a log source unless it says otherwise
        (``log_output = false``): it always exists, and a target without [[logs]] would
        otherwise have no sink at all to judge errors_surface or log marks by."""
        declared = {log.service for log in self.logs if log.kind == "container"}
        for name, s in self.services.items():
            if s.log_output and name not in declared:
                self.logs.append(LogSource(kind="container", service=name))

    def _memory(self) -> None:
        """tmpfs lives in RAM: the volumes' sum (the shared scenario fills it at once) must
        stay well inside the memory this machine has free."""
        total = sum(v.size for v in self.volumes.values())
        avail = available_memory()
        if avail is not None and total > avail * TMPFS_SHARE:
            raise ValueError(
                f"volumes: their sizes add up to {format_size(total)}, and tmpfs volumes live "
                f"in RAM (the shared-disk scenario fills all of it at once); this machine has "
                f"{format_size(avail)} available and fulldisk uses at most "
                f"{TMPFS_SHARE:.0%} of it ({format_size(int(avail * TMPFS_SHARE))}). Make the "
                "volumes smaller: a full-disk test needs only a few MiB each")

    def _port(self, service: str, port: int | None, where: str) -> None:
        ports = self.services[service].ports
        if port is None and not ports:
            raise ValueError(f"{where}: service {service!r} publishes no ports; add the port "
                             f"it listens on to services.{service}.ports")
        if port is None and len(ports) > 1:
            raise ValueError(f"{where}: service {service!r} publishes {ports}; "
                             "set 'port' to one of them")
        if port is not None and port not in ports:
            raise ValueError(f"{where}: port {port} is not in services.{service}.ports {ports}")

    def port_of(self, service: str, port: int | None) -> int:
        """The container port a probe talks to (the only one, when not named)."""
        return port if port is not None else self.services[service].ports[0]

    @property
    def core_probes(self) -> list[str]:
        """Probes declared as the target's core flows."""
        return [n for n, p in self.probes.items() if p.core]

    def log_volume(self, log: LogSource) -> str | None:
        """The volume a file log source lives on: declared, or the one whose mount of its
        service holds its path (the deepest mount when several do)."""
        if log.volume or log.kind != "file" or not log.service or not log.path:
            return log.volume
        path = log.path
        best: tuple[int, str] | None = None
        for vname, v in self.volumes.items():
            for m in v.mounts:
                if m.service == log.service and (path == m.path
                                                 or path.startswith(m.path + "/")):
                    if best is None or len(m.path) > best[0]:
                        best = (len(m.path), vname)
        return best[1] if best else None

    def holds_logs(self, volume: str) -> bool:
        """Whether a log the app writes lives on this volume: a declared file log, a mount
        that holds open log files, or a volume whose role is logs."""
        v = self.volumes[volume]
        return v.role == "logs" or any(m.logs for m in v.mounts) or any(
            self.log_volume(log) == volume for log in self.logs)

    def shared(self, name: str = "shared", size: int | None = None) -> Target:
        """The same target with every writable path on one volume, as on the real server.

        Each original volume becomes a folder of the shared one (mounted with ``subdir``),
        so paths that were separate disks now compete for the same bytes and inodes.
        """
        total = size if size is not None else sum(v.size for v in self.volumes.values())
        owners = {v.owner for v in self.volumes.values()}
        mounts = [{"service": m.service, "path": m.path, "subdir": vname,
                   "logs": m.logs or v.role == "logs"}
                  for vname, v in self.volumes.items() for m in v.mounts]
        data = self.model_dump(by_alias=True)
        data["volumes"] = {name: {
            "size": total, "inodes": sum(v.inodes for v in self.volumes.values()),
            "owner": owners.pop() if len(owners) == 1 else "0:0", "mounts": mounts,
            "role": "core", "description": "all writable paths on one disk"}}
        if not any("owner" in v.model_fields_set for v in self.volumes.values()):
            del data["volumes"][name]["owner"]  # as the default: seeds keep the image's
        for log in data["logs"]:
            if log["volume"]:
                log["path"], log["volume"] = f"{log['volume']}/{log['path']}", name
        for key in ("downloads", "cleanup"):
            if data.get(key):
                data[key]["volume"] = name
        return target_from_dict(data, file=self.path, root=self.root, derived=True)

    def redact(self, text: str) -> str:
        """Remove every secret value of the probe configs from a text (for reports)."""
        for p in self.probes.values():
            for s in p.steps:
                for k, v in s.form.items():
                    if SECRET_KEYS.search(k) and v:
                        text = text.replace(v, "***")
        return text

    def redacted_config(self) -> dict[str, Any]:
        """The config as JSON-ready data, every value under a secret-looking key as ``***``."""
        def scrub(value: Any, key: str = "") -> Any:
            if isinstance(value, dict):
                return {k: scrub(v, str(k)) for k, v in value.items()}
            if isinstance(value, list):
                return [scrub(v, key) for v in value]
            if isinstance(value, str) and value and SECRET_KEYS.search(key):
                return "***"
            return self.redact(value) if isinstance(value, str) else value

        return {**scrub(self.model_dump(mode="json")), "path": self.path, "root": self.root}


def available_memory() -> int | None:
    """Bytes of memory available on this machine (MemAvailable), None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


# --- loading ---------------------------------------------------------------------------

def _expand(value: Any, file: str, key: str = "") -> Any:
    """Every ``${VAR}`` / ``${VAR:-default}`` replaced from the environment; ``$${`` stays a
    literal ``${``. An unset variable without a default is a config error naming it."""
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            if m.group(1):  # $${...}: the escape
                return m.group(0)[1:]
            name, default = m.group(2), m.group(3)
            got = os.environ.get(name)
            if got is None and default is None:
                raise ConfigError(
                    f"${{{name}}} is not set in the environment",
                    f"set {name}, give a default as ${{{name}:-value}}, or write $${{ for a "
                    "literal ${", file=file, key=key or None)
            return got if got is not None else str(default)
        return _ENV.sub(sub, value)
    if isinstance(value, list):
        return [_expand(v, file, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _expand(v, file, f"{key}.{k}" if key else str(k))
                for k, v in value.items()}
    return value


def _key(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith("function-") and "[" not in str(part):
            out += f".{part}" if out else str(part)
    return out


def accepted_keys(loc: tuple[int | str, ...]) -> list[str] | None:
    """The keys the table holding the last key of ``loc`` accepts (by their names in the
    config, aliases included), walking the models from Target; None when not a table."""
    node: Any = Target
    for part in loc[:-1]:
        if isinstance(node, type) and issubclass(node, BaseModel):
            fields = {f.alias or n: f for n, f in node.model_fields.items()}
            if str(part) not in fields:
                return None
            node = fields[str(part)].annotation
            continue
        while typing.get_origin(node) in (typing.Union, types.UnionType):  # X | None
            node = next(a for a in typing.get_args(node) if a is not type(None))
        if typing.get_origin(node) in (list, dict):
            node = typing.get_args(node)[-1]  # an item of a list, a value of a table
        else:
            return None
    while typing.get_origin(node) in (typing.Union, types.UnionType):
        node = next(a for a in typing.get_args(node) if a is not type(None))
    if isinstance(node, type) and issubclass(node, BaseModel):
        return [f.alias or n for n, f in node.model_fields.items()]
    return None


def _message(err: Any) -> str:
    """The error's text, an unknown key's with the keys its table accepts."""
    if err["type"] == "extra_forbidden":
        keys = accepted_keys(tuple(err["loc"]))
        if keys:
            return f"unknown key {err['loc'][-1]!r}; accepted here: {', '.join(keys)}"
    return str(err["msg"]).removeprefix("Value error, ")


def _hint(err: Any) -> str:
    kind = err["type"]
    if kind == "missing":
        return f"add this key; see {DOCS} for every key and an example."
    if kind == "extra_forbidden":
        return ("fix its spelling or remove it; unknown keys are refused so typos do not pass "
                f"({DOCS} shows every key).")
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"give a value of the right type ({err['msg'].lower()})."
    return f"fix the value as the message says ({DOCS} shows every key)."


def target_from_dict(data: dict[str, Any], *, file: str = "<config>", root: str = ".",
                     derived: bool = False) -> Target:
    """Validate a parsed config into a Target, raising ConfigError naming file, key and fix."""
    if not isinstance(data, dict):
        raise ConfigError("config is not a table", f"write TOML tables as in {DOCS}", file=file)
    if not derived:  # a derived target's values are expanded already ($${ resolved)
        data = _expand(data, file)
        if data.get("compose"):
            from .compose import apply_compose  # only targets that name a compose file

            data = apply_compose(data, root=root, file=file)
    try:
        target = Target.model_validate(data, context={"derived": derived, "root": root})
    except ValidationError as e:
        err = e.errors()[0]
        msg = _message(err)
        more = f" (and {e.error_count() - 1} more problem(s))" if e.error_count() > 1 else ""
        raise ConfigError(msg + more, _hint(err), file=file, key=_key(err["loc"]) or None) from None
    target._path, target._root = file, root
    return target


def load_target(path: str | os.PathLike[str] | None = None) -> Target:
    """Load a target from ``fulldisk.toml`` or a pyproject's ``[tool.fulldisk]``.

    With no path: ``./fulldisk.toml``, else ``./pyproject.toml`` if it has
    ``[tool.fulldisk]``, else the bundled reference stack.
    """
    if path is None:
        cwd = Path.cwd()
        if (cwd / "fulldisk.toml").is_file():
            path = cwd / "fulldisk.toml"
        elif has_tool_table(cwd / "pyproject.toml"):
            path = cwd / "pyproject.toml"
        else:
            return reference_target()
    p = Path(path)
    if p.is_dir():
        p = p / "fulldisk.toml"
    if not p.is_file():
        raise ConfigError("no such file", "give the path of a fulldisk.toml or a pyproject.toml "
                          "with [tool.fulldisk], or omit it to use the bundled reference stack",
                          file=str(p))
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8-sig"))  # a BOM is accepted
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML ({e})", "fix the TOML syntax at that line",
                          file=str(p)) from None
    except RecursionError:
        raise ConfigError("arrays or tables nested too deep to read",
                          "a target config nests a few levels; flatten the deep value",
                          file=str(p)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read ({e})", "check the file's permissions and encoding",
                          file=str(p)) from None
    if p.name == "pyproject.toml":
        tool = data.get("tool", {})
        if not isinstance(tool, dict) or "fulldisk" not in tool:
            raise ConfigError("has no [tool.fulldisk] table", "add one, or use a fulldisk.toml",
                              file=str(p), key="tool.fulldisk")
        data = tool["fulldisk"]
    return target_from_dict(data, file=str(p), root=str(p.parent.resolve()))


def has_tool_table(p: Path) -> bool:
    """Whether a pyproject.toml exists and has a ``[tool.fulldisk]`` table."""
    if not p.is_file():
        return False
    try:
        tool = tomllib.loads(p.read_text(encoding="utf-8-sig")).get("tool", {})
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError):
        return False
    return isinstance(tool, dict) and "fulldisk" in tool


def reference_stack_dir() -> Path:
    """The reference stack's build contexts: ``docker/`` of a source checkout, else the copy
    an installed wheel ships as ``harness/refstack``."""
    repo_docker = Path(__file__).resolve().parent.parent / "docker"
    if (repo_docker / "datahub" / "Dockerfile").is_file():
        return repo_docker
    return Path(str(resources.files("harness") / "refstack"))


def reference_target() -> Target:
    """The bundled reference stack (``docker/datahub``), the default target."""
    ref = resources.files("harness") / "targets" / "datahub.toml"
    data = tomllib.loads(ref.read_text(encoding="utf-8"))
    return target_from_dict(data, file=str(ref), root=str(reference_stack_dir()))
