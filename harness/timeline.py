"""The Timeline: the ordered record of a run that every invariant and report reads.

Events are frozen dataclasses stamped with ``t`` (seconds since the run's ``t0``,
monotonic). Nothing here talks to Docker or the network: a Timeline can be built by
hand in a unit test and judged exactly like one recorded against a live stack.
"""

from __future__ import annotations

import json
import time
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

from .sizes import PAGE, format_size

PhaseName = Literal["steady", "fill", "act", "free", "recover"]
PHASES: tuple[PhaseName, ...] = ("steady", "fill", "act", "free", "recover")


@dataclass(frozen=True)
class PhaseMark:
    """Start of a scenario phase; the phase lasts until the next mark (or the end)."""

    t: float
    phase: PhaseName
    volume: str | None = None
    note: str = ""


@dataclass(frozen=True)
class StepResult:
    """One HTTP request (or exec) of a probe, with what arrived and what was expected."""

    name: str
    method: str
    target: str  # path for HTTP (never a host), the command for exec
    status: int | None  # HTTP status or exec exit code; None when nothing came back
    passed: bool  # every expectation of the step held
    elapsed: float
    error: str | None = None  # transport error, timeout, incomplete body, failed expectation
    body_excerpt: str = ""
    body_complete: bool = True  # declared length / chunk framing matched what arrived
    bytes_received: int = 0
    write: bool = False  # the step asks the app to persist something (an acknowledged write)
    readback: bool = False  # the step observes an earlier write of the same flow
    timed_out: bool = False  # no answer (or no whole body, or no exit) within the bound: a hang
    # The probe itself could not run: exit 126/127 (not executable, not found) or death by
    # a signal. A config error of the target, neither a refusal by the app nor an answer.
    could_not_run: bool = False
    # The step's expected text (expect_text / expect_output) was not in the answer: an app
    # that refuses in words with a success code (redis-cli exits 0 on MISCONF, api.php
    # answers 200 with {"error": ...}) did not acknowledge the write.
    text_missing: bool = False
    # An exec into a service that had stopped (a server that aborted): nothing ran; the
    # excerpt holds the service's last log lines.
    service_down: bool = False

    @property
    def acknowledged(self) -> bool:
        """The app answered as if the write succeeded: 2xx/3xx whole body (exec: the
        expected exit) with the expected text, if any, in the answer."""
        if self.method == "EXEC":
            return self.passed
        return (self.status is not None and 200 <= self.status < 400 and self.body_complete
                and not self.text_missing)

    @property
    def failed_request(self) -> bool:
        """An error the user sees: 4xx/5xx, no answer, a hang or a cut body."""
        if self.method == "EXEC":
            return not self.passed
        return (self.status is None or self.status >= 400 or self.timed_out
                or not self.body_complete)


@dataclass(frozen=True)
class ProbeResult:
    """One run of a probe (a flow of steps) at time ``t``."""

    t: float
    probe: str
    kind: Literal["http", "exec"]
    steps: tuple[StepResult, ...]
    core: bool = False
    write: bool = False
    tags: tuple[str, ...] = ()  # e.g. "download", "health", "counter", "reread"
    # A run after recovery that repeats the request(s) of the run at this time, which was
    # made while a volume was full (same nonce, values and cookies): the readback steps of
    # a write probe, or the whole of a probe without writes. Damage that persists shows here.
    reread_of: float | None = None
    # Steps of the flow that were never sent, and why: a flow stops at its first failed
    # step (later steps would only report its consequences), and a step whose {value}
    # was never captured is not sent with the braces in it. Judges see ``steps`` only.
    not_run: tuple[str, ...] = ()
    stopped: str = ""

    @property
    def passed(self) -> bool:
        """Every step met its expectations and none was left unsent (a run with no step
        passed nothing)."""
        return bool(self.steps) and all(s.passed for s in self.steps) and not self.not_run

    @property
    def end(self) -> float:
        """Time the last step finished."""
        return self.t + sum(s.elapsed for s in self.steps)


