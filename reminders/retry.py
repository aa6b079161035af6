"""Retry policy: exponential backoff with full jitter, capped, inside the expiry window (pure)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeAlias

#: The source of jitter (seeded in tests and the demo).
Rng: TypeAlias = random.Random


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to try again after a transient failure."""

    #: Delay ceiling of the first retry.
    base: timedelta = timedelta(seconds=30)
    #: No delay is longer than this.
    cap: timedelta = timedelta(hours=1)

    def delay(
        self, attempt: int, rng: random.Random, retry_after: float | None = None
    ) -> timedelta:
        """Delay before retry number ``attempt`` (1-based): ``U(0, base * 2**(attempt-1))``, capped.

        A provider's ``Retry-After`` is a floor: we never come back sooner than asked.
        """
        # In float seconds: a timedelta times 2**(attempt-1) overflows from attempt 43 on,
        # and a long outage inside a week-long expiry reaches hundreds of attempts.
        doubled = self.base.total_seconds() * 2.0 ** min(max(attempt - 1, 0), 1000)
        ceiling = min(self.cap.total_seconds(), doubled)
        jittered = timedelta(seconds=rng.uniform(0, ceiling))
        if retry_after is not None:
            jittered = max(jittered, timedelta(seconds=retry_after))
        return jittered

    def next_try(
        self,
        now: datetime,
        attempt: int,
        expires_at: datetime,
        rng: random.Random,
        retry_after: float | None = None,
    ) -> datetime | None:
        """When to try again, or ``None`` when that would be at or past expiry."""
        when = now + self.delay(attempt, rng, retry_after)
        return when if when < expires_at else None
