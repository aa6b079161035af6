"""The render stage: a recipient and a milestone occurrence become the exact message.

Dispatch, ``preview``, ``timeline --render``, ``validate`` and the demo all compose
through :class:`Composer`, so what a coordinator previews is what a patient receives
(as httpx builds a request once, then hands it to a transport).

The text depends on the *due* day, not the send day, so a retry or a late send says the
same as the first try, and reconciliation can match the text a provider holds.

Two things depend on the patient rather than the template: the clinic's number is written
for the patient's country (national format at home, international abroad; E.164 in
links), and ``first`` says whether any earlier message on the channel reached the patient
(if none did, the message says how to opt out, whatever expired or was cancelled before).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

import phonenumbers

from reminders.channels.base import Message
from reminders.copies import base_occurrence
from reminders.errors import TemplateError
from reminders.lifecycle import MessageKind
from reminders.models import Clinic, Milestone, Patient, Recipient, Schedules
from reminders.outbound import check_outbound, render_outbound
from reminders.sms import MAX_SEGMENTS, SegmentCount, count_segments
from reminders.store.outbox import Claimed
from reminders.templates import Rendered, Templates
from reminders.tokens import CALENDAR, CHECK_IN, sign

#: First name used to check SMS length: long enough to leave headroom for most patients.
SAMPLE_FIRST_NAME: Final = "Christopher"
#: Message-ID domain when no sender address gives one.
DEFAULT_DOMAIN: Final = "recovery-reminders.invalid"
#: Surgery date of the sample messages ``validate`` renders.
SAMPLE_SURGERY: Final = date(2026, 1, 5)
#: Fictional phone numbers (Australia's range for drama, a US 555 number): ``validate``
#: renders each SMS for a sample patient with one outside the clinic's country, whose
#: messages write the clinic's number in international format.
SAMPLE_ABROAD: Final = ("+61491570156", "+12015550123")


@dataclass(frozen=True, slots=True)
class ClinicPhone:
    """The clinic's number, written as a patient in a given country dials it."""

    #: E.164, for ``tel:`` links.
    e164: str
    #: As dialled inside the clinic's country.
    national: str
    #: As dialled from abroad (with the country code).
    international: str
    #: ISO 3166 region of the clinic.
    country: str

    @classmethod
    def of(cls, clinic: Clinic) -> ClinicPhone:
        """The clinic's number in every form (it was validated with schedules.yaml)."""
        number = phonenumbers.parse(clinic.phone, clinic.country)
        return cls(
            e164=clinic.phone,
            national=clinic.phone_display,
            international=phonenumbers.format_number(
                number, phonenumbers.PhoneNumberFormat.INTERNATIONAL
            ),
            country=clinic.country,
        )

    def shown_to(self, recipient: Recipient) -> str:
        """National format for a patient in the clinic's country, international otherwise."""
        at_home = country_of(recipient.phone, self.country) == self.country
        return self.national if at_home else self.international


@lru_cache(maxsize=4096)
def country_of(phone: str | None, default: str) -> str:
    """The region of an E.164 number (``US``, ``GB``), or ``default`` when there is none."""
    if not phone:
        return default
    try:
        number = phonenumbers.parse(phone)
    except phonenumbers.NumberParseException:
        return default
    # A number outside every region's plan still has a country code (+1 -> US).
    region = phonenumbers.region_code_for_number(number) or (
        phonenumbers.region_code_for_country_code(number.country_code)
        if number.country_code
        else None
    )
    return default if region in (None, phonenumbers.UNKNOWN_REGION) else region


