"""Rendering messages from ``templates/<language>/<name>.<part>.j2`` in a Jinja sandbox.

Parts: ``sms`` (SMS body), ``subject``, ``txt`` (plain-text email) and ``html`` (HTML
email, autoescaped). Undefined variables are errors, never blanks.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from reminders.errors import TemplateError
from reminders.models import Clinic, Schedules
from reminders.sms import MAX_SEGMENTS, SegmentCount, count_segments

TEMPLATES_DIR: Final = "templates"
#: Template parts per channel.
PARTS: Final[dict[str, tuple[str, ...]]] = {"sms": ("sms",), "email": ("subject", "txt", "html")}
#: First name used to check SMS length: long enough to leave headroom for most patients.
SAMPLE_FIRST_NAME: Final = "Christopher"


@dataclass(frozen=True, slots=True)
class Rendered:
    """A message ready for a channel."""

    #: SMS body, or the email's plain-text body.
    text: str
    #: Email subject (empty for SMS).
    subject: str = ""
    #: Email HTML body (empty for SMS).
    html: str = ""


def _autoescape(name: str | None) -> bool:
    return bool(name and name.endswith(".html.j2"))


class Templates:
    """The template set of one configuration directory."""

    def __init__(self, directory: Path) -> None:
        #: Root folder holding one sub-folder per language.
        self.directory = directory
        self._env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(str(directory)),
            undefined=jinja2.StrictUndefined,
            autoescape=_autoescape,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            auto_reload=False,
        )

    def _render(self, language: str, template: str, part: str, context: Mapping[str, Any]) -> str:
        name = f"{language}/{template}.{part}.j2"
        file = str(self.directory / name)
        try:
            return self._env.get_template(name).render(context).strip()
        except jinja2.TemplateNotFound:
            raise TemplateError(file, "template file is missing") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                file, f"syntax error: {exc.message}", record=f"line {exc.lineno}"
            ) from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(file, f"unknown variable: {exc.message}") from None
        except jinja2.TemplateError as exc:
            raise TemplateError(file, f"does not render: {exc}") from None

    def render(
        self, channel: str, language: str, template: str, context: Mapping[str, Any]
    ) -> Rendered:
        """Render ``template`` for ``channel`` in ``language``; raises TemplateError."""
        if channel == "sms":
            text = self._render(language, template, "sms", context)
            if count_segments(text).segments > MAX_SEGMENTS:
                # A name like "Zoë" switches a whole SMS to UCS-2 and can double its
                # segments; the name without accents keeps the message within the limit.
                patient = {**context["patient"], "first_name": _fold(context)}
                folded = {**context, "patient": patient}
                shorter = self._render(language, template, "sms", folded)
                if count_segments(shorter).segments < count_segments(text).segments:
                    text = shorter
            return Rendered(text=text)
        subject = " ".join(self._render(language, template, "subject", context).split())
        return Rendered(
            text=self._render(language, template, "txt", context),
            subject=subject,
            html=self._render(language, template, "html", context),
        )


def _fold(context: Mapping[str, Any]) -> str:
    name = str(context["patient"]["first_name"])
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def message_context(
    *,
    clinic: Clinic,
    first_name: str,
    last_name: str,
    milestone: str,
    occurrence: int,
    surgery_date: date,
    send_date: date,
    unsubscribe_url: str | None = None,
) -> dict[str, Any]:
    """The variables every template may use (documented in the README)."""
    days = (send_date - surgery_date).days
    return {
        "patient": {"first_name": first_name, "last_name": last_name},
        "clinic": {
            "name": clinic.name,
            "short_name": clinic.short_name,
            "phone": clinic.phone_display,
        },
        "milestone": {"id": milestone},
        "occurrence": occurrence,
        "days_since_surgery": days,
        "weeks_since_surgery": days // 7,
        "surgery_date": surgery_date.isoformat(),
        "unsubscribe_url": unsubscribe_url,
    }


@dataclass(frozen=True, slots=True)
class SmsCheck:
    """The segment count of one SMS template, rendered with sample data."""

    #: Language.
    language: str
    #: Template name.
    template: str
    #: Segment arithmetic.
    count: SegmentCount


def check_templates(
    schedules: Schedules, templates: Templates
) -> tuple[list[TemplateError], list[SmsCheck]]:
    """Render every template for every language and channel with sample data.

    Returns the errors (missing files, syntax, unknown variables, SMS over the
    segment limit) and the segment count of every SMS template.
    """
    errors: list[TemplateError] = []
    checks: list[SmsCheck] = []
    for language, template, channel, milestone, occurrence in _every_message(schedules):
        context = message_context(
            clinic=schedules.clinic,
            first_name=SAMPLE_FIRST_NAME,
            last_name="Sample",
            milestone=milestone,
            occurrence=occurrence,
            surgery_date=date(2026, 1, 5),
            send_date=date(2026, 1, 5),
            unsubscribe_url="https://clinic.example.com/unsubscribe/sample-token",
        )
        try:
            rendered = templates.render(channel, language, template, context)
        except TemplateError as exc:
            if str(exc) not in {str(e) for e in errors}:
                errors.append(exc)
            continue
        if channel != "sms":
            continue
        count = count_segments(rendered.text)
        if not any(c.language == language and c.template == template for c in checks):
            checks.append(SmsCheck(language, template, count))
        if count.segments > MAX_SEGMENTS:
            file = str(templates.directory / language / f"{template}.sms.j2")
            error = TemplateError(
                file,
                f"renders to {count.segments} SMS segments ({count.units} {count.encoding} units); "
                f"the limit is {MAX_SEGMENTS}",
            )
            if str(error) not in {str(e) for e in errors}:
                errors.append(error)
    return errors, checks


def _every_message(schedules: Schedules) -> Iterator[tuple[str, str, str, str, int]]:
    for protocol in schedules.protocols.values():
        for milestone in protocol.milestones:
            for language in schedules.languages:
                for channel in milestone.channels:
                    yield language, milestone.template, channel, milestone.id, 1
