"""Frozen values shared by the pure core: protocols, milestones, patients, planned reminders.

Everything here is validated already (see :mod:`reminders.config` and
:mod:`reminders.patients`); code past the boundary trusts these values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from reminders.questions import CheckInQuestion

Channel = Literal["sms", "email"]
#: Every channel the service can deliver on, in display order.
CHANNELS: Final[tuple[Channel, ...]] = ("sms", "email")


@dataclass(frozen=True, slots=True)
class SendWindow:
    """The local hours in which messages may go out (``start`` inclusive, ``end`` exclusive)."""

    #: First local time a message may be sent.
    start: time
    #: Local time from which nothing is sent until the next day's ``start``.
    end: time

    def contains(self, local: time) -> bool:
        """Whether a local wall-clock time falls inside the window."""
        return self.start <= local < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True, slots=True)
class Repeat:
    """Repeat a milestone every ``every_days`` until ``until_days`` after the anchor (inclusive)."""

    #: Days between occurrences (a week is 7).
    every_days: int
    #: Last offset, in days from the anchor, at which an occurrence may fall.
    until_days: int


@dataclass(frozen=True, slots=True)
class Milestone:
    """One step of a protocol: what to send, when, and to whom."""

    #: Stable identifier, unique in its protocol; part of every reminder's key.
    id: str
    #: Days after the anchor (surgery) date of the first occurrence.
    offset_days: int
    #: Local wall-clock time to send at, in the patient's time zone.
    send_time: time
    #: Channels this milestone is sent on (a patient may have fewer).
    channels: tuple[Channel, ...]
    #: Template name under ``templates/<language>/``.
    template: str
    #: How long after its due time a reminder may still be sent.
    expires_after: timedelta
    #: Optional repetition.
    repeat: Repeat | None = None
    #: Conditions on patient attributes: every key must hold one of its values.
    when: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: The check-in question this milestone asks, if it is a check-in.
    question: CheckInQuestion | None = None

    def offsets(self) -> tuple[int, ...]:
        """Day offsets of every occurrence, first one first (occurrence 1 is index 0)."""
        if self.repeat is None:
            return (self.offset_days,)
        return tuple(range(self.offset_days, self.repeat.until_days + 1, self.repeat.every_days))

    def applies_to(self, attributes: Mapping[str, str]) -> bool:
        """Whether the patient's attributes satisfy every condition of this milestone."""
        return all(attributes.get(key) in accepted for key, accepted in self.when.items())


@dataclass(frozen=True, slots=True)
class Protocol:
    """A named care pathway: an ordered list of milestones.

    Patients files name it by ``id``; its ``version`` goes up when what patients are told
    changes, so a timeline can say which version a message came from.
    """

    #: Identifier used in the patients file, e.g. ``proximal-hamstring-repair``.
    id: str
    #: Human title shown to coordinators.
    title: str
    #: Version number; bump it when clinical content changes.
    version: int
    #: Milestones in file order.
    milestones: tuple[Milestone, ...]

    def milestone(self, milestone_id: str) -> Milestone | None:
        """The milestone with that id, or ``None``."""
        return next((m for m in self.milestones if m.id == milestone_id), None)


@dataclass(frozen=True, slots=True)
class Colours:
    """The dashboard's colours (``clinic.colours``), checked to be ``#rgb`` or ``#rrggbb``."""

    #: The header bar.
    primary: str = "#1f4e79"
    #: Links and buttons.
    accent: str = "#0b6e4f"


@dataclass(frozen=True, slots=True)
class Clinic:
    """Who the messages come from."""

    #: Full name, used in email.
    name: str
    #: Short name that prefixes SMS bodies.
    short_name: str
    #: Phone number in E.164.
    phone: str
    #: Phone number as patients dial it in the clinic's country.
    phone_display: str
    #: IANA time zone used when a patient gives none.
    timezone: str
    #: ISO 3166 region used to read national-format phone numbers.
    country: str
    #: Where free-text patient replies are forwarded (optional).
    coordinator_email: str | None = None
    #: The dashboard's colours.
    colours: Colours = field(default_factory=Colours)
    #: Email addresses told of every new alert.
    care_team: tuple[str, ...] = ()
    #: E.164 numbers texted for urgent alerts (and again if nobody acknowledges).
    on_call: tuple[str, ...] = ()
    #: What patients dial in an emergency (safety replies and the check-in page say it).
    emergency_number: str = "911"


#: The FHIR extension whose ``valueCode`` is a patient's IANA time zone (FHIR extensions pack).
TIMEZONE_EXTENSION: Final = "http://hl7.org/fhir/StructureDefinition/timezone"