@dataclass(frozen=True, slots=True)
class Links:
    """How to build the service's public links: unsubscribe, calendar, check-in pages, alerts."""

    #: Public base URL of the service.
    public_url: str
    #: HMAC key (REMINDERS_SECRET_KEY).
    secret: str

    def url(self, reminder_id: int) -> str:
        """The signed unsubscribe URL that comes with email reminder ``reminder_id``."""
        return f"{self.public_url}/unsubscribe/{sign(self.secret, reminder_id)}"

    def calendar(self, reminder_id: int) -> str:
        """The signed URL of the patient's calendar, as linked from reminder ``reminder_id``."""
        return f"{self.public_url}/calendar/{sign(self.secret, reminder_id, CALENDAR)}.ics"

    def check_in(self, reminder_id: int) -> str:
        """The signed page on which the patient answers the check-in of ``reminder_id``."""
        return f"{self.public_url}/checkin/{sign(self.secret, reminder_id, CHECK_IN)}"

    def alert(self, alert_id: int) -> str:
        """Where the care team opens an alert (the dashboard; it asks them to sign in)."""
        return f"{self.public_url}/app/alerts/{alert_id}"


def message_context(
    clinic: Clinic,
    recipient: Recipient,
    *,
    milestone: str,
    occurrence: int,
    day: date,
    unsubscribe_url: str | None = None,
    first: bool = False,
    phone: ClinicPhone | None = None,
    calendar_url: str | None = None,
    check_in_url: str | None = None,
) -> dict[str, Any]:
    """The variables every template may use (documented in the README).

    ``occurrence`` may be a copy's number (re-planned or resent): templates see the
    protocol occurrence it repeats.
    """
    days = (day - recipient.surgery_date).days
    phone = phone or ClinicPhone.of(clinic)
    return {
        "patient": {"first_name": recipient.first_name, "last_name": recipient.last_name},
        "clinic": {
            "name": clinic.name,
            "short_name": clinic.short_name,
            "phone": phone.shown_to(recipient),
            "phone_e164": phone.e164,
        },
        "milestone": {"id": milestone},
        "occurrence": base_occurrence(occurrence),
        "days_since_surgery": days,
        "weeks_since_surgery": days // 7,
        "surgery_date": recipient.surgery_date.isoformat(),
        "unsubscribe_url": unsubscribe_url,
        "calendar_url": calendar_url,
        "first": first,
        "check_in_url": check_in_url,
        "emergency_number": clinic.emergency_number,
    }


def claimed_message(
    r: Claimed,
    rendered: Rendered,
    message_id: str,
    local: datetime,
    unsubscribe_url: str | None = None,
) -> Message:
    """The message a claimed row hands its channel: ``rendered`` to ``r``'s address, sent
    at ``local`` (the recipient's clock, shown in the console and logs)."""
    assert r.address is not None  # noqa: S101  # the dispatcher checked
    return Message(
        reminder_id=r.id,
        channel=r.channel,
        to=r.address,
        text=rendered.text,
        subject=rendered.subject,
        html=rendered.html,
        message_id=message_id,
        expires_at=r.expires_at,
        patient_id=r.patient_id,
        local_time=local.strftime("%a %Y-%m-%d %H:%M %Z"),
        unsubscribe_url=unsubscribe_url,
    )


class Occurrence(Protocol):
    """A reminder as claimed or stored: what to render, and for which day."""

    @property
    def channel(self) -> str:
        """``sms`` or ``email``."""

    @property
    def template(self) -> str:
        """Template name."""

    @property
    def milestone(self) -> str:
        """Milestone id."""

    @property
    def occurrence(self) -> int:
        """1-based occurrence number."""

    @property
    def due_at(self) -> datetime:
        """Due time (UTC); the message speaks of its local day."""


