"""User-given regexes (captures, ``ready.log``, log line and drop patterns, cause and error
patterns) compiled and run through the ``regex`` engine with a time bound per search, so a
pattern that backtracks catastrophically is a config error naming its key, never a hang
that no signal can end (the standard ``re`` engine runs to the end inside C)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import regex

from .errors import ConfigError

SEARCH_SECONDS = 1.0
"""Time one search of one text may take; the engine checks it every so often, so a search
that runs away ends within a few times this bound."""


def check(pattern: str) -> str | None:
    """Why a pattern does not compile (None when it does): for config validation."""
    try:
        regex.compile(pattern)
    except (regex.error, TypeError, ValueError, OverflowError, RecursionError) as e:
        return str(e)
    return None


def groups(pattern: str) -> int:
    """Number of capture groups of a pattern that compiles."""
    return int(regex.compile(pattern).groups)


class UserPattern:
    """A compiled user pattern and the config key it came from; every search is bounded."""

    def __init__(self, pattern: str, key: str, *, file: str | None = None,
                 seconds: float = SEARCH_SECONDS) -> None:
        self.pattern = pattern
        self.key = key
        self.file = file or None
        self.seconds = seconds
        self._rx = regex.compile(pattern)

    def _timed_out(self) -> ConfigError:
        return ConfigError(
            f"the regex {self.pattern[:200]!r} took more than {self.seconds:g} s on one text "
            "(it backtracks catastrophically, e.g. a nested repeat such as (a+)+)",
            "rewrite it without nested or overlapping repeats (an atomic group (?>...) or a "
            "possessive quantifier a++ helps)", file=self.file, key=self.key)

    def search(self, text: str, pos: int = 0) -> regex.Match[str] | None:
        """The first match in text from pos, or None."""
        try:
            return self._rx.search(text, pos, timeout=self.seconds)
        except TimeoutError:
            raise self._timed_out() from None

    def match(self, text: str) -> regex.Match[str] | None:
        """A match at the start of text, or None."""
        try:
            return self._rx.match(text, timeout=self.seconds)
        except TimeoutError:
            raise self._timed_out() from None

    def finditer(self, text: str, pos: int = 0) -> Iterator[regex.Match[str]]:
        """Every match in text from pos (the whole scan bounded together)."""
        try:
            yield from self._rx.finditer(text, pos, timeout=self.seconds)
        except TimeoutError:
            raise self._timed_out() from None


def any_of(patterns: Iterable[str], key: str, file: str | None = None) -> UserPattern | None:
    """One bounded pattern matching any of the patterns (None when there are none)."""
    parts = [f"(?:{p})" for p in patterns]
    return UserPattern("|".join(parts), key, file=file) if parts else None
