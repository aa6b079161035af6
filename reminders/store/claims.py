"""The claim's SQL, written out per dialect and built once.

PostgreSQL locks, leases and reads a batch in one statement (``WITH due AS (SELECT ...
FOR UPDATE SKIP LOCKED), leased AS (UPDATE ... RETURNING) SELECT ...``, as River claims);
SQLite, which has no data-modifying ``WITH``, leases with ``UPDATE ... RETURNING id``
(3.35+) and reads the batch by one JSON array of ids. No list of bound parameters is
compiled per call. Only constants and column names are formatted into the text; every
value is bound.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa

from reminders.lifecycle import AttemptOutcome, EnrollmentStatus, MessageKind, ReminderStatus
from reminders.store.schema import UTCDateTime, reached


def _batch_select(source: str, where: str, claimed: Sequence[str], recipient: Sequence[str]) -> str:
    """``SELECT`` what a claimed batch needs from ``source`` (reminders, or the rows just
    leased): its enrollment, whether anything reached the patient on the channel before,
    the text a notice forwards, and its in-doubt attempts (earliest start, digests)."""
    doubt = (
        f"FROM attempts a WHERE a.reminder_id = r.id AND a.outcome = '{AttemptOutcome.IN_DOUBT}'"
    )
    return f"""
SELECT {", ".join(f"r.{name}" for name in (*claimed, "address", "patient_id"))},
    {", ".join(f"e.{name}" for name in recipient if name != "patient_id")}, e.phone, e.email,
    NOT EXISTS (
        SELECT 1 FROM reminders earlier
        WHERE earlier.patient_id = r.patient_id AND earlier.channel = r.channel
        AND {reached("earlier.status")}
        AND earlier.kind <> '{MessageKind.NOTICE}'
    ) AS first,
    i.sender AS forwarded_sender, i.body AS forwarded_body,
    (SELECT min(a.started_at) {doubt}) AS doubt_since,
    (SELECT {{digests}} {doubt}) AS doubt_digests
FROM {source} r
LEFT JOIN enrollments e ON e.patient_id = r.patient_id
LEFT JOIN inbound_messages i ON i.id = r.inbound_id AND r.kind = '{MessageKind.NOTICE}'
WHERE {where}
ORDER BY r.not_before, r.id"""  # noqa: S608  # constants and column names; values are bound


def _due(active: str, limit: str) -> str:
    """Ids of the next due reminders in due order; ``active`` is the enrollment test,
    ``limit`` the batch size (a bound parameter, or a placeholder for a number)."""
    return f"""
SELECT r.id FROM reminders r
LEFT JOIN enrollments ON enrollments.patient_id = r.patient_id
WHERE r.status = '{ReminderStatus.PLANNED}' AND r.not_before <= :now
AND ({active} = '{EnrollmentStatus.ACTIVE}' OR r.kind <> '{MessageKind.REMINDER}')
AND (r.expires_at > :now OR r.id IN (
    SELECT reminder_id FROM attempts WHERE outcome = '{AttemptOutcome.IN_DOUBT}'))
ORDER BY r.not_before, r.id
LIMIT {limit}"""  # noqa: S608  # constants only; values are bound


_LEASE: Final = (
    f"UPDATE reminders SET status = '{ReminderStatus.SENDING}', lease_owner = :owner, "  # noqa: S608
    "lease_until = :lease_until, updated_at = :now"
)
_TYPES: Final = {
    "due_at": UTCDateTime,
    "expires_at": UTCDateTime,
    "doubt_since": UTCDateTime,
    "surgery_date": sa.Date,
}
#: Where the PostgreSQL claim's text takes its batch size.
_SIZE: Final = "{batch_size}"
_BINDS: Final = (
    sa.bindparam("now", type_=UTCDateTime),
    sa.bindparam("lease_until", type_=UTCDateTime),
)


@dataclass(frozen=True, slots=True)
class ClaimStatements:
    """The claim's statements for each dialect."""

    #: PostgreSQL: lock, lease and read a batch in one statement (one round trip), its
    #: batch size a placeholder (see :meth:`postgresql`). The rows the main query reads of
    #: ``reminders`` come from its snapshot before the lease.
    postgresql_text: str
    #: SQLite: lease and return the ids (the write transaction's lock keeps others out) ...
    sqlite_lease: sa.TextClause
    #: ... then read the batch, its ids one JSON array (no list of bound parameters).
    sqlite_read: sa.TextualSelect

    @classmethod
    def build(cls, claimed: Sequence[str], recipient: Sequence[str]) -> ClaimStatements:
        """The statements reading ``claimed`` columns of reminders and ``recipient`` ones of
        enrollments (besides the ids, addresses, flags and in-doubt attempts)."""
        pg_read = _batch_select("leased", "true", claimed, recipient)
        sqlite_read = _batch_select(
            "reminders", "r.id IN (SELECT value FROM json_each(:ids))", claimed, recipient
        )
        return cls(
            postgresql_text=(
                f"WITH due AS ({_due('enrollments.status', _SIZE)} FOR UPDATE OF r SKIP LOCKED),\n"
                f"leased AS ({_LEASE} FROM due WHERE reminders.id = due.id RETURNING reminders.*)\n"
                + pg_read.replace("{digests}", "string_agg(a.body_digest, ',')")
            ),
            # The unary + hides the index on enrollments.status (see schema.active).
            sqlite_lease=sa.text(
                f"{_LEASE} WHERE id IN ({_due('+enrollments.status', ':limit')}) RETURNING id"
            ).bindparams(*_BINDS),
            sqlite_read=sa.text(
                sqlite_read.replace("{digests}", "group_concat(a.body_digest, ',')")
            ).columns(**_TYPES),
        )

    def postgresql(self, limit: int) -> sa.TextualSelect:
        """The PostgreSQL claim of at most ``limit`` reminders, built once per batch size.

        The size is written into the text as a number, not bound: the claim runs on a
        generic plan (see ``claim_due``), and a generic plan takes a bound ``LIMIT`` for a
        tenth of the table (a merge join over every reminder, a thousand times slower).
        """
        return _postgresql(self.postgresql_text, limit)


@functools.lru_cache(maxsize=8, typed=True)
def _postgresql(text: str, limit: int) -> sa.TextualSelect:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"a claim's batch size is a positive int, not {limit!r}")
    return sa.text(text.replace(_SIZE, str(limit))).bindparams(*_BINDS).columns(**_TYPES)
