"""Opt-outs and inbound texts: what patients told the clinic's number and links."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reminders.lifecycle import MessageKind, ReminderStatus
from reminders.store.schema import (
    ENROLLMENTS,
    INBOUND,
    OPT_OUTS,
    REMINDERS,
    among,
    upsert,
)

#: One statement for the send-time check, built once (it runs before every provider call).
_OPTED_OUT: Final = sa.select(OPT_OUTS.c.opted_out).where(
    OPT_OUTS.c.channel == sa.bindparam("channel"),
    OPT_OUTS.c.address == sa.bindparam("address"),
    OPT_OUTS.c.opted_out,
)


class ContactQueries:
    """Opt-outs and inbound texts, inside one transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def opted_out(self, channel: str, addresses: Iterable[str]) -> set[str]:
        """Which of ``addresses`` are opted out of ``channel``."""
        wanted = sorted(set(addresses))
        result: set[str] = set()
        for these in among(self.conn, OPT_OUTS.c.address, wanted):
            rows = self.conn.execute(
                sa.select(OPT_OUTS.c.address).where(
                    OPT_OUTS.c.channel == channel,
                    these,
                    OPT_OUTS.c.opted_out,
                )
            )
            result.update(r.address for r in rows)
        return result

    def is_opted_out(self, channel: str, address: str) -> bool:
        """Whether ``address`` is opted out of ``channel`` (one primary-key lookup)."""
        found = self.conn.execute(_OPTED_OUT, {"channel": channel, "address": address}).first()
        return found is not None

    def opt_out(
        self, channel: str, address: str, now: datetime, *, source: str, opted_out: bool = True
    ) -> int:
        """Record that ``address`` opted out of (or back into) ``channel``.

        Opting out suppresses that address's pending reminders on the channel;
        opting back in returns its suppressed, unexpired reminders to ``planned``.
        Returns how many reminders changed.
        """
        # One upsert: two webhooks for the same number at once cannot both insert.
        change = {"opted_out": opted_out, "source": source, "changed_at": now}
        insert = upsert(self.conn, OPT_OUTS).values(channel=channel, address=address, **change)
        self.conn.execute(
            insert.on_conflict_do_update(index_elements=["channel", "address"], set_=change)
        )
        e, r = ENROLLMENTS.c, REMINDERS.c
        column = e.phone if channel == "sms" else e.email
        patients = sa.select(e.patient_id).where(column == address)
        if opted_out:
            stmt = (
                REMINDERS.update()
                .where(r.status == ReminderStatus.PLANNED)
                .values(status=ReminderStatus.SUPPRESSED, updated_at=now)
            )
        else:
            # Future reminders resume; those that fell due while opted out stay suppressed.
            stmt = (
                REMINDERS.update()
                .where(r.status == ReminderStatus.SUPPRESSED, r.due_at > now)
                .values(status=ReminderStatus.PLANNED, updated_at=now)
            )
        return self.conn.execute(
            stmt.where(
                r.channel == channel,
                r.patient_id.in_(patients),
                # Notices about the patient go to the care team, not to this address.
                r.kind != MessageKind.NOTICE,
            )
        ).rowcount

    def patients_with(self, channel: str, address: str) -> list[str]:
        """Ids of enrollments reached at ``address`` on ``channel``."""
        column = ENROLLMENTS.c.phone if channel == "sms" else ENROLLMENTS.c.email
        rows = self.conn.execute(
            sa.select(ENROLLMENTS.c.patient_id)
            .where(column == address)
            .order_by(ENROLLMENTS.c.patient_id)
        )
        return [row.patient_id for row in rows]

    def record_inbound(
        self, sender: str, body: str, kind: str, now: datetime, *, provider_id: str
    ) -> tuple[int, list[str]] | None:
        """Store an inbound text; returns (id, patient ids), or None if ``provider_id`` (the
        MessageSid) was stored before: a webhook delivered twice is handled once.

        One ``INSERT ... ON CONFLICT DO NOTHING``: two deliveries of the same text at once
        cannot both be stored (a look-up first would let both through to the insert).
        """
        patients = self.patients_with("sms", sender)
        row = {
            "at": now,
            "sender": sender,
            "body": body,
            "kind": kind,
            "provider_id": provider_id,
            "patient_ids": ",".join(patients),
        }
        insert = upsert(self.conn, INBOUND).values(row)
        stored = self.conn.execute(
            insert.on_conflict_do_nothing(index_elements=["provider_id"]).returning(INBOUND.c.id)
        ).scalar_one_or_none()
        return None if stored is None else (stored, patients)

    def mark_forwarded(self, inbound_id: int) -> None:
        """Note that an inbound text reached the coordinator."""
        self.conn.execute(INBOUND.update().where(INBOUND.c.id == inbound_id).values(forwarded=True))
