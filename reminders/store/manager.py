"""What the dispatcher needs of the store, one transaction per method.

The dispatcher speaks only to this manager (as procrastinate's worker speaks only to its
job manager); every decision it makes about a claimed reminder is one
:class:`~reminders.lifecycle.Transition`, applied by :meth:`OutboxManager.settle` in one
transaction together with the attempt's outcome, any opt-out and the audit record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reminders import lifecycle
from reminders.lifecycle import Outcome, Transition
from reminders.models import Schedules
from reminders.store.checkins import Asked
from reminders.store.engine import Store, Transaction
from reminders.store.outbox import Claimed


def audit_record(now: datetime, r: Claimed, kind: str, detail: Mapping[str, Any]) -> dict[str, Any]:
    """An audit event about claimed reminder ``r``: ids, milestone and channel, never contact details."""
    return {
        "at": now,
        "kind": kind,
        "patient_id": r.patient_id,
        "reminder_id": r.id,
        "detail": {
            "milestone": r.milestone,
            "occurrence": r.occurrence,
            "channel": r.channel,
            **detail,
        },
    }


@dataclass(frozen=True, slots=True)
class Settlement:
    """One transition to apply to a claimed reminder."""

    r: Claimed
    t: Transition
    #: When it was decided.
    now: datetime
    #: The attempt it closes, if one was begun.
    attempt_id: int | None = None
    #: The check-in it opens (a question the provider accepted).
    opens: Asked | None = None


class OutboxManager:
    """The outbox as the dispatcher uses it."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def prepare(self, now: datetime) -> list[int]:
        """Recover lapsed leases and expire what is overdue; returns the expired ids.

        Lapsed leases first: an attempt a dead process left in flight becomes in doubt,
        and in-doubt reminders are reconciled rather than expired.
        """
        with self.store.write() as tx:
            tx.outbox.recover_expired_leases(now)
            expired = tx.outbox.expire_overdue(now)
            tx.audit({"at": now, "kind": "reminder.expired", "reminder_id": rid} for rid in expired)
        return expired

    def claim(self, now: datetime, owner: str, lease_until: datetime, limit: int) -> list[Claimed]:
        """Lease a batch of due reminders to ``owner``."""
        with self.store.write() as tx:
            return tx.outbox.claim_due(now, owner, lease_until, limit)

    def begin_attempt(
        self, r: Claimed, number: int, owner: str, now: datetime, body_digest: str
    ) -> int | Outcome:
        """Commit an attempt before the provider is called; returns its id (see
        :meth:`begin_attempts`)."""
        return self.begin_attempts([(r, number, body_digest)], owner, now)[0]

    def begin_attempts(
        self, batch: Sequence[tuple[Claimed, int, str]], owner: str, now: datetime
    ) -> list[int | Outcome]:
        """Commit the attempts (reminder, number, body digest) of a batch in one transaction,
        before the provider is called; returns their ids in order.

        Only a reminder ``owner`` still holds is tried: a lease that lapsed while its
        process stalled may have been given back and claimed by another instance, which
        may have sent it; it comes back as ``Outcome.DEFERRED``, untouched. The rows are
        locked, so no one takes them between this check and the attempt. (This check is
        also what lets a claim commit without waiting for its WAL flush on PostgreSQL.)

        The opt-out is read here too, not when the batch was claimed: a STOP can arrive
        while a claimed message waits for the rate limit or for reconciliation, and
        opting out only suppresses reminders still planned. An opted-out address settles
        its reminder ``suppressed`` in this same transaction: ``Outcome.SUPPRESSED``.
        """
        with self.store.write() as tx:
            held = tx.outbox.held_by(owner, [r.id for r, _, _ in batch])
            lost = {i for i, (r, _, _) in enumerate(batch) if r.id not in held}
            opted = {
                i
                for i, (r, _, _) in enumerate(batch)
                if i not in lost and r.address and tx.contacts.is_opted_out(r.channel, r.address)
            }
            self._apply(tx, [Settlement(batch[i][0], lifecycle.opted_out(), now) for i in opted])
            skipped = lost | opted
            ids = iter(
                tx.attempts.begin_many(
                    [(r.id, n, d) for i, (r, n, d) in enumerate(batch) if i not in skipped],
                    owner,
                    now,
                )
            )
            return [
                Outcome.DEFERRED if i in lost else Outcome.SUPPRESSED if i in opted else next(ids)
                for i in range(len(batch))
            ]

    def settle(
        self,
        r: Claimed,
        t: Transition,
        now: datetime,
        *,
        attempt_id: int | None = None,
        opens: Asked | None = None,
    ) -> None:
        """Apply one transition in one transaction (see :meth:`settle_many`)."""
        self.settle_many([Settlement(r, t, now, attempt_id, opens)])

    def settle_many(self, batch: Sequence[Settlement]) -> None:
        """Apply transitions in one transaction: the attempts' outcomes, in-doubt resolutions,
        the reminders' new status, opt-outs and the audit records; and when the provider
        accepted a check-in question, its check-in opens in that same transaction."""
        if not batch:
            return
        with self.store.write() as tx:
            self._apply(tx, batch)
            for s in batch:
                if s.opens is not None:
                    tx.checkins.open(s.opens)

    def sweep(self, schedules: Schedules, now: datetime) -> Counter[str]:
        """Close reply windows and re-escalate unacknowledged urgent alerts, in one transaction."""
        from reminders.alerting import sweep  # noqa: PLC0415  # alerting builds on the store

        with self.store.write() as tx:
            return sweep(tx, schedules, now)

    def _apply(self, tx: Transaction, batch: Sequence[Settlement]) -> None:
        tx.attempts.finish_many(
            [
                (s.attempt_id, s.t, s.now)
                for s in batch
                if s.attempt_id is not None and s.t.attempt is not None
            ]
        )
        for s in batch:
            if s.t.resolve is not None:
                tx.attempts.resolve_in_doubt(
                    s.r.id, s.t.resolve, s.now, provider_id=s.t.provider_id
                )
        tx.outbox.settle_many([(s.r.id, s.t, s.now) for s in batch])
        tx.audit(
            audit_record(s.now, s.r, s.t.event.kind, s.t.event.detail)
            for s in batch
            if s.t.event is not None
        )
        for s in batch:
            if s.t.opt_out and s.r.address:
                self._opt_out(tx, s.r, s.t, s.now)

    def _opt_out(self, tx: Transaction, r: Claimed, t: Transition, now: datetime) -> None:
        assert r.address is not None  # noqa: S101  # the caller checked
        source = f"provider {t.error_code}"
        changed = tx.contacts.opt_out(r.channel, r.address, now, source=source)
        # Every patient reached at that address is opted out, so each gets a record.
        tx.audit(
            {
                "at": now,
                "kind": f"opt_out.{r.channel}.on",
                "patient_id": pid,
                "reminder_id": r.id,
                "detail": {"source": source, "reminders": changed},
            }
            for pid in tx.contacts.patients_with(r.channel, r.address)
        )

    def release_owner(self, owner: str, now: datetime) -> int:
        """Give back ``owner``'s leases that have no attempt in flight (on shutdown)."""
        with self.store.write() as tx:
            return tx.outbox.release_owner(owner, now)

    def give_back(self, owner: str, now: datetime) -> tuple[int, int]:
        """Return every lease of ``owner``, those with an attempt in flight put in doubt (a tick
        that stops on a database error); returns (given back, of them in doubt)."""
        with self.store.write() as tx:
            return tx.outbox.give_back(owner, now)

    def complete(self, now: datetime) -> list[str]:
        """Mark enrollments with nothing left to send ``completed`` (a scan: housekeeping)."""
        with self.store.write() as tx:
            done = tx.enrollments.complete_finished(now)
            tx.audit({"at": now, "kind": "enrollment.completed", "patient_id": pid} for pid in done)
        return done
