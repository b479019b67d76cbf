"""Byte sizes as people write them (``512KiB``, ``16MiB``, ``1GB``, ``4096``) and back."""

from __future__ import annotations

import re
from decimal import Decimal

from .errors import UsageError

PAGE = 4096
"""Allocation unit of tmpfs and of ext4 with 4 KiB blocks: free space moves in these steps."""

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "t": 1000**4, "tb": 1000**4,
    "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3, "gib": 1024**3,
    "ti": 1024**4, "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
MAX_SIZE = 2**60
"""1 EiB: far above any disk; a larger number is a typo (and would overflow the engine's)."""
MAX_BODY_SIZE = 16 * 1024**2
"""Largest generated request body (``body_size``): made in memory for each request, and
far more than a full-disk test of a few MiB needs."""
ACCEPTED = "a whole number of bytes or a number with a unit: 4096, 512KiB, 16MiB, 1.5GiB, 1GB"


def parse_size(value: str | int, *, what: str = "size") -> int:
    """Parse a size into bytes; raises UsageError naming the accepted forms."""
    if isinstance(value, bool):
        raise UsageError(f"{what} {value!r} is not a size.", f"Use {ACCEPTED}.")
    if isinstance(value, int):
        if value < 0:
            raise UsageError(f"{what} {value} is negative.", f"Use {ACCEPTED}.")
        return _bounded(value, value, what)
    if not isinstance(value, str):
        raise UsageError(f"{what} {value!r} is not a size.", f"Use {ACCEPTED}.")
    m = _SIZE.match(value)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise UsageError(f"{what} {value!r} is not a size.", f"Use {ACCEPTED}.")
    number = Decimal(m.group(1))  # exact: 400 digits neither overflow nor round to inf
    result = int(number * _UNITS[unit])
    if number != int(number) and unit in ("", "b"):
        raise UsageError(f"{what} {value!r} has a fraction of a byte.", f"Use {ACCEPTED}.")
    return _bounded(result, value, what)


def _bounded(n: int, value: str | int, what: str) -> int:
    if n > MAX_SIZE:
        text = str(value)
        shown = text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"
        raise UsageError(f"{what} {shown} is too large (more than 1 EiB).", f"Use {ACCEPTED}.")
    return n


def parse_percent(value: str | float, *, what: str = "percent") -> float:
    """Parse ``90``, ``90%`` or ``0.9``-style percents (0-100) into a float in [0, 100]."""
    text = str(value).strip().removesuffix("%")
    try:
        number = float(text)
    except ValueError:
        raise UsageError(f"{what} {value!r} is not a percentage.",
                         "Use a number from 0 to 100, such as 90 or 90%.") from None
    if not 0 <= number <= 100:
        raise UsageError(f"{what} {value!r} is outside 0-100.",
                         "Use a number from 0 to 100, such as 90 or 90%.")
    return number


def format_size(n: int) -> str:
    """Render bytes with a binary unit, e.g. ``1.5 MiB``; exact bytes below 1 KiB."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.4g} {unit}"
    raise AssertionError("unreachable")


def round_down_pages(n: int, page: int = PAGE) -> int:
    """Largest multiple of ``page`` not above ``n`` (never negative)."""
    return max(0, n - n % page)


def ballast_for(free: int, leave: int, page: int = PAGE) -> int:
    """Bytes of ballast to allocate so that between ``leave`` and ``leave + page`` stay free."""
    return round_down_pages(max(0, free - leave), page)
