"""Size parsing and fill arithmetic (no Docker)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import UsageError
from harness.sizes import PAGE, ballast_for, format_size, parse_percent, parse_size


@pytest.mark.parametrize(("text", "expected"), [
    ("4096", 4096), (4096, 4096), ("512KiB", 512 * 1024), ("16MiB", 16 * 1024**2),
    ("1GB", 10**9), ("1.5GiB", int(1.5 * 1024**3)), ("64k", 64_000), (" 2 MiB ", 2 * 1024**2),
    ("0", 0),
])
def test_parse_size_accepts_the_documented_forms(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["12XB", "", "MiB", "-5", "1.5", "1e3", "ten", "5 MiBs", True])
def test_parse_size_rejects_junk_naming_the_accepted_forms(bad: object) -> None:
    with pytest.raises(UsageError) as e:
        parse_size(bad)  # type: ignore[arg-type]
    assert "512KiB" in e.value.one_line()


@given(st.one_of(st.text(max_size=20), st.integers(), st.floats(), st.none()))
def test_parse_size_only_raises_usage_error(junk: object) -> None:
    try:
        n = parse_size(junk)  # type: ignore[arg-type]
    except UsageError:
        return
    assert isinstance(n, int) and n >= 0


def test_percent() -> None:
    assert parse_percent("90%") == 90.0
    with pytest.raises(UsageError):
        parse_percent("120")


@given(free=st.integers(0, 1 << 40), leave=st.integers(0, 1 << 40))
def test_ballast_leaves_between_leave_and_one_page_more(free: int, leave: int) -> None:
    n = ballast_for(free, leave)
    assert n % PAGE == 0 and n >= 0
    if free > leave:
        assert leave <= free - n < leave + PAGE
    else:
        assert n == 0


def test_format_size() -> None:
    assert format_size(512) == "512 B"
    assert format_size(1536) == "1.5 KiB"
