"""The HTTP side of the service (FastAPI): Twilio webhooks, unsubscribe, health and metrics.

Every Twilio webhook must carry a valid ``X-Twilio-Signature`` computed over
``REMINDERS_PUBLIC_URL`` + path + query; anything else gets 403 and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape as html_escape
from typing import Annotated, Any, Final
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape as xml_escape

from fastapi import BackgroundTasks, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from twilio.request_validator import RequestValidator

from reminders import logs
from reminders.errors import StoreError
from reminders.fields import normalise_phone
from reminders.metrics import CONTENT_TYPE, Metrics
from reminders.models import Clinic
from reminders.store import Store
from reminders.tokens import verify

log = logs.get("reminders.http")

#: Twilio's standard opt-out, opt-in and help keywords (a message of that one word).
STOP_WORDS: Final = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
)
START_WORDS: Final = frozenset({"START", "YES", "UNSTOP", "OPTIN"})
HELP_WORDS: Final = frozenset({"HELP", "INFO"})

#: Largest row id the databases store (64-bit signed).
MAX_ID: Final = 2**63 - 1

_FORM: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "additionalProperties": {"type": "string"}}
            }
        },
    },
    "parameters": [
        {
            "name": "X-Twilio-Signature",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
        }
    ],
}


def classify_reply(body: str) -> str:
    """``stop``, ``start``, ``help`` or ``other`` for an inbound SMS body."""
    word = body.strip().strip(".!").upper()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return "other"


@dataclass(frozen=True, slots=True)
class Inbound:
    """A free-text reply to forward to the clinic's coordinator."""

    #: Row id of the stored reply.
    id: int
    #: The sender's number (E.164).
    sender: str
    #: What the patient wrote.
    body: str
    #: Enrollments with that number.
    patient_ids: list[str]


@dataclass
class WebContext:
    """What the HTTP handlers need from the running service."""

    store: Store
    #: Twilio auth token for signature checks (None: every webhook is refused).
    twilio_auth_token: str | None
    #: Base URL Twilio calls, as configured in Twilio (REMINDERS_PUBLIC_URL).
    public_url: str | None
    #: HMAC key of unsubscribe tokens.
    secret_key: str | None
    #: The clinic of the last good configuration.
    clinic: Callable[[], Clinic]
    metrics: Metrics
    #: Whether the scheduler (or whatever drives dispatch) is running.
    running: Callable[[], bool]
    #: Sends a free-text reply on to the coordinator.
    forward: Callable[[Inbound], None]
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


def _twiml(message: str | None = None) -> Response:
    inner = f"<Message>{xml_escape(message)}</Message>" if message else ""
    body = f'<?xml version="1.0" encoding="UTF-8"?><Response>{inner}</Response>'
    return Response(content=body, media_type="application/xml")


def _page(title: str, text: str, status: int = 200, form: str | None = None) -> HTMLResponse:
    button = (
        f'<form method="post" action="{html_escape(form)}"><button type="submit">Unsubscribe</button></form>'
        if form
        else ""
    )
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html_escape(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        f'<body style="font-family:sans-serif;max-width:36em;margin:2em auto"><h1>{html_escape(title)}</h1>'
        f"<p>{html_escape(text)}</p>{button}</body></html>",
        status_code=status,
    )


