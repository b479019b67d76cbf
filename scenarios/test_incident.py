"""The Exversion outage, told as scenarios (see the incident write-up).

Arrange (fill the disk), act (log in, download, browse), assert (invariants). Each
scenario names the symptom from the story it would have caught.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness import Outcome, Target, check

pytestmark = [pytest.mark.chaos, pytest.mark.docker]

Run = Callable[[str], Outcome]


def _needs(target: Target, *volumes: str) -> None:
    missing = [v for v in volumes if v not in target.volumes]
    if missing:
        pytest.skip(f"target {target.name!r} has no volume {', '.join(missing)}; "
                    "the stock battery covers it generically")


def test_logins_stop_sticking_when_downloads_fill_the_shared_disk(
        outcome_of: Run, record_outcome, fulldisk_target: Target) -> None:  # type: ignore[no-untyped-def]
    """Downloads pile up on the one disk the whole site lives on; then logins must still
    work (the app keeps a reserve), not silently stop sticking."""
    outcome = outcome_of("downloads-fill-shared-disk")
    record_outcome(outcome)
    check(outcome, "core_isolation")
    check(outcome, "recovery")


def test_login_on_a_full_session_disk_is_refused_not_lost(
        outcome_of: Run, record_outcome, fulldisk_target: Target) -> None:  # type: ignore[no-untyped-def]
    """"I logged in, only it didn't take. No errors": the session file could not be
    written. The login must fail loudly, or the next page must show the user logged in."""
    _needs(fulldisk_target, "sessions")
    outcome = outcome_of("sessions")
    record_outcome(outcome, "no_silent_write_loss")
    check(outcome, "no_silent_write_loss")
    check(outcome, "errors_surface")


def test_errors_surface_while_the_log_disk_is_full(
        outcome_of: Run, record_outcome, fulldisk_target: Target) -> None:  # type: ignore[no-untyped-def]
    """"The logs were not updating ... cut off midline ... I was flying blind": with the
    log disk full, some sink an operator can read must still name the cause."""
    _needs(fulldisk_target, "applogs")
    outcome = outcome_of("applogs")
    record_outcome(outcome, "errors_surface")
    check(outcome, "errors_surface")
    check(outcome, "log_integrity")


def test_cleanup_keeps_up_with_sustained_downloads(
        outcome_of: Run, record_outcome) -> None:  # type: ignore[no-untyped-def]
    """"We weren't clearing out downloads often enough": the cleaner must keep usage
    under the ceiling while downloads keep arriving."""
    outcome = outcome_of("cleanup-under-load")
    record_outcome(outcome)
    check(outcome, "cleanup_keeps_up")


def test_cache_is_not_poisoned_after_space_returns(
        outcome_of: Run, record_outcome, fulldisk_target: Target) -> None:  # type: ignore[no-untyped-def]
    """Clearing the cache "fixed" it for a while: a cache entry cut short by the full
    disk must not be served once space is back."""
    _needs(fulldisk_target, "cache")
    outcome = outcome_of("cache")
    record_outcome(outcome, "recovery")
    check(outcome, "recovery")


def test_download_counter_counts_downloads_served(
        outcome_of: Run, record_outcome) -> None:  # type: ignore[no-untyped-def]
    """"There was a bug in it, which was why we didn't notice": the counter must move by
    exactly the downloads actually served."""
    outcome = outcome_of("counter")
    record_outcome(outcome)
    check(outcome, "counter_accuracy")


def test_health_tells_the_truth_while_a_disk_is_full(
        outcome_of: Run, record_outcome, fulldisk_target: Target) -> None:  # type: ignore[no-untyped-def]
    """The site was dying and nothing said so: /health must say degraded while full."""
    _needs(fulldisk_target, "sessions")
    outcome = outcome_of("sessions")
    record_outcome(outcome, "health_truthful")
    check(outcome, "health_truthful")
