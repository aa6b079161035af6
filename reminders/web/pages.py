"""The email unsubscribe pages, in the patient's language (en and es ship).

``GET /unsubscribe/{token}`` only shows a confirmation page with a button: link
scanners and mail previews fetch links, and must not unsubscribe anyone. ``POST`` (the
button, or a mail client's RFC 8058 one-click request) opts the address out of email.
The token (:mod:`reminders.tokens`) names an email reminder; a token that does not
verify, or names a reminder that is not an email, gets the same "not valid" page in
both languages, so nobody learns which tokens exist. The pages say what stops (the
clinic's recovery reminder emails) and what does not (text messages, for a patient
who gets them, until they reply STOP); they are never cached or framed.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Final

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from reminders import logs
from reminders.store import Enrollment
from reminders.tokens import verify
from reminders.web.context import WebContext
from reminders.web.webhook import MAX_ID

log = logs.get("reminders.web")

#: Every sentence of the pages, per language; ``{clinic}`` is the clinic's name.
TEXTS: Final[Mapping[str, Mapping[str, str]]] = {
    "en": {
        "confirm_title": "Stop recovery reminder emails?",
        "confirm": "If you unsubscribe, you will no longer receive recovery reminder emails "
        "from {clinic}.",
        "button": "Unsubscribe",
        "done_title": "Unsubscribed",
        "done": "You will no longer receive recovery reminder emails from {clinic}.",
        "sms": "Text messages from {clinic} continue. To stop them, reply STOP to one of them.",
        "invalid_title": "Link not valid",
        "invalid": "This unsubscribe link is not valid.",
    },
    "es": {
        "confirm_title": "¿Dejar de recibir los correos de recordatorio de su recuperación?",
        "confirm": "Si se da de baja, ya no recibirá los correos de recordatorio de su "
        "recuperación de {clinic}.",
        "button": "Darme de baja",
        "done_title": "Baja confirmada",
        "done": "Ya no recibirá los correos de recordatorio de su recuperación de {clinic}.",
        "sms": "Los mensajes de texto de {clinic} continúan. Para dejar de recibirlos, "
        "responda STOP a uno de ellos.",
        "invalid_title": "Enlace no válido",
        "invalid": "Este enlace para darse de baja no es válido.",
    },
}
#: Used for a language no page is written in.
DEFAULT_LANGUAGE: Final = "en"
#: Never cached (the page names the clinic of a patient), never framed (a framed
#: button could be clicked by a trick), nothing loaded, the link never sent on.
HEADERS: Final = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


def _html(
    language: str, title: str, paragraphs: list[str], status: int = 200, form: str = ""
) -> HTMLResponse:
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return HTMLResponse(
        f'<!doctype html><html lang="{escape(language)}"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        '<body style="font-family:sans-serif;max-width:36em;margin:2em auto">'
        f"<h1>{escape(title)}</h1>{body}{form}</body></html>",
        status_code=status,
        headers=HEADERS,
    )


def _not_valid() -> HTMLResponse:
    """The page for a token that does not verify, in every language."""
    order = [TEXTS[DEFAULT_LANGUAGE], *(t for k, t in TEXTS.items() if k != DEFAULT_LANGUAGE)]
    title = " / ".join(t["invalid_title"] for t in order)
    return _html(DEFAULT_LANGUAGE, title, [t["invalid"] for t in order], 404)


def _language(patient: Enrollment) -> str:
    return patient.language if patient.language in TEXTS else DEFAULT_LANGUAGE


def _page(patient: Enrollment, which: str, clinic: str, form: str = "") -> HTMLResponse:
    """Page ``which`` (``confirm`` or ``done``) in the patient's language: its sentence, and
    the note that texts go on for a patient who gets them."""
    language = _language(patient)
    texts = TEXTS[language]
    lines = [texts[which].format(clinic=clinic)]
    if "sms" in patient.channels.split(","):
        lines.append(texts["sms"].format(clinic=clinic))
    return _html(language, texts[f"{which}_title"], lines, form=form)


def add_unsubscribe_routes(app: FastAPI, ctx: WebContext) -> None:
    """``GET`` and ``POST /unsubscribe/{token}`` on ``app``."""

    def subscriber(token: str) -> tuple[str, Enrollment] | None:
        """The email address a genuine token of an email reminder unsubscribes, and whose
        it is; else None."""
        reminder = verify(ctx.secret_key, token) if ctx.secret_key else None
        if reminder is None or reminder > MAX_ID:
            return None
        with ctx.store.read() as tx:
            found = tx.outbox.address_of(reminder)
            patient = tx.outbox.patient_of(reminder)
            if found is None or found[0] != "email" or patient is None:
                return None
            return found[1], tx.views.enrollment(patient)

    async def unsubscribe(token: str, request: Request) -> HTMLResponse:
        """GET: a confirmation page with a button (link scanners fetch GET, so it changes
        nothing); POST: the button, or RFC 8058 one-click, unsubscribes."""
        found = subscriber(token)
        if found is None:
            return _not_valid()
        address, patient = found
        if request.method == "GET":
            label = TEXTS[_language(patient)]["button"]
            button = (
                f'<form method="post" action="/unsubscribe/{escape(token)}">'
                f'<button type="submit">{escape(label)}</button></form>'
            )
            return _page(patient, "confirm", ctx.clinic().name, button)
        now = ctx.clock()
        with ctx.store.write() as tx:
            changed = tx.contacts.opt_out("email", address, now, source="unsubscribe link")
            tx.audit(
                {
                    "at": now,
                    "kind": "opt_out.email.on",
                    "patient_id": pid,
                    "detail": {"source": "unsubscribe link", "reminders": changed},
                }
                for pid in (list[str | None](tx.contacts.patients_with("email", address)) or [None])
            )
        log.info("email.unsubscribed", reminders_changed=changed)
        return _page(patient, "done", ctx.clinic().name)

    for method in ("GET", "POST"):  # one operation each in the OpenAPI document
        app.add_api_route(
            "/unsubscribe/{token}",
            unsubscribe,
            methods=[method],
            response_class=HTMLResponse,
            name=f"unsubscribe_{method.lower()}",
        )
