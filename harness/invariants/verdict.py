"""The Verdict: what one invariant says about one timeline, with the evidence for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """The outcome of one invariant on one timeline."""

    invariant: str
    passed: bool  # the rule held on evidence; never True for a verdict that was not judged
    summary: str  # one human sentence, with how much evidence was judged
    evidence: tuple[str, ...] = ()
    applicable: bool = True  # False: not judged, the evidence this rule needs was missing
    scenario: str = ""
    volume: str | None = None
    reason: str = ""  # when not judged: which evidence was missing
    untested: str | None = None  # a volume that never ran out under write pressure

    @property
    def status(self) -> str:
        """``"pass"``, ``"fail"`` or ``"not_judged"`` (the evidence it needs was missing)."""
        if not self.applicable:
            return "not_judged"
        return "pass" if self.passed else "fail"

    @property
    def judged(self) -> bool:
        """Whether the rule had the evidence to say pass or fail."""
        return self.applicable

    @property
    def failed(self) -> bool:
        """Judged, and the rule did not hold."""
        return self.applicable and not self.passed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "invariant": self.invariant,
            "status": self.status,
            "judged": self.judged,
            "passed": self.passed,
            "applicable": self.applicable,
            "reason": self.reason,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "scenario": self.scenario,
            "volume": self.volume,
            **({"untested": self.untested} if self.untested else {}),
        }