@dataclass(frozen=True)
class Usage:
    """Bytes and inodes of a volume, measured inside it with statvfs as ``as_user``."""

    bytes_total: int
    bytes_free: int  # available to ``as_user``
    inodes_total: int
    inodes_free: int
    as_user: str = "root"

    @property
    def bytes_used(self) -> int:
        """Bytes in use."""
        return self.bytes_total - self.bytes_free

    @property
    def used_fraction(self) -> float:
        """Fraction of bytes in use, 0..1."""
        return self.bytes_used / self.bytes_total if self.bytes_total else 0.0

    @property
    def full(self) -> bool:
        """No whole page free, or no inode free: new data cannot land."""
        return self.bytes_free < PAGE or self.inodes_free == 0

    def __str__(self) -> str:
        return (f"{format_size(self.bytes_free)} of {format_size(self.bytes_total)} free, "
                f"{self.inodes_free} of {self.inodes_total} inodes free (as {self.as_user})")


@dataclass(frozen=True, kw_only=True)
class DiskSample(Usage):
    """The usage of one volume at time ``t``: what the probes record."""

    t: float
    volume: str

    @classmethod
    def of(cls, t: float, volume: str, usage: Usage) -> DiskSample:
        """Stamp a measured usage with its time and volume."""
        return cls(t=t, volume=volume, bytes_total=usage.bytes_total,
                   bytes_free=usage.bytes_free, inodes_total=usage.inodes_total,
                   inodes_free=usage.inodes_free, as_user=usage.as_user)

    def __str__(self) -> str:
        return f"{self.volume} at t={self.t:.2f}s: {super().__str__()}"


class DiskIndex:
    """Disk samples per volume, for "what was true at t" queries: a sample holds until the
    next sample of its volume."""

    def __init__(self, samples: Iterable[DiskSample]) -> None:
        by_vol: dict[str, list[DiskSample]] = {}
        for d in samples:
            by_vol.setdefault(d.volume, []).append(d)
        self._samples = by_vol
        self._times = {v: [d.t for d in ds] for v, ds in by_vol.items()}

    def latest(self, t: float) -> dict[str, DiskSample]:
        """The latest sample of each volume at or before t (volumes not yet sampled omitted)."""
        out: dict[str, DiskSample] = {}
        for vol, times in self._times.items():
            i = bisect_right(times, t)
            if i:
                out[vol] = self._samples[vol][i - 1]
        return out

    def full_volumes(self, t: float) -> list[str]:
        """Volumes whose latest sample at or before t says full."""
        return sorted(v for v, d in self.latest(t).items() if d.full)

    def full_at(self, t: float) -> bool:
        """Whether any volume was full at t."""
        return any(d.full for d in self.latest(t).values())


@dataclass(frozen=True)
class LogRecord:
    """One line read back from an operator-visible sink (container stream or log file)."""

    t: float  # when it was written if the sink says (docker timestamps), else when read
    source: str  # "app:stderr", "web:stdout", "file:applogs/app.log"
    text: str
    volume: str | None = None  # the volume a file sink lives on


@dataclass(frozen=True)
class LoadEvent:
    """Something the harness did to consume or free space."""

    t: float
    load: str  # "ballast", "drain", "reset", "download", "log_flood", "session_flood",
    # "write_flood", "pressure", "cleanup"
    volume: str | None
    bytes: int = 0
    detail: str = ""


@dataclass(frozen=True)
class CounterSample:
    """A declared counter's value as the app reports it (metrics line or JSON field)."""

    t: float
    counter: str
    value: float | None  # None when it could not be read


@dataclass(frozen=True)
class HealthSample:
    """What the health endpoint said: its status word, normalised by the target config."""

    t: float
    status: Literal["healthy", "degraded", "failing", "unreachable"]
    raw: str = ""


Event = PhaseMark | ProbeResult | DiskSample | LogRecord | LoadEvent | CounterSample | HealthSample
E = TypeVar("E", PhaseMark, ProbeResult, DiskSample, LogRecord, LoadEvent, CounterSample,
            HealthSample)


