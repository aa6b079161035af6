"""The retry policy: exponential backoff with full jitter, capped, Retry-After as a floor, inside expiry."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from reminders.retry import RetryPolicy

NOW = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
POLICY = RetryPolicy(base=timedelta(seconds=30), cap=timedelta(hours=1))


def draw(seed: int) -> float:
    """The first ``random()`` of a generator seeded with ``seed``: the jitter's fraction."""
    return random.Random(seed).random()


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_delay_is_the_jitter_fraction_of_a_ceiling_that_doubles_per_attempt(
    attempt: int, seed: int
) -> None:
    """Retry ``n`` waits ``U(0, 30 s * 2**(n-1))``: the seeded draw times a ceiling that doubles.

    Catches: a ceiling that does not double (or doubles from the wrong attempt), or a jitter
    that is not a uniform fraction of the whole ceiling.
    """
    ceiling = 30.0 * 2 ** (attempt - 1)
    delay = POLICY.delay(attempt, random.Random(seed))
    assert delay.total_seconds() == pytest.approx(ceiling * draw(seed))


@pytest.mark.parametrize("attempt", [1, 3, 6])
def test_full_jitter_spreads_over_the_whole_range_from_zero_to_the_ceiling(attempt: int) -> None:
    """Delays never leave ``[0, ceiling]`` and fill it: some in its lowest tenth, some in its top tenth.

    Catches: no jitter (every delay the ceiling: retries of an outage arrive together) or
    "equal jitter" (never below half the ceiling).
    """
    ceiling = 30.0 * 2 ** (attempt - 1)
    rng = random.Random(8)
    delays = [POLICY.delay(attempt, rng).total_seconds() for _ in range(500)]
    assert all(0 <= d <= ceiling for d in delays)
    assert any(d < 0.1 * ceiling for d in delays)
    assert any(d > 0.9 * ceiling for d in delays)
    assert len(set(delays)) > 400


def test_the_cap_bounds_every_delay() -> None:
    """From the attempt whose ceiling would pass the 1-hour cap on, the ceiling is the cap.

    Catches: no cap (attempt 20 would wait up to 182 days) or a cap applied after the jitter
    (every late retry exactly one hour apart).
    """
    for attempt in (8, 9, 20):  # 30 s * 2**7 = 3840 s > 3600 s
        delay = POLICY.delay(attempt, random.Random(5))
        assert delay.total_seconds() == pytest.approx(3600.0 * draw(5))
    rng = random.Random(9)
    delays = [POLICY.delay(30, rng) for _ in range(300)]
    assert max(delays) <= timedelta(hours=1)
    assert len(set(delays)) > 250


@pytest.mark.parametrize("attempt", [42, 43, 44, 100, 500, 10_000])
def test_a_long_outage_still_gets_a_delay_within_the_cap(attempt: int) -> None:
    """Attempt numbers in the hundreds (retries up to an hour apart inside a week-long expiry) get a capped delay.

    Catches: the ceiling computed as ``base * 2**(n-1)`` in timedelta arithmetic, which overflows
    from attempt 43 on: the retry then fails with OverflowError instead of being planned.
    """
    delay = POLICY.delay(attempt, random.Random(5))
    assert delay.total_seconds() == pytest.approx(3600.0 * draw(5))
    assert POLICY.next_try(NOW, attempt, NOW + timedelta(days=7), random.Random(5)) == NOW + delay


def test_retry_after_is_a_floor_not_a_replacement() -> None:
    """A provider's Retry-After is the least delay; a longer jittered delay is kept.

    Catches: Retry-After ignored (retrying sooner than the provider asked) or used instead of
    the backoff (every rate-limited retry at the same instant).
    """
    assert POLICY.delay(1, random.Random(4), retry_after=120) == timedelta(seconds=120)
    jittered = POLICY.delay(6, random.Random(4))  # ceiling 960 s
    assert jittered > timedelta(seconds=120)
    assert POLICY.delay(6, random.Random(4), retry_after=120) == jittered


def test_next_try_is_none_at_or_after_expiry() -> None:
    """``next_try`` is now + delay while that is before expiry, and None once it would land at or past it.

    Catches: a retry planned at (or after) the expiry instant, i.e. a reminder sent too late.
    """
    delay = POLICY.delay(3, random.Random(6), retry_after=None)
    when = NOW + delay
    assert POLICY.next_try(NOW, 3, when + timedelta(microseconds=1), random.Random(6)) == when
    assert POLICY.next_try(NOW, 3, when, random.Random(6)) is None
    assert POLICY.next_try(NOW, 3, when - timedelta(seconds=1), random.Random(6)) is None
    assert POLICY.next_try(NOW, 3, NOW, random.Random(6)) is None


def test_next_try_honours_retry_after() -> None:
    """``next_try`` passes Retry-After on: the retry is at least that far away.

    Catches: next_try dropping the provider's Retry-After.
    """
    expires = NOW + timedelta(days=1)
    assert POLICY.next_try(NOW, 1, expires, random.Random(2), 600) == NOW + timedelta(minutes=10)
