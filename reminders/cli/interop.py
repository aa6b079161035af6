"""``calendar`` and ``export fhir``: the plan, and what was sent, for other systems (SPEC 13).

Both only read the store (one read transaction) and write to stdout; nothing is logged
about a patient beyond counts.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from reminders.compose import Links
from reminders.errors import ConfigError
from reminders.store import TimelineEntry

from .root import NowOpt, app, err, errors, make_app, parse_now, read_app

export = typer.Typer(
    name="export",
    help="What the service planned and sent, for other systems (FHIR R4).",
    no_args_is_help=True,
)
app.add_typer(export)


def calendar_link(links: Links | None, patient: str, entries: list[TimelineEntry]) -> str:
    """Where a patient's calendar is: the signed URL, or the command that writes it."""
    if links is not None and entries:
        return links.calendar(min(e.id for e in entries if e.id is not None))
    return f"reminders calendar {patient} > {patient}.ics"


def links_of(ctx: typer.Context) -> Links | None:
    """The environment's signed links, if REMINDERS_PUBLIC_URL and REMINDERS_SECRET_KEY are set
    (and the environment reads; a read-only command does not fail on a provider setting)."""
    try:
        return make_app(ctx).settings.unsubscribe()
    except ConfigError:
        return None


@app.command()
def calendar(
    ctx: typer.Context,
    patient: Annotated[str, typer.Argument(help="Patient id.")],
) -> None:
    """The patient's milestones as iCalendar on stdout: reminders calendar P-1001 > P-1001.ics"""
    from reminders.calendar import calendar as ics  # noqa: PLC0415  # icalendar: only here

    application = read_app(ctx)
    with errors():
        clinic = application.config.schedules.clinic
        with application.store.read() as tx:
            enrollment = tx.views.enrollment(patient)
            rows = tx.views.timeline(patient)
    sys.stdout.buffer.write(ics(clinic, enrollment.recipient(), rows))
    sys.stdout.buffer.flush()


@export.command("fhir")
def export_fhir(
    ctx: typer.Context,
    patient: Annotated[
        str | None, typer.Argument(help="Patient id (default: every patient).", show_default=False)
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only what changed from this time on (ISO 8601 with offset)."),
    ] = None,
    now: NowOpt = None,
) -> None:
    """A FHIR R4 Bundle on stdout: Patient, Procedure, CarePlan, CommunicationRequest and
    Communication of each enrollment: reminders export fhir > bundle.json"""
    from reminders.fhir.export import export_bundle  # noqa: PLC0415  # fhir.resources: only here

    since_at = parse_now(since) if since is not None else None
    at = parse_now(now)
    application = read_app(ctx)
    with errors():
        schedules = application.config.schedules
        with application.store.read() as tx:
            count = export_bundle(tx, schedules, sys.stdout, at, patient=patient, since=since_at)
    sys.stdout.flush()
    err.print(f"exported {count} resources", highlight=False)
