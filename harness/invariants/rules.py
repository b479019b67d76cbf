"""Rules: everything the invariants need from a target config, and the Invariant type."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..target import DEFAULT_CAUSE_PATTERNS, DEFAULT_ERROR_PATTERNS, LogSource, Target
from ..timeline import Timeline
from .verdict import Verdict


@dataclass(frozen=True)
class FileSourceRule:
    """What the invariants know about one declared log file."""

    volume: str
    line_pattern: str | None = None  # a whole record; a line not matching is torn
    drop_pattern: str | None = None  # a line announcing lost records (optional count group)


@dataclass(frozen=True)
class Rules:
    """Everything the invariants need from a target config, with defaults for unit tests."""

    cause_patterns: tuple[str, ...] = DEFAULT_CAUSE_PATTERNS
    error_patterns: tuple[str, ...] = DEFAULT_ERROR_PATTERNS
    error_record_seconds: float = 5.0
    recovery_seconds: float = 10.0
    request_seconds: float = 5.0  # a step slower than this is a hang
    bulk_volumes: frozenset[str] = frozenset()
    log_volumes: frozenset[str] = frozenset()  # volumes holding a declared file log source
    file_sources: Mapping[str, FileSourceRule] = field(default_factory=dict)
    counters: Mapping[str, str] = field(default_factory=dict)  # counter -> counted probe
    cleanup_volume: str | None = None
    cleanup_ceiling: float = 90.0  # percent of bytes
    cleanup_max_full_seconds: float = 1.0
    healthy_below: float = 0.5  # with every volume below this fraction, health says healthy
    # Which services may answer for a probe (its own and those behind it, by depends_on),
    # and which services write each log source: a fake success needs a record from one.
    # Empty (hand-built rules): any source counts.
    probe_services: Mapping[str, frozenset[str]] = field(default_factory=dict)
    source_services: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_target(cls, target: Target) -> Rules:
        """The rules a target config declares."""
        files = [log for log in target.logs if log.kind == "file"]
        on_volume = {log.label: target.log_volume(log) for log in files}
        cleanup = target.cleanup
        return cls(
            cause_patterns=tuple(target.cause_patterns),
            error_patterns=tuple(target.error_patterns),
            error_record_seconds=target.bounds.error_record_seconds,
            recovery_seconds=target.bounds.recovery_seconds,
            request_seconds=target.bounds.request_timeout,
            bulk_volumes=frozenset(n for n, v in target.volumes.items() if v.role == "bulk"),
            log_volumes=frozenset(v for v in on_volume.values() if v),
            file_sources={log.label: FileSourceRule(volume=on_volume[log.label] or "",
                                                    line_pattern=log.line_pattern,
                                                    drop_pattern=log.drop_pattern)
                          for log in files},
            counters={name: c.counts for name, c in target.counters.items()},
            cleanup_volume=cleanup.volume if cleanup else None,
            cleanup_ceiling=cleanup.ceiling if cleanup else 90.0,
            cleanup_max_full_seconds=cleanup.max_full_seconds if cleanup else 1.0,
            probe_services={name: _behind(target, p.service)
                            for name, p in target.probes.items()},
            source_services={log.label: _writers(target, log) for log in target.logs},
        )


def _behind(target: Target, service: str) -> frozenset[str]:
    """A service and every service it depends on (a proxy answers for its upstream)."""
    seen: set[str] = set()
    todo = [service]
    while todo:
        s = todo.pop()
        if s in seen or s not in target.services:
            seen.add(s)
            continue
        seen.add(s)
        todo.extend(target.services[s].depends_on)
    return frozenset(seen)


def _writers(target: Target, log: LogSource) -> frozenset[str]:
    """The services that can write a log source: its service, or those mounting its volume."""
    if log.service:
        return frozenset({log.service})
    vol = target.volumes.get(log.volume or "")
    return frozenset(m.service for m in vol.mounts) if vol else frozenset()


Invariant = Callable[[Timeline, Rules], Verdict]
"""A rule: judges a timeline under the target's rules."""
