"""The dashboard's routes: sign-in and sign-out, the worklist, patients, one patient, overview.

Every route but the sign-in page and the stylesheet needs a session (else 303 to the
sign-in page); every POST needs the form's CSRF token (else 403, nothing changed).
Reading a patient's page writes a ``patient.viewed`` audit record naming who read it.
No patient name or phone ever appears in an address: a search by name is a POST, and
links carry only the clinic's patient id.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from reminders import accounts
from reminders.channels.base import body_digest
from reminders.compose import Composer
from reminders.errors import StoreError, TemplateError, UnknownPatient
from reminders.lifecycle import ACCEPTED, FILE_STATUSES, AttemptOutcome, EnrollmentStatus
from reminders.store import Enrollment, Reminder
from reminders.store.dashboard import PAGE
from reminders.web.context import DashboardSettings, WebContext
from reminders.web.dashboard.alerts import (
    add_alert_routes,
    answer,
    patient_answers,
    worklist_alerts,
)
from reminders.web.dashboard.auth import SESSION_COOKIE, SIGNIN_COOKIE, Gate, Outcome, Visitor
from reminders.web.dashboard.render import ago, page, stylesheet
from reminders.web.dashboard.words import local
from reminders.web.webhook import read_form

#: Where a sign-in may send the browser afterwards: a dashboard path, nothing else.
_NEXT: Final = re.compile(r"/app/[A-Za-z0-9._~%/-]{0,300}")
#: Longest search text read.
MAX_QUERY: Final = 100


@dataclass(frozen=True, slots=True)
class Shown:
    """One reminder on a patient's page, with its text as sent and its attempts."""

    reminder: Reminder
    #: The text as composed (None: nothing was sent).
    text: str | None = None
    subject: str | None = None
    #: Whether the text composed now has the digest recorded when it went out.
    matches: bool | None = None
    attempts: tuple[Any, ...] = ()


def safe_next(value: str | None) -> str:
    """A dashboard path to go to after signing in (the worklist unless ``value`` is one)."""
    if value and _NEXT.fullmatch(value) and "//" not in value and ".." not in value:
        return value
    return "/app/worklist"


async def read_fields(request: Request) -> dict[str, str]:
    """The form fields of a POST (first value of each; nothing if it is not a form)."""
    pairs = read_form(await request.body()) or []
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def messages_as_sent(
    composer: Composer,
    enrollment: Enrollment,
    reminders: list[Reminder],
    attempts: Mapping[int, list[Any]],
) -> list[Shown]:
    """Each reminder with, when it went out, its text composed as the dispatcher composed it."""
    recipient = enrollment.recipient()
    reached: set[str] = set()
    shown = []
    for r in sorted(reminders, key=lambda x: (x.due_at, x.id or 0)):
        tries = tuple(attempts.get(r.id or 0, ()))
        if r.status not in ACCEPTED:
            shown.append(Shown(r, attempts=tries))
            continue
        # The links an email carries, as Composer.message puts them in.
        links = composer.unsubscribe if r.channel == "email" and r.id else None
        asks = composer.schedules.question(r.protocol, r.milestone) is not None
        try:
            rendered = composer.render_occurrence(
                r,
                recipient,
                unsubscribe_url=links.url(r.id) if links and r.id else None,
                calendar_url=links.calendar(r.id) if links and r.id else None,
                check_in_url=links.check_in(r.id) if links and r.id and asks else None,
                first=r.channel not in reached,
            )
        except TemplateError:
            shown.append(
                Shown(r, text="(this message's template no longer renders)", attempts=tries)
            )
            continue
        reached.add(r.channel)
        digests = {
            a.body_digest for a in tries if a.outcome != AttemptOutcome.PENDING and a.body_digest
        }
        matches = body_digest(rendered.text) in digests if digests else None
        shown.append(Shown(r, rendered.text, rendered.subject, matches, tries))
    return shown