class Composer:
    """Renders messages from one configuration (schedules + templates)."""

    def __init__(
        self,
        schedules: Schedules,
        templates: Templates,
        *,
        unsubscribe: Links | None = None,
        message_domain: str = DEFAULT_DOMAIN,
    ) -> None:
        #: The validated schedules.yaml.
        self.schedules = schedules
        #: The template set.
        self.templates = templates
        #: One-click unsubscribe links, when a public URL and a secret key are set.
        self.unsubscribe = unsubscribe
        #: Domain of Message-IDs.
        self.message_domain = message_domain
        #: The clinic's number in every form.
        self.phone = ClinicPhone.of(schedules.clinic)
        self._zones: dict[str, ZoneInfo] = {}
        # The earliest milestone of each protocol: its message is, for a patient enrolled
        # in time, the first one they receive (previews show it with the opt-out line).
        self._openers = {
            id(min(p.milestones, key=lambda m: m.offset_days))
            for p in schedules.protocols.values()
            if p.milestones
        }

    def zone(self, name: str) -> ZoneInfo:
        """The IANA zone ``name``, loaded once."""
        zone = self._zones.get(name)
        if zone is None:
            zone = self._zones[name] = ZoneInfo(name)
        return zone

    def render(
        self,
        channel: str,
        recipient: Recipient,
        *,
        template: str,
        milestone: str,
        occurrence: int,
        day: date,
        unsubscribe_url: str | None = None,
        first: bool = False,
        calendar_url: str | None = None,
        check_in_url: str | None = None,
    ) -> Rendered:
        """The rendered text (and subject and HTML for email); raises TemplateError.

        ``first``: no earlier message on this channel reached the patient.
        """
        context = message_context(
            self.schedules.clinic,
            recipient,
            milestone=milestone,
            occurrence=occurrence,
            day=day,
            unsubscribe_url=unsubscribe_url if channel == "email" else None,
            first=first,
            phone=self.phone,
            calendar_url=calendar_url if channel == "email" else None,
            check_in_url=check_in_url if channel == "email" else None,
        )
        return self.templates.render(channel, recipient.language, template, context)

    def render_occurrence(
        self,
        reminder: Occurrence,
        recipient: Recipient,
        *,
        unsubscribe_url: str | None = None,
        first: bool = False,
        calendar_url: str | None = None,
        check_in_url: str | None = None,
    ) -> Rendered:
        """What one planned or stored reminder says, on the day it is due for ``recipient``."""
        return self.render(
            reminder.channel,
            recipient,
            template=reminder.template,
            milestone=reminder.milestone,
            occurrence=reminder.occurrence,
            day=reminder.due_at.astimezone(self.zone(recipient.timezone)).date(),
            unsubscribe_url=unsubscribe_url,
            first=first,
            calendar_url=calendar_url,
            check_in_url=check_in_url,
        )

    def render_first(
        self, channel: str, recipient: Recipient, milestone: Milestone, *, first: bool | None = None
    ) -> Rendered:
        """What a milestone's first occurrence says to ``recipient`` (previews and checks).

        ``first`` defaults to whether the milestone opens its protocol: the message a
        patient enrolled in time receives first, with the opt-out line.
        """
        return self.render(
            channel,
            recipient,
            template=milestone.template,
            milestone=milestone.id,
            occurrence=1,
            day=recipient.surgery_date + timedelta(days=milestone.offset_days),
            first=id(milestone) in self._openers if first is None else first,
        )

    def message(self, r: Claimed, now: datetime) -> Message:
        """The exact message claimed reminder ``r`` sends at ``now``; raises TemplateError."""
        assert r.address is not None  # noqa: S101  # the dispatcher checked
        if r.kind != MessageKind.REMINDER:
            return render_outbound(self, r, now)
        zone = self.zone(r.recipient.timezone)
        links = self.unsubscribe if r.channel == "email" else None
        unsubscribe = links.url(r.id) if links else None
        asks = self.schedules.question(r.protocol, r.milestone) is not None
        rendered = self.render_occurrence(
            r,
            r.recipient,
            unsubscribe_url=unsubscribe,
            first=r.first,
            calendar_url=links.calendar(r.id) if links else None,
            check_in_url=links.check_in(r.id) if links and asks else None,
        )
        message_id = f"<reminder.{r.id}.{r.milestone}.{r.occurrence}@{self.message_domain}>"
        return claimed_message(r, rendered, message_id, now.astimezone(zone), unsubscribe)

    # -- checking every template -----------------------------------------------------------

    def check(self) -> tuple[list[TemplateError], list[SmsCheck]]:
        """Render every template for every language and channel with sample data.

        Each is rendered as the first message a patient receives (with the opt-out line)
        and as a later one; an SMS also with the clinic's number written for a patient
        abroad, and its largest segment count is the template's. Returns the errors
        (missing files, syntax, unknown variables, SMS over the segment limit) and the
        segment count of every SMS template.
        """
        errors: dict[str, TemplateError] = {}
        checks: dict[tuple[str, str], SmsCheck] = {}
        home = self.phone.country
        abroad = next(p for p in SAMPLE_ABROAD if country_of(p, home) != home)
        for language, channel, milestone in self._every_message():
            counts: list[SegmentCount] = []
            for phone, first in ((None, True), (abroad, True), (None, False)):
                sample = Recipient(
                    "P-SAMPLE",
                    SAMPLE_FIRST_NAME,
                    "Sample",
                    language,
                    "UTC",
                    SAMPLE_SURGERY,
                    phone,
                )
                try:
                    rendered = self.render(
                        channel,
                        sample,
                        template=milestone.template,
                        milestone=milestone.id,
                        occurrence=1,
                        day=SAMPLE_SURGERY,
                        unsubscribe_url="https://clinic.example.com/unsubscribe/sample-token",
                        first=first,
                        calendar_url="https://clinic.example.com/calendar/sample-token.ics",
                    )
                except TemplateError as exc:
                    errors.setdefault(str(exc), exc)
                    break
                if channel == "sms":
                    counts.append(count_segments(rendered.text))
            if not counts:
                continue
            count = max(counts, key=lambda c: (c.segments, c.units))
            checks.setdefault(
                (language, milestone.template), SmsCheck(language, milestone.template, count)
            )
            error = self.over_limit(language, milestone.template, count, ", with the opt-out line")
            if error is not None:
                errors.setdefault(str(error), error)
        for error in check_outbound(self):
            errors.setdefault(str(error), error)
        return list(errors.values()), list(checks.values())

    def over_limit(
        self, language: str, template: str, count: SegmentCount, detail: str = ""
    ) -> TemplateError | None:
        """The error of an SMS template that renders past the segment limit, naming its file."""
        if count.segments <= MAX_SEGMENTS:
            return None
        return TemplateError(
            str(self.templates.directory / language / f"{template}.sms.j2"),
            f"renders to {count.segments} SMS segments ({count.units} {count.encoding} "
            f"units{detail}); the limit is {MAX_SEGMENTS}",
        )

    def long_sms(self, patients: list[Patient]) -> Iterator[str]:
        """Every patient whose own name pushes an SMS past the segment limit.

        A name with a character outside GSM-7 (``Zoë``) switches the whole SMS to UCS-2.
        """
        seen: set[tuple[str, str, str, str]] = set()
        for patient in patients:
            if "sms" not in patient.channels:
                continue
            recipient = Recipient.of(patient)
            shown = self.phone.shown_to(recipient)
            for milestone in self.schedules.protocols[patient.protocol].milestones:
                key = (patient.first_name, patient.language, milestone.template, shown)
                if "sms" not in milestone.channels or key in seen:
                    continue
                seen.add(key)
                try:
                    # As the first message the patient receives: with the opt-out line.
                    text = self.render_first("sms", recipient, milestone, first=True).text
                except TemplateError:
                    continue  # already reported by the template check
                count = count_segments(text)
                if count.segments > MAX_SEGMENTS:
                    yield (
                        f"patient id={patient.id}: first_name: the {milestone.template} SMS "
                        f"renders to {count.segments} segments ({count.encoding}) with this name"
                    )

    def _every_message(self) -> Iterator[tuple[str, str, Milestone]]:
        for protocol in self.schedules.protocols.values():
            for milestone in protocol.milestones:
                for language in self.schedules.languages:
                    for channel in milestone.channels:
                        yield language, channel, milestone


@dataclass(frozen=True, slots=True)
class SmsCheck:
    """The segment count of one SMS template, rendered with sample data."""

    #: Language.
    language: str
    #: Template name.
    template: str
    #: Segment arithmetic.
    count: SegmentCount
