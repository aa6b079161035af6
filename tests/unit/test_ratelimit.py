"""The token bucket, on a simulated clock."""

from __future__ import annotations

import threading

import pytest

from reminders.ratelimit import TokenBucket


class FakeClock:
    """A monotonic clock that only moves when something sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def time(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_one_per_second_spaces_acquisitions_a_second_apart() -> None:
    """At rate 1 the first message goes at once and each next one waits a further second."""
    clock = FakeClock()
    bucket = TokenBucket(1.0, clock=clock.time, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(4)]
    assert waits == [0.0, 1.0, 1.0, 1.0]
    assert clock.now == pytest.approx(3.0)


def test_rate_is_messages_per_second() -> None:
    """At rate 5, ten acquisitions take 1.8 simulated seconds (nine gaps of 0.2 s)."""
    clock = FakeClock()
    bucket = TokenBucket(5.0, clock=clock.time, sleep=clock.sleep)
    for _ in range(10):
        bucket.acquire()
    assert clock.now == pytest.approx(1.8)


def test_idle_time_refills_up_to_the_burst() -> None:
    """After an idle spell only ``burst`` messages go at once; the rest are spaced again."""
    clock = FakeClock()
    bucket = TokenBucket(2.0, burst=3, clock=clock.time, sleep=clock.sleep)
    clock.now = 100.0
    assert [bucket.acquire() for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]


def test_zero_turns_the_limit_off() -> None:
    """Rate 0 never waits."""
    clock = FakeClock()
    bucket = TokenBucket(0, clock=clock.time, sleep=clock.sleep)
    assert all(bucket.acquire() == 0.0 for _ in range(1000))
    assert clock.now == 0.0


def test_negative_rate_is_rejected() -> None:
    """A negative rate is a configuration error."""
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(-1)
