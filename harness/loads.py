"""Loads: what consumes (or frees) space, each step recorded as a LoadEvent.

Ballast and inode fills through the Volume; simulated downloads through the app's own
endpoint, sizes drawn from the target's distribution; log floods of marked requests
(so gaps in a log can be proven); session floods through the login flow, and write
floods through any write probe until its volume is full. Every loop is
bounded in count and in time.
"""

from __future__ import annotations

import random
import time

import requests

from . import signals
from .http import loopback as _loopback
from .probes import Prober
from .target import Target
from .timeline import LoadEvent, ProbeResult
from .volume import FillResult, Volume


def ballast(pr: Prober, vol: Volume, *, leave: int | str | None = None,
            percent: float | None = None) -> FillResult:
    """Fill a volume with ballast, as its owner, and record it."""
    signals.check()
    r = pr.tl.now()
    res = vol.fill(leave=leave, percent=percent)
    pr.tl.add(LoadEvent(r, "ballast", vol.name, res.added_bytes, res.note or str(res.usage)))
    return res


def inodes(pr: Prober, vol: Volume, *, leave: int = 0) -> FillResult:
    """Take every inode but ``leave`` and record it."""
    signals.check()
    r = pr.tl.now()
    res = vol.fill_inodes(leave=leave)
    pr.tl.add(LoadEvent(r, "inodes", vol.name, 0, f"+{res.added_inodes} inodes; {res.usage}"))
    return res


def drain(pr: Prober, vol: Volume) -> int:
    """Remove the ballast and record it."""
    r = pr.tl.now()
    freed = vol.drain()
    pr.tl.add(LoadEvent(r, "drain", vol.name, -freed, "ballast removed"))
    return freed


class Downloads:
    """Simulated downloads through the target's download probe."""

    def __init__(self, pr: Prober, *, seed: int = 0) -> None:
        cfg = pr.target.downloads
        if cfg is None:
            from .errors import ConfigError

            raise ConfigError("this target declares no [downloads]",
                              "add [downloads] probe=..., volume=..., sizes=[...]",
                              file=pr.target.path, key="downloads")
        self.pr = pr
        self.cfg = cfg
        self.rng = random.Random(seed)
        self.sizes = list(cfg.sizes)
        self.seq = 0

    def one(self, *, seq: int | None = None, size: int | None = None) -> ProbeResult:
        """One download: a new file unless ``seq`` repeats an earlier one (a cache hit)."""
        if seq is None:
            self.seq += 1
            seq = self.seq
        size = size if size is not None else self.rng.choice(self.sizes)
        t = self.pr.tl.now()
        res = self.pr.run(self.cfg.probe, {"seq": str(seq), "size": str(size)},
                          tags=("download",))
        self.pr.tl.add(LoadEvent(t, "download", self.cfg.volume, size if res.passed else 0,
                                 f"seq={seq} status={res.steps[-1].status if res.steps else None}"))
        return res

    def burst(self, count: int, *, deadline: float = 30.0) -> list[ProbeResult]:
        """Up to ``count`` downloads back to back, stopping at the deadline."""
        end = time.monotonic() + deadline
        out = []
        for _ in range(count):
            if time.monotonic() > end:
                break
            out.append(self.one())
        return out

    def until_refused(self, *, max_count: int = 400, deadline: float = 30.0,
                      refusals: int = 3) -> list[ProbeResult]:
        """Download until the app refuses ``refusals`` times in a row (or limits hit)."""
        end = time.monotonic() + deadline
        out: list[ProbeResult] = []
        streak = 0
        for _ in range(max_count):
            if time.monotonic() > end:
                break
            self.pr.disk(self.cfg.volume)  # each download judged by the disk at its start
            r = self.one()
            out.append(r)
            streak = 0 if r.passed else streak + 1
            if streak >= refusals:
                break
        return out

    def at_rate(self, rate: float, duration: float, *, sample: str | None = None,
                sample_every: float = 0.1) -> list[ProbeResult]:
        """Downloads at ``rate`` per second for ``duration`` s, sampling a volume's usage."""
        out: list[ProbeResult] = []
        start = time.monotonic()
        next_sample = start
        n = 0
        max_count = int(rate * duration) + 1
        while n < max_count and time.monotonic() - start < duration * 2:
            due = start + n / rate
            now = time.monotonic()
            if sample and now >= next_sample:
                self.pr.disk(sample)
                next_sample = now + sample_every
            if now < due:
                signals.check()
                time.sleep(min(due - now, sample_every))  # pacing a rate, not synchronising
                continue
            out.append(self.one())
            n += 1
        if sample:
            self.pr.disk(sample)
        return out


