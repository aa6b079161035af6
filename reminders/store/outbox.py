"""The outbox's own queries: expire, claim with a lease, give back, settle, status callbacks.

Claims lock rows with ``FOR UPDATE SKIP LOCKED`` where the database has it
(PostgreSQL), so concurrent dispatchers never claim the same row; on SQLite the write
transaction's lock does the same job.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reminders.lifecycle import (
    ACCEPTED,
    PENDING,
    UNSETTLED,
    AttemptOutcome,
    CallbackDecision,
    MessageKind,
    ReminderStatus,
    Transition,
    status_callback,
)
from reminders.models import Recipient
from reminders.store.attempts import AttemptQueries
from reminders.store.claims import ClaimStatements
from reminders.store.schema import (
    ATTEMPTS,
    ENROLLMENTS,
    KEY_COLUMNS,
    REMINDERS,
    among,
    in_doubt_ids,
    upsert,
)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message queued now rather than planned: a response to a patient, a notice to staff.

    Its key (patient, protocol, milestone, occurrence, channel) makes it exactly once: the
    ``milestone`` names what it is (``response:help``, ``notice:alert:12:0``) and the
    ``occurrence`` what it answers (the inbound text, the round of an alert).
    """

    patient_id: str
    protocol: str
    milestone: str
    occurrence: int
    channel: str
    #: Template name, with its folder (``responses/help``, ``notices/alert-urgent``).
    template: str
    kind: MessageKind
    #: How long it may wait for a provider before it is pointless.
    expires_after: timedelta
    #: A care-team address; None: the patient's own.
    address: str | None = None
    alert_id: int | None = None
    inbound_id: int | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A reminder leased to one dispatcher, with whom it is for and where to send it."""

    #: Row id (the number status callbacks and unsubscribe links name).
    id: int
    #: Protocol id.
    protocol: str
    #: Milestone id.
    milestone: str
    #: Occurrence number.
    occurrence: int
    #: ``sms`` or ``email``.
    channel: str
    #: Template name.
    template: str
    #: Planned due time.
    due_at: datetime
    #: Never send after this.
    expires_at: datetime
    #: Attempts made before this one.
    attempts: int
    #: E.164 number or email address for the channel, if the patient has one.
    address: str | None
    #: The patient, as the templates see them.
    recipient: Recipient
    #: Start of the earliest attempt that may have reached the provider, unresolved.
    in_doubt_since: datetime | None = None
    #: Digests of the texts those in-doubt attempts sent.
    in_doubt_digests: frozenset[str] = frozenset()
    #: No other reminder of this patient on this channel was sent or delivered: this may
    #: be the first message the patient receives there, so it says how to opt out.
    first: bool = False
    #: A planned reminder, a response to the patient, or a notice to the care team.
    kind: str = MessageKind.REMINDER
    #: The alert a notice is about.
    alert_id: int | None = None
    #: The inbound text a response answers or a notice forwards.
    inbound_id: int | None = None
    #: For a notice forwarding a text: the sender (E.164) and the text.
    forwarded: tuple[str, str] | None = None

    @property
    def patient_id(self) -> str:
        """The patient's id."""
        return self.recipient.patient_id


