"""The suite's Hypothesis profile follows the environment (tests/conftest.py)."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings


def test_the_profile_is_chosen_by_the_environment(request: pytest.FixtureRequest) -> None:
    name = (request.config.getoption("hypothesis_profile", None)
            or os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))
    active = settings()  # the loaded profile's values
    assert active.deadline is None  # the shared machine's timing is no property of the code
    if name == "ci":
        assert active.derandomize and active.database is None and active.print_blob
    elif name == "dev":
        assert not active.derandomize and active.database is not None