def log_marks(pr: Prober, count: int, *, service: str | None = None,
              deadline: float = 10.0) -> list[str]:
    """Send ``count`` requests whose path carries a unique marker, for gap detection.

    A target without an HTTP port (a database driven by its client) gets none: the
    reason is recorded in the timeline's facts, and log_integrity judges torn lines and
    drop announcements without marks.
    """
    svc, port, path = mark_request(pr.target)
    svc = service or svc
    if svc is None:
        pr.tl.facts["log_marks"] = ("skipped: no service publishes an HTTP port, so no "
                                    "request can carry a marker into the app's logs")
        return []
    base = pr.stack.url(svc, port)
    pr.tl.facts.setdefault("log_marks", f"GET {path}?fulldisk-mark=<id> on {svc}" if path
                           else f"GET /<mark> on {svc} (a path no probe names: a 404 the "
                           "web server may answer without the app)")
    end = time.monotonic() + deadline
    marks: list[str] = []
    for _ in range(count):
        signals.check()
        if time.monotonic() > end:
            break
        mark = f"fulldisk-mark-{pr.tl.scenario or 'run'}-{len(pr.tl.of(LoadEvent))}"
        mark = "".join(c if c.isalnum() or c in "-_" else "-" for c in mark)
        t = pr.tl.now()
        try:
            # A connection per mark, as from many clients: one keep-alive connection would
            # pin every mark to one server process (nginx: one worker, whose first
            # failed write may be partial and whose alerts are rate-limited per minute).
            url = (f"{base}{path}{'&' if '?' in path else '?'}fulldisk-mark={mark}" if path
                   else f"{base}/{mark}")
            pr.http.get(_loopback(url), timeout=pr.target.bounds.request_timeout,
                        headers={"Connection": "close"})
        except requests.RequestException:
            pass  # the mark's fate is judged from the logs, not from the answer
        pr.tl.add(LoadEvent(t, "log_mark", None, 0, mark))
        marks.append(mark)
    return marks


def sessions(pr: Prober, probe: str, count: int, *, deadline: float = 20.0,
             stop_after_failures: int | None = None, sample_every: int = 1) -> int:
    """Run a login-like probe up to ``count`` times (each leaves a session behind),
    sampling disks before every ``sample_every``-th run (default each: a run is judged by
    the disk at its own start); stop early after that many failures in a row."""
    end = time.monotonic() + deadline
    done = streak = 0
    for _ in range(count):
        if time.monotonic() > end:
            break
        if done % sample_every == 0:
            pr.disk()
        t = pr.tl.now()
        r = pr.run(probe, tags=("session_flood",))
        pr.tl.add(LoadEvent(t, "session_flood", None, 0, f"passed={r.passed}"))
        done += 1
        streak = 0 if r.passed else streak + 1
        if stop_after_failures is not None and streak >= stop_after_failures:
            break
    pr.disk()
    return done


def writes_until_full(pr: Prober, probe: str, volumes: list[str], count: int, *,
                      deadline: float = 20.0, stop_after_failures: int = 3) -> list[str]:
    """Run a write probe up to ``count`` times until one of ``volumes`` is full (the disks
    are sampled before every run, so each run is judged by the disk at its own start),
    the app fails that many times in a row, or the deadline passes. Returns the volumes
    found full, or all of ``volumes`` when the app refused that many writes in a row
    before a sample said full (a write of several pages fails while a few are still
    free: the app ran out all the same); none: the flood never filled them (the
    timeline says so)."""
    end = time.monotonic() + deadline
    done = streak = 0
    full: list[str] = []
    for _ in range(count):
        full = [d.volume for d in pr.disk(*volumes) if d.full] if volumes else []
        if full or time.monotonic() > end or streak >= stop_after_failures:
            break
        t = pr.tl.now()
        r = pr.run(probe, tags=("write_flood",))
        pr.tl.add(LoadEvent(t, "write_flood", None, 0, f"passed={r.passed}"))
        done += 1
        streak = 0 if r.passed else streak + 1
    if volumes and not full:
        full = [d.volume for d in pr.disk(*volumes) if d.full]
    if volumes and not full and streak >= stop_after_failures:
        pr.tl.add(LoadEvent(pr.tl.now(), "write_flood", None, 0,
                            f"{probe} refused {streak} runs in a row before "
                            f"{', '.join(volumes)} sampled full: it ran out"))
        return list(volumes)
    if not full:
        pr.tl.add(LoadEvent(pr.tl.now(), "write_flood", None, 0,
                            f"{done} runs of {probe} never filled "
                            f"{', '.join(volumes) or 'any volume'}"))
    return full


def mark_request(target: Target) -> tuple[str | None, int | None, str | None]:
    """(service, port, path) the log marks go to: a request the app itself answers, so
    that its own logs record the marker (a made-up path is often a 404 of the web server
    in front, recorded only in its access log). The declared ``mark`` path on the front
    service, else the first core probe's first GET step without {placeholders}, else no
    path (the marker becomes the path)."""
    if target.mark:
        return _front(target), None, target.mark
    for core in (True, False):
        for p in target.probes.values():
            if p.kind != "http" or p.core != core or not p.steps:
                continue
            step = p.steps[0]
            if step.method == "GET" and "{" not in step.path and not step.write:
                return p.service, p.port, step.path
    return _front(target), None, None


def _front(target: Target) -> str | None:
    """See :func:`front_service`."""
    for p in target.probes.values():
        if p.kind == "http" and p.core:
            return p.service
    for name, s in target.services.items():
        if s.ports:
            return name
    return None


def front_service(pr: Prober) -> str | None:
    """The service that faces users: the first core HTTP probe's, else the first with ports
    (None for a target without an HTTP port)."""
    return _front(pr.target)