@dataclass
class Timeline:
    """Ordered events of one scenario run, plus its facts (which volume, which user)."""

    scenario: str = ""
    volume: str | None = None
    t0: float = field(default_factory=time.monotonic)
    wall0: float = field(default_factory=time.time)
    events: list[Event] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def now(self) -> float:
        """Seconds since the start of the run."""
        return time.monotonic() - self.t0

    def add(self, event: Event) -> Event:
        """Append an event (kept in time order) and return it."""
        if self.events and event.t < self.events[-1].t:
            i = len(self.events)
            while i and self.events[i - 1].t > event.t:
                i -= 1
            self.events.insert(i, event)
        else:
            self.events.append(event)
        return event

    def extend(self, events: Iterable[Event]) -> None:
        """Append many events."""
        for e in events:
            self.add(e)

    def phase(self, phase: PhaseName, volume: str | None = None, note: str = "") -> PhaseMark:
        """Mark the start of a phase now."""
        mark = PhaseMark(self.now(), phase, volume if volume is not None else self.volume, note)
        self.add(mark)
        return mark

    # --- queries -------------------------------------------------------------------------
    def of(self, kind: type[E]) -> list[E]:
        """All events of one type, in time order."""
        return [e for e in self.events if isinstance(e, kind)]

    def windows(self) -> list[tuple[PhaseMark, float]]:
        """Each phase mark with the time its phase ends."""
        marks = self.of(PhaseMark)
        end = self.events[-1].t if self.events else 0.0
        return [(m, marks[i + 1].t if i + 1 < len(marks) else max(end, m.t) + 1e-9)
                for i, m in enumerate(marks)]

    def in_phase(self, kind: type[E], phase: PhaseName) -> list[E]:
        """Events of one type recorded during every window of the given phase."""
        spans = [(m.t, end) for m, end in self.windows() if m.phase == phase]
        return [e for e in self.of(kind) if any(a <= e.t < b for a, b in spans)]

    def disk(self, volume: str | None = None) -> list[DiskSample]:
        """Disk samples, of one volume or all."""
        return [d for d in self.of(DiskSample) if volume is None or d.volume == volume]

    def disk_index(self, volume: str | None = None) -> DiskIndex:
        """The disk samples (of one volume or all) indexed for "full at t?" queries."""
        return DiskIndex(self.disk(volume))

    def full_at(self, t: float, volume: str | None = None) -> bool:
        """Whether the latest sample at or before t (per volume) says full."""
        return self.disk_index(volume).full_at(t)

    def full_spans(self, volume: str | None = None) -> list[tuple[float, float, str]]:
        """Intervals (start, end, volume) in which samples say a volume was full."""
        spans: list[tuple[float, float, str]] = []
        by_vol: dict[str, list[DiskSample]] = {}
        for d in self.disk(volume):
            by_vol.setdefault(d.volume, []).append(d)
        for vol, samples in by_vol.items():
            start: float | None = None
            for d in samples:
                if d.full and start is None:
                    start = d.t
                elif not d.full and start is not None:
                    spans.append((start, d.t, vol))
                    start = None
            if start is not None:
                spans.append((start, max(samples[-1].t, self.events[-1].t), vol))
        return sorted(spans)

    def probes(self, name: str | None = None, *, tag: str | None = None) -> list[ProbeResult]:
        """Probe results, filtered by probe name or tag."""
        return [p for p in self.of(ProbeResult)
                if (name is None or p.probe == name) and (tag is None or tag in p.tags)]

    def logs(self, source: str | None = None) -> list[LogRecord]:
        """Log records read back, of one source or all."""
        return [r for r in self.of(LogRecord) if source is None or r.source == source]

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    # --- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: every event with its type name."""
        return {
            "scenario": self.scenario,
            "volume": self.volume,
            "wall0": self.wall0,
            "facts": self.facts,
            "events": [{"type": type(e).__name__, **asdict(e)} for e in self.events],
        }

    def to_json(self) -> str:
        """The timeline as JSON text."""
        return json.dumps(self.to_dict(), default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timeline:
        """Rebuild a timeline from :meth:`to_dict` output (reports read recorded runs)."""
        kinds: dict[str, type[Any]] = {k.__name__: k for k in (
            PhaseMark, ProbeResult, DiskSample, LogRecord, LoadEvent, CounterSample,
            HealthSample)}
        tl = cls(scenario=data.get("scenario", ""), volume=data.get("volume"),
                 t0=0.0, wall0=float(data.get("wall0", 0.0)), facts=dict(data.get("facts", {})))
        for raw in data.get("events", []):
            fields = {k: v for k, v in raw.items() if k != "type"}
            kind = kinds[raw["type"]]
            if kind is ProbeResult:
                fields["steps"] = tuple(StepResult(**s) for s in fields["steps"])
                fields["tags"] = tuple(fields.get("tags", ()))
                fields["not_run"] = tuple(fields.get("not_run", ()))
            tl.events.append(kind(**fields))
        return tl