def add_dashboard_routes(app: FastAPI, ctx: WebContext, settings: DashboardSettings) -> Gate:
    """Every ``/app/`` route on ``app``; returns the gate (for the alert actions)."""
    gate = Gate(ctx, settings)

    def clinic_zone() -> ZoneInfo:
        return ZoneInfo(ctx.clinic().timezone)

    def base(visitor: Visitor | None, title: str, nav: str = "") -> dict[str, Any]:
        zone = clinic_zone()
        return {
            "clinic": ctx.clinic(),
            "visitor": visitor,
            "csrf": gate.csrf(visitor) if visitor else "",
            "title": title,
            "nav": nav,
            "zone": zone.key,
            "when": lambda moment: local(moment, zone),
            "ago": lambda moment: ago(moment, ctx.clock()),
            "answer": answer,
        }

    def finish(response: Response, visitor: Visitor) -> Response:
        if visitor.new:
            gate.set_cookie(response, SESSION_COOKIE, visitor.cookie)
        return response

    def to_signin(request: Request) -> RedirectResponse:
        target = "/app/signin"
        path = request.url.path
        if request.method == "GET" and path not in ("/app/", "/app/worklist"):
            target += f"?next={safe_next(path)}"
        return RedirectResponse(target, status_code=303)

    def signed_in(
        handler: Callable[[Request, Visitor], Response],
    ) -> Callable[[Request], Response]:
        """A page handler that runs only for a signed-in visitor."""

        def guarded(request: Request) -> Response:
            visitor = gate.visitor(request)
            if visitor is None:
                return to_signin(request)
            return finish(handler(request, visitor), visitor)

        return guarded

    def refuse(visitor: Visitor | None, why: str, status: int = 403) -> HTMLResponse:
        title = "Not allowed" if status == 403 else "Not done"
        context = {**base(visitor, title), "message": why, "back": "/app/worklist"}
        return page("message.html.j2", context, status)

    def forbidden(visitor: Visitor | None, why: str) -> HTMLResponse:
        return refuse(visitor, why, 403)

    # -- stylesheet, sign-in, sign-out ----------------------------------------------------

    @app.get("/app/static/dashboard.css", include_in_schema=False)
    def css() -> Response:
        return Response(stylesheet(ctx.clinic().colours), media_type="text/css")

    def signin_page(
        request: Request, message: str = "", status: int = 200, email: str = "", next_: str = ""
    ) -> Response:
        nonce = request.cookies.get(SIGNIN_COOKIE) or ""
        fresh = not re.fullmatch(r"[A-Za-z0-9_-]{32}", nonce)
        if fresh:
            nonce = accounts.new_nonce()
        response = page(
            "signin.html.j2",
            {
                **base(None, "Sign in"),
                "csrf": gate.signin_csrf(nonce),
                "message": message,
                "email": email,
                "next": safe_next(next_ or request.query_params.get("next")),
            },
            status,
        )
        if fresh:
            gate.set_cookie(response, SIGNIN_COOKIE, nonce, path="/app/signin")
        return response

    @app.get("/app/signin", include_in_schema=False)
    def signin_form(request: Request) -> Response:
        if gate.visitor(request) is not None:
            return RedirectResponse("/app/worklist", status_code=303)
        return signin_page(request)

    @app.post("/app/signin", include_in_schema=False)
    async def signin(request: Request) -> Response:
        fields = await read_fields(request)
        if not gate.signin_csrf_ok(request, fields.get("csrf")):
            return signin_page(request, "The sign-in form expired: please try again.", 403)
        email = fields.get("email", "")[:254]
        outcome, cookie = await run_in_threadpool(
            gate.sign_in, request, email, fields.get("password", "")
        )
        if outcome is Outcome.LIMITED:
            response = signin_page(
                request,
                "Too many failed sign-ins. Wait a minute, then try again.",
                429,
                email,
                fields.get("next", ""),
            )
            response.headers["Retry-After"] = "60"
            return response
        if outcome is Outcome.FAILED or cookie is None:
            return signin_page(
                request, "Wrong email or password.", 401, email, fields.get("next", "")
            )
        response = RedirectResponse(safe_next(fields.get("next")), status_code=303)
        gate.set_cookie(response, SESSION_COOKIE, cookie)
        return response

    @app.post("/app/signout", include_in_schema=False)
    async def signout(request: Request) -> Response:
        fields = await read_fields(request)
        visitor = await run_in_threadpool(gate.visitor, request)
        if visitor is None:
            return to_signin(request)
        if not gate.csrf_ok(visitor, fields.get("csrf")):
            return forbidden(visitor, "The form's security token is missing or wrong.")
        await run_in_threadpool(gate.sign_out, visitor, request)
        response = RedirectResponse("/app/signin", status_code=303)
        gate.clear_cookie(response)
        return response

    # -- pages --------------------------------------------------------------------------

    @app.get("/app/", include_in_schema=False)
    def home(request: Request) -> Response:
        return signed_in(lambda _r, _v: RedirectResponse("/app/worklist", status_code=303))(request)

    def worklist(request: Request, visitor: Visitor) -> Response:
        now = ctx.clock()
        with ctx.store.read() as tx:
            q = tx.dashboard
            context = {
                "failed": q.failed(now),
                "opted_out": q.opted_out(now),
                "retrying": q.retrying(),
                "in_doubt": q.in_doubt(),
                **worklist_alerts(tx),
            }
        return page("worklist.html.j2", {**base(visitor, "Worklist", "worklist"), **context})

    app.add_api_route(
        "/app/worklist", signed_in(worklist), methods=["GET"], include_in_schema=False
    )

    def patients_page(visitor: Visitor, rows: list[Any], **extra: Any) -> Response:
        defaults: dict[str, Any] = {"query": "", "status": None, "next_page": None, "answers": {}}
        return page(
            "patients.html.j2",
            {
                **base(visitor, "Patients", "patients"),
                **defaults,
                **extra,
                "rows": rows,
                "statuses": [s.value for s in (*FILE_STATUSES, EnrollmentStatus.COMPLETED)],
                "page": PAGE,
            },
        )

    def patients(request: Request, visitor: Visitor) -> Response:
        after = request.query_params.get("after") or None
        status = request.query_params.get("status") or None
        if status is not None and status not in {s.value for s in EnrollmentStatus}:
            status = None
        with ctx.store.read() as tx:
            rows = tx.dashboard.patients(after=after[:64] if after else None, status=status)
            answers = tx.dashboard_alerts.last_answers([r.enrollment.patient_id for r in rows])
        last = rows[-1].enrollment.patient_id if len(rows) == PAGE else None
        return patients_page(visitor, rows, status=status, next_page=last, answers=answers)

    app.add_api_route(
        "/app/patients", signed_in(patients), methods=["GET"], include_in_schema=False
    )

    @app.post("/app/patients", include_in_schema=False)
    async def search(request: Request) -> Response:
        fields = await read_fields(request)

        def run(request: Request, visitor: Visitor) -> Response:
            if not gate.csrf_ok(visitor, fields.get("csrf")):
                return forbidden(visitor, "The form's security token is missing or wrong.")
            query = fields.get("q", "")[:MAX_QUERY]
            with ctx.store.read() as tx:
                rows = tx.dashboard.search(query)
                answers = tx.dashboard_alerts.last_answers([r.enrollment.patient_id for r in rows])
            return patients_page(visitor, rows, query=query, answers=answers)

        return await run_in_threadpool(signed_in(run), request)

    def patient(request: Request, visitor: Visitor) -> Response:
        patient_id = request.path_params["patient_id"]
        now = ctx.clock()
        try:
            with ctx.store.write() as tx:
                enrollment = tx.views.enrollment(patient_id)
                tx.audit(
                    [
                        {
                            "at": now,
                            "kind": "patient.viewed",
                            "patient_id": patient_id,
                            "detail": {"user": visitor.name},
                        }
                    ]
                )
        except UnknownPatient:
            return page(
                "message.html.j2",
                {
                    **base(visitor, "No such patient", "patients"),
                    "message": "No enrolled patient has that id.",
                    "back": "/app/patients",
                },
                404,
            )
        with ctx.store.read() as tx:
            reminders = tx.views.timeline(patient_id)
            attempts = tx.dashboard.attempts([r.id for r in reminders if r.id is not None])
            answers = patient_answers(tx, patient_id, ZoneInfo(enrollment.timezone))
        shown = messages_as_sent(settings.composer(), enrollment, reminders, attempts)
        return page(
            "patient.html.j2",
            {
                **answers,
                **base(visitor, enrollment.patient_id, "patients"),
                "e": enrollment,
                "messages": shown,
            },
        )

    app.add_api_route(
        "/app/patients/{patient_id:path}",
        signed_in(patient),
        methods=["GET"],
        include_in_schema=False,
    )

    def overview(request: Request, visitor: Visitor) -> Response:
        now = ctx.clock()
        try:
            ctx.store.ping()
            database = True
        except StoreError:
            database = False
        with ctx.store.read() as tx:
            summary = tx.dashboard.overview(now)
            _, backlog, lag = tx.views.gauges(now)
            answered, asked, levels = tx.dashboard_alerts.answer_rate(now)
        schedules = settings.composer().schedules
        health = {
            "database": database,
            "running": ctx.running(),
            "backlog": backlog,
            "lag": ago(datetime.fromtimestamp(now.timestamp() - lag, now.tzinfo), now),
        }
        return page(
            "overview.html.j2",
            {
                **base(visitor, "Overview", "overview"),
                "health": health,
                "fingerprint": schedules.fingerprint[:12],
                "protocols": list(schedules.protocols.values()),
                "last_sync": summary.last_sync[0] if summary.last_sync else None,
                "patients": sorted(summary.patients.items()),
                "reminders": sorted(summary.reminders.items()),
                "sends": summary.sends,
                "answered": answered,
                "asked": asked,
                "levels": levels,
            },
        )

    app.add_api_route(
        "/app/overview", signed_in(overview), methods=["GET"], include_in_schema=False
    )
    add_alert_routes(app, ctx, gate, refuse)
    return gate
