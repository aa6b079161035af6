"""``resend``: a coordinator sends one milestone's message to a patient again, on purpose.

The message goes out as a new reminder (a copy of the occurrence, with an occurrence
number of its own: :mod:`reminders.copies`), due now, or when the send window next
opens in the patient's time zone; it expires as the milestone does, and the dispatcher
sends it like any other (opt-outs, retries, exactly once). What was sent before stays
in the history. Who asked and why is kept in the audit trail; the sync leaves the copy
alone.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape

from reminders.copies import base_key, chains, resend_slot
from reminders.lifecycle import EnrollmentStatus
from reminders.models import CHANNELS, Milestone, Schedules
from reminders.planning import PlanSlot
from reminders.store import Enrollment, StoredReminder, Transaction
from reminders.store.enrollments import RESENT

from .root import JsonOpt, NowOpt, app, err, errors, fail, out, parse_now, read_app, utc_text


@app.command()
def resend(
    ctx: typer.Context,
    patient: Annotated[str, typer.Argument(help="Patient id.")],
    milestone: Annotated[str, typer.Argument(help="Milestone id, e.g. crutches-toe-touch.")],
    by: Annotated[str, typer.Option("--by", help="Who asks for the resend (kept in the audit).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit).")],
    occurrence: Annotated[
        int, typer.Option("--occurrence", min=1, help="Which occurrence of a repeating milestone.")
    ] = 1,
    channel: Annotated[
        str | None, typer.Option("--channel", help="sms or email (default: each it went on).")
    ] = None,
    now: NowOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send one milestone's message to a patient again, as a new reminder due now (audited)."""
    at = parse_now(now)
    if channel is not None and channel not in CHANNELS:
        fail(f"unknown channel {channel!r} (known: {', '.join(CHANNELS)})", 2)
    if not by.strip() or not reason.strip():
        fail("--by and --reason must name who asks and why", 2)
    application = read_app(ctx)
    with errors():
        schedules = application.config.schedules
        with application.store.write() as tx:
            enrollment = tx.views.enrollment(patient)
            step = _milestone(schedules, enrollment, milestone, occurrence)
            planned = _resend(tx, schedules, enrollment, step, occurrence, channel, at)
            tx.audit(
                {
                    "at": at,
                    "kind": RESENT,
                    "patient_id": patient,
                    "reminder_id": rid,
                    "detail": {
                        "milestone": milestone,
                        "occurrence": slot[2],
                        "repeats": occurrence,
                        "channel": slot[3],
                        "by": by.strip(),
                        "reason": reason.strip(),
                    },
                }
                for rid, slot in planned
            )
    zone = ZoneInfo(enrollment.timezone)
    rows = [_row(patient, rid, slot, occurrence, zone) for rid, slot in planned]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    for row in rows:
        out.print(
            f"resend: {escape(patient)} {escape(milestone)} #{occurrence} {row['channel']} "
            f"as #{row['occurrence']}, due {row['due_local']}"
        )
    if enrollment.status == EnrollmentStatus.PAUSED:
        err.print("[yellow]note:[/] the patient is paused: held until set back to active")


def _milestone(
    schedules: Schedules, enrollment: Enrollment, milestone_id: str, occurrence: int
) -> Milestone:
    """The milestone of the patient's protocol; usage errors exit 2, a withdrawn patient 1."""
    if enrollment.status == EnrollmentStatus.WITHDRAWN:
        fail(f"patient {enrollment.patient_id} is withdrawn: nothing is sent")
    protocol = schedules.protocols.get(enrollment.protocol)
    step = protocol.milestone(milestone_id) if protocol else None
    if protocol is None or step is None:
        known = ", ".join(m.id for m in protocol.milestones) if protocol else ""
        fail(f"no milestone {milestone_id!r} in {enrollment.protocol} (known: {known})", 2)
    count = len(step.offsets())
    if occurrence > count:
        fail(f"{milestone_id} has {count} occurrence(s); --occurrence {occurrence} is not one", 2)
    return step


def _resend(
    tx: Transaction,
    schedules: Schedules,
    enrollment: Enrollment,
    milestone: Milestone,
    occurrence: int,
    channel: str | None,
    now: datetime,
) -> list[tuple[int, PlanSlot]]:
    """Insert one copy per channel the occurrence was planned on; returns (id, slot) of each."""
    pid = enrollment.patient_id
    stored = chains(tx.enrollments.reminders_of([pid]))
    originals: list[StoredReminder] = [
        rows[0]
        for key, rows in stored.items()
        if key[:4] == (pid, enrollment.protocol, milestone.id, occurrence)
        and (channel is None or key[4] == channel)
    ]
    if not originals:
        on = f" on {channel}" if channel else ""
        fail(
            f"patient {pid} has no reminder of {milestone.id} #{occurrence}{on} to send again "
            "(not planned for them: a condition, or no contact details for the channel)"
        )
    if enrollment.status == EnrollmentStatus.COMPLETED:
        # Nothing was left to send; the copy is something to send again.
        tx.enrollments.set_status([pid], EnrollmentStatus.ACTIVE, now)
    planned = []
    for original in originals:
        slot = resend_slot(
            original,
            stored[base_key(original.key)],
            milestone,
            now=now,
            zone=ZoneInfo(enrollment.timezone),
            window=schedules.send_window,
        )
        planned.append((tx.enrollments.insert_one(pid, slot, now), slot))
        address = enrollment.phone if original.key[4] == "sms" else enrollment.email
        if address and tx.contacts.is_opted_out(original.key[4], address):
            err.print(f"[yellow]note:[/] {original.key[4]} is opted out: it will be suppressed")
    return planned


def _row(pid: str, rid: int, slot: PlanSlot, repeats: int, zone: ZoneInfo) -> dict[str, Any]:
    protocol, milestone, occurrence, channel, _, due, expires, status = slot
    return {
        "reminder_id": rid,
        "patient_id": pid,
        "protocol": protocol,
        "milestone": milestone,
        "occurrence": occurrence,
        "repeats": repeats,
        "channel": channel,
        "due_at": utc_text(due),
        "due_local": due.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z"),
        "expires_at": utc_text(expires),
        "status": status,
    }
