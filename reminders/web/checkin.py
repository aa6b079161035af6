"""The check-in page: email patients answer a check-in question on ``/checkin/{token}``.

``GET`` shows the question (the check-in email's subject) and one form, in the patient's
language, with no script: radio buttons 0-10, yes/no, or the options' numbers. ``POST``
records the answer exactly as a text would (:func:`reminders.inbound.answer`): the same
rules, the same single alert, the same notices; an answer that raises an urgent alert
gets the safety text on the page itself. The token is signed for check-ins only
(:data:`reminders.tokens.CHECK_IN`) and names the email reminder that asked; any other
token, or one for a check-in that never opened, gets the same "not valid" page.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Final
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from reminders import logs
from reminders.compose import ClinicPhone, message_context
from reminders.errors import TemplateError
from reminders.inbound import Judged, answer
from reminders.lifecycle import AlertLevel, CheckInStatus
from reminders.replies import SCALE_MAX, Question, QuestionKind
from reminders.store import CheckIn, Enrollment
from reminders.tokens import CHECK_IN, verify
from reminders.web.context import WebContext
from reminders.web.pages import DEFAULT_LANGUAGE, HEADERS
from reminders.web.webhook import MAX_ID

log = logs.get("reminders.web")

#: Every sentence of the page, per language.
TEXTS: Final[Mapping[str, Mapping[str, str]]] = {
    "en": {
        "scale": "Choose one number: 0 means none, {max} the worst.",
        "yes": "Yes",
        "no": "No",
        "choice": "Choose the number of your answer.",
        "send": "Send my answer",
        "thanks": "Thank you. Your answer was sent to your care team.",
        "safety": "Your care team has been told about your answer. If you cannot wait, call "
        "{clinic} at {phone}. In an emergency, call {emergency} now.",
        "answered": "This check-in was already answered. Thank you.",
        "closed": "This check-in is closed. Questions, or something feels wrong? Call "
        "{clinic} at {phone}.",
        "missing": "Please choose an answer.",
        "invalid_title": "Link not valid",
        "invalid": "This check-in link is not valid.",
    },
    "es": {
        "scale": "Elija un número: 0 es nada, {max} lo peor.",
        "yes": "Sí",
        "no": "No",
        "choice": "Elija el número de su respuesta.",
        "send": "Enviar mi respuesta",
        "thanks": "Gracias. Su respuesta ha llegado a su equipo de cuidado.",
        "safety": "Su equipo de cuidado ya sabe su respuesta. Si no puede esperar, llame a "
        "{clinic} al {phone}. En una emergencia, llame al {emergency} ahora.",
        "answered": "Esta pregunta ya tiene respuesta. Gracias.",
        "closed": "Esta pregunta ya está cerrada. ¿Dudas, o algo no va bien? Llame a "
        "{clinic} al {phone}.",
        "missing": "Elija una respuesta, por favor.",
        "invalid_title": "Enlace no válido",
        "invalid": "Este enlace no es válido.",
    },
}
#: Longest form body the page reads (``answer=10`` is 9 bytes).
MAX_FORM: Final = 64


def _page(language: str, title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="{escape(language)}"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        '<body style="font-family:sans-serif;font-size:18px;max-width:36em;margin:2em auto;'
        'padding:0 1em">'
        f"<h1>{escape(title)}</h1>{body}</body></html>",
        status_code=status,
        headers=HEADERS,
    )


def _not_valid() -> HTMLResponse:
    order = [TEXTS[DEFAULT_LANGUAGE], *(t for k, t in TEXTS.items() if k != DEFAULT_LANGUAGE)]
    title = " / ".join(t["invalid_title"] for t in order)
    return _page(
        DEFAULT_LANGUAGE, title, "".join(f"<p>{escape(t['invalid'])}</p>" for t in order), 404
    )


def _options(question: Question, texts: Mapping[str, str]) -> list[tuple[str, str]]:
    """(value, label) of every answer the form offers."""
    if question.kind is QuestionKind.YES_NO:
        return [("yes", texts["yes"]), ("no", texts["no"])]
    top = SCALE_MAX if question.kind is QuestionKind.SCALE else question.options
    first = 0 if question.kind is QuestionKind.SCALE else 1
    return [(str(n), str(n)) for n in range(first, top + 1)]


def _value(question: Question, raw: str) -> int | None:
    """The answer a form value stands for, if it is one the form offers."""
    if question.kind is QuestionKind.YES_NO:
        return {"yes": 1, "no": 0}.get(raw)
    if not raw.isdigit() or len(raw) > 2:
        return None
    low = 0 if question.kind is QuestionKind.SCALE else 1
    high = SCALE_MAX if question.kind is QuestionKind.SCALE else question.options
    value = int(raw)
    return value if low <= value <= high else None


def add_check_in_routes(app: FastAPI, ctx: WebContext) -> None:
    """``GET`` and ``POST /checkin/{token}`` on ``app``."""

    def find(token: str) -> tuple[CheckIn, Enrollment] | None:
        reminder = verify(ctx.secret_key, token, CHECK_IN) if ctx.secret_key else None
        if reminder is None or reminder > MAX_ID:
            return None
        with ctx.store.read() as tx:
            check_in = tx.checkins.of_reminder(reminder)
            if check_in is None:
                return None
            return check_in, tx.views.enrollment(check_in.patient_id)

    async def check_in(token: str, request: Request) -> HTMLResponse:
        """GET: the question and its form; POST: the answer."""
        found = await run_in_threadpool(find, token)
        schedules = ctx.schedules()
        question = schedules.question(found[0].protocol, found[0].milestone) if found else None
        if found is None or question is None:
            return _not_valid()
        row, patient = found
        language = patient.language if patient.language in TEXTS else DEFAULT_LANGUAGE
        texts = TEXTS[language]
        phone = ClinicPhone.of(schedules.clinic).shown_to(patient.recipient())
        words = {
            "clinic": schedules.clinic.short_name,
            "phone": phone,
            "emergency": schedules.clinic.emergency_number,
            "max": SCALE_MAX,
        }
        title = _title(ctx, row, patient)
        now = ctx.clock()
        if row.status == CheckInStatus.ANSWERED:
            return _page(language, title, f"<p>{escape(texts['answered'])}</p>")
        if row.status != CheckInStatus.OPEN or row.closes_at <= now:
            return _page(language, title, f"<p>{escape(texts['closed'].format(**words))}</p>")
        problem = ""
        if request.method == "POST":
            body = await request.body()
            form = dict(parse_qsl(body[:MAX_FORM].decode("ascii", "replace"), max_num_fields=2))
            value = _value(question.reading, form.get("answer", ""))
            if value is not None:
                judged = await run_in_threadpool(record, row, value)
                lines = [texts["thanks"] if judged is not None else texts["answered"]]
                if judged is not None and judged.level == AlertLevel.URGENT:
                    lines.append(texts["safety"].format(**words))
                return _page(language, title, "".join(f"<p>{escape(t)}</p>" for t in lines))
            problem = f'<p role="alert"><strong>{escape(texts["missing"])}</strong></p>'
        prompt = texts["choice"] if question.kind is QuestionKind.CHOICE else texts["scale"]
        if question.kind is QuestionKind.YES_NO:
            prompt = ""
        choices = "".join(
            f'<label style="display:inline-block;margin:.4em .8em .4em 0;font-size:1.2em">'
            f'<input type="radio" name="answer" value="{escape(value)}" required> '
            f"{escape(label)}</label>"
            for value, label in _options(question.reading, texts)
        )
        form_html = (
            f'{problem}<form method="post" action="/checkin/{escape(token)}">'
            f'<fieldset style="border:0;padding:0"><legend>{escape(prompt.format(**words))}</legend>'
            f"{choices}</fieldset>"
            f'<p><button type="submit" style="font-size:1.1em;padding:.5em 1em">'
            f"{escape(texts['send'])}</button></p></form>"
        )
        return _page(language, title, form_html)

    def record(row: CheckIn, value: int) -> Judged | None:
        with ctx.store.write() as tx:
            fresh = tx.checkins.get(row.id) if row.id is not None else None
            if fresh is None or fresh.status != CheckInStatus.OPEN:
                return None
            judged = answer(tx, ctx.schedules(), fresh, value, ctx.clock(), via="web")
        if judged is not None and judged.notices:
            ctx.wake()
        log.info(
            "check_in.answered",
            via="web",
            check_in_id=row.id,
            alert_id=judged.alert_id if judged else None,
        )
        return judged

    for method in ("GET", "POST"):
        app.add_api_route(
            "/checkin/{token}",
            check_in,
            methods=[method],
            response_class=HTMLResponse,
            name=f"check_in_{method.lower()}",
        )


def _title(ctx: WebContext, row: CheckIn, patient: Enrollment) -> str:
    """The check-in email's subject: the question, in the patient's language."""
    schedules = ctx.schedules()
    protocol = schedules.protocols.get(row.protocol)
    milestone = protocol.milestone(row.milestone) if protocol else None
    if milestone is None or ctx.templates is None:
        return row.milestone
    context = message_context(
        schedules.clinic,
        patient.recipient(),
        milestone=row.milestone,
        occurrence=row.occurrence,
        day=row.asked_at.date(),
    )
    try:
        return (
            ctx.templates().render("email", patient.language, milestone.template, context).subject
            or row.milestone
        )
    except TemplateError:
        return row.milestone