def create_app(ctx: WebContext) -> FastAPI:
    """The ASGI application."""
    app = FastAPI(title="Recovery reminders", version="1", docs_url=None, redoc_url=None)

    async def signed_form(request: Request) -> dict[str, str] | None:
        """The form fields if the Twilio signature is valid, else None."""
        raw = (await request.body()).decode("utf-8", errors="replace")
        params = dict(parse_qsl(raw, keep_blank_values=True))
        signature = request.headers.get("X-Twilio-Signature", "")
        if not (ctx.twilio_auth_token and ctx.public_url and signature):
            return None
        url = ctx.public_url + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        if not RequestValidator(ctx.twilio_auth_token).validate(url, params, signature):
            return None
        return params

    def forbidden(path: str) -> Response:
        log.warning("webhook.forbidden", path=path)
        return Response(
            "invalid or missing X-Twilio-Signature", status_code=403, media_type="text/plain"
        )

    @app.post("/twilio/inbound", openapi_extra=_FORM, response_class=Response)
    async def twilio_inbound(request: Request, background: BackgroundTasks) -> Response:
        """Inbound SMS: STOP/START/HELP keywords, other replies recorded and forwarded."""
        form = await signed_form(request)
        if form is None:
            return forbidden("/twilio/inbound")
        clinic = ctx.clinic()
        try:
            sender = normalise_phone(form.get("From", ""), clinic.country)
        except ValueError:
            return Response(
                "'From' is not a phone number", status_code=400, media_type="text/plain"
            )
        body = form.get("Body", "")
        kind = classify_reply(body)
        now = ctx.clock()
        with ctx.store.write() as tx:
            recorded = tx.contacts.record_inbound(
                sender, body, kind, now, provider_id=form.get("MessageSid") or None
            )
            if recorded is None:  # Twilio retried a webhook we already handled
                return _twiml()
            inbound_id, patients = recorded
            changed = 0
            if kind in ("stop", "start"):
                changed = tx.contacts.opt_out(
                    "sms", sender, now, source=f"sms {kind}", opted_out=(kind == "stop")
                )
                tx.audit(
                    {
                        "at": now,
                        "kind": f"opt_out.sms.{'on' if kind == 'stop' else 'off'}",
                        "patient_id": pid,
                        "detail": {"source": "inbound sms", "reminders": changed},
                    }
                    for pid in (list[str | None](patients) or [None])
                )
        log.info("sms.inbound", kind=kind, patients=patients, reminders_changed=changed)
        if kind == "help":
            return _twiml(
                f"{clinic.name}: questions about your recovery? Call {clinic.phone_display}. "
                "Reply STOP to stop texts."
            )
        if kind == "other":
            background.add_task(ctx.forward, Inbound(inbound_id, sender, body, patients))
        return _twiml()

    @app.post("/twilio/status", openapi_extra=_FORM, response_class=Response)
    async def twilio_status(
        request: Request, reminder: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None
    ) -> Response:
        """Twilio status callback for one reminder (``?reminder=ID``)."""
        form = await signed_form(request)
        if form is None:
            return forbidden("/twilio/status")
        sid, status = form.get("MessageSid", ""), form.get("MessageStatus", "")
        if reminder is None or not sid or not status:
            return Response("missing reminder, MessageSid or MessageStatus", status_code=400)
        code = form.get("ErrorCode") or None
        now = ctx.clock()
        with ctx.store.write() as tx:
            applied = tx.outbox.apply_status_callback(reminder, sid, status, code, now)
            if applied is not None:
                tx.audit(
                    [
                        {
                            "at": now,
                            "kind": f"reminder.{applied}",
                            "patient_id": tx.outbox.patient_of(reminder),
                            "reminder_id": reminder,
                            "detail": {
                                "source": "status callback",
                                "twilio_status": status,
                                "code": code,
                            },
                        }
                    ]
                )
            if code == "21610" and form.get("To"):
                changed = tx.contacts.opt_out("sms", form["To"], now, source="provider 21610")
                tx.audit(
                    {
                        "at": now,
                        "kind": "opt_out.sms.on",
                        "patient_id": pid,
                        "reminder_id": reminder,
                        "detail": {"source": "provider 21610", "reminders": changed},
                    }
                    for pid in (
                        list[str | None](tx.contacts.patients_with("sms", form["To"])) or [None]
                    )
                )
        if code:
            ctx.metrics.provider_error("sms", code)
        log.info(
            "sms.status", reminder_id=reminder, twilio_status=status, code=code, applied=applied
        )
        return Response(status_code=204)

    def _token(token: str) -> tuple[str, str] | None:
        """The (channel, address) a genuine token unsubscribes, else None."""
        reminder = verify(ctx.secret_key, token) if ctx.secret_key else None
        if reminder is None or reminder > MAX_ID:
            return None
        with ctx.store.read() as tx:
            return tx.outbox.address_of(reminder)

    @app.get("/unsubscribe/{token}", response_class=HTMLResponse)
    async def unsubscribe_page(token: str) -> HTMLResponse:
        """A confirmation page (link scanners fetch GET; only POST unsubscribes)."""
        if _token(token) is None:
            return _page("Link not valid", "This unsubscribe link is not valid.", 404)
        return _page(
            "Stop recovery emails?",
            f"You will no longer receive recovery reminder emails from {ctx.clinic().name}.",
            form=f"/unsubscribe/{token}",
        )

    @app.post("/unsubscribe/{token}", response_class=HTMLResponse)
    async def unsubscribe(token: str) -> HTMLResponse:
        """RFC 8058 one-click unsubscribe (also the confirmation page's button)."""
        found = _token(token)
        if found is None:
            return _page("Link not valid", "This unsubscribe link is not valid.", 404)
        channel, address = found
        now = ctx.clock()
        with ctx.store.write() as tx:
            changed = tx.contacts.opt_out(channel, address, now, source="unsubscribe link")
            tx.audit(
                {
                    "at": now,
                    "kind": f"opt_out.{channel}.on",
                    "patient_id": pid,
                    "detail": {"source": "unsubscribe link", "reminders": changed},
                }
                for pid in (list[str | None](tx.contacts.patients_with(channel, address)) or [None])
            )
        log.info("email.unsubscribed", reminders_changed=changed)
        return _page(
            "Unsubscribed", f"You will no longer receive recovery emails from {ctx.clinic().name}."
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """The database answers and the scheduler runs."""
        try:
            ctx.store.ping()
            database = "ok"
        except StoreError:
            database = "unreachable"
        scheduler = "running" if ctx.running() else "stopped"
        ok = database == "ok" and scheduler == "running"
        return JSONResponse(
            {"database": database, "scheduler": scheduler}, status_code=200 if ok else 503
        )

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus exposition."""
        return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)

    return app
