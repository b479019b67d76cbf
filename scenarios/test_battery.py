"""The stock battery: for every volume of the target (and all of them on one shared disk),
steady state -> fill it to the last byte -> run every probe -> free it -> recover, judged
by the invariants that apply. Ids read ``test_battery[sessions-no_silent_write_loss]``."""

from __future__ import annotations

import pytest

from harness import Outcome, check

pytestmark = [pytest.mark.chaos, pytest.mark.docker]


def test_battery(battery_case, battery_outcome: Outcome, record_outcome) -> None:  # type: ignore[no-untyped-def]
    _, invariant = battery_case
    record_outcome(battery_outcome, invariant)
    check(battery_outcome, invariant)
