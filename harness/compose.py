"""Compose files as the source of a target's services.

A target may name a ``docker-compose.yml`` (``compose = "docker-compose.yml"``): the file is
read as Compose reads it (variables interpolated from the environment and the ``.env``
beside it, then validated against the Compose Specification's JSON Schema, vendored in
``schemas/``), and its services become the target's ``services`` table, its named volumes
the mounts of the target's ``volumes``. What fulldisk cannot honour (a bind mount, the
host's network, a read-only root, ...) is refused with the compose key named. The result
is the plain dict the target loader validates, so one set of rules judges both forms.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import ConfigError

SCHEMA = "schemas/compose-spec.json"
SCHEMA_VERSION = "compose-spec commit a08f8d5 (2025-10-28)"
"""Which published Compose Specification schema is vendored (see schemas/README.md)."""
DOCS = "README.md, 'Compose files'"
BUILT_PREFIX = "fulldisk-compose"  # image tag of a service with only a build section

# Compose keys fulldisk maps onto a service.
MAPPED = frozenset({
    "image", "build", "command", "entrypoint", "environment", "env_file", "ports", "user",
    "depends_on", "healthcheck", "cap_add", "cap_drop", "privileged", "tmpfs", "volumes",
})
# Keys that change nothing fulldisk judges: it names and networks containers itself,
# publishes ports on 127.0.0.1 only, restarts nothing, and reads the engine's logs.
IGNORED = frozenset({
    "container_name", "restart", "labels", "label_file", "annotations", "networks", "expose",
    "stop_grace_period", "stop_signal", "hostname", "domainname", "profiles", "platform",
    "pull_policy", "pull_refresh_after", "init", "tty", "stdin_open", "attach", "develop",
    "logging", "deploy", "scale", "mem_limit", "mem_reservation", "memswap_limit",
    "mem_swappiness", "cpus", "cpu_shares", "cpu_count", "cpu_percent", "cpu_period",
    "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpuset", "pids_limit",
    "oom_kill_disable", "oom_score_adj", "dns", "dns_opt", "dns_search", "links",
    "external_links", "mac_address",
})
HEALTH_HTTP = re.compile(
    r"(?:curl|wget)\b[^|;&]*?https?://(?:localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\])"
    r"(?::(\d{1,5}))?(/[^\s'\"|;&]*)?")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _err(file: Path, key: str, message: str, hint: str) -> ConfigError:
    return ConfigError(message, hint, file=str(file), key=key)


# --- interpolation ------------------------------------------------------------------------

def interpolate(text: str, env: Mapping[str, str], where: str = "", *,
                file: Path = Path("docker-compose.yml")) -> str:
    """Expand variables as Compose does: ``$VAR``, ``${VAR}``, ``${VAR:-default}``,
    ``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}``, ``${VAR:+alt}``, ``${VAR+alt}``
    (defaults may hold variables), and ``$$`` for a literal ``$``. An unset variable
    without a default is empty, as in Compose."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1:i + 2]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            end = _closing(text, i + 2)
            if end < 0:
                raise _err(file, where, f"'${{' without its '}}' in {text!r}",
                           "close the variable (${NAME}) or write '$$' for a literal '$'")
            out.append(_braced(text[i + 2:end], env, where, file))
            i = end + 1
        else:
            m = _NAME.match(text, i + 1)
            if m is None:
                raise _err(file, where, f"invalid interpolation format in {text!r}: '$' is "
                           "followed by neither a name nor '{'",
                           "write '$$' for a literal '$', as Compose requires")
            out.append(env.get(m.group(), ""))
            i = m.end()
    return "".join(out)


def _closing(text: str, start: int) -> int:
    depth, i = 1, start
    while i < len(text):
        if text.startswith("${", i):
            depth, i = depth + 1, i + 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _braced(body: str, env: Mapping[str, str], where: str, file: Path) -> str:
    m = _NAME.match(body)
    if m is None:
        raise _err(file, where, f"invalid variable '${{{body}}}'",
                   "a variable name is letters, digits and '_', not starting with a digit")
    name, rest = m.group(), body[m.end():]
    value = env.get(name)
    if rest == "":
        return value or ""
    for op in (":-", "-", ":?", "?", ":+", "+"):
        if rest.startswith(op):
            arg = rest[len(op):]
            present = value is not None and (value != "" or ":" not in op)
            if op.endswith("-"):
                return value if present and value is not None else interpolate(
                    arg, env, where, file=file)
            if op.endswith("+"):
                return interpolate(arg, env, where, file=file) if present else ""
            if not present:
                raise _err(file, where, f"required variable {name} is "
                           f"{'unset' if value is None else 'empty'}"
                           + (f": {interpolate(arg, env, where, file=file)}" if arg else ""),
                           f"set {name} in the environment or in the .env beside the file")
            return value or ""
    raise _err(file, where, f"invalid variable '${{{body}}}'",
               "use ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error} or "
               "${NAME:+alternative}")


