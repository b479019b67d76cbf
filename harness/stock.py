"""The stock scenarios: the battery over every volume of any target, and the Exversion
outage told as scenarios (see the incident write-up).

The plugin collects them (``harness/collect.py``) as ``fulldisk::<case>::<invariant>``
and ``fulldisk::incident::<story>``, only the incident stories whose battery cases the
target can feed. Arrange (fill the disk), act (log in, download, browse), assert
(invariants): each story names the symptom it would have caught.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest

from .battery import Case, Outcome

F = TypeVar("F", bound=Callable[..., None])
OutcomeOf = Callable[[str], Outcome]
Record = Callable[..., None]


def check(outcome: Outcome, invariant: str) -> None:
    """Fail the test with the verdict's summary and evidence when it failed; skip it, with
    the missing evidence as the reason, when it was not judged (JUnit shows a skip)."""
    from .report import verdict_text

    v = outcome.verdict(invariant)
    if not v.judged:
        pytest.skip(f"{invariant} not judged: {v.reason or v.summary}")
    if not v.passed:
        pytest.fail(verdict_text(v.to_dict()), pytrace=False)


def needs(case: str, *invariants: str) -> Callable[[F], F]:
    """Declare the battery case (and its invariants) a story reads; without them, the
    story is not collected for a target."""
    def mark(fn: F) -> F:
        fn.fulldisk_needs = (*getattr(fn, "fulldisk_needs", ()),  # type: ignore[attr-defined]
                             (case, invariants))
        return fn
    return mark


def battery(fulldisk_battery_case: tuple[Case, str], fulldisk_battery_outcome: Outcome,
            fulldisk_record_outcome: Record) -> None:
    """One invariant of one battery case: steady, fill to the last byte, act, free, recover."""
    _, invariant = fulldisk_battery_case
    fulldisk_record_outcome(fulldisk_battery_outcome, invariant)
    check(fulldisk_battery_outcome, invariant)


@needs("downloads-fill-shared-disk", "core_isolation", "recovery")
def logins_stop_sticking_when_downloads_fill_the_shared_disk(
        fulldisk_outcome_of: OutcomeOf, fulldisk_record_outcome: Record) -> None:
    """Downloads pile up on the one disk the whole site lives on; then logins must still
    work (the app keeps a reserve), not silently stop sticking."""
    outcome = fulldisk_outcome_of("downloads-fill-shared-disk")
    fulldisk_record_outcome(outcome)
    check(outcome, "core_isolation")
    check(outcome, "recovery")


@needs("sessions", "no_silent_write_loss", "errors_surface")
def login_on_a_full_session_disk_is_refused_not_lost(
        fulldisk_outcome_of: OutcomeOf, fulldisk_record_outcome: Record) -> None:
    """"I logged in, only it didn't take. No errors": the session file could not be
    written. The login must fail loudly, or the next page must show the user logged in."""
    outcome = fulldisk_outcome_of("sessions")
    fulldisk_record_outcome(outcome, "no_silent_write_loss")
    check(outcome, "no_silent_write_loss")
    check(outcome, "errors_surface")


@needs("applogs", "errors_surface", "log_integrity")
def errors_surface_while_the_log_disk_is_full(
        fulldisk_outcome_of: OutcomeOf, fulldisk_record_outcome: Record) -> None:
    """"The logs were not updating ... cut off midline ... I was flying blind": with the
    log disk full, some sink an operator can read must still name the cause."""
    outcome = fulldisk_outcome_of("applogs")
    fulldisk_record_outcome(outcome, "errors_surface")
    check(outcome, "errors_surface")
    check(outcome, "log_integrity")


@needs("cleanup-under-load", "cleanup_keeps_up")
def cleanup_keeps_up_with_sustained_downloads(
        fulldisk_outcome_of: OutcomeOf, fulldisk_record_outcome: Record) -> None:
    """"We weren't clearing out downloads often enough": the cleaner must keep usage
    under the ceiling while downloads keep arriving."""
    outcome = fulldisk_outcome_of("cleanup-under-load")
    fulldisk_record_outcome(outcome)
    check(outcome, "cleanup_keeps_up")


@needs("cache", "recovery")
def cache_is_not_poisoned_after_space_returns(
        fulldisk_outcome_of: OutcomeOf, fulldisk_record_outcome: Record) -> None:
    """Clearing the cache "fixed" it for a while: a cache entry cut short by the full
    disk must not be served once space is back."""
    outcome = fulldisk_outcome_of("cache")
    fulldisk_record_outcome(outcome, "recovery")
    check(outcome, "recovery")


@needs("counter", "counter_accuracy")
def download_counter_counts_downloads_served(
        fulldisk_outcome_of: OutcomeOf, fulldisk_record_outcome: Record) -> None:
    """"There was a bug in it, which was why we didn't notice": the counter must move by
    exactly the downloads actually served."""
    outcome = fulldisk_outcome_of("counter")
    fulldisk_record_outcome(outcome)
    check(outcome, "counter_accuracy")


@needs("sessions", "health_truthful")
def health_tells_the_truth_while_a_disk_is_full(
        fulldisk_outcome_of: OutcomeOf, fulldisk_record_outcome: Record) -> None:
    """The site was dying and nothing said so: /health must say degraded while full."""
    outcome = fulldisk_outcome_of("sessions")
    fulldisk_record_outcome(outcome, "health_truthful")
    check(outcome, "health_truthful")


INCIDENT: tuple[Callable[..., None], ...] = (
    logins_stop_sticking_when_downloads_fill_the_shared_disk,
    login_on_a_full_session_disk_is_refused_not_lost,
    errors_surface_while_the_log_disk_is_full,
    cleanup_keeps_up_with_sustained_downloads,
    cache_is_not_poisoned_after_space_returns,
    download_counter_counts_downloads_served,
    health_tells_the_truth_while_a_disk_is_full,
)
"""The stories, in the order the outage told them."""
