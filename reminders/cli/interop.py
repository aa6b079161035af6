"""``calendar`` (and ``export fhir``): a patient's plan for other systems to read (SPEC 13)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from reminders.calendar import calendar as ics
from reminders.compose import Unsubscribe
from reminders.errors import ConfigError
from reminders.store import TimelineEntry

from .root import app, errors, make_app, read_app


def calendar_link(links: Unsubscribe | None, patient: str, entries: list[TimelineEntry]) -> str:
    """Where a patient's calendar is: the signed URL, or the command that writes it."""
    if links is not None and entries:
        return links.calendar(min(e.id for e in entries if e.id is not None))
    return f"reminders calendar {patient} > {patient}.ics"


def links_of(ctx: typer.Context) -> Unsubscribe | None:
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
    application = read_app(ctx)
    with errors():
        clinic = application.config.schedules.clinic
        with application.store.read() as tx:
            enrollment = tx.views.enrollment(patient)
            rows = tx.views.timeline(patient)
    sys.stdout.buffer.write(ics(clinic, enrollment.recipient(), rows))
    sys.stdout.buffer.flush()
