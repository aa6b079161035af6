"""Delivery attempts: written before the provider is called, closed with their outcome after."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reminders.lifecycle import AttemptOutcome, Transition
from reminders.store.schema import ATTEMPTS, REMINDERS, among


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
        return self.begin_many([(reminder_id, number, body_digest)], owner, now)[0]

    def begin_many(
        self, attempts: Sequence[tuple[int, int, str | None]], owner: str, now: datetime
    ) -> list[int]:
        """Record attempts (reminder id, number, body digest) before the provider is called,
        one ``executemany`` per table; returns their ids in the same order."""
        if not attempts:
            return []
        self.conn.execute(
            _COUNT, [{"b_id": rid, "b_number": n, "b_now": now} for rid, n, _ in attempts]
        )
        rows = [
            {
                "reminder_id": rid,
                "number": n,
                "owner": owner,
                "started_at": now,
                "outcome": AttemptOutcome.PENDING,
                "body_digest": digest,
            }
            for rid, n, digest in attempts
        ]
        return [row[0] for row in self.conn.execute(_BEGIN, rows)]

    def finish(self, attempt_id: int, t: Transition, now: datetime) -> None:
        """Close an attempt with the outcome (provider id, error) of transition ``t``."""
        self.finish_many([(attempt_id, t, now)])

    def finish_many(self, outcomes: Sequence[tuple[int, Transition, datetime]]) -> None:
        """Close attempts (id, transition, when) with their outcomes, one ``executemany``."""
        if outcomes:
            self.conn.execute(
                _FINISH,
                [
                    {
                        "b_id": attempt_id,
                        "b_finished_at": now,
                        "b_outcome": t.attempt,
                        "b_provider_id": t.provider_id,
                        "b_error_code": t.error_code,
                        "b_error": t.error,
                    }
                    for attempt_id, t, now in outcomes
                ],
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
        for ids in among(self.conn, ATTEMPTS.c.reminder_id, reminder_ids):
            marked += self.conn.execute(
                ATTEMPTS.update()
                .where(
                    ids,
                    ATTEMPTS.c.outcome == AttemptOutcome.PENDING,
                )
                .values(outcome=AttemptOutcome.IN_DOUBT, finished_at=now, error=reason)
            ).rowcount
        return marked

    def in_flight(self) -> sa.Select[tuple[int]]:
        """Ids of reminders with an attempt still waiting for the provider's answer."""
        return sa.select(ATTEMPTS.c.reminder_id).where(ATTEMPTS.c.outcome == AttemptOutcome.PENDING)


# Built once: a batch's attempts run these with a list of parameter sets (executemany).
_COUNT: Final = (
    REMINDERS.update()
    .where(REMINDERS.c.id == sa.bindparam("b_id"))
    .values(attempts=sa.bindparam("b_number"), updated_at=sa.bindparam("b_now"))
)
_BEGIN: Final = ATTEMPTS.insert().returning(ATTEMPTS.c.id, sort_by_parameter_order=True)
_FINISH: Final = (
    ATTEMPTS.update()
    .where(ATTEMPTS.c.id == sa.bindparam("b_id"))
    .values(
        {
            name: sa.bindparam(f"b_{name}")
            for name in ("finished_at", "outcome", "provider_id", "error_code", "error")
        }
    )
)
