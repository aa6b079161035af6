"""Copies of a milestone occurrence: advice planned again after a postponed surgery, or resent.

A reminder is keyed on (patient, protocol, milestone, occurrence, channel), and a sent
one is history that is never changed. So a copy takes an occurrence number of its own,
beyond any a protocol plans: copy ``r`` (1, 2, ...) of occurrence ``n`` is
``n + COPY_STRIDE * r``. The key, the unique index, the claim and the timeline stay as
they are; templates see the occurrence the copy repeats (``base_occurrence``).

Two things make copies, both decided here by pure functions:

- a sync, when the surgery date moved after advice went out (:func:`follow`);
- a coordinator, on purpose (``reminders resend``: :func:`resend_slot`), audited as
  :data:`reminders.store.enrollments.RESENT`; the sync leaves those alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from reminders.lifecycle import ACCEPTED, PENDING, REPLANNABLE, ReminderStatus
from reminders.models import Milestone, SendWindow
from reminders.planning import PlanSlot, next_window_open
from reminders.store import ReminderKey, StoredReminder

#: Occurrence numbers of copies: copy ``r`` of occurrence ``n`` is ``n + COPY_STRIDE * r``.
#: A protocol plans far fewer occurrences of a milestone (weekly for 19 years would be 1000).
COPY_STRIDE: Final = 1000


def copy_occurrence(occurrence: int, round_: int) -> int:
    """The occurrence number of copy ``round_`` (1, 2, ...) of ``occurrence``'s original."""
    return base_occurrence(occurrence) + COPY_STRIDE * round_


def base_occurrence(occurrence: int) -> int:
    """The protocol occurrence a stored occurrence number stands for (a copy's original)."""
    return (occurrence - 1) % COPY_STRIDE + 1


def copy_round(occurrence: int) -> int:
    """0 for an occurrence the protocol plans, else which copy of it this is."""
    return (occurrence - 1) // COPY_STRIDE


def base_key(key: ReminderKey) -> ReminderKey:
    """The key of the original a reminder is (or repeats)."""
    pid, protocol, milestone, occurrence, channel = key
    return (pid, protocol, milestone, base_occurrence(occurrence), channel)


def chains(rows: Iterable[StoredReminder]) -> dict[ReminderKey, list[StoredReminder]]:
    """Stored reminders grouped by their original's key, original first, then copies in order."""
    found: dict[ReminderKey, list[StoredReminder]] = {}
    for row in sorted(rows, key=lambda r: r.key[3]):
        found.setdefault(base_key(row.key), []).append(row)
    return found


@dataclass(frozen=True, slots=True)
class Step:
    """What a sync does with one planned occurrence on one channel (nothing, when all empty)."""

    #: Nothing is stored yet: insert the planned reminder.
    insert: bool = False
    #: The stored reminder that takes the new schedule (if it differs).
    replan: StoredReminder | None = None
    #: Plan the advice again, as a copy with this occurrence number.
    again: int | None = None
    #: Pending copies that are no longer needed, to cancel.
    cancel: tuple[int, ...] = ()


def follow(rows: list[StoredReminder], surgery: date, zone: ZoneInfo) -> Step:
    """What a sync does with the stored reminders of one planned occurrence on one channel.

    ``rows`` are the original and its copies, in order (:func:`chains`); ``surgery`` is
    the patient's surgery date now, read in ``zone``. The latest row the sync planned
    decides:

    - not sent (planned, expired or cancelled): it takes the new schedule;
    - sent, but on a day before the surgery date (the operation was postponed after it
      went out): the advice is planned again for the new date as a new copy, and what
      was sent stays in the history;
    - failed, suppressed or in flight: history, left alone.

    When the patient already received the advice after the surgery date, nothing is
    planned again, and copies still pending for another date are cancelled (the date
    moved back). Copies a coordinator resent on purpose are left alone, but keep their
    numbers.
    """
    chain = [r for r in rows if not r.resent]
    if not chain:
        return Step(insert=True)
    received = [r for r in chain if r.status in ACCEPTED]
    if any(not _before(r, surgery, zone) for r in received):
        return Step(cancel=tuple(r.id for r in chain[1:] if r.status in PENDING))
    latest = chain[-1]
    if latest.status in REPLANNABLE:
        return Step(replan=latest)
    if latest.status in ACCEPTED:
        return Step(again=copy_occurrence(latest.key[3], copy_round(rows[-1].key[3]) + 1))
    return Step()


def _before(row: StoredReminder, surgery: date, zone: ZoneInfo) -> bool:
    """Whether a received reminder reached the patient on a day before ``surgery``."""
    when = row.sent_at or row.due_at
    return when.astimezone(zone).date() < surgery


def planned_again(now: datetime, pid: str, slot: PlanSlot, occurrence: int) -> dict[str, Any]:
    """The audit record of advice planned again as copy ``occurrence`` of ``slot``."""
    return {
        "at": now,
        "kind": "reminder.planned_again",
        "patient_id": pid,
        "detail": {
            "milestone": slot[1],
            "occurrence": occurrence,
            "repeats": slot[2],
            "channel": slot[3],
            "reason": "sent before the surgery date",
        },
    }


def resend_slot(
    original: StoredReminder,
    rows: list[StoredReminder],
    milestone: Milestone,
    *,
    now: datetime,
    zone: ZoneInfo,
    window: SendWindow,
) -> PlanSlot:
    """The copy ``reminders resend`` plans of ``original``: the next free number, due now.

    ``rows`` are the original and every copy of it (:func:`chains`). Due now, or when the
    send window next opens in the patient's zone, and it expires as the milestone does.
    """
    due = next_window_open(now, zone, window)
    _, protocol, milestone_id, occurrence, channel = original.key
    return (
        protocol,
        milestone_id,
        copy_occurrence(occurrence, copy_round(rows[-1].key[3]) + 1),
        channel,
        milestone.template,
        due,
        due + milestone.expires_after,
        ReminderStatus.PLANNED,
    )
