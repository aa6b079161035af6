"""Check-ins from the command line: ``inbound``, ``alerts`` (``ack``, ``resolve``), ``answers``, ``report``.

``inbound`` handles one text exactly as ``POST /twilio/inbound`` does (replaying texts
received while the service was down, from the provider's log; tests); a repeated
``--sid`` changes nothing. What it queues (replies, notices) goes out on the next
``tick`` or at once in a running service.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from dataclasses import asdict
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

from reminders.fields import normalise_phone
from reminders.inbound import Text, receive
from reminders.lifecycle import AlertLevel, AlertStatus, CheckInStatus
from reminders.questions import answer_text
from reminders.replies import QuestionKind
from reminders.store import Alert

from .root import (
    JsonOpt,
    NowOpt,
    app,
    errors,
    fail,
    make_app,
    out,
    parse_now,
    read_app,
    utc_text,
)

alerts_app = typer.Typer(
    help="Alerts raised by check-in answers and silences: list, acknowledge, resolve.",
    no_args_is_help=False,
    invoke_without_command=True,
)
app.add_typer(alerts_app, name="alerts")

#: Longest --body ``inbound`` takes (Twilio's longest concatenated SMS is 1,600 characters).
MAX_BODY = 1600
#: Longest --by and --note.
MAX_NAME, MAX_NOTE = 100, 1000


def alert_json(a: Alert) -> dict[str, Any]:
    """One alert as JSON (``alerts --json``)."""
    return {
        "id": a.id,
        "patient_id": a.patient_id,
        "level": a.level,
        "status": a.status,
        "reason": a.reason,
        "words": a.words,
        "raised_at": utc_text(a.raised_at),
        "acknowledged_at": utc_text(a.acknowledged_at),
        "acknowledged_by": a.acknowledged_by,
        "resolved_at": utc_text(a.resolved_at),
        "resolved_by": a.resolved_by,
        "note": a.note,
        "escalated_at": utc_text(a.escalated_at),
        "check_in_id": a.check_in_id,
    }


@app.command()
def inbound(
    ctx: typer.Context,
    sender: Annotated[str, typer.Option("--from", help="The sender's phone number.")],
    body: Annotated[str, typer.Option("--body", help="What the text says.")],
    sid: Annotated[
        str | None,
        typer.Option("--sid", help="The provider's message id (a repeat changes nothing)."),
    ] = None,
    now: NowOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Handle one inbound SMS exactly as the webhook does (STOP, HELP, answers, free text)."""
    if len(body) > MAX_BODY:
        fail(f"--body: {len(body):,} characters; a text has at most {MAX_BODY:,}")
    if sid is not None and not (1 <= len(sid) <= 64 and sid.isprintable()):
        fail("--sid: 1 to 64 printable characters, e.g. the provider's SM... id")
    application = make_app(ctx)
    with errors():
        schedules = application.config.schedules
        try:
            phone = normalise_phone(sender, schedules.clinic.country)
        except ValueError as exc:
            fail(f"--from: {exc}")
        text = Text(phone, body, sid or f"cli-{uuid.uuid4().hex}", parse_now(now), via="cli")
        handled = receive(application.store, schedules, text)
    result = asdict(handled) | {"patients": list(handled.patients)}
    if as_json:
        out.print_json(json.dumps(result))
        return
    if handled.duplicate:
        out.print("already handled: a text with this --sid was received before; nothing changed")
        return
    alert = f", alert {handled.alert_id} ({handled.level})" if handled.alert_id else ""
    out.print(
        f"read as {handled.kind}{alert}; {handled.queued} replies/notices queued "
        f"(sent on the next tick); patients: {', '.join(handled.patients) or 'none enrolled'}"
    )