@dataclass(frozen=True, slots=True)
class FhirMapping:
    """How a FHIR Bundle of Patient + Procedure becomes patient records (``fhir:`` block)."""

    #: ``Patient.identifier.system`` whose value is the patient id; ``None``: ``Patient.id``.
    patient_identifier: str | None = None
    #: Extension (on Patient) whose ``valueCode`` is the patient's IANA time zone.
    timezone_extension: str = TIMEZONE_EXTENSION
    #: Extension (on Procedure) holding one attribute as ``name`` + ``value`` sub-extensions.
    attribute_extension: str | None = None
    #: Protocol id by procedure coding ``(system, code)``, in the file's order.
    procedures: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def codes_of(self, protocol: str) -> list[tuple[str, str]]:
        """The codings that map to ``protocol``, in the file's order."""
        return [coding for coding, target in self.procedures.items() if target == protocol]


@dataclass(frozen=True, slots=True)
class Schedules:
    """The whole validated ``schedules.yaml``."""

    #: The clinic block.
    clinic: Clinic
    #: Protocol used when a patient names none (optional).
    default_protocol: str | None
    #: Local hours in which anything may be sent.
    send_window: SendWindow
    #: Languages every template must exist in; the first is the default.
    languages: tuple[str, ...]
    #: Protocols by id.
    protocols: Mapping[str, Protocol]
    #: Digest of everything that changes a plan; stored with each enrollment.
    fingerprint: str
    #: Reading FHIR bundles (the ``fhir:`` block; empty when absent).
    fhir: FhirMapping = field(default_factory=FhirMapping)
    #: An urgent alert nobody acknowledged within this is sent to the on-call list again.
    ack_within: timedelta = timedelta(minutes=30)

    def question(self, protocol: str, milestone: str) -> CheckInQuestion | None:
        """The check-in question of a milestone, or None (not a check-in, or unknown)."""
        p = self.protocols.get(protocol)
        m = p.milestone(milestone) if p is not None else None
        return m.question if m is not None else None


@dataclass(frozen=True, slots=True)
class Patient:
    """One validated record of the patients file."""

    #: Stable identifier (e.g. an MRN).
    id: str
    #: Used in greetings.
    first_name: str
    #: Optional.
    last_name: str
    #: E.164 or ``None``.
    phone: str | None
    #: Normalised address or ``None``.
    email: str | None
    #: The anchor date of the protocol.
    surgery_date: date
    #: Protocol id.
    protocol: str
    #: IANA zone name.
    timezone: str
    #: Template language.
    language: str
    #: Channels the patient is reached on.
    channels: tuple[Channel, ...]
    #: ``active``, ``paused`` or ``withdrawn``.
    status: str
    #: Free-form attributes for milestone conditions.
    attributes: Mapping[str, str] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """Digest of the record: an unchanged digest means nothing to re-plan."""
        payload = json.dumps(
            [
                self.id,
                self.first_name,
                self.last_name,
                self.phone,
                self.email,
                self.surgery_date.isoformat(),
                self.protocol,
                self.timezone,
                self.language,
                list(self.channels),
                self.status,
                sorted(self.attributes.items()),
            ],
            separators=(",", ":"),
        )
        return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who a message is for: what the templates may say about the patient, and where."""

    #: Patient id (the console's dry run shows it; never sent to a provider).
    patient_id: str
    #: Used in greetings.
    first_name: str
    #: Optional.
    last_name: str
    #: Template language.
    language: str
    #: IANA zone: the due day and the local send time are read in it.
    timezone: str
    #: The protocol's anchor date.
    surgery_date: date
    #: E.164 phone number, if any: its country decides how the clinic's number is written.
    phone: str | None = None

    @classmethod
    def of(cls, patient: Patient) -> Recipient:
        """The recipient of a validated patients-file record."""
        return cls(
            patient.id,
            patient.first_name,
            patient.last_name,
            patient.language,
            patient.timezone,
            patient.surgery_date,
            patient.phone,
        )


@dataclass(frozen=True, slots=True)
class PlannedReminder:
    """One message the plan says a patient should receive."""

    #: Patient id.
    patient_id: str
    #: Protocol id.
    protocol: str
    #: Milestone id.
    milestone: str
    #: 1-based occurrence number of a repeating milestone (1 for a single one).
    occurrence: int
    #: ``sms`` or ``email``.
    channel: Channel
    #: Template name.
    template: str
    #: When to send, UTC.
    due_at: datetime
    #: After this instant (UTC) the reminder is never sent.
    expires_at: datetime
