"""fulldisk: chaos tests for full-disk failures of web stacks.

Point it at a target (your services, the volumes their writable paths live on, the
probes that exercise them), and it fills each disk and judges what the app does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    ConfigError,
    DockerUnavailable,
    GuardError,
    HarnessError,
    InfrastructureError,
    UnknownName,
    UsageError,
)
from .sizes import format_size, parse_size

if TYPE_CHECKING:
    from .battery import Outcome, Run
    from .fakedisk import FakeDisk, FakeDisks
    from .inprocess import InProcessStack
    from .invariants import Rules, Verdict, evaluate
    from .probes import Prober
    from .scenario import ScenarioStack
    from .stack import Stack
    from .stock import check
    from .target import Target, load_target, reference_target
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
        Usage,
    )
    from .volume import TmpfsVolume, Volume

__all__ = [
    "ConfigError",
    "CounterSample",
    "DiskSample",
    "DockerUnavailable",
    "FakeDisk",
    "FakeDisks",
    "GuardError",
    "HarnessError",
    "HealthSample",
    "InProcessStack",
    "InfrastructureError",
    "LoadEvent",
    "LogRecord",
    "Outcome",
    "PhaseMark",
    "ProbeResult",
    "Prober",
    "Rules",
    "Run",
    "ScenarioStack",
    "Stack",
    "StepResult",
    "Target",
    "Timeline",
    "TmpfsVolume",
    "UnknownName",
    "Usage",
    "UsageError",
    "Verdict",
    "Volume",
    "check",
    "evaluate",
    "format_size",
    "load_target",
    "parse_size",
    "reference_target",
]

_LAZY = {
    "Target": "target", "load_target": "target", "reference_target": "target",
    **{n: "timeline" for n in ("CounterSample", "DiskSample", "HealthSample", "LoadEvent",
                               "LogRecord", "PhaseMark", "ProbeResult", "StepResult",
                               "Timeline", "Usage")},
    "Outcome": "battery", "Run": "battery", "Rules": "invariants", "Verdict": "invariants",
    "evaluate": "invariants", "check": "stock", "Prober": "probes", "Stack": "stack",
    "ScenarioStack": "scenario",
    "TmpfsVolume": "volume", "Volume": "volume",
    "FakeDisk": "fakedisk", "FakeDisks": "fakedisk", "InProcessStack": "inprocess",
}


def __getattr__(name: str) -> Any:
    # Everything but the errors and sizes loads on first use, so `import harness`,
    # `pytest --help` and the console script's own settings (harness.launch) come first.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
