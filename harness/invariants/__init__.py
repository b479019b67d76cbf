"""Invariants: named rules judged over a Timeline, each returning a Verdict with evidence.

Every function here is pure: it reads a :class:`~harness.timeline.Timeline` and the
:class:`Rules` drawn from the target config, and says pass, fail or *not judged* with the
requests, log lines and disk samples that prove it. A rule never passes on no evidence:
when what it needs is missing (no readback, no request while full, nothing green before
the fill) the verdict is not judged and its ``reason`` names the missing evidence. Every
summary says how much evidence it judged. Nothing talks to Docker or the network, so a
hand-built Timeline is judged exactly like one recorded against a live stack.

A *fake success* is an acknowledged write (2xx/3xx, exec exit 0) that a later readback
shows lost: it fails no_silent_write_loss and graceful_refusal, and errors_surface
requires an error record for it from the service that answered.

Times in evidence are seconds since the run's start (``t=1.23s``). A *step time* is the
probe's ``t`` plus the elapsed time of the earlier steps of its flow.

The package is laid out by rule family: :mod:`.writes` (no_silent_write_loss,
graceful_refusal, core_isolation), :mod:`.logs` (errors_surface, log_integrity),
:mod:`.recover` (recovery) and :mod:`.signals` (cleanup_keeps_up, counter_accuracy,
health_truthful); :mod:`.verdict` and :mod:`.rules` hold what they return and read, and
``_evidence`` the helpers they share.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import UsageError
from ..timeline import Timeline
from ._evidence import fmt_log, fmt_sample, fmt_step
from .logs import errors_surface, log_integrity
from .recover import recovery
from .rules import FileSourceRule, Invariant, Rules
from .signals import cleanup_keeps_up, counter_accuracy, health_truthful
from .verdict import Verdict
from .writes import (
    OUTCOMES,
    core_isolation,
    graceful_refusal,
    no_silent_write_loss,
    request_outcome,
)

__all__ = [
    "INVARIANTS",
    "OUTCOMES",
    "FileSourceRule",
    "Invariant",
    "Rules",
    "Verdict",
    "cleanup_keeps_up",
    "core_isolation",
    "counter_accuracy",
    "errors_surface",
    "evaluate",
    "fmt_log",
    "fmt_sample",
    "fmt_step",
    "graceful_refusal",
    "health_truthful",
    "log_integrity",
    "no_silent_write_loss",
    "recovery",
    "request_outcome",
]

INVARIANTS: dict[str, Invariant] = {
    "no_silent_write_loss": no_silent_write_loss,
    "errors_surface": errors_surface,
    "graceful_refusal": graceful_refusal,
    "core_isolation": core_isolation,
    "recovery": recovery,
    "cleanup_keeps_up": cleanup_keeps_up,
    "counter_accuracy": counter_accuracy,
    "health_truthful": health_truthful,
    "log_integrity": log_integrity,
}


def evaluate(tl: Timeline, rules: Rules, names: Iterable[str] | None = None) -> list[Verdict]:
    """Judge a timeline by the named invariants (all of them, in order, by default)."""
    chosen = list(INVARIANTS) if names is None else list(names)
    unknown = [n for n in chosen if n not in INVARIANTS]
    if unknown:
        raise UsageError(f"unknown invariant(s): {', '.join(unknown)}",
                         f"choose from {', '.join(INVARIANTS)}")
    return [INVARIANTS[n](tl, rules) for n in chosen]
