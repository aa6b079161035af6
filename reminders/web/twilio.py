"""The Twilio webhooks: inbound texts (STOP, START, HELP, replies) and status callbacks.

Nothing here acts on a request before :func:`reminders.web.webhook.verify` has checked
its signature, its parameter names and shapes and its query string; a bad or missing
signature gets 403, anything else that is not exactly Twilio's form gets 400, and
neither changes anything. What is then acted upon is only checked values:

- an inbound text is stored once per ``MessageSid`` (required), and STOP/START opt the
  sender's number out or back in;
- a status callback applies only to the message recorded for the reminder its URL
  names (:func:`reminders.lifecycle.status_callback`); only a callback that changes the
  reminder counts its error code in the metrics, and only then does 21610 opt the
  number out.
"""

from __future__ import annotations

from typing import Annotated, Any, Final
from xml.sax.saxutils import escape as xml_escape

from fastapi import BackgroundTasks, FastAPI, Query, Request, Response

from reminders import logs
from reminders.fields import normalise_phone
from reminders.web.context import Inbound, WebContext
from reminders.web.webhook import INBOUND, MAX_ID, STATUS, Contract, Refusal, verify

log = logs.get("reminders.web")

#: Twilio's standard opt-out, opt-in and help keywords (a message of that one word).
STOP_WORDS: Final = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
)
START_WORDS: Final = frozenset({"START", "YES", "UNSTOP", "OPTIN"})
HELP_WORDS: Final = frozenset({"HELP", "INFO"})

#: The OpenAPI description of a webhook: a form of string fields and the signature header.
FORM: Final[dict[str, Any]] = {
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


def _twiml(message: str | None = None) -> Response:
    inner = f"<Message>{xml_escape(message)}</Message>" if message else ""
    body = f'<?xml version="1.0" encoding="UTF-8"?><Response>{inner}</Response>'
    return Response(content=body, media_type="application/xml")


def add_twilio_routes(app: FastAPI, ctx: WebContext) -> None:
    """``POST /twilio/inbound`` and ``POST /twilio/status`` on ``app``."""

    async def verified(request: Request, contract: Contract) -> dict[str, str] | Response:
        """The webhook's checked parameters, or the response that refuses it."""
        checked = verify(
            contract,
            await request.body(),
            request.url.query,
            public_url=ctx.public_url,
            signature=request.headers.get("X-Twilio-Signature"),
            auth_token=ctx.twilio_auth_token,
            account_sid=ctx.twilio_account_sid,
        )
        if not isinstance(checked, Refusal):
            return checked
        if checked.status == 403:
            log.warning("webhook.forbidden", path=contract.path)
        else:
            name = checked.name[:40] if checked.name is not None else None
            log.warning("webhook.refused", path=contract.path, reason=checked.reason, name=name)
        reason = checked.reason + (f": {checked.name[:40]!r}" if checked.name else "")
        return Response(reason, status_code=checked.status, media_type="text/plain")

    @app.post("/twilio/inbound", openapi_extra=FORM, response_class=Response)
    async def twilio_inbound(request: Request, background: BackgroundTasks) -> Response:
        """Inbound SMS: STOP/START/HELP keywords, other replies recorded and forwarded."""
        form = await verified(request, INBOUND)
        if isinstance(form, Response):
            return form
        clinic = ctx.clinic()
        try:
            sender = normalise_phone(form["From"], clinic.country)
        except ValueError:
            return Response(
                "'From' is not a phone number", status_code=400, media_type="text/plain"
            )
        body = form["Body"]
        kind = classify_reply(body)
        now = ctx.clock()
        with ctx.store.write() as tx:
            recorded = tx.contacts.record_inbound(
                sender, body, kind, now, provider_id=form["MessageSid"]
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

    @app.post("/twilio/status", openapi_extra=FORM, response_class=Response)
    async def twilio_status(
        request: Request, reminder: Annotated[int, Query(ge=1, le=MAX_ID)]
    ) -> Response:
        """Twilio status callback for one reminder (``?reminder=ID``)."""
        form = await verified(request, STATUS)
        if isinstance(form, Response):
            return form
        sid, status = form["MessageSid"], form["MessageStatus"]
        code = form.get("ErrorCode") or None
        now = ctx.clock()
        with ctx.store.write() as tx:
            decision = tx.outbox.apply_status_callback(reminder, sid, status, code, now)
            if decision.status is not None:
                tx.audit(
                    [
                        {
                            "at": now,
                            "kind": f"reminder.{decision.status}",
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
            if decision.status is not None and code == "21610" and "To" in form:
                to = form["To"]
                changed = tx.contacts.opt_out("sms", to, now, source="provider 21610")
                tx.audit(
                    {
                        "at": now,
                        "kind": "opt_out.sms.on",
                        "patient_id": pid,
                        "reminder_id": reminder,
                        "detail": {"source": "provider 21610", "reminders": changed},
                    }
                    for pid in (list[str | None](tx.contacts.patients_with("sms", to)) or [None])
                )
        if decision.status is not None and code:
            ctx.metrics.provider_error("sms", code)
        log.info(
            "sms.status",
            reminder_id=reminder,
            twilio_status=status,
            code=code,
            matched=decision.matched,
            applied=decision.status,
        )
        return Response(status_code=204)
