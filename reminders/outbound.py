"""Rendering what the outbox sends besides reminders: replies to patients, notices to staff.

*Responses* (``templates/<language>/responses/``) answer a patient's text in the
patient's language: ``help``, ``safety`` (after an urgent answer), ``unwatched`` (free
text: this number is not watched for urgent problems), ``reprompt-scale``,
``reprompt-yes-no`` and ``reprompt-choice``. They see the same variables as reminders.

*Notices* (``templates/<first language>/notices/``) tell the care team: ``alert-urgent``
(email and SMS), ``alert-review`` (email), ``escalation`` (SMS), ``forward`` (email: a
patient's free text, to the coordinator, as before). An alert notice sees ``alert.id``,
``patient_id``, ``alert_url`` (the dashboard, when the service has a public URL) and
``command``, never the patient's name, number or words; ``forward`` also sees
``forwarded.sender`` and ``forwarded.text``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from reminders.channels.base import Message
from reminders.errors import TemplateError
from reminders.lifecycle import MessageKind
from reminders.models import Recipient
from reminders.store import Claimed

if TYPE_CHECKING:
    from reminders.compose import Composer

#: Every response template, and the channel it is sent on.
RESPONSES: Final = (
    "help",
    "safety",
    "unwatched",
    "reprompt-scale",
    "reprompt-yes-no",
    "reprompt-choice",
)
#: Every notice template and its channels.
NOTICES: Final = {
    "alert-urgent": ("email", "sms"),
    "alert-review": ("email",),
    "escalation": ("sms",),
    "forward": ("email",),
}


def notice_context(composer: Composer, r: Claimed) -> dict[str, Any]:
    """What a notice template may say: ids and where to look, nothing about the patient."""
    clinic = composer.schedules.clinic
    links = composer.unsubscribe
    alert_id = r.alert_id
    context: dict[str, Any] = {
        "clinic": {"name": clinic.name, "short_name": clinic.short_name},
        "patient": {"first_name": "", "last_name": ""},
        "patient_id": r.patient_id or "(not enrolled)",
        "alert": {"id": alert_id},
        "alert_url": links.alert(alert_id) if links and alert_id is not None else None,
        "command": f"reminders alerts ack {alert_id} --by YOUR-NAME" if alert_id else None,
        "forwarded": None,
    }
    if r.forwarded is not None:
        sender, text = r.forwarded
        context["forwarded"] = {"sender": sender, "text": text}
    return context


def render_outbound(composer: Composer, r: Claimed, now: datetime) -> Message:
    """The exact response or notice claimed row ``r`` sends at ``now``; raises TemplateError."""
    from reminders.compose import claimed_message, message_context  # noqa: PLC0415  # compose imports this module

    assert r.address is not None  # noqa: S101  # the dispatcher checked
    schedules = composer.schedules
    if r.kind == MessageKind.RESPONSE:
        zone = composer.zone(r.recipient.timezone)
        language = r.recipient.language
        context = message_context(
            schedules.clinic,
            r.recipient,
            milestone=r.milestone,
            occurrence=r.occurrence,
            day=now.astimezone(zone).date(),
            phone=composer.phone,
        )
    else:
        zone = composer.zone(schedules.clinic.timezone)
        language = schedules.languages[0]
        context = notice_context(composer, r)
    rendered = composer.templates.render(r.channel, language, r.template, context)
    message_id = f"<{r.kind}.{r.id}@{composer.message_domain}>"
    return claimed_message(r, rendered, message_id, now.astimezone(zone))


def check_outbound(composer: Composer) -> list[TemplateError]:
    """Render every response in every language, and every notice in the first, with sample data."""
    from reminders.compose import SAMPLE_FIRST_NAME, SAMPLE_SURGERY, message_context  # noqa: PLC0415
    from reminders.sms import count_segments  # noqa: PLC0415

    schedules = composer.schedules
    errors: list[TemplateError] = []

    def render(channel: str, language: str, template: str, context: dict[str, Any]) -> None:
        try:
            text = composer.templates.render(channel, language, template, context).text
        except TemplateError as exc:
            errors.append(exc)
            return
        if channel == "sms":
            error = composer.over_limit(language, template, count_segments(text))
            if error is not None:
                errors.append(error)

    for language in schedules.languages:
        sample = Recipient(
            "P-SAMPLE", SAMPLE_FIRST_NAME, "Sample", language, "UTC", SAMPLE_SURGERY, None
        )
        context = message_context(
            schedules.clinic,
            sample,
            milestone="response:help",
            occurrence=1,
            day=SAMPLE_SURGERY,
            phone=composer.phone,
        )
        for name in RESPONSES:
            render("sms", language, f"responses/{name}", context)
    clinic = schedules.clinic
    if clinic.care_team or clinic.on_call or clinic.coordinator_email:
        language = schedules.languages[0]
        notice: dict[str, Any] = {
            "clinic": {"name": clinic.name, "short_name": clinic.short_name},
            "patient": {"first_name": "", "last_name": ""},
            "patient_id": "P-SAMPLE",
            "alert": {"id": 123456},
            "alert_url": "https://clinic.example.com/app/alerts/123456",
            "command": "reminders alerts ack 123456 --by YOUR-NAME",
            "forwarded": {"sender": "+12015550123", "text": "sample text"},
        }
        for name, channels in NOTICES.items():
            for channel in channels:
                render(channel, language, f"notices/{name}", notice)
    return errors
