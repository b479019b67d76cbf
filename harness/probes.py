"""Probes: timestamped observations of a running Stack, written into a Timeline.

HTTP flows (a cookie jar per run, captures carried between steps, bodies checked for
completeness), exec commands, disk usage, health, counters and log records. Requests
go only to ports published on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

import requests

from . import engine
from .backend import Backend
from .errors import ConfigError, InfrastructureError
from .target import Probe, Step
from .timeline import (
    CounterSample,
    DiskSample,
    HealthSample,
    LogRecord,
    ProbeResult,
    StepResult,
    Timeline,
)

_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
EXCERPT = 300


def render(text: str, values: Mapping[str, str]) -> str:
    """Replace ``{name}`` with known values; other braces stay as they are."""
    return _VAR.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _loopback(url: str) -> str:
    # The one gate every request passes: nothing but 127.0.0.1 is ever a target.
    if not url.startswith(f"http://{engine.LOOPBACK}:"):
        raise InfrastructureError(f"refusing to send a request to {url!r}",
                                  "fulldisk reaches services only on 127.0.0.1")
    return url


class Prober:
    """Runs probes against a running target and records every observation in a Timeline."""

    def __init__(self, stack: Backend, timeline: Timeline) -> None:
        self.stack = stack
        self.tl = timeline
        self.target = stack.target
        self._log_seen: dict[str, int] = {}
        self._file_partial: dict[str, str] = {}

    # --- HTTP and exec flows -----------------------------------------------------------
    def run(self, name: str, values: Mapping[str, str] | None = None,
            tags: tuple[str, ...] = ()) -> ProbeResult:
        """Run one probe (all its steps, in order) and record the result."""
        if name not in self.target.probes:
            raise ConfigError(f"unknown probe {name!r}",
                              f"one of: {', '.join(self.target.probes) or 'none declared'}")
        return self.run_probe(name, self.target.probes[name], values, tags)

    def run_probe(self, name: str, probe: Probe, values: Mapping[str, str] | None = None,
                  tags: tuple[str, ...] = ()) -> ProbeResult:
        """Run a probe given as an object (e.g. an ad hoc request of a scenario script)."""
        t = self.tl.now()
        if probe.kind == "exec":
            steps: tuple[StepResult, ...] = (self._exec(probe),)
        else:
            steps = self._flow(probe, dict(values or {}))
        result = ProbeResult(t, name, probe.kind, steps, core=probe.core, write=probe.write,
                             tags=tags)
        self.tl.add(result)
        return result

    def _flow(self, probe: Probe, values: dict[str, str]) -> tuple[StepResult, ...]:
        base = self.stack.url(probe.service, probe.port)
        out: list[StepResult] = []
        with self.stack.session() as http:
            for step in probe.steps:
                r = self.request(http, base, step, values)
                out.append(r)
                if r.status is None:
                    break  # no answer: later steps would only repeat the transport error
        return tuple(out)

    def request(self, http: requests.Session, base: str, step: Step,
                values: dict[str, str]) -> StepResult:
        """One bounded request; checks status, text and that the whole body arrived."""
        path = render(step.path, values)
        url = _loopback(base + path)
        form = {k: render(v, values) for k, v in step.form.items()}
        headers = {k: render(v, values) for k, v in step.headers.items()}
        timeout = min(step.timeout, self.target.bounds.request_timeout)
        t0 = time.monotonic()
        name = step.name or f"{step.method} {step.path}"
        common: dict[str, Any] = {"name": name, "method": step.method, "target": path,
                                  "write": step.write, "readback": step.readback}
        try:
            resp = http.request(step.method, url, data=form or None, json=step.json_body,
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
        body = b""
        complete = True
        error: str | None = None
        try:
            for chunk in resp.iter_content(65536):
                body += chunk
                if time.monotonic() - t0 > timeout:
                    raise requests.Timeout("body too slow")
        except requests.Timeout:
            complete, error = False, f"body not complete within {timeout:g} s"
        except (requests.RequestException, OSError) as e:
            complete, error = False, f"body cut short ({type(e).__name__})"
        finally:
            resp.close()
        declared = resp.headers.get("Content-Length")
        if complete and declared is not None and declared.isdigit() and int(declared) != len(body):
            complete, error = False, f"body has {len(body)} of {declared} declared bytes"
        text = body.decode("utf-8", "replace")
        for var, rx in step.capture.items():
            m = re.search(rx, text)
            if m:
                values[var] = m.group(1)
        passed = complete and resp.status_code in step.expect_status
        if complete and resp.status_code not in step.expect_status:
            error = f"status {resp.status_code}, expected {step.expect_status}"
        if passed and step.expect_text is not None and step.expect_text not in text:
            passed, error = False, f"body lacks {step.expect_text!r}"
        if passed and step.absent_text is not None and step.absent_text in text:
            passed, error = False, f"body contains {step.absent_text!r}"
        return StepResult(status=resp.status_code, passed=passed,
                          elapsed=time.monotonic() - t0, error=error,
                          body_excerpt=self.target.redact(text[:EXCERPT]),
                          body_complete=complete, bytes_received=len(body), **common)

    def _exec(self, probe: Probe) -> StepResult:
        t0 = time.monotonic()
        code, out = self.stack.service(probe.service).exec(probe.command)
        passed = code == probe.expect_exit and (probe.expect_output is None
                                                or probe.expect_output in out)
        error = None if passed else f"exit {code}, expected {probe.expect_exit}" + (
            f" with {probe.expect_output!r}" if probe.expect_output else "")
        return StepResult(name=" ".join(probe.command)[:80], method="EXEC",
                          target=" ".join(probe.command), status=code, passed=passed,
                          elapsed=time.monotonic() - t0, error=error,
                          body_excerpt=out[-EXCERPT:])

    # --- disk, health, counters --------------------------------------------------------
    def disk(self, *names: str) -> list[DiskSample]:
        """Measure volumes (all when none named) and record the samples."""
        out = []
        for n, u in self.stack.usage(*names).items():
            out.append(DiskSample(self.tl.now(), n, u.bytes_total, u.bytes_free,
                                  u.inodes_total, u.inodes_free, u.as_user))
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
            with self.stack.session() as http:
                r = http.get(url, timeout=self.target.bounds.request_timeout,
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
            with self.stack.session() as http:
                r = http.get(_loopback(self.stack.url(c.service, c.port) + c.path),
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
        """Read every declared log source; record lines not seen before."""
        out: list[LogRecord] = []
        for src in self.target.logs:
            if src.kind == "container":
                assert src.service is not None
                out += self._container_lines(src.label, src.service)
        out += self._file_lines(final=False)
        self.tl.extend(out)
        return out

    def final_logs(self) -> list[LogRecord]:
        """Read all sources once more, including a last line without its newline."""
        out = [r for r in (self.collect_logs()) if r]
        tail = self._file_lines(final=True)
        self.tl.extend(tail)
        return out + tail

    def _container_lines(self, label: str, service: str) -> list[LogRecord]:
        lines = self.stack.log_lines(service)
        seen = self._log_seen.get(label, 0)
        self._log_seen[label] = len(lines)
        out = []
        for wall, text in lines[seen:]:
            t = self.tl.now() if wall is None else wall - self.tl.wall0
            out.append(LogRecord(min(t, self.tl.now()), label, text))
        return out

    def _file_lines(self, *, final: bool) -> list[LogRecord]:
        """New whole lines of every file source (one exec for all); at the end, also a
        last line without its newline."""
        files = [s for s in self.target.logs if s.kind == "file"]
        items = []
        for src in files:
            assert src.volume is not None and src.path is not None
            items.append((src.volume, src.path, self._log_seen.get(src.label, 0)))
        tails = self.stack.read_tails(items)
        if any(size < off for (_, _, off), (size, _) in zip(items, tails, strict=True)
               if size >= 0):  # a file shrank (truncated, rotated): read it from the start
            for src in files:
                self._log_seen.pop(src.label, None)
            return self._file_lines(final=final)
        now = self.tl.now()
        out: list[LogRecord] = []
        for src, (size, data) in zip(files, tails, strict=True):
            if size < 0:
                continue
            whole, nl, rest = data.rpartition(b"\n")
            if not nl:
                whole, rest = b"", data
            taken = len(whole) + len(nl) + (len(rest) if final else 0)
            self._log_seen[src.label] = self._log_seen.get(src.label, 0) + taken
            lines = whole.split(b"\n") if nl else []
            if final and rest:
                lines.append(rest)
            out += [LogRecord(now, src.label, ln.decode("utf-8", "replace"), src.volume)
                    for ln in lines]
        return out


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