class OutboxQueries:
    """Reminders as the dispatcher and the webhooks see them, inside one transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def expire_overdue(self, now: datetime) -> list[int]:
        """Mark pending reminders past their expiry ``expired``; returns their ids."""
        c = REMINDERS.c
        # A reminder with an in-doubt attempt may already have been delivered: it is
        # reconciled (claim_due offers it past expiry), never just marked expired.
        ids = [
            r.id
            for r in self.conn.execute(
                # status = 'planned' (not IN): only the equality matches the partial due index.
                sa.select(c.id).where(
                    c.status == ReminderStatus.PLANNED,
                    c.not_before <= now,
                    c.expires_at <= now,
                    c.id.not_in(in_doubt_ids()),
                )
            )
        ]
        for these in among(self.conn, c.id, ids):
            self.conn.execute(
                _move(ReminderStatus.EXPIRED, now, lease=False).where(these, c.status.in_(PENDING))
            )
        return ids

    def queue(self, messages: Sequence[Outgoing], now: datetime) -> list[int]:
        """Queue responses and notices due now; returns the ids of those not queued before.

        ``INSERT ... ON CONFLICT DO NOTHING`` on the reminder key: a webhook retried or
        two instances handling the same text queue each message once.
        """
        ids: list[int] = []
        for m in messages:
            row = {
                "patient_id": m.patient_id,
                "protocol": m.protocol,
                "milestone": m.milestone,
                "occurrence": m.occurrence,
                "channel": m.channel,
                "template": m.template,
                "kind": m.kind,
                "address": m.address,
                "alert_id": m.alert_id,
                "inbound_id": m.inbound_id,
                "due_at": now,
                "not_before": now,
                "expires_at": now + m.expires_after,
                "status": ReminderStatus.PLANNED,
                "attempts": 0,
                "updated_at": now,
            }
            stmt = upsert(self.conn, REMINDERS).values(row)
            stored = self.conn.execute(
                stmt.on_conflict_do_nothing(index_elements=list(KEY_COLUMNS)).returning(
                    REMINDERS.c.id
                )
            ).scalar_one_or_none()
            if stored is not None:
                ids.append(stored)
        return ids

    def claim_due(
        self, now: datetime, owner: str, lease_until: datetime, limit: int
    ) -> list[Claimed]:
        """Lease up to ``limit`` due reminders of active patients to ``owner``.

        Due means planned, ``not_before`` passed and not expired, or past expiry with an
        attempt in doubt (offered once more, to be reconciled and never resent). Responses
        and notices go out whatever the patient's enrollment says.

        PostgreSQL: one statement (lock with ``SKIP LOCKED``, lease, and read what the
        batch needs). SQLite: an ``UPDATE ... RETURNING`` of the ids, then one read of
        the batch by a single JSON parameter. Both are built once per dialect, so no
        statement is constructed or compiled per call.
        """
        params = {"now": now, "owner": owner, "lease_until": lease_until}
        if self.conn.dialect.name == "postgresql":
            # Both settings last until this transaction ends, which holds the claim only:
            # - the commit need not wait for the WAL flush: a claim lost in a crash is a
            #   claim never made (the rows stay planned), since nothing is sent before
            #   begin_attempts checks the lease in a transaction that does wait, and whose
            #   flush carries this one's WAL with it;
            # - the statement (prepared by the driver from its fifth run) runs on its
            #   generic plan, not one planned again for each ``now`` (the same plan, and a
            #   third of the claim's time on the server).
            self.conn.execute(_CLAIM_SETTINGS)
            result = self.conn.execute(_CLAIM.postgresql(limit), params)
        else:
            ids = [
                row[0] for row in self.conn.execute(_CLAIM.sqlite_lease, params | {"limit": limit})
            ]
            if not ids:
                return []
            result = self.conn.execute(_CLAIM.sqlite_read, {"ids": json.dumps(ids)})
        return _claimed(result)

    def held_by(self, owner: str, reminder_ids: Sequence[int]) -> set[int]:
        """Which of ``reminder_ids`` ``owner`` still holds (``sending`` under its lease),
        locked until the transaction ends on PostgreSQL (SQLite's write lock covers it)."""
        c = REMINDERS.c
        held: set[int] = set()
        for these in among(self.conn, c.id, list(reminder_ids)):
            query = sa.select(c.id).where(
                these, c.status == ReminderStatus.SENDING, c.lease_owner == owner
            )
            if self.conn.dialect.name == "postgresql":
                query = query.with_for_update()
            held.update(self.conn.execute(query).scalars())
        return held

    def settle(self, reminder_id: int, t: Transition, now: datetime) -> None:
        """Move a leased reminder as ``t`` says and give up the lease (no-op for ``status`` None).

        Only a reminder still ``sending`` changes: one whose lease lapsed meanwhile was
        given back by another process, its attempt put in doubt for reconciliation.
        """
        self.settle_many([(reminder_id, t, now)])

    def settle_many(self, moves: Sequence[tuple[int, Transition, datetime]]) -> None:
        """:meth:`settle` each (reminder id, transition, when): one ``executemany`` per set of
        columns the transitions change (a batch of sends is one)."""
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for reminder_id, t, now in moves:
            if t.status is None:
                continue
            values: dict[str, Any] = {"status": t.status, "updated_at": now}
            if t.status in ACCEPTED:
                values.update(sent_at=now, error=None, error_code=None, provider_id=t.provider_id)
            else:
                if t.error is not None or t.attempt is not None:
                    values["error"] = t.error
                if t.error_code is not None or t.attempt is not None:
                    values["error_code"] = t.error_code
            if t.not_before is not None:
                values["not_before"] = t.not_before
            params = {f"b_{name}": value for name, value in values.items()}
            shapes.setdefault(tuple(values), []).append({"b_id": reminder_id, **params})
        for columns, rows in shapes.items():
            self.conn.execute(_settle_statement(columns), rows)

    def record_sent(self, reminder_id: int, provider_id: str, now: datetime) -> None:
        """Record a reminder as accepted by the provider, whatever its status (tests, imports)."""
        self.conn.execute(
            _move(ReminderStatus.SENT, now, provider_id=provider_id, sent_at=now).where(
                REMINDERS.c.id == reminder_id
            )
        )

    def release_owner(self, owner: str, now: datetime) -> int:
        """Give back every lease of ``owner`` that has no attempt in flight; returns how many."""
        c = REMINDERS.c
        return self.conn.execute(
            _move(ReminderStatus.PLANNED, now).where(
                c.lease_owner == owner,
                c.status == ReminderStatus.SENDING,
                c.id.not_in(AttemptQueries(self.conn).in_flight()),
            )
        ).rowcount

    def give_back(self, owner: str, now: datetime) -> tuple[int, int]:
        """Return every lease ``owner`` still holds, at once (its tick cannot go on).

        Unlike :meth:`release_owner`, a reminder whose attempt is still ``pending`` is
        given back too: the attempt is put ``in_doubt`` (the provider may have the
        message, its outcome was never recorded), so the next claim reconciles it before
        anything is sent again. Returns (reminders given back, of them in doubt).
        """
        c = REMINDERS.c
        held = [
            row.id
            for row in self.conn.execute(
                sa.select(c.id).where(c.lease_owner == owner, c.status == ReminderStatus.SENDING)
            )
        ]
        # Short: on a full disk every byte this write adds may be one too many.
        doubtful = AttemptQueries(self.conn).put_in_doubt(held, now, "outcome not recorded")
        for these in among(self.conn, c.id, held):
            self.conn.execute(
                _move(ReminderStatus.PLANNED, now).where(these, c.status == ReminderStatus.SENDING)
            )
        return len(held), doubtful

    def recover_expired_leases(self, now: datetime) -> int:
        """Return lapsed leases to ``planned``; returns how many.

        An attempt still ``pending`` under a lapsed lease means its process died
        mid-call: the provider may have the message. That attempt is marked
        ``in_doubt`` so the next claim reconciles it with the provider before any resend.
        """
        c = REMINDERS.c
        lapsed = [
            row.id
            for row in self.conn.execute(
                sa.select(c.id)
                .where(c.status == ReminderStatus.SENDING, c.lease_until < now)
                .with_for_update(skip_locked=True)
            )
        ]
        AttemptQueries(self.conn).put_in_doubt(
            lapsed, now, "lease lapsed with the attempt in flight"
        )
        for these in among(self.conn, c.id, lapsed):
            self.conn.execute(
                _move(ReminderStatus.PLANNED, now, not_before=now).where(
                    these, c.status == ReminderStatus.SENDING
                )
            )
        return len(lapsed)

    # -- webhooks -----------------------------------------------------------------------------

    def apply_status_callback(
        self,
        reminder_id: int,
        message_sid: str,
        message_status: str,
        error_code: str | None,
        now: datetime,
    ) -> CallbackDecision:
        """Apply a Twilio status callback to an SMS reminder; returns what it did.

        Only a callback about the message recorded for the reminder applies (see
        :func:`reminders.lifecycle.status_callback`); duplicates and callbacks that
        arrive out of order never move a reminder backwards (``delivered`` is not
        undone by a late ``sent``).
        """
        r, a = REMINDERS.c, ATTEMPTS.c
        row = self.conn.execute(
            sa.select(r.status, r.provider_id, r.channel)
            .where(r.id == reminder_id)
            .with_for_update()
        ).first()
        if row is None or row.channel != "sms":
            return CallbackDecision(matched=False)
        attempted: frozenset[str] = frozenset()
        if row.provider_id is None:
            attempted = frozenset(
                self.conn.execute(
                    sa.select(a.provider_id).where(
                        a.reminder_id == reminder_id, a.provider_id.is_not(None)
                    )
                ).scalars()
            )
        decision = status_callback(
            row.status, row.provider_id, attempted, message_sid, message_status
        )
        if decision.status is None:
            return decision
        values: dict[str, Any] = {
            "status": decision.status,
            "provider_id": message_sid,
            "updated_at": now,
        }
        if decision.status == ReminderStatus.FAILED:
            values.update(error_code=error_code, error=f"Twilio reported {message_status}")
        if row.status in UNSETTLED:
            values.update(sent_at=now, lease_owner=None, lease_until=None)
            AttemptQueries(self.conn).resolve_in_doubt(
                reminder_id,
                AttemptOutcome.IN_DOUBT_SENT,
                now,
                provider_id=message_sid,
                also_pending=True,
            )
        self.conn.execute(REMINDERS.update().where(r.id == reminder_id).values(**values))
        return decision

    def patient_of(self, reminder_id: int) -> str | None:
        """The patient id of a reminder, or None if there is no such reminder."""
        return self.conn.execute(
            sa.select(REMINDERS.c.patient_id).where(REMINDERS.c.id == reminder_id)
        ).scalar_one_or_none()

    def address_of(self, reminder_id: int) -> tuple[str, str] | None:
        """The channel and current address of a reminder's patient, if both exist."""
        r, e = REMINDERS.c, ENROLLMENTS.c
        row = self.conn.execute(
            sa.select(r.channel, e.phone, e.email)
            .join(ENROLLMENTS, e.patient_id == r.patient_id)
            .where(r.id == reminder_id)
        ).first()
        if row is None:
            return None
        address = row.phone if row.channel == "sms" else row.email
        return (row.channel, address) if address else None


@functools.cache
def _settle_statement(columns: tuple[str, ...]) -> Any:
    """``UPDATE`` of a leased reminder setting ``columns`` and no lease, built once per shape."""
    c = REMINDERS.c
    return (
        REMINDERS.update()
        .where(c.id == sa.bindparam("b_id"), c.status == ReminderStatus.SENDING)
        .values(
            {"lease_owner": None, "lease_until": None}
            | {name: sa.bindparam(f"b_{name}") for name in columns}
        )
    )


def _move(status: ReminderStatus, now: datetime, *, lease: bool = True, **values: Any) -> Any:
    """``UPDATE reminders SET status, updated_at, values`` (and no lease, unless ``lease`` is
    False or the values set one); the caller adds the WHERE clause."""
    unleased = {"lease_owner": None, "lease_until": None} if lease else {}
    return REMINDERS.update().values({**unleased, "status": status, "updated_at": now, **values})


#: Columns of ``reminders`` a claim reads, named as :class:`Claimed`'s fields.
_CLAIMED: Final = tuple(
    f.name for f in fields(Claimed) if f.name in REMINDERS.c and f.name != "address"
)
#: Columns of ``enrollments`` named as :class:`~reminders.models.Recipient`'s fields.
_RECIPIENT: Final = (
    "patient_id",
    "first_name",
    "last_name",
    "language",
    "timezone",
    "surgery_date",
)


#: The claim's statements, built once.
_CLAIM: Final = ClaimStatements.build(_CLAIMED, _RECIPIENT)
#: The PostgreSQL claim's transaction settings, one round trip (see ``claim_due``).
_CLAIM_SETTINGS: Final = sa.text(
    "SELECT set_config('synchronous_commit', 'off', true), "
    "set_config('plan_cache_mode', 'force_generic_plan', true)"
)


def _claimed(result: sa.CursorResult[Any]) -> list[Claimed]:
    """The claimed reminders of a claim's rows (each joined with its enrollment and its
    in-doubt attempts), the columns located once per batch rather than by name per row."""
    at = {name: i for i, name in enumerate(result.keys())}
    own = operator.itemgetter(*(at[name] for name in _CLAIMED))
    recipient = operator.itemgetter(*(at[name] for name in _RECIPIENT))
    phone, email, address, channel, kind, surgery_date, first = (
        at[name]
        for name in ("phone", "email", "address", "channel", "kind", "surgery_date", "first")
    )
    since, digests, sender, body = (
        at[name] for name in ("doubt_since", "doubt_digests", "forwarded_sender", "forwarded_body")
    )
    batch = []
    for row in result.all():
        if row[surgery_date] is None:  # a notice about a text from a number nobody enrolled
            to = Recipient(row[at["patient_id"]], "", "", "", "UTC", date(1970, 1, 1))
        else:
            to = Recipient(**dict(zip(_RECIPIENT, recipient(row), strict=True)), phone=row[phone])
        batch.append(
            Claimed(
                **dict(zip(_CLAIMED, own(row), strict=True)),
                address=row[address] or row[phone if row[channel] == "sms" else email],
                recipient=to,
                in_doubt_since=row[since],
                in_doubt_digests=frozenset(row[digests].split(","))
                if row[digests]
                else frozenset(),
                first=bool(row[first]) and row[kind] != MessageKind.NOTICE,
                forwarded=(row[sender], row[body]) if row[sender] is not None else None,
            )
        )
    return batch