def _interpolate_tree(node: Any, env: Mapping[str, str], where: str, file: Path) -> Any:
    if isinstance(node, str):
        return interpolate(node, env, where, file=file)
    if isinstance(node, list):
        return [_interpolate_tree(v, env, f"{where}[{i}]", file) for i, v in enumerate(node)]
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, env, f"{where}.{k}" if where else str(k), file)
                for k, v in node.items()}
    return node


# --- reading and validating ---------------------------------------------------------------

@cache
def schema() -> dict[str, Any]:
    """The vendored Compose Specification JSON Schema."""
    text = (resources.files("harness") / SCHEMA).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def environment(compose_file: Path) -> dict[str, str]:
    """The variables a compose file is interpolated with: the ``.env`` beside it, overridden
    by the process environment (Compose's order)."""
    from dotenv import dotenv_values

    dot = compose_file.parent / ".env"
    base = {k: v for k, v in dotenv_values(dot).items() if v is not None} if dot.is_file() else {}
    return {**base, **os.environ}


def read_compose(path: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Parse, interpolate and validate a compose file; ConfigError naming the key if bad."""
    import jsonschema
    import yaml

    if not path.is_file():
        raise ConfigError("no such compose file", "give the path of a docker-compose.yml, "
                          "relative to the target's config file", file=str(path))
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML ({' '.join(str(e).split())})",
                          "fix the YAML syntax at that line", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read ({e})", "check the file's permissions and encoding",
                          file=str(path)) from None
    if not isinstance(doc, dict):
        raise ConfigError("is not a mapping of top-level keys (services, volumes, ...)",
                          "write a compose file as the Compose Specification describes",
                          file=str(path))
    doc = _interpolate_tree(doc, environment(path) if env is None else env, "", path)
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft7Validator(schema()).iter_errors(doc))
    if error is not None:
        key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        raise ConfigError(
            f"does not follow the Compose Specification: {error.message}",
            f"fix the value (validated against the published schema, {SCHEMA_VERSION})",
            file=str(path), key=key.lstrip(".") or None)
    checked: dict[str, Any] = doc
    return checked


# --- mapping ------------------------------------------------------------------------------

@dataclass
class Mapped:
    """What a compose file gives a target: its services, and where each named volume is
    mounted (volume -> [(service, path)])."""

    services: dict[str, dict[str, Any]]
    mounts: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    project: str = ""


def duration(text: str | int | float) -> float:
    """Seconds of a Compose duration such as ``1m30s``, ``500ms`` or ``10s``."""
    if isinstance(text, int | float):
        return float(text)
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"{text!r} is not a duration such as 10s or 1m30s")
    return sum(float(n) * units[u] for n, u in parts)


class _Service:
    """One compose service turned into a fulldisk service table."""

    def __init__(self, name: str, raw: dict[str, Any], file: Path, root: Path,
                 project: str, own_ready: bool = False) -> None:
        self.name, self.raw, self.file, self.root, self.project = name, raw, file, root, project
        self.own_ready = own_ready  # the target config gives the ready check itself
        self.key = f"services.{name}"
        self.mounts: list[tuple[str, str]] = []  # (volume, path)

    def refuse(self, key: str, message: str, hint: str) -> ConfigError:
        return _err(self.file, f"{self.key}.{key}", message, hint)

    def mapped(self) -> dict[str, Any]:
        for key in self.raw:
            if key in MAPPED or key in IGNORED or key.startswith("x-"):
                continue
            if key == "network_mode":
                raise self.refuse(key, f"network_mode {self.raw[key]!r} is not supported: "
                                  "fulldisk runs each stack on its own network and reaches "
                                  "services only through ports published on 127.0.0.1",
                                  "remove network_mode and list the ports the service "
                                  "listens on under 'ports'")
            raise self.refuse(key, f"fulldisk cannot honour '{key}' (it starts a service "
                              "from its image, command, environment, user, ports, "
                              f"capabilities and volumes only: {', '.join(sorted(MAPPED))})",
                              "remove the key from this service, bake it into the image, or "
                              "leave the service out with compose_services")
        out: dict[str, Any] = {}
        self._image(out)
        for key in ("command", "entrypoint"):
            if self.raw.get(key) is not None:
                out[key] = self.raw[key]
        env = self._env()
        if env:
            out["env"] = env
        ports = self._ports()
        if ports:
            out["ports"] = ports
        if self.raw.get("user") is not None:
            out["user"] = str(self.raw["user"])
        deps = self.raw.get("depends_on")
        if deps:
            out["depends_on"] = list(deps)
        for key in ("cap_add", "cap_drop"):
            if self.raw.get(key):
                out[key] = list(self.raw[key])
        if self.raw.get("privileged") is not None:
            out["privileged"] = _bool(self.raw["privileged"])
        tmpfs = self._tmpfs()
        self._volumes(tmpfs)
        if tmpfs:
            out["tmpfs"] = tmpfs
        ready = self._ready(out)
        if ready is not None:
            out["ready"] = ready
        return out

    def _image(self, out: dict[str, Any]) -> None:
        build = self.raw.get("build")
        image = self.raw.get("image")
        if build is None:
            if image is None:
                raise self.refuse("image", "the service has neither 'image' nor 'build'",
                                  "give the image it runs, or a build context")
            out["image"] = image
            return
        spec = {"context": build} if isinstance(build, str) else dict(build)
        for key in ("dockerfile_inline", "target", "ssh", "secrets", "additional_contexts"):
            if spec.get(key):
                raise self.refuse(f"build.{key}", f"fulldisk builds with a context, a "
                                  f"Dockerfile and args only; it cannot honour build.{key}",
                                  "build the image yourself and give it as 'image'")
        context = str(spec.get("context", "."))
        if "://" in context or context.startswith("git@"):
            raise self.refuse("build.context", f"build context {context!r} is remote; "
                              "fulldisk builds from a local folder",
                              "clone it and point the context at the folder")
        ctx = (self.file.parent / context).resolve()
        try:
            out["build"] = str(ctx.relative_to(self.root))
        except ValueError:
            out["build"] = str(ctx)
        if spec.get("dockerfile"):
            out["dockerfile"] = str(spec["dockerfile"])
        args = _dict(spec.get("args"), null=None)
        if args:
            out["build_args"] = args
        out["image"] = image or f"{BUILT_PREFIX}/{self.project}-{self.name}:latest"

    def _env(self) -> dict[str, str]:
        from dotenv import dotenv_values

        env: dict[str, str] = {}
        files = self.raw.get("env_file") or []
        for i, item in enumerate([files] if isinstance(files, str) else files):
            entry = {"path": item} if isinstance(item, str) else item
            path = self.file.parent / str(entry["path"])
            if not path.is_file():
                if not _bool(entry.get("required", True)):
                    continue
                raise self.refuse(f"env_file[{i}]", f"env file {str(path)!r} does not exist",
                                  "create it, fix the path (relative to the compose file), "
                                  "or mark it required: false")
            env.update({k: v or "" for k, v in dotenv_values(path).items()})
        env.update(_dict(self.raw.get("environment"), null=os.environ))
        return env

    def _ports(self) -> list[int]:
        ports: list[int] = []
        for i, p in enumerate(self.raw.get("ports") or []):
            if isinstance(p, dict):
                target, proto = str(p.get("target", "")), str(p.get("protocol", "tcp"))
            else:
                text = str(p)
                text, _, proto = text.partition("/")
                target = text.rsplit(":", 1)[-1]
            if (proto or "tcp") != "tcp":
                raise self.refuse(f"ports[{i}]", f"port {p!r} is {proto}; fulldisk probes "
                                  "speak TCP only", "remove the port from this service")
            lo, _, hi = target.partition("-")
            if not lo.isdigit() or (hi and not hi.isdigit()):
                raise self.refuse(f"ports[{i}]", f"port {p!r} has no container port",
                                  "write it as CONTAINER or HOST:CONTAINER, such as 8080:80")
            for n in range(int(lo), int(hi or lo) + 1):
                if n not in ports:
                    ports.append(n)
        return ports

    def _tmpfs(self) -> dict[str, str]:
        raw = self.raw.get("tmpfs") or []
        out: dict[str, str] = {}
        for item in [raw] if isinstance(raw, str) else raw:
            path, _, opts = str(item).partition(":")
            out[path] = opts
        return out

    def _volumes(self, tmpfs: dict[str, str]) -> None:
        for i, item in enumerate(self.raw.get("volumes") or []):
            key = f"volumes[{i}]"
            if isinstance(item, str):
                parts = item.split(":")
                if len(parts) == 1:
                    kind, source, target, ro = "volume", "", parts[0], False
                else:
                    source, target = parts[0], parts[1]
                    ro = len(parts) > 2 and "ro" in parts[2].split(",")
                    kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
            else:
                kind, source, target = item["type"], str(item.get("source", "")), item["target"]
                ro = _bool(item.get("read_only", False))
                if kind == "tmpfs":
                    opts = item.get("tmpfs") or {}
                    tmpfs[str(target)] = ",".join(
                        f"{k}={v}" for k, v in (("size", opts.get("size")),
                                                ("mode", _octal(opts.get("mode"))))
                        if v is not None)
                    continue
            if kind == "bind":
                raise self.refuse(key, f"a bind mount ({source} -> {target}) is not "
                                  "supported: fulldisk starts services from their images, "
                                  "and every writable path it tests must be a volume it "
                                  "sizes and fills",
                                  "use a named volume for data (then size it under "
                                  "[volumes.NAME] in fulldisk.toml); bake configuration "
                                  "files into the image (COPY in a Dockerfile)")
            if kind != "volume":
                raise self.refuse(key, f"a {kind} mount is not supported",
                                  "use a named volume")
            if not source:
                raise self.refuse(key, f"an anonymous volume at {target} cannot be sized",
                                  f"name it (data:{target}) and size it under [volumes.data] "
                                  "in fulldisk.toml")
            if ro:
                raise self.refuse(key, f"volume {source!r} is mounted read-only at {target}; "
                                  "fulldisk mounts its volumes read-write to fill them",
                                  "drop ':ro', or leave the service out with "
                                  "compose_services")
            self.mounts.append((source, str(PurePosixPath(target))))

    def _ready(self, out: dict[str, Any]) -> dict[str, Any] | None:
        hc = self.raw.get("healthcheck")
        if self.own_ready or not hc or _bool(hc.get("disable", False)):
            return None
        test = hc.get("test")
        words = [test] if isinstance(test, str) else list(test or [])
        if not words or words[0] == "NONE":
            return None
        command = " ".join(words[1:]) if words[0] in ("CMD", "CMD-SHELL") else " ".join(words)
        m = HEALTH_HTTP.search(command)
        if m is None:
            raise self.refuse("healthcheck", f"the healthcheck {shlex.join(words)!r} is not "
                              "an HTTP check fulldisk can ask from outside (it reads curl or "
                              "wget of http://localhost[:PORT]/PATH)",
                              f"give [{self.key}] ready = {{ http = \"/health\" }} or ready = "
                              "{ log = 'regex of a start-up line' } in fulldisk.toml; it "
                              "replaces the healthcheck")
        port = int(m.group(1)) if m.group(1) else 80
        ports = out.setdefault("ports", [])
        if port not in ports:
            ports.append(port)  # published on 127.0.0.1 so the check can be asked
        try:
            waits = (duration(hc.get("start_period", "0s"))
                     + duration(hc.get("interval", "30s")) * int(hc.get("retries", 3)))
        except ValueError as e:
            raise self.refuse("healthcheck", str(e), "write durations as Compose does") from None
        ready: dict[str, Any] = {"http": m.group(2) or "/", "timeout": min(600.0, max(60.0,
                                                                                     waits))}
        if len(ports) > 1:
            ready["port"] = port
        return ready


def _bool(v: Any) -> bool:
    return v if isinstance(v, bool) else str(v).strip().lower() in ("true", "yes", "1", "on")


def _octal(v: Any) -> str | None:
    if v is None:
        return None
    return v if isinstance(v, str) else f"{int(v):o}"


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _dict(node: Any, *, null: Mapping[str, str] | None) -> dict[str, str]:
    """A list-or-dict of Compose (``KEY=VALUE`` items or a mapping) as a dict; a key with no
    value takes it from ``null`` (the environment), or is left out when that lacks it."""
    out: dict[str, str] = {}
    if isinstance(node, dict):
        items = list(node.items())
    else:
        items = []
        for entry in node or []:
            k, eq, v = str(entry).partition("=")
            items.append((k, v if eq else None))
    for k, v in items:
        if v is None:
            if null is not None and k in null:
                out[k] = null[k]
        else:
            out[k] = _scalar(v)
    return out


def project_name(doc: Mapping[str, Any], path: Path) -> str:
    """The Compose project name: ``name``, else the compose file's folder, normalised."""
    raw = str(doc.get("name") or path.resolve().parent.name)
    return re.sub(r"[^a-z0-9_-]", "", raw.lower()) or "compose"


def map_compose(path: Path, root: Path, pick: list[str] | None = None,
                env: Mapping[str, str] | None = None,
                own_ready: frozenset[str] = frozenset()) -> Mapped:
    """The services (all, or those picked) of a compose file as fulldisk service tables;
    ``own_ready`` names those whose ready check the target config gives (their healthcheck
    is not read)."""
    doc = read_compose(path, env)
    services: dict[str, Any] = doc.get("services") or {}
    if pick:
        unknown = [n for n in pick if n not in services]
        if unknown:
            raise ConfigError(f"compose_services: {unknown[0]!r} is not a service of "
                              f"{path.name} (it has: {', '.join(services) or 'none'})",
                              "pick services the compose file declares", key="compose_services")
        chosen = list(pick)
    else:
        # as `docker compose up`: services with profiles start only when asked for
        chosen = [n for n, s in services.items() if not (s or {}).get("profiles")]
    if not chosen:
        raise ConfigError(f"{path.name} has no service to start",
                          "add services, or name them in compose_services",
                          key="compose_services")
    project = project_name(doc, path)
    out = Mapped({}, project=project)
    for name in chosen:
        svc = _Service(name, services[name] or {}, path, root, project, name in own_ready)
        table = svc.mapped()
        for dep in table.get("depends_on", []):
            if dep not in chosen:
                raise svc.refuse("depends_on", f"depends on {dep!r}, which is not among the "
                                 f"services fulldisk reads ({', '.join(chosen)})",
                                 f"add {dep!r} to compose_services")
        out.services[name] = table
        declared = doc.get("volumes") or {}
        for vol, target in svc.mounts:
            if vol not in declared:
                raise svc.refuse("volumes", f"volume {vol!r} is not declared under the "
                                 "top-level 'volumes'", f"add '{vol}:' under volumes:")
            out.mounts.setdefault(vol, []).append((name, target))
    return out


def apply_compose(data: dict[str, Any], *, root: str, file: str,
                  env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A target config with ``compose`` merged in: the compose services under ``services``
    (a ``[services.NAME]`` table of the config replaces the keys it names), and each named
    volume's mounts under the ``[volumes.NAME]`` that sizes it."""
    compose = data.get("compose")
    if not isinstance(compose, str) or not compose:
        return data
    pick = data.get("compose_services") or None
    if pick is not None and not (isinstance(pick, list)
                                 and all(isinstance(n, str) for n in pick)):
        raise ConfigError("compose_services must be a list of service names",
                          "write compose_services = [\"web\", \"db\"]", file=file,
                          key="compose_services")
    path = Path(root) / compose
    own = data.get("services") or {}
    if not isinstance(own, dict):
        return data  # the model says what is wrong with it
    ready = frozenset(n for n, t in own.items() if isinstance(t, dict) and "ready" in t)
    try:
        mapped = map_compose(path, Path(root).resolve(), pick, env, ready)
    except ConfigError as e:
        if e.file is None:  # a key of the target config itself
            raise ConfigError(e.message, e.hint, file=file, key=e.key) from None
        raise
    services: dict[str, Any] = {}
    for name, table in mapped.services.items():
        extra = own.get(name) or {}
        services[name] = {**table, **extra} if isinstance(extra, dict) else extra
    for name, table in own.items():
        services.setdefault(name, table)
    volumes = dict(data.get("volumes") or {})
    fills: dict[tuple[str, str], str] = {}
    for vol, where in mapped.mounts.items():
        spec = volumes.get(vol)
        if spec is None:
            svc, target = where[0]
            raise ConfigError(
                f"compose volume {vol!r} (mounted at {svc}:{target}) has no size here",
                f"add [volumes.{vol}] with size = \"4MiB\" (and owner = \"uid:gid\" of the "
                "app's user): fulldisk makes every named volume a small disk it can fill",
                file=file, key=f"volumes.{vol}")
        if isinstance(spec, dict) and "mounts" not in spec:
            volumes[vol] = {**spec, "mounts": [{"service": s, "path": p} for s, p in where]}
    for vol, spec in volumes.items():
        for m in (spec.get("mounts") or []) if isinstance(spec, dict) else []:
            if isinstance(m, dict):
                fills[(str(m.get("service")), str(m.get("path", "")).rstrip("/") or "/")] = vol
    for name, table in services.items():
        for tpath in (table.get("tmpfs") or {}) if isinstance(table, dict) else {}:
            filled = fills.get((name, tpath.rstrip("/") or "/"))
            if filled is not None:
                raise ConfigError(f"{name}:{tpath} is a tmpfs in the compose file and the "
                                  f"path volume {filled!r} must fill", "remove the tmpfs entry, "
                                  "or mount the volume elsewhere", file=str(path),
                                  key=f"services.{name}.tmpfs")
    return {**data, "services": services, "volumes": volumes}
