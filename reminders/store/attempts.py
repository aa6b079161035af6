"""Delivery attempts: written before the provider is called, closed with their outcome after."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reminders.lifecycle import AttemptOutcome, Transition
from reminders.store.schema import ATTEMPTS, REMINDERS, aware, in_lists, inserted_id


class AttemptQueries:
    """Attempts, inside one transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def begin(
        self,
        reminder_id: int,
        number: int,
        owner: str,
        now: datetime,
        *,
        body_digest: str | None = None,
    ) -> int:
        """Record an attempt before the provider is called; returns its id."""
        self.conn.execute(
            REMINDERS.update()
            .where(REMINDERS.c.id == reminder_id)
            .values(attempts=number, updated_at=now)
        )
        return inserted_id(
            self.conn.execute(
                ATTEMPTS.insert().values(
                    reminder_id=reminder_id,
                    number=number,
                    owner=owner,
                    started_at=now,
                    outcome=AttemptOutcome.PENDING,
                    body_digest=body_digest,
                )
            )
        )

    def finish(self, attempt_id: int, t: Transition, now: datetime) -> None:
        """Close an attempt with the outcome (provider id, error) of transition ``t``."""
        self.conn.execute(
            ATTEMPTS.update()
            .where(ATTEMPTS.c.id == attempt_id)
            .values(
                finished_at=now,
                outcome=t.attempt,
                provider_id=t.provider_id,
                error_code=t.error_code,
                error=t.error,
            )
        )

    def resolve_in_doubt(
        self,
        reminder_id: int,
        resolution: AttemptOutcome,
        now: datetime,
        *,
        provider_id: str | None = None,
        also_pending: bool = False,
    ) -> None:
        """Close a reminder's in-doubt attempts (and its pending ones, if asked) as ``resolution``."""
        a = ATTEMPTS.c
        open_outcomes = [AttemptOutcome.IN_DOUBT]
        if also_pending:
            open_outcomes.append(AttemptOutcome.PENDING)
        values: dict[str, Any] = {"outcome": resolution, "finished_at": now}
        if provider_id is not None:
            values["provider_id"] = provider_id
        self.conn.execute(
            ATTEMPTS.update()
            .where(a.reminder_id == reminder_id, a.outcome.in_(open_outcomes))
            .values(**values)
        )

    def put_in_doubt(self, reminder_ids: Sequence[int], now: datetime, reason: str) -> int:
        """Mark the pending attempts of these reminders ``in_doubt`` (their process died mid-call,
        or it could not record their outcome); returns how many."""
        marked = 0
        for chunk in in_lists(reminder_ids):
            marked += self.conn.execute(
                ATTEMPTS.update()
                .where(
                    ATTEMPTS.c.reminder_id.in_(chunk),
                    ATTEMPTS.c.outcome == AttemptOutcome.PENDING,
                )
                .values(outcome=AttemptOutcome.IN_DOUBT, finished_at=now, error=reason)
            ).rowcount
        return marked

    def in_doubt(self, reminder_ids: Sequence[int]) -> dict[int, tuple[datetime, frozenset[str]]]:
        """For each reminder with in-doubt attempts: when the earliest started, and their texts' digests."""
        doubt: dict[int, tuple[datetime, set[str]]] = {}
        a = ATTEMPTS.c
        for chunk in in_lists(reminder_ids):
            rows = self.conn.execute(
                sa.select(a.reminder_id, a.started_at, a.body_digest).where(
                    a.reminder_id.in_(chunk), a.outcome == AttemptOutcome.IN_DOUBT
                )
            )
            for row in rows:
                since, digests = doubt.get(row.reminder_id, (row.started_at, set()))
                if row.body_digest:
                    digests.add(row.body_digest)
                doubt[row.reminder_id] = (min(since, row.started_at), digests)
        return {
            rid: (aware(since) or since, frozenset(digests))
            for rid, (since, digests) in doubt.items()
        }

    def in_flight(self) -> sa.Select[tuple[int]]:
        """Ids of reminders with an attempt still waiting for the provider's answer."""
        return sa.select(ATTEMPTS.c.reminder_id).where(ATTEMPTS.c.outcome == AttemptOutcome.PENDING)
