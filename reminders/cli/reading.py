"""``timeline``: what was sent to one patient, what will be, and when."""

from __future__ import annotations

import json
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

from reminders.compose import Composer
from reminders.lifecycle import ReminderStatus
from reminders.questions import answer_text
from reminders.replies import QuestionKind
from reminders.store import CheckIn, Enrollment, TimelineEntry

from .interop import calendar_link, links_of
from .root import JsonOpt, app, errors, out, read_app, utc_text

STATUS_STYLE = {
    ReminderStatus.PLANNED: "cyan",
    ReminderStatus.SENDING: "yellow",
    ReminderStatus.SENT: "green",
    ReminderStatus.DELIVERED: "green",
    ReminderStatus.FAILED: "red",
    ReminderStatus.CANCELLED: "dim",
    ReminderStatus.EXPIRED: "dim",
    ReminderStatus.SUPPRESSED: "magenta",
}


def styled(status: str) -> str:
    """A status in its colour."""
    return f"[{STATUS_STYLE.get(ReminderStatus(status), '')}]{status}[/]"


def entry_json(e: TimelineEntry, zone: ZoneInfo, check_in: CheckIn | None = None) -> dict[str, Any]:
    """One timeline row as JSON (the ``timeline --json`` contract); the rows of a check-in
    question carry its ``check_in_status`` and ``answer`` (None elsewhere and until asked)."""
    row = {
        "id": e.id,  # the number status callbacks name (?reminder=N)
        "kind": e.kind,
        "patient_id": e.patient_id,
        "protocol": e.protocol,
        "milestone": e.milestone,
        "occurrence": e.occurrence,
        "channel": e.channel,
        "due_at": utc_text(e.due_at),
        "due_local": e.due_at.astimezone(zone).isoformat(),
        "expires_at": utc_text(e.expires_at),
        "status": e.status,
        "attempts": e.attempts,
        "provider_id": e.provider_id,
        "error_code": e.error_code,
        "error": e.error,
        "sent_at": utc_text(e.sent_at),
    }
    row["check_in_status"] = check_in.status if check_in else None
    row["answer"] = answer_text(QuestionKind(check_in.kind), check_in.value) if check_in else None
    return row


def rendered(composer: Composer, enrollment: Enrollment, e: TimelineEntry) -> dict[str, str]:
    """The text (and subject) a timeline row sends, as the dispatcher composes it."""
    message = composer.render_occurrence(e, enrollment.recipient())
    result = {"text": message.text}
    if e.channel == "email":
        result["subject"] = message.subject
    return result


@app.command()
def timeline(
    ctx: typer.Context,
    patient: Annotated[str, typer.Argument(help="Patient id.")],
    as_json: JsonOpt = False,
    render: Annotated[bool, typer.Option("--render", help="Show each message's text.")] = False,
) -> None:
    """Every reminder of one patient: milestone, channel, local and UTC time, status, attempts."""
    application = read_app(ctx)
    with errors():
        with application.store.read() as tx:
            enrollment = tx.views.enrollment(patient)
            entries = tx.views.timeline(patient)
            asked = {(c.milestone, c.occurrence): c for c in tx.checkins.of(patient)}
        zone = ZoneInfo(enrollment.timezone)
        composer = application.config.composer if render else None
        if as_json:
            rows = [entry_json(e, zone, asked.get((e.milestone, e.occurrence))) for e in entries]
            if composer is not None:
                for row, e in zip(rows, entries, strict=True):
                    row["message"] = rendered(composer, enrollment, e)
            out.print_json(json.dumps(rows))
            return
        table = Table(
            title=f"{enrollment.patient_id} {enrollment.first_name} {enrollment.last_name}: "
            f"{enrollment.protocol}, surgery {enrollment.surgery_date}, {enrollment.timezone}, "
            f"{enrollment.status}"
        )
        for column in (
            "milestone",
            "#",
            "channel",
            f"local ({enrollment.timezone})",
            "UTC",
            "status",
            "attempts",
            "detail",
        ):
            table.add_column(column)
        for e in entries:
            detail = e.error_code or e.error or e.provider_id or ""
            table.add_row(
                e.milestone,
                str(e.occurrence),
                e.channel,
                e.due_at.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z"),
                e.due_at.strftime("%Y-%m-%d %H:%M"),
                styled(e.status),
                str(e.attempts),
                escape(detail),
            )
        out.print(table)
        out.print(f"calendar: {calendar_link(links_of(ctx), patient, entries)}")
        if composer is not None:
            for e in entries:
                message = rendered(composer, enrollment, e)
                out.rule(f"{e.milestone} #{e.occurrence} {e.channel}")
                if message.get("subject"):
                    out.print(f"Subject: {escape(message['subject'])}")
                out.print(escape(message["text"]))
