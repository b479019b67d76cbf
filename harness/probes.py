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
from .http import loopback as _loopback
from .target import LogSource, Probe, Step
from .timeline import (
    CounterSample,
    DiskSample,
    HealthSample,
    LoadEvent,
    LogRecord,
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


def make_body(nonce: str, size: int) -> bytes:
    """``size`` bytes of content that only this nonce produces: ASCII lines naming the
    nonce and a line number, with no trailing whitespace (apps that trim keep it whole)."""
    line_no = 0
    parts: list[bytes] = []
    total = 0
    while total < size:
        digest = hashlib.sha256(f"{nonce}:{line_no}".encode()).hexdigest()
        line = f"fulldisk {nonce} {line_no:07d} {digest}\n".encode()
        parts.append(line)
        total += len(line)
        line_no += 1
    data = b"".join(parts)[:size]
    return data[:-1] + b"x" if data and data[-1:] in (b"\n", b" ") else data


def _set_body(values: dict[str, str], size: int) -> None:
    data = make_body(values["nonce"], size)
    values.update(body=data.decode("ascii"), body_sha256=hashlib.sha256(data).hexdigest(),
                  body_bytes=str(len(data)))


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

    def read(self) -> tuple[bytes, str | None]:
        """(decoded body, why it is incomplete or None)."""
        chunks: list[bytes] = []
        watchdog: threading.Timer | None = None
        if getattr(self.resp.raw, "_connection", None) is not None:
            # only a socket can be woken (an in-process body has none: no thread for it)
            watchdog = threading.Timer(max(0.0, self.deadline - time.monotonic()), self._abort)
            watchdog.daemon = True
            watchdog.start()
        error: str | None = None
        try:
            for chunk in self.resp.iter_content(65536):
                chunks.append(chunk)
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
        return b"".join(chunks), error


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
        t = self.tl.now()
        if probe.kind == "exec":
            steps = self._exec_flow(probe, memo.values)
        else:
            steps = self._flow(probe, memo, probe.steps)
        result = ProbeResult(t, name, probe.kind, steps, core=probe.core, write=probe.write,
                             tags=tags)
        self._remember((name, t), memo)
        self.tl.add(result)
        return result

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
        if probe.kind == "exec":
            if probe.write and not probe.readback:
                return None
            steps = ((self._exec_step(probe, probe.readback, values, readback=True),)
                     if probe.write else self._exec_flow(probe, values))
        else:
            todo = [s for s in probe.steps if s.readback] if probe.write else probe.steps
            if not todo:
                return None
            steps = self._flow(probe, _Memo(values, memo.cookies.copy(), probe), todo)
        result = ProbeResult(t, earlier.probe, probe.kind, steps, core=probe.core,
                             write=False, tags=("reread",), reread_of=earlier.t)
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

    def _flow(self, probe: Probe, memo: _Memo, steps: list[Step]) -> tuple[StepResult, ...]:
        base = self.stack.url(probe.service, probe.port)
        out: list[StepResult] = []
        with self.stack.session() as http:
            http.cookies = memo.cookies  # the run's own jar, kept for a reread
            for step in steps:
                r = self.request(http, base, step, memo.values)
                out.append(r)
                if r.status is None:
                    break  # no answer: later steps would only repeat the transport error
        return tuple(out)

    def request(self, http: requests.Session, base: str, step: Step,
                values: dict[str, str]) -> StepResult:
        """One bounded request; checks status, text, size, digest and that the whole body
        arrived (wire bytes against Content-Length, chunk framing, a total-time bound)."""
        values.setdefault("nonce", new_nonce())
        if step.body_size is not None:
            _set_body(values, step.body_size)
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
        name = step.name or f"{step.method} {step.path}"
        common: dict[str, Any] = {"name": name, "method": step.method, "target": path,
                                  "write": step.write, "readback": step.readback}
        try:
            resp = http.request(step.method, url, data=data, json=json_body,
                                headers=headers, timeout=timeout, allow_redirects=False,
                                stream=True)
        except requests.Timeout:
            return StepResult(status=None, passed=False, elapsed=time.monotonic() - t0,
                              error=f"no answer within {timeout:g} s", timed_out=True,
                              body_complete=False, **common)
        except requests.RequestException as e:
            return StepResult(status=None, passed=False, elapsed=time.monotonic() - t0,
                              error=f"transport error: {type(e).__name__}", body_complete=False,
                              **common)
        has_body = step.method != "HEAD" and resp.status_code not in NO_BODY and \
            resp.status_code >= 200
        if has_body:
            reader = _Body(resp, t0 + timeout)
            body, error = reader.read()
            expired = reader.expired
        else:
            resp.close()
            body, error, expired = b"", None, False
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
        for var, rx in step.capture.items():
            m = re.search(rx, text)
            if m:
                values[var] = m.group(1)
        passed = complete and resp.status_code in step.expect_status
        missing = step.expect_text is not None and render(step.expect_text, values) not in text
        if complete and resp.status_code not in step.expect_status:
            error = f"status {resp.status_code}, expected {step.expect_status}"
        if passed:
            problem = self._content_problem(step, body, text, values)
            if problem is not None:
                passed, error = False, problem
                if not framed and _short(step, body, values):
                    # no length, no chunks: only the expected size or content shows the cut
                    complete, error = False, f"{problem} (close-delimited: cut short)"
        return StepResult(status=resp.status_code, passed=passed,
                          elapsed=time.monotonic() - t0, error=error,
                          body_excerpt=self.target.redact(text[:EXCERPT]),
                          body_complete=complete, bytes_received=len(body),
                          timed_out=expired, text_missing=missing, **common)

    @staticmethod
    def _content_problem(step: Step, body: bytes, text: str,
                         values: Mapping[str, str]) -> str | None:
        if step.expect_bytes is not None and len(body) != step.expect_bytes:
            return f"body has {len(body)} bytes, expected {step.expect_bytes}"
        if step.expect_sha256 is not None:
            want = render(step.expect_sha256, values).lower()
            got = hashlib.sha256(body).hexdigest()
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

    def _exec_flow(self, probe: Probe, values: dict[str, str]) -> tuple[StepResult, ...]:
        if probe.body_size is not None:
            _set_body(values, probe.body_size)
        first = self._exec_step(probe, probe.command, values, write=probe.write)
        if not (probe.readback and first.passed):
            return (first,)
        return first, self._exec_step(probe, probe.readback, values, readback=True)

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

    def health(self) -> HealthSample | None:
        """Ask the health endpoint and record its normalised verdict."""
        h = self.target.health
        if h is None:
            return None
        t = self.tl.now()
        url = _loopback(self.stack.url(h.service, h.port) + h.path)
        status: str
        try:
            r = self.http.get(url, timeout=self.target.bounds.request_timeout,
                              allow_redirects=False)
            raw = r.text[:EXCERPT]
            word = _field(r.text, h.field) if h.field else str(r.status_code)
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
            r = self.http.get(_loopback(self.stack.url(c.service, c.port) + c.path),
                              timeout=self.target.bounds.request_timeout)
            if c.metric is not None:
                m = re.search(rf"^{re.escape(c.metric)}(?:\{{[^}}]*\}})?\s+([0-9.eE+-]+)\s*$",
                              r.text, re.M)
                value = float(m.group(1)) if m else None
            else:
                raw = _field(r.text, c.json_field or "")
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
        bound = self.target.bounds.error_record_seconds
        rx = re.compile("|".join(f"(?:{p})" for p in (*self.target.error_patterns,
                                                       *self.target.cause_patterns)) or "(?!)")
        while True:
            waiting = self._awaited_records(rx)
            if waiting is None or self.tl.now() >= waiting + bound:
                return out
            time.sleep(LOG_POLL)  # poll interval inside a deadline-bounded loop
            out += self.collect_logs()

    def _awaited_records(self, error_rx: re.Pattern[str]) -> float | None:
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
        marks = [e for e in self.tl.of(LoadEvent) if e.load == "log_mark" and e.detail]
        if marks:
            text = "\n".join(r.text for r in records)
            awaited += [e.t for e in marks if e.detail not in text]
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


def _short(step: Step, body: bytes, values: Mapping[str, str]) -> bool:
    """A body that ended early: shorter than ``expect_bytes``, or a strict prefix of the
    content this run wrote (when the step expects its digest)."""
    if step.expect_bytes is not None and len(body) < step.expect_bytes:
        return True
    written = values.get("body", "").encode("ascii", "replace")
    return (step.expect_sha256 is not None and "{body_sha256}" in step.expect_sha256
            and len(body) < len(written) and written.startswith(body))


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
