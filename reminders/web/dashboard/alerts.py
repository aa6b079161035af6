"""Alerts and answers on the dashboard: what the pages show of them, and the two actions.

``POST /app/alerts/{id}/acknowledge`` (an optional note) and ``POST /app/alerts/{id}/resolve``
(a note required) are the only writes a person makes from the dashboard. Both need a
signed-in *coordinator* and the form's CSRF token: a viewer never sees the buttons, and a
viewer's POST (a forged form, a replayed request) gets 403 and changes nothing. Each
change is an audit record (``alert.acknowledged``, ``alert.resolved``: who, which alert,
``via: dashboard``), as ``reminders alerts ack|resolve`` writes from the command line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Final
from urllib.parse import quote

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from reminders.alerting import MISSED
from reminders.lifecycle import AlertStatus, CheckInStatus
from reminders.questions import answer_text
from reminders.replies import QuestionKind
from reminders.store import Transaction
from reminders.store.schema import Alert, CheckIn
from reminders.web.context import WebContext
from reminders.web.dashboard.auth import Gate, Visitor
from reminders.web.dashboard.chart import Point, svg

#: Longest note kept with an alert.
MAX_NOTE: Final = 500
#: Highest score of a scale question, and the marks drawn on its chart.
SCALE_MARKS: Final = ((8, "urgent at 8"), (6, "review at 6"))


@dataclass(frozen=True, slots=True)
class Chart:
    """One measure's answers over time, drawn."""

    #: The measure (``pain``).
    measure: str
    #: The SVG markup (escaped where it holds text).
    markup: str
    #: How many answers it shows.
    count: int


def answer(check_in: CheckIn | None) -> str:
    """A check-in's answer as shown (``7/10``, ``yes``, ``option 2``), or an empty string."""
    if check_in is None or check_in.value is None:
        return ""
    kind = QuestionKind(check_in.kind)
    text = answer_text(kind, check_in.value) or ""
    if kind is QuestionKind.SCALE:
        return f"{text}/10"
    return f"option {text}" if kind is QuestionKind.CHOICE else text


def worklist_alerts(tx: Transaction) -> dict[str, Any]:
    """The worklist's alert sections: alerts raised by answers, and patients who stopped answering."""
    return {
        "alerts": tx.dashboard_alerts.open_alerts(MISSED, raised_by=False),
        "silent": tx.dashboard_alerts.open_alerts(MISSED),
    }


def charts(check_ins: Sequence[CheckIn], zone: tzinfo) -> list[Chart]:
    """A chart per 0-10 measure the patient answered (pain, usually)."""
    by_measure: dict[str, list[Point]] = {}
    for c in check_ins:
        answered = c.status == CheckInStatus.ANSWERED and c.answered_at is not None
        if c.kind == QuestionKind.SCALE and answered and c.value is not None:
            assert c.answered_at is not None  # noqa: S101  # checked just above
            by_measure.setdefault(c.measure, []).append(Point(c.answered_at, c.value))
    return [
        Chart(
            measure,
            svg(
                points, zone, title=f"{measure.capitalize()} over time, 0 to 10", lines=SCALE_MARKS
            ),
            len(points),
        )
        for measure, points in sorted(by_measure.items())
    ]


def patient_answers(tx: Transaction, patient_id: str, zone: tzinfo) -> dict[str, Any]:
    """A patient page's check-ins, charts and alerts."""
    check_ins, alerts = tx.dashboard_alerts.of_patient(patient_id)
    by_id = {c.id: c for c in check_ins}
    return {
        "check_ins": list(reversed(check_ins)),
        "charts": charts(check_ins, zone),
        "patient_alerts": [(a, by_id.get(a.check_in_id)) for a in alerts],
    }


def add_alert_routes(
    app: FastAPI,
    ctx: WebContext,
    gate: Gate,
    refuse: Callable[[Visitor | None, str, int], Response],
) -> None:
    """``POST /app/alerts/{id}/acknowledge`` and ``.../resolve`` on ``app``."""
    from reminders.web.dashboard.pages import read_fields, safe_next  # noqa: PLC0415  # pages imports this module

    def act(visitor: Visitor, fields: dict[str, str], alert_id: int, resolve: bool) -> Response:
        if not gate.csrf_ok(visitor, fields.get("csrf")):
            return refuse(visitor, "The form's security token is missing or wrong.", 403)
        if not visitor.coordinator:
            return refuse(visitor, "Only a coordinator can acknowledge or resolve alerts.", 403)
        note = " ".join(fields.get("note", "").split())
        if len(note) > MAX_NOTE or not note.isprintable():
            return refuse(visitor, f"A note is at most {MAX_NOTE} characters of text.", 400)
        if resolve and not note:
            return refuse(visitor, "Say in the note what was done: resolving needs a note.", 400)
        now = ctx.clock()
        verb = (AlertStatus.RESOLVED if resolve else AlertStatus.ACKNOWLEDGED).value
        with ctx.store.write() as tx:
            found: Alert | None = tx.alerts.get(alert_id)
            if found is None:
                return refuse(visitor, "There is no such alert.", 404)
            if resolve:
                changed = tx.alerts.resolve(alert_id, by=visitor.name, note=note, at=now)
            else:
                changed = tx.alerts.acknowledge(
                    alert_id, by=visitor.name, note=note or None, at=now
                )
            if changed:
                tx.audit(
                    [
                        {
                            "at": now,
                            "kind": f"alert.{verb}",
                            "patient_id": found.patient_id,
                            "detail": {
                                "alert_id": alert_id,
                                "by": visitor.name,
                                "via": "dashboard",
                            },
                        }
                    ]
                )
        if not changed:
            taken = found.acknowledged_by or found.resolved_by or "someone"
            return refuse(visitor, f"This alert was already {found.status} by {taken}.", 409)
        return RedirectResponse(safe_next(fields.get("next")), status_code=303)

    def route(resolve: bool) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            fields = await read_fields(request)
            visitor = await run_in_threadpool(gate.visitor, request)
            if visitor is None:
                return RedirectResponse("/app/signin", status_code=303)
            raw = str(request.path_params["alert_id"])
            if not raw.isdigit() or len(raw) > 18:
                return refuse(visitor, "There is no such alert.", 404)
            alert_id = int(raw)
            return await run_in_threadpool(act, visitor, fields, alert_id, resolve)

        return handler

    def show(request: Request) -> Response:
        """``GET /app/alerts/{id}`` (the link in an alert's notice): the patient's page, at the alert."""
        visitor = gate.visitor(request)
        raw = str(request.path_params["alert_id"])
        if visitor is None:
            target = f"/app/alerts/{raw}" if raw.isdigit() and len(raw) <= 18 else "/app/worklist"
            return RedirectResponse(f"/app/signin?next={target}", status_code=303)
        found = None
        if raw.isdigit() and len(raw) <= 18:
            with ctx.store.read() as tx:
                found = tx.alerts.get(int(raw))
        if found is None:
            return refuse(visitor, "There is no such alert.", 404)
        path = quote(found.patient_id, safe="")
        return RedirectResponse(f"/app/patients/{path}#alert-{found.id}", status_code=303)

    app.add_api_route("/app/alerts/{alert_id}", show, methods=["GET"], include_in_schema=False)
    for name, resolve in (("acknowledge", False), ("resolve", True)):
        app.add_api_route(
            f"/app/alerts/{{alert_id}}/{name}",
            route(resolve),
            methods=["POST"],
            include_in_schema=False,
        )
