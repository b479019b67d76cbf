"""The reference app in-process: the hardened build passes, each Python-level switch is
caught by the same invariant, for the same reason, as in the container battery
(``fulldisk selftest``'s own judge and symptoms)."""

from __future__ import annotations

import pytest

from harness.battery import Outcome
from harness.fakedisk import FakeDisks
from harness.inprocess import InProcessStack, battery
from harness.refapp import (
    DEFECTS,
    NOT_IN_PROCESS,
    SERVICE,
    VOLUMES,
    datahub_app,
    known_defects,
)
from harness.selftest import SWITCHES, judge_switch
from harness.target import reference_target

TARGET = reference_target()  # read before pyfakefs hides the real files
SHARED = TARGET.shared()  # every path on one disk, as on the real server


def run(disks: FakeDisks, *defects: str) -> list[Outcome]:
    with InProcessStack(TARGET, lambda: datahub_app(disks, defects), disks=disks,
                        service=SERVICE, volumes=VOLUMES) as stack:
        return battery(stack)


def failures(outcomes: list[Outcome]) -> list[str]:
    return [f"{o.scenario}: {v.invariant}: {v.summary}"
            for o in outcomes for v in o.verdicts if v.status == "fail"]


def test_hardened_reference_app_passes_in_process(fulldisk_fs: FakeDisks) -> None:
    outcomes = run(fulldisk_fs)
    assert [o.volume for o in outcomes] == [*VOLUMES, "downloads"]  # + the counter case
    assert failures(outcomes) == []
    judged = {v.invariant for o in outcomes for v in o.verdicts if v.judged}
    assert {"no_silent_write_loss", "errors_surface", "graceful_refusal", "recovery",
            "health_truthful", "log_integrity", "counter_accuracy"} <= judged


def test_hardened_reference_app_passes_on_one_shared_disk(fulldisk_fs: FakeDisks) -> None:
    with InProcessStack(SHARED, lambda: datahub_app(fulldisk_fs), disks=fulldisk_fs,
                        service=SERVICE, volumes=["shared"]) as stack:
        outcomes = battery(stack)
    assert [o.volume for o in outcomes] == ["shared", "shared"]  # volume and counter cases
    assert failures(outcomes) == []
    assert stack.volume("shared").roots.keys() >= {"sessions", "cache", "applogs"}


@pytest.mark.parametrize("defect", [d for d in DEFECTS if d in known_defects()])
def test_each_python_level_switch_is_caught_by_its_invariant(fulldisk_fs: FakeDisks,
                                                             defect: str) -> None:
    judged = judge_switch(defect, SWITCHES[defect], run(fulldisk_fs, defect))
    assert judged["caught"], judged


def test_every_switch_of_the_app_is_in_process_or_said_why_not() -> None:
    """A new switch fails this until it is classified (and, if Python-level, caught)."""
    known = set(known_defects())
    assert {"silent_sessions", "poisoned_cache"} <= known  # the parse found the list
    assert known <= set(DEFECTS) | set(NOT_IN_PROCESS)
    assert not set(DEFECTS) & set(NOT_IN_PROCESS)
