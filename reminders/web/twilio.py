"""The Twilio webhooks: inbound texts (STOP, START, HELP, replies) and status callbacks.

Nothing here acts on a request before :func:`reminders.web.webhook.verify` has checked
its signature, its parameter names and shapes and its query string; a bad or missing
signature gets 403, anything else that is not exactly Twilio's form gets 400, and
neither changes anything. What is then acted upon is only checked values:

- an inbound text is handled once per ``MessageSid`` (required) by
  :func:`reminders.inbound.receive`: STOP/START, HELP, check-in answers and their
  alerts, free text forwarded;
- a status callback applies only to the message recorded for the reminder its URL
  names (:func:`reminders.lifecycle.status_callback`); only a callback that changes the
  reminder counts its error code in the metrics, and only then does 21610 opt the
  number out.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import FastAPI, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from reminders import logs
from reminders.fields import normalise_phone
from reminders.inbound import Text, receive
from reminders.web.context import WebContext
from reminders.web.webhook import INBOUND, MAX_ID, STATUS, Contract, Refusal, verify

log = logs.get("reminders.web")

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


def _twiml() -> Response:
    """An empty TwiML answer: replies to the patient leave through the outbox."""
    body = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
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
    async def twilio_inbound(request: Request) -> Response:
        """Inbound SMS: handled once per MessageSid by :func:`reminders.inbound.receive`.

        Any reply to the patient goes through the outbox (exactly once, audited), so the
        TwiML answer is always empty; the dispatcher is woken to send it at once.
        """
        form = await verified(request, INBOUND)
        if isinstance(form, Response):
            return form
        schedules = ctx.schedules()
        try:
            sender = normalise_phone(form["From"], schedules.clinic.country)
        except ValueError:
            return Response(
                "'From' is not a phone number", status_code=400, media_type="text/plain"
            )
        text = Text(sender, form["Body"], form["MessageSid"], ctx.clock())
        handled = await run_in_threadpool(receive, ctx.store, schedules, text)
        if handled.queued:
            ctx.wake()
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
