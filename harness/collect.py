"""The stock battery as pytest nodes: ``fulldisk::<case>::<invariant>`` and
``fulldisk::incident::<story>``, collected beside a project's own tests.

The plugin adds one ``fulldisk`` collector to the session when the battery is wanted
(``--fulldisk-battery``, or ``-m chaos`` with a target configured). Collecting reads
the target config only; nothing starts until a test runs. Items are ordinary pytest
functions (``harness/stock.py``) taking fixtures, so ``-k``, ``-m``, xdist's
``loadgroup`` and JUnit treat them like any test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .battery import Case
    from .target import Target

NAME = "fulldisk"
CASE_KEY: pytest.StashKey[tuple[Case, str]] = pytest.StashKey()


class Battery(pytest.Module):
    """The ``fulldisk`` collector: a case per battery scenario, then the incident stories."""

    target_loader: Callable[[], Target]

    @classmethod
    def for_session(cls, session: pytest.Session, load: Callable[[], Target]) -> Battery:
        """The collector for a session, reading the target through ``load`` when collected."""
        from . import stock

        node = cls.from_parent(session, path=Path(stock.__file__), name=NAME, nodeid=NAME)
        node.target_loader = load
        node.add_marker(pytest.mark.chaos)
        node.add_marker(pytest.mark.docker)
        return node

    def _getobj(self) -> Any:
        from . import stock

        return stock  # already imported: no second import through pytest's import modes

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        """Battery cases (one collector each), then the stories the target can feed."""
        from .battery import battery_cases
        from .errors import HarnessError

        try:
            target = self.target_loader()
        except HarnessError as e:
            raise self.CollectError(f"fulldisk: {e.one_line()}") from None
        cases = battery_cases(target)
        for case in cases:
            if not case.incident:
                yield CaseNode.from_parent(self, name=case.id, case=case)
        judged = {c.id: set(c.invariants) for c in cases}
        stories = [fn for fn in _stories()
                   if all(c in judged and set(inv) <= judged[c]
                          for c, inv in getattr(fn, "fulldisk_needs", ()))]
        if stories:
            yield Incident.from_parent(self, name="incident", stories=stories)


def _stories() -> tuple[Callable[..., None], ...]:
    from .stock import INCIDENT

    return INCIDENT


class CaseNode(pytest.Collector):
    """One battery case: an item per invariant it judges (the case runs once for all)."""

    def __init__(self, *, case: Case, **kw: Any) -> None:
        super().__init__(**kw)
        self.case = case
        self.add_marker(pytest.mark.xdist_group(case.id))

    def collect(self) -> Iterator[pytest.Item]:
        """An item per invariant, each judging the shared outcome of the case."""
        from .stock import battery

        for inv in self.case.invariants:
            item = pytest.Function.from_parent(self, name=inv, callobj=battery)
            item.stash[CASE_KEY] = (self.case, inv)
            yield item


class Incident(pytest.Collector):
    """The Exversion outage as named stories, each reading battery outcomes."""

    def __init__(self, *, stories: list[Callable[..., None]], **kw: Any) -> None:
        super().__init__(**kw)
        self.stories = stories

    def collect(self) -> Iterator[pytest.Item]:
        """An item per story, grouped (xdist) with the case it reads."""
        for fn in self.stories:
            item = pytest.Function.from_parent(self, name=fn.__name__, callobj=fn)
            first = getattr(fn, "fulldisk_needs", ())[:1]
            if first:
                item.add_marker(pytest.mark.xdist_group(first[0][0]))
            yield item
