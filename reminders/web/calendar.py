"""``GET /calendar/{token}.ics``: a patient's calendar of milestones, behind a signed link.

The token (:mod:`reminders.tokens`, purpose ``calendar``) names a reminder of the patient,
as linked from their first email; an unsubscribe token is no calendar token. A token that
does not verify, or names no reminder, gets a bare 404: nobody learns which tokens exist.
The calendar is read in a read-only transaction and never cached by proxies.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI, Response

from reminders import logs
from reminders.tokens import CALENDAR, verify
from reminders.web.context import WebContext
from reminders.web.webhook import MAX_ID

log = logs.get("reminders.web")

#: The media type of iCalendar (RFC 5545).
MEDIA_TYPE: Final = "text/calendar; charset=utf-8"
HEADERS: Final = {
    "Cache-Control": "private, no-store",
    "Content-Disposition": 'inline; filename="recovery.ics"',
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def add_calendar_routes(app: FastAPI, ctx: WebContext) -> None:
    """``GET /calendar/{token}.ics`` on ``app``."""

    @app.get("/calendar/{token}.ics", response_class=Response, name="calendar")
    async def patient_calendar(token: str) -> Response:
        """The patient's milestones as iCalendar; 404 for a token this service did not sign."""
        reminder = verify(ctx.secret_key, token, CALENDAR) if ctx.secret_key else None
        if reminder is None or reminder > MAX_ID:
            return Response("not found\n", status_code=404, media_type="text/plain")
        with ctx.store.read() as tx:
            patient = tx.outbox.patient_of(reminder)
            if patient is None:
                return Response("not found\n", status_code=404, media_type="text/plain")
            enrollment = tx.views.enrollment(patient)
            rows = tx.views.timeline(patient)
        from reminders.calendar import calendar  # noqa: PLC0415  # icalendar on first use only

        body = calendar(ctx.clinic(), enrollment.recipient(), rows)
        log.info("calendar.served", events=body.count(b"BEGIN:VEVENT"))
        return Response(body, media_type=MEDIA_TYPE, headers=HEADERS)
