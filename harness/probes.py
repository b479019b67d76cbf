"""Probes: timestamped observations of a running Stack, written into a Timeline.

HTTP flows (a cookie jar per run, captures carried between steps, bodies checked for
completeness), exec commands, disk usage, health, counters and log records. Requests
go only to ports published on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3.exceptions
from requests.cookies import RequestsCookieJar

from . import signals
from .backend import Backend
from .errors import UnknownName
from .http import deadline as _deadline
from .http import loopback as _loopback
from .patterns import UserPattern, any_of
from .sizes import MAX_BODY_SIZE
from .target import BUILTIN_VARS, LogSource, Probe, Step
from .timeline import (
    CounterSample,
    DiskSample,
    HealthSample,
    LoadEvent,
    LogRecord,
    PhaseMark,
    ProbeResult,
    StepResult,
    Timeline,
)

_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
EXCERPT = 300
LOG_POLL = 0.2
"""Seconds between reads of the logs while records are awaited."""
RECORD_SLACK = 1.0
"""Seconds a log record may carry before the request it reports (the judge's slack)."""
MEMO = 400  # probe runs remembered for a reread after recovery (values and cookies)
NO_BODY = (204, 304)
MAX_BODY_KEPT = 2 * MAX_BODY_SIZE
"""Bytes of a response kept in memory (text checks and captures see these); past them the
body is still read to its end, counted and hashed, so size and digest checks stay exact."""


_Ran = tuple[tuple[StepResult, ...], tuple[str, ...], str]
"""A flow's results: the steps sent, the names of those not sent, and why they were not."""


def step_name(step: Step) -> str:
    """A step's name as results show it: its own, else its method and path."""
    return step.name or f"{step.method} {step.path}"


def _texts(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [t for v in node for t in _texts(v)]
    if isinstance(node, dict):
        return [t for v in node.values() for t in _texts(v)]
    return []


def unresolved(step: Step, values: Mapping[str, str]) -> list[str]:
    """The ``{name}`` placeholders of what a step sends (path, form, headers, JSON) that
    have no value yet; the generated-body values count as set when the step makes one."""
    known = set(values) | (set(BUILTIN_VARS) if step.generates else set())
    sent = [step.path, *step.form.values(), *step.headers.values(), *_texts(step.json_body),
            *(f.filename for f in step.files.values())]
    return sorted({m for t in sent for m in _VAR.findall(t)} - known)


def render(text: str, values: Mapping[str, str]) -> str:
    """Replace ``{name}`` with known values; other braces stay as they are."""
    return _VAR.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _render_json(node: Any, values: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return render(node, values)
    if isinstance(node, list):
        return [_render_json(v, values) for v in node]
    if isinstance(node, dict):
        return {k: _render_json(v, values) for k, v in node.items()}
    return node


def new_nonce() -> str:
    """A value unique to one probe run: lowercase letters and digits, safe in paths,
    SQL, file names and shell words."""
    return f"fd{secrets.token_hex(6)}"


def make_body(nonce: str, size: int, *, one_line: bool = False) -> bytes:
    """``size`` bytes of content that only this nonce produces: ASCII lines naming the
    nonce and a line number, with no trailing whitespace (apps that trim keep it whole).
    ``one_line``: the same records joined by spaces, for a header value (no CR or LF)."""
    line_no = 0
    end = " " if one_line else "\n"
    parts: list[bytes] = []
    total = 0
    while total < size:
        digest = hashlib.sha256(f"{nonce}:{line_no}".encode()).hexdigest()
        line = f"fulldisk {nonce} {line_no:07d} {digest}{end}".encode()
        parts.append(line)
        total += len(line)
        line_no += 1
    data = b"".join(parts)[:size]
    return data[:-1] + b"x" if data and data[-1:] in (b"\n", b" ") else data


def excerpt_of(body: bytes, text: str, size: int | None = None,
               sha256: str | None = None) -> str:
    """The start of a response body for evidence; a binary body (a NUL byte, or bytes that
    are not UTF-8) as its size and digest instead of mojibake (``size`` and ``sha256`` of
    the whole body where only its start was kept)."""
    head = body[:EXCERPT]
    if b"\0" in head or text[:EXCERPT].count("\ufffd") > 2:
        digest = sha256 or hashlib.sha256(body).hexdigest()
        return f"<binary: {len(body) if size is None else size} bytes, sha256 {digest[:16]}>"
    return text[:EXCERPT]


def _set_body(values: dict[str, str], size: int, seed: str = "", *,
              one_line: bool = False) -> bytes:
    data = make_body(values["nonce"] + seed, size, one_line=one_line)
    values.update(body=data.decode("ascii"), body_sha256=hashlib.sha256(data).hexdigest(),
                  body_bytes=str(len(data)))
    return data


def _files(step: Step, values: dict[str, str]) -> dict[str, tuple[str, bytes, str]] | None:
    """The files of a multipart upload, each of fresh content (the first file's content is
    this run's {body}; a later file's is derived from the nonce and its field name)."""
    if not step.files:
        return None
    contents = [_set_body(dict(values), part.body_size, f"-{name}" if i else "")
                for i, (name, part) in enumerate(step.files.items())]
    _set_body(values, next(iter(step.files.values())).body_size)  # the first file's values
    return {name: (render(part.filename, values), data, part.content_type)
            for (name, part), data in zip(step.files.items(), contents, strict=True)}


@dataclass
class _Memo:
    """What a run needs to be repeated later: its values (nonce, captures) and cookies."""

    values: dict[str, str]
    cookies: RequestsCookieJar = field(default_factory=RequestsCookieJar)
    probe: Probe | None = None


class _Body:
    """Reads a streamed response body whole, bounded in total time (a trickle included)."""

    def __init__(self, resp: requests.Response, deadline: float) -> None:
        self.resp = resp
        self.deadline = deadline
        self.expired = False

    def _abort(self) -> None:
        # Shutting the socket down wakes a read blocked inside the HTTP client.
        self.expired = True
        conn = getattr(self.resp.raw, "_connection", None)
        sock = getattr(conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def read(self) -> tuple[bytes, int, str, str | None]:
        """(decoded body, at most MAX_BODY_KEPT bytes of it; its whole length; its sha256;
        why it is incomplete or None)."""
        chunks: list[bytes] = []
        kept = size = 0
        digest = hashlib.sha256()
        watchdog: threading.Timer | None = None
        if getattr(self.resp.raw, "_connection", None) is not None:
            # only a socket can be woken (an in-process body has none: no thread for it)
            watchdog = threading.Timer(max(0.0, self.deadline - time.monotonic()), self._abort)
            watchdog.daemon = True
            watchdog.start()
        error: str | None = None
        try:
            for chunk in self.resp.iter_content(65536):
                size += len(chunk)
                digest.update(chunk)
                if kept < MAX_BODY_KEPT:
                    chunks.append(chunk[:MAX_BODY_KEPT - kept])
                    kept += len(chunks[-1])
                if time.monotonic() > self.deadline:
                    self.expired = True
                    break
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
            error = f"body cut short ({type(e).__name__})"
        finally:
            if watchdog is not None:
                watchdog.cancel()
            self.resp.close()
        if self.expired:
            error = "body not complete within the time bound"
        return b"".join(chunks), size, digest.hexdigest(), error


class Prober:
    """Runs probes against a running target and records every observation in a Timeline."""

    def __init__(self, stack: Backend, timeline: Timeline) -> None:
        self.stack = stack
        self.tl = timeline
        self.target = stack.target
        self._http: requests.Session | None = None
        self._log_seen: dict[str, int] = {}
        self._file_head: dict[str, bytes] = {}
        self._memo: dict[tuple[str, float], _Memo] = {}
        # cookies of the last green run before any fill, per probe another one uses as session
        self._sessions: dict[str, RequestsCookieJar] = {}
        self._session_sources = {p.session for p in self.target.probes.values() if p.session}
        self._patterns: dict[str, UserPattern] = {}

    @property
    def http(self) -> requests.Session:
        """The session for health, counters and log marks (made on first use)."""
        if self._http is None:
            self._http = self.stack.session()
        return self._http

    # --- HTTP and exec flows -----------------------------------------------------------
    def run(self, name: str, values: Mapping[str, str] | None = None,
            tags: tuple[str, ...] = ()) -> ProbeResult:
        """Run one probe (all its steps, in order) with a fresh ``{nonce}``; record it."""
        return self.run_probe(name, self._probe(name), values, tags)

    def run_probe(self, name: str, probe: Probe, values: Mapping[str, str] | None = None,
                  tags: tuple[str, ...] = ()) -> ProbeResult:
        """Run a probe given as an object (e.g. an ad hoc request of a scenario script)."""
        signals.check()  # a stopped run's lane goes no further
        memo = _Memo({**(values or {}), "nonce": new_nonce()}, probe=probe)
        jar, no_session = self._session(probe.session) if probe.session else (None, "")
        if jar is not None:
            memo.cookies = jar.copy()
        t = self.tl.now()
        if no_session:
            steps: tuple[StepResult, ...] = ()
            not_run, why = tuple(step_name(s) for s in probe.steps), no_session
        elif probe.kind == "exec":
            steps, not_run, why = self._exec_flow(probe, memo.values)
        else:
            steps, not_run, why = self._flow(probe, memo, probe.steps)
        result = ProbeResult(t, name, probe.kind, steps, core=probe.core, write=probe.write,
                             tags=tags, not_run=not_run, stopped=why)
        self._remember((name, t), memo)
        self.tl.add(result)
        if name in self._session_sources and result.passed and self._before_fill():
            self._sessions[name] = memo.cookies.copy()
        return result

    def _before_fill(self) -> bool:
        """No fill has started in this timeline: no phase mark yet, or only steady."""
        mark = next((e for e in reversed(self.tl.events) if isinstance(e, PhaseMark)), None)
        return mark is None or mark.phase == "steady"

    def _session(self, source: str) -> tuple[RequestsCookieJar | None, str]:
        """The cookies of the source probe's last green run before the fill (logging in
        now if it has none and no fill has started), or why there are none."""
        if source not in self._sessions and self._before_fill():
            self.run(source, tags=("session",))
        if source in self._sessions:
            return self._sessions[source], ""
        return None, (f"not sent: session probe {source!r} had no green run before the "
                      "fill to take its cookies from")

    def reread(self, earlier: ProbeResult) -> ProbeResult | None:
        """Repeat, with the same nonce, values and cookies, what an earlier run asked: the
        readback part of a write probe, or the whole of a probe without writes. None when
        the run is not remembered or has nothing to repeat."""
        memo = self._memo.get((earlier.probe, earlier.t))
        probe = memo.probe if memo is not None else None
        if memo is None or probe is None:
            return None
        t = self.tl.now()
        values = dict(memo.values)
        not_run: tuple[str, ...] = ()
        why = ""
        if probe.kind == "exec":
            if probe.write and not probe.readback:
                return None
            if probe.write:
                steps: tuple[StepResult, ...] = (
                    self._exec_step(probe, probe.readback, values, readback=True),)
            else:
                steps, not_run, why = self._exec_flow(probe, values)
        else:
            todo = [s for s in probe.steps if s.readback] if probe.write else probe.steps
            if not todo:
                return None
            steps, not_run, why = self._flow(probe, _Memo(values, memo.cookies.copy(), probe),
                                             todo)
        result = ProbeResult(t, earlier.probe, probe.kind, steps, core=probe.core,
                             write=False, tags=("reread",), reread_of=earlier.t,
                             not_run=not_run, stopped=why)
        self.tl.add(result)
        return result

    def _probe(self, name: str) -> Probe:
        if name not in self.target.probes:
            raise UnknownName(f"unknown probe {name!r}", "use one the target declares: "
                              f"{', '.join(self.target.probes) or 'none declared'}")
        return self.target.probes[name]

    def _remember(self, key: tuple[str, float], memo: _Memo) -> None:
        self._memo[key] = memo
        while len(self._memo) > MEMO:  # bounded: the oldest runs are forgotten first
            del self._memo[next(iter(self._memo))]

    def _flow(self, probe: Probe, memo: _Memo, steps: list[Step]) -> _Ran:
        """The steps in order until the first that fails: what follows a failed step would
        only report its consequences (a page of an item never made, a form without its
        token), which the app never caused. A step with a {value} no earlier step captured
        is not sent either. Returns the results, the names of the steps not sent, and why."""
        base = self.stack.url(probe.service, probe.port)
        out: list[StepResult] = []
        with self.stack.session() as http:
            http.cookies = memo.cookies  # the run's own jar, kept for a reread
            for i, step in enumerate(steps):
                missing = unresolved(step, memo.values)
                if missing:
                    why = (f"step {step_name(step)!r} not sent: {{{missing[0]}}} has no value "
                           "(no earlier step of this run captured it)")
                    return tuple(out), tuple(step_name(s) for s in steps[i:]), why
                r = self.request(http, base, step, memo.values)
                out.append(r)
                if not r.passed and i + 1 < len(steps):
                    why = (f"stopped after step {r.name!r} failed "
                           f"({r.error or f'status {r.status}'})")
                    return tuple(out), tuple(step_name(s) for s in steps[i + 1:]), why
        return tuple(out), (), ""

    def request(self, http: requests.Session, base: str, step: Step,
                values: dict[str, str]) -> StepResult:
        """One bounded request; checks status, text, size, digest and that the whole body
        arrived (wire bytes against Content-Length, chunk framing, a total-time bound)."""
        values.setdefault("nonce", new_nonce())
        if step.body_size is not None:
            # a header value cannot hold a line break: there {body} is one line
            _set_body(values, step.body_size,
                      one_line=any("{body}" in v for v in step.headers.values()))
        files = _files(step, values)
        path = render(step.path, values)
        url = _loopback(base + path)
        form = {k: render(v, values) for k, v in step.form.items()}
        headers = {k: render(v, values) for k, v in step.headers.items()}
        json_body = _render_json(step.json_body, values) if step.json_body is not None else None
        data: Any = form or None
        if step.raw_body:
            data = values["body"].encode("ascii")
        timeout = min(step.timeout, self.target.bounds.request_timeout)
        t0 = time.monotonic()
        name = step_name(step)
        common: dict[str, Any] = {"name": name, "method": step.method, "target": path,
                                  "write": step.write, "readback": step.readback}
        try:
            with _deadline(t0 + timeout) as limit:  # connect, status line and headers
                resp = http.request(step.method, url, data=data, json=json_body, files=files,
                                    headers=headers, timeout=timeout, allow_redirects=False,
                                    stream=True)
        except requests.RequestException as e:
            if not (limit.expired or isinstance(e, requests.Timeout)):
                return StepResult(status=None, passed=False, elapsed=time.monotonic() - t0,
                                  error=f"transport error: {type(e).__name__}",
                                  body_complete=False, **common)
            return StepResult(status=None, passed=False, elapsed=time.monotonic() - t0,
                              error=f"no answer within {timeout:g} s", timed_out=True,
                              body_complete=False, **common)
        has_body = step.method != "HEAD" and resp.status_code not in NO_BODY and \
            resp.status_code >= 200
        if has_body:
            reader = _Body(resp, t0 + timeout)
            body, size, sha256, error = reader.read()
            expired = reader.expired
        else:
            resp.close()
            body, size, error, expired = b"", 0, None, False
            sha256 = hashlib.sha256().hexdigest()
        complete = error is None
        if expired:
            error = f"body not complete within {timeout:g} s"
        declared = resp.headers.get("Content-Length")
        chunked = "chunked" in resp.headers.get("Transfer-Encoding", "").lower()
        if complete and has_body and declared is not None and declared.isdigit():
            wire = resp.raw.tell()  # bytes off the wire: encoded (gzip) length, not decoded
            if wire != int(declared):
                complete, error = False, f"body has {wire} of {declared} declared bytes"
        framed = not has_body or chunked or (declared is not None and declared.isdigit())
        text = body.decode("utf-8", "replace")
        uncaught: list[str] = []
        for var, rx in step.capture.items():
            m = self._pattern(step, var, rx).search(text)
            if m:
                values[var] = m.group(1)
            else:
                uncaught.append(var)
        passed = complete and resp.status_code in step.expect_status
        missing = step.expect_text is not None and render(step.expect_text, values) not in text
        if complete and resp.status_code not in step.expect_status:
            error = f"status {resp.status_code}, expected {step.expect_status}"
        if passed and uncaught:
            # the answer lacks what later steps need: the step did not do its job
            passed, error = False, (f"capture {uncaught[0]!r} found no match for "
                                    f"{step.capture[uncaught[0]]!r} in the body")
        if passed:
            problem = self._content_problem(step, size, sha256, text, values)
            if problem is not None:
                passed, error = False, problem
                if not framed and _short(step, body, size, values):
                    # no length, no chunks: only the expected size or content shows the cut
                    complete, error = False, f"{problem} (close-delimited: cut short)"
        return StepResult(status=resp.status_code, passed=passed,
                          elapsed=time.monotonic() - t0, error=error,
                          body_excerpt=self.target.redact(
                              excerpt_of(body, text, size, sha256)),
                          body_complete=complete, bytes_received=size,
                          timed_out=expired, text_missing=missing, **common)

    def _pattern(self, step: Step, var: str, rx: str) -> UserPattern:
        """A capture's regex, compiled once, named by its key for a timeout's message."""
        key = f"capture.{var}"
        for pname, p in self.target.probes.items():
            for i, s in enumerate(p.steps):
                if s is step:
                    key = f"probes.{pname}.steps[{i}].capture.{var}"
        found = self._patterns.get(key)
        if found is None or found.pattern != rx:
            found = self._patterns[key] = UserPattern(rx, key, file=self.target.path)
        return found

    @staticmethod
    def _content_problem(step: Step, size: int, got: str, text: str,
                         values: Mapping[str, str]) -> str | None:
        if step.expect_bytes is not None and size != step.expect_bytes:
            return f"body has {size} bytes, expected {step.expect_bytes}"
        if step.expect_sha256 is not None:
            want = render(step.expect_sha256, values).lower()
            if got != want:
                return f"body sha256 {got[:12]}..., expected {want[:12]}..."
        if step.expect_text is not None:
            want_text = render(step.expect_text, values)
            if want_text not in text:
                return f"body lacks {want_text[:80]!r}"
        if step.absent_text is not None:
            bad = render(step.absent_text, values)
            if bad in text:
                return f"body contains {bad[:80]!r}"
        return None

    def _exec_flow(self, probe: Probe, values: dict[str, str]) -> _Ran:
        if probe.body_size is not None:
            _set_body(values, probe.body_size)
        first = self._exec_step(probe, probe.command, values, write=probe.write)
        if not probe.readback:
            return (first,), (), ""
        if not first.passed:
            return (first,), ("readback",), (f"stopped after the command failed "
                                             f"({first.error or f'exit {first.status}'})")
        return (first, self._exec_step(probe, probe.readback, values, readback=True)), (), ""

    def _exec_step(self, probe: Probe, command: list[str], values: Mapping[str, str], *,
                   write: bool = False, readback: bool = False) -> StepResult:
        """One command, bounded by the probe's timeout. Exit 126/127 or a signal means the
        command could not run (a config error), recorded as such, not as a refusal."""
        cmd = [render(c, values) for c in command]
        shown = " ".join(render(c, {"nonce": values.get("nonce", "")}) for c in command)[:200]
        expect_exit = 0 if readback else probe.expect_exit
        expect = probe.readback_expect if readback else probe.expect_output
        want = render(expect, values) if expect is not None else None
        t0 = time.monotonic()
        res = self.stack.service(probe.service).exec_bounded(cmd, timeout=probe.timeout)
        elapsed = time.monotonic() - t0
        out = res.output.decode("utf-8", "replace")
        common: dict[str, Any] = {"name": shown[:80], "method": "EXEC", "target": shown,
                                  "write": write, "readback": readback,
                                  "body_excerpt": self.target.redact(out[-EXCERPT:]),
                                  "elapsed": elapsed, "bytes_received": len(res.output)}
        if res.not_running:
            return StepResult(status=None, passed=False, body_complete=False, service_down=True,
                              error=f"service {probe.service} not running (it stopped; its last "
                                    "log lines are the output)", **common)
        if res.timed_out:
            fate = "killed" if res.killed else "could not be killed, left running"
            return StepResult(status=None, passed=False, timed_out=True, body_complete=False,
                              error=f"no exit within {probe.timeout:g} s ({fate})", **common)
        code = res.code if res.code is not None else -1
        if code in (126, 127) or 128 < code <= 128 + 64:
            why = (f"killed by signal {code - 128}" if code > 128 else
                   "not executable" if code == 126 else "command not found")
            return StepResult(status=code, passed=False, could_not_run=True,
                              error=f"exit {code}: the command could not run ({why}); "
                                    f"fix probes.{self._name_of(probe)}", **common)
        missing = want is not None and want not in out
        passed = code == expect_exit and not missing
        error = None if passed else f"exit {code}, expected {expect_exit}" + (
            f" with {want[:80]!r}" if want else "")
        return StepResult(status=code, passed=passed, error=error, text_missing=missing,
                          **common)

    def _name_of(self, probe: Probe) -> str:
        return next((n for n, p in self.target.probes.items() if p is probe), "?")

    # --- disk, health, counters --------------------------------------------------------
    def disk(self, *names: str) -> list[DiskSample]:
        """Measure volumes (all when none named) and record the samples."""
        signals.check()
        out = []
        for n, u in self.stack.usage(*names).items():
            out.append(DiskSample.of(self.tl.now(), n, u))
            self.tl.add(out[-1])
        return out

    def _get(self, url: str, **kwargs: Any) -> tuple[requests.Response, str]:
        """A GET of a small answer (health, metrics) with one deadline over the whole
        exchange, body included; a body not whole in time is a transport error."""
        t0 = time.monotonic()
        timeout = self.target.bounds.request_timeout
        with _deadline(t0 + timeout):
            r = self.http.get(url, timeout=timeout, stream=True, **kwargs)
        body, _, _, error = _Body(r, t0 + timeout).read()
        if error is not None:
            raise requests.ConnectionError(error)
        return r, body.decode(r.encoding or "utf-8", "replace")

    def health(self) -> HealthSample | None:
        """Ask the health endpoint and record its normalised verdict."""
        h = self.target.health
        if h is None:
            return None
        t = self.tl.now()
        url = _loopback(self.stack.url(h.service, h.port) + h.path)
        status: str
        try:
            r, text = self._get(url, allow_redirects=False)
            raw = text[:EXCERPT]
            word = _field(text, h.field) if h.field else str(r.status_code)
            if word in h.healthy and (h.field or r.status_code < 400):
                status = "healthy"
            elif word in h.degraded:
                status = "degraded"
            elif word in h.failing or r.status_code >= 500:
                status = "failing"
            else:
                status = "healthy" if r.status_code < 400 else "failing"
        except requests.RequestException as e:
            status, raw = "unreachable", type(e).__name__
        sample = HealthSample(t, status, raw)  # type: ignore[arg-type]
        self.tl.add(sample)
        return sample

    def counter(self, name: str) -> CounterSample:
        """Read a declared counter (metrics line or JSON field) and record it."""
        c = self.target.counters[name]
        t = self.tl.now()
        value: float | None = None
        try:
            _, text = self._get(_loopback(self.stack.url(c.service, c.port) + c.path))
            if c.metric is not None:
                m = re.search(rf"^{re.escape(c.metric)}(?:\{{[^}}]*\}})?\s+([0-9.eE+-]+)\s*$",
                              text, re.M)
                value = float(m.group(1)) if m else None
            else:
                raw = _field(text, c.json_field or "")
                value = float(raw) if raw not in ("", None) else None
        except (requests.RequestException, ValueError):
            value = None
        sample = CounterSample(t, name, value)
        self.tl.add(sample)
        return sample

    # --- logs --------------------------------------------------------------------------
    def collect_logs(self) -> list[LogRecord]:
        """Read every declared log source; record lines not seen before. The engine's
        log calls (one per container source) go out at once, while the log files are read
        here: a collection costs one round trip rather than one per source."""
        containers = [(src.label, src.service) for src in self.target.logs
                      if src.kind == "container" and src.service is not None]
        remote = getattr(self.stack, "remote_reads", False)  # in-process: plain calls
        if remote and (len(containers) > 1 or (containers and self._has_files)):
            with ThreadPoolExecutor(max_workers=len(containers)) as pool:
                reads = [pool.submit(self.stack.log_lines, svc) for _, svc in containers]
                files = self._file_lines(final=False)
                lines = [r.result() for r in reads]
        else:
            lines = [self.stack.log_lines(svc) for _, svc in containers]
            files = self._file_lines(final=False)
        out: list[LogRecord] = []
        for (label, _), got in zip(containers, lines, strict=True):
            out += self._container_lines(label, got)
        out += files
        self.tl.extend(out)
        return out

    def final_logs(self) -> list[LogRecord]:
        """Read all sources until the records the judge needs are in (``settle_logs``),
        then once more, including a last line without its newline."""
        out = self.settle_logs()
        tail = self._file_lines(final=True)
        self.tl.extend(tail)
        return out + tail

    def settle_logs(self) -> list[LogRecord]:
        """Re-read the logs until every failed request has an error record after it and
        every log mark has appeared, or until ``bounds.error_record_seconds`` have passed
        since the last of them still waiting. Servers flush late (lighttpd's access log
        about once a second): a record read after the judgement counts as missing."""
        out = self.collect_logs()
        if not self.target.logs:
            return out  # no source at all: nothing could ever come
        # An in-process app logs as it answers: what is not there now never comes.
        bound = 0.0 if self.stack.logs_synchronous else self.target.bounds.error_record_seconds
        rx = any_of((*self.target.error_patterns, *self.target.cause_patterns),
                    "error_patterns/cause_patterns", self.target.path) or UserPattern("(?!)", "")
        while True:
            waiting = self._awaited_records(rx)
            if waiting is None or self.tl.now() >= waiting + bound:
                break
            time.sleep(LOG_POLL)  # poll interval inside a deadline-bounded loop
            out += self.collect_logs()
        self._learn_marks()
        return out

    def _unseen_marks(self) -> tuple[list[LoadEvent], list[LoadEvent]]:
        """This run's log marks, and those no source has shown yet."""
        marks = [e for e in self.tl.of(LoadEvent) if e.load == "log_mark" and e.detail]
        if not marks:
            return [], []
        text = "\n".join(r.text for r in self.tl.of(LogRecord))
        return marks, [e for e in marks if e.detail not in text]

    def _learn_marks(self) -> None:
        """Remember on the stack whether its log sources show marks at all: once a whole
        bound passed after a mark with none shown, later runs on it do not wait for them."""
        marks, unseen = self._unseen_marks()
        if not marks:
            return
        if len(unseen) < len(marks):
            self.stack.marks_shown = True
        elif self.stack.marks_shown is None:
            self.stack.marks_shown = False
        if self.stack.marks_shown is False:
            self.tl.facts["log_marks_shown"] = (
                "no log source of the target showed a log mark (a request with a marker in "
                "its path), so none was waited for; declare the access log of the front "
                "service ([[logs]]) to have marks judged")

    def _awaited_records(self, error_rx: UserPattern) -> float | None:
        """When the last failed request without an error record after it, or the last mark
        not yet in any log, happened (None when nothing is awaited)."""
        records = self.tl.of(LogRecord)
        errors = [r.t for r in records if error_rx.search(r.text)]
        latest = max(errors, default=float("-inf"))
        awaited: list[float] = []
        for p in self.tl.of(ProbeResult):
            t = p.t
            for s in p.steps:
                t += s.elapsed
                if (s.failed_request and not s.passed and not s.readback
                        and not s.could_not_run):
                    # a dead service's record of its death may come before the request
                    since = float("-inf") if s.service_down else t - s.elapsed - RECORD_SLACK
                    if not errors or latest < since:
                        awaited.append(t)
        marks, unseen = self._unseen_marks()
        if unseen and self.stack.marks_shown is not False:
            if self.stack.marks_shown is None and len(unseen) == len(marks):
                # Not known yet whether any source shows a mark: wait for the first one
                # only; if a whole bound passes without it, none will come.
                awaited.append(unseen[0].t)
            else:
                awaited += [e.t for e in unseen]
        return max(awaited, default=None)

    @property
    def _has_files(self) -> bool:
        return any(s.kind == "file" for s in self.target.logs)

    def _container_lines(self, label: str, lines: list[tuple[float | None, str]]
                         ) -> list[LogRecord]:
        """The lines of a container source not recorded before."""
        seen = self._log_seen.get(label, 0)
        self._log_seen[label] = len(lines)
        out = []
        for wall, text in lines[seen:]:
            t = self.tl.now() if wall is None else wall - self.tl.wall0
            out.append(LogRecord(min(t, self.tl.now()), label, text))
        return out

    def skip_existing_logs(self) -> None:
        """Start every log file after its last whole line: a run judges the records it
        caused, not what earlier runs left in a file that is no longer emptied."""
        self._file_lines(final=False)

    def _file_lines(self, *, final: bool) -> list[LogRecord]:
        """New whole lines of every file source; at the end, also a last line without its
        newline. Files on a volume are read in one agent exec, files in a service's own
        filesystem through the archive API; both from byte offsets."""
        out = self._volume_file_lines(final=final)
        for src in self.target.logs:
            if src.kind == "file" and src.service:
                out += self._service_file_lines(src, final=final)
        return out

    def _volume_file_lines(self, *, final: bool) -> list[LogRecord]:
        files = [s for s in self.target.logs if s.kind == "file" and s.volume]
        items = []
        for src in files:
            assert src.volume is not None and src.path is not None
            items.append((src.volume, src.path, self._log_seen.get(src.label, 0)))
        tails = self.stack.read_tails(items)
        shrunk = [src.label for src, (_, _, off), (size, _) in zip(files, items, tails,
                                                                   strict=True)
                  if 0 <= size < off]
        if shrunk:  # truncated or rotated: read those files again from the start
            for label in shrunk:
                self._log_seen.pop(label, None)
            return self._volume_file_lines(final=final)
        now = self.tl.now()
        out: list[LogRecord] = []
        for src, (size, data) in zip(files, tails, strict=True):
            if size < 0:
                continue
            lines, taken = _lines(data, final=final)
            self._log_seen[src.label] = self._log_seen.get(src.label, 0) + taken
            out += [LogRecord(now, src.label, ln, src.volume) for ln in lines]
        return out

    def _service_file_lines(self, src: LogSource, *, final: bool) -> list[LogRecord]:
        if src.service is None or src.path is None:
            return []
        data = self.stack.read_file(src.service, src.path)
        if data is None:
            return []
        label = src.label
        off = self._log_seen.get(label, 0)
        head = self._file_head.get(label, b"")
        if len(data) < off or data[:len(head)] != head:  # truncated, or a new file (rotated)
            off = 0
        self._file_head[label] = data[:64]
        lines, taken = _lines(data[off:], final=final)
        self._log_seen[label] = off + taken
        now = self.tl.now()
        vol = self.target.log_volume(src)
        return [LogRecord(now, label, ln, vol) for ln in lines]


def _short(step: Step, body: bytes, size: int, values: Mapping[str, str]) -> bool:
    """A body that ended early: shorter than ``expect_bytes``, or a strict prefix of the
    content this run wrote (when the step expects its digest; a body that short is all
    kept in memory, since the content written is at most MAX_BODY_SIZE)."""
    if step.expect_bytes is not None and size < step.expect_bytes:
        return True
    written = values.get("body", "").encode("ascii", "replace")
    return (step.expect_sha256 is not None and "{body_sha256}" in step.expect_sha256
            and size < len(written) and written.startswith(body))


def _lines(data: bytes, *, final: bool) -> tuple[list[str], int]:
    """Whole lines of new bytes and how many bytes they took; with ``final`` also a last
    line without its newline (a torn record the writer will never finish)."""
    whole, nl, rest = data.rpartition(b"\n")
    if not nl:
        whole, rest = b"", data
    taken = len(whole) + len(nl) + (len(rest) if final else 0)
    lines = whole.split(b"\n") if nl else []
    if final and rest:
        lines.append(rest)
    return [ln.decode("utf-8", "replace") for ln in lines], taken


def _field(text: str, path: str) -> str:
    try:
        node: Any = json.loads(text)
    except ValueError:
        return ""
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return ""
        node = node[part]
    return str(node)