@alerts_app.callback()
def alerts(
    ctx: typer.Context,
    status: Annotated[
        AlertStatus | None, typer.Option("--status", help="Only alerts in this status.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Alerts, urgent first then oldest (``alerts ack``, ``alerts resolve`` act on one)."""
    if ctx.invoked_subcommand is not None:
        return
    application = read_app(ctx)
    with errors(), application.store.read() as tx:
        found = tx.alerts.listed(status)
    if as_json:
        out.print_json(json.dumps([alert_json(a) for a in found]))
        return
    if not found:
        out.print("no alerts" + (f" with status {status}" if status else ""))
        return
    table = Table(title="Alerts (urgent first, then oldest)")
    for column in ("id", "level", "status", "patient", "raised (UTC)", "why", "by", "note"):
        table.add_column(column)
    for a in found:
        table.add_row(
            str(a.id),
            f"[red]{a.level}[/]" if a.level == AlertLevel.URGENT else a.level,
            a.status,
            a.patient_id,
            f"{a.raised_at:%Y-%m-%d %H:%M}",
            escape(a.words),
            escape(a.resolved_by or a.acknowledged_by or ""),
            escape(a.note or ""),
        )
    out.print(table)


def _checked(value: str | None, name: str, limit: int) -> None:
    if value is not None and not (value.strip() and len(value) <= limit and value.isprintable()):
        fail(f"{name}: 1 to {limit} printable characters")


def _act(ctx: typer.Context, alert_id: int, by: str, note: str | None, resolve: bool) -> None:
    _checked(by, "--by", MAX_NAME)
    _checked(note, "--note", MAX_NOTE)
    application = read_app(ctx)
    verb = AlertStatus.RESOLVED if resolve else AlertStatus.ACKNOWLEDGED
    with errors():
        now = parse_now(None)
        with application.store.write() as tx:
            found = tx.alerts.get(alert_id)
            if found is None:
                fail(f"no alert with id {alert_id}")
            if resolve:
                changed = tx.alerts.resolve(alert_id, by=by, note=note or "", at=now)
            else:
                changed = tx.alerts.acknowledge(alert_id, by=by, note=note, at=now)
            if changed:
                tx.audit(
                    [
                        {
                            "at": now,
                            "kind": f"alert.{verb}",
                            "patient_id": found.patient_id,
                            "detail": {"alert_id": alert_id, "by": by, "via": "cli"},
                        }
                    ]
                )
    if not changed:
        fail(f"alert {alert_id} is {found.status}: nothing to do")
    out.print(f"alert {alert_id} {verb} by {escape(by)}")


@alerts_app.command("ack")
def ack(
    ctx: typer.Context,
    alert_id: Annotated[int, typer.Argument(help="Alert id.", min=1)],
    by: Annotated[str, typer.Option("--by", help="Who takes it.")],
    note: Annotated[str | None, typer.Option("--note", help="What was done.")] = None,
) -> None:
    """Acknowledge an open alert: someone has it; no more escalation."""
    _act(ctx, alert_id, by, note, resolve=False)


@alerts_app.command("resolve")
def resolve(
    ctx: typer.Context,
    alert_id: Annotated[int, typer.Argument(help="Alert id.", min=1)],
    by: Annotated[str, typer.Option("--by", help="Who closes it.")],
    note: Annotated[str, typer.Option("--note", help="What was done (required).")],
) -> None:
    """Resolve an alert with a note (acknowledging it too if nobody had)."""
    _act(ctx, alert_id, by, note, resolve=True)


@app.command()
def answers(
    ctx: typer.Context,
    patient: Annotated[str, typer.Argument(help="Patient id.")],
    as_json: JsonOpt = False,
) -> None:
    """Every check-in of one patient: when asked, its answer, and in the patient's local time."""
    application = read_app(ctx)
    with errors(), application.store.read() as tx:
        enrollment = tx.views.enrollment(patient)
        rows = tx.checkins.of(patient)
        raised = {a.check_in_id: a for a in tx.alerts.listed(patient_id=patient)}
    zone = ZoneInfo(enrollment.timezone)
    data = [
        {
            "check_in_id": c.id,
            "milestone": c.milestone,
            "occurrence": c.occurrence,
            "measure": c.measure,
            "kind": c.kind,
            "asked_at": utc_text(c.asked_at),
            "asked_local": c.asked_at.astimezone(zone).isoformat(),
            "status": c.status,
            "answer": answer_text(QuestionKind(c.kind), c.value),
            "answered_at": utc_text(c.answered_at),
            "via": c.via,
            "alert_id": raised[c.id].id if c.id in raised else None,
        }
        for c in rows
    ]
    if as_json:
        out.print_json(json.dumps(data))
        return
    table = Table(title=f"{enrollment.patient_id}: check-ins ({enrollment.timezone})")
    for column in ("asked (local)", "milestone", "status", "answer", "via", "alert"):
        table.add_column(column)
    for c, row in zip(rows, data, strict=True):
        table.add_row(
            c.asked_at.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z"),
            f"{c.milestone} #{c.occurrence}",
            c.status,
            str(row["answer"] or ""),
            c.via or "",
            str(row["alert_id"] or ""),
        )
    out.print(table)


@app.command()
def report(
    ctx: typer.Context,
    as_json: JsonOpt = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Per-patient rows as CSV.")] = False,
) -> None:
    """Check-ins and alerts: per patient (sent, answered, last and highest score, open alerts)
    and per protocol (answer rate, alerts by level, median time to acknowledge)."""
    application = read_app(ctx)
    with errors(), application.store.read() as tx:
        patients = tx.reports.patients()
        protocols = tx.reports.protocols()
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "patients": [asdict(p) for p in patients],
                    "protocols": [asdict(p) for p in protocols],
                }
            )
        )
        return
    if as_csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        fields = list(asdict(patients[0]).keys()) if patients else ["patient_id"]
        writer.writerow(fields)
        for p in patients:
            writer.writerow(["" if v is None else v for v in asdict(p).values()])
        typer.echo(buffer.getvalue(), nl=False)
        return
    table = Table(title="Check-ins per patient")
    for column in (
        "patient",
        "protocol",
        "check-ins",
        CheckInStatus.ANSWERED,
        CheckInStatus.UNANSWERED,
        "last",
        "highest",
        "open alerts",
    ):
        table.add_column(column)
    for p in patients:
        table.add_row(
            p.patient_id,
            p.protocol,
            str(p.sent),
            str(p.answered),
            str(p.unanswered),
            "" if p.last_score is None else str(p.last_score),
            "" if p.highest_score is None else str(p.highest_score),
            str(p.open_alerts),
        )
    out.print(table)
    table = Table(title="Per protocol")
    for column in ("protocol", "check-ins", "answer rate", *AlertLevel, "median min to ack"):
        table.add_column(column)
    for r in protocols:
        table.add_row(
            r.protocol,
            str(r.sent),
            "" if r.answer_rate is None else f"{r.answer_rate:.0%}",
            *(str(r.alerts.get(level, 0)) for level in AlertLevel),
            "" if r.median_minutes_to_ack is None else f"{r.median_minutes_to_ack:g}",
        )
    out.print(table)
