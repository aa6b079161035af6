"""What the service planned, sent and heard, as FHIR R4 resources (``reminders export fhir``).

Per enrollment:

=========================  ====================================================================
``Patient``                the patient as the service reaches them: identifier, name, the phone
                           and email of their channels, language, time-zone extension
``Procedure``              the anchor: ``performedDateTime`` (the surgery date) and the code
                           that ``schedules.yaml``'s ``fhir.procedures`` maps to the protocol
``CarePlan``               the protocol: one activity per milestone (its days, its status);
                           ``status`` is the enrollment's
``CommunicationRequest``   one per reminder (milestone occurrence and channel): when it is due
                           (``occurrenceDateTime``) and where it stands (``status``, with the
                           reminder's own status as ``statusReason``)
``Communication``          one per message sent: ``basedOn`` its request, ``sent``; the text is
                           never exported, only a reference to it (the digest the attempt kept)
``QuestionnaireResponse``  one per check-in answer, after the ``Questionnaire`` it answers
                           (:mod:`reminders.fhir.answers`)
``Flag``                   one per alert: ``active`` until resolved
=========================  ====================================================================

Responses to a patient's texts (HELP, re-prompts, safety replies) are requests and
communications too, not activities of the CarePlan; notices to the care team are left out.

Resource ids are name-based UUIDs (``uuid5``) of database keys, so two exports name the same
thing alike and a receiving server updates instead of duplicating; ``Patient.id`` is the
patient id itself when FHIR allows it (letters, digits, ``-`` and ``.``, at most 64).
Importing the Patient and Procedure part (``--patients export.json``) plans the same
reminders again. Everything here is pure: the store's rows in, JSON-ready dicts out.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import IO, Any, Final

from reminders.copies import base_occurrence
from reminders.fhir.answers import flag, questionnaire, response
from reminders.fhir.ids import instant, patient_resource_id, resource_id
from reminders.lifecycle import (
    CheckInStatus,
    EnrollmentStatus,
    FhirStatus,
    MessageKind,
    ReminderStatus,
)
from reminders.models import Schedules
from reminders.store import Alert, CheckIn, Enrollment, TimelineEntry, Transaction

#: Identifier systems and code systems of this service's own values.
REMINDER_SYSTEM: Final = "urn:recovery-reminders:reminder"
PROVIDER_SYSTEM: Final = "urn:recovery-reminders:provider-message"
TEXT_SYSTEM: Final = "urn:recovery-reminders:text-digest"
PATIENT_SYSTEM: Final = "urn:recovery-reminders:patient"
LANGUAGE_SYSTEM: Final = "urn:ietf:bcp:47"

#: ``CommunicationRequest.status`` of each reminder status (a planned reminder of a paused
#: patient is held: ``on-hold``); the reminder's own status goes in ``statusReason``.
REQUEST_STATUS: Final[Mapping[ReminderStatus, FhirStatus]] = {
    ReminderStatus.PLANNED: FhirStatus.ACTIVE,
    ReminderStatus.SENDING: FhirStatus.ACTIVE,
    ReminderStatus.SENT: FhirStatus.COMPLETED,
    ReminderStatus.DELIVERED: FhirStatus.COMPLETED,
    ReminderStatus.FAILED: FhirStatus.REVOKED,
    ReminderStatus.CANCELLED: FhirStatus.REVOKED,
    ReminderStatus.EXPIRED: FhirStatus.REVOKED,
    ReminderStatus.SUPPRESSED: FhirStatus.REVOKED,
}
#: ``CarePlan.status`` of each enrollment status.
CAREPLAN_STATUS: Final[Mapping[EnrollmentStatus, FhirStatus]] = {
    EnrollmentStatus.ACTIVE: FhirStatus.ACTIVE,
    EnrollmentStatus.PAUSED: FhirStatus.ON_HOLD,
    EnrollmentStatus.WITHDRAWN: FhirStatus.REVOKED,
    EnrollmentStatus.COMPLETED: FhirStatus.COMPLETED,
}
_PENDING: Final = frozenset({ReminderStatus.PLANNED, ReminderStatus.SENDING})
_SETTLED: Final = frozenset(ReminderStatus) - _PENDING - {ReminderStatus.CANCELLED}
#: ``CarePlan.activity.detail.status`` of a milestone: the first whose test holds, given the
#: statuses of its reminders and whether the patient is paused.
ACTIVITY_STATUS: Final[Mapping[FhirStatus, Callable[[frozenset[str], bool], bool]]] = {
    FhirStatus.CANCELLED: lambda seen, _: seen == {ReminderStatus.CANCELLED},
    FhirStatus.ON_HOLD: lambda seen, paused: paused and bool(seen & _PENDING),
    FhirStatus.IN_PROGRESS: lambda seen, _: bool(seen & _PENDING) and bool(seen & _SETTLED),
    FhirStatus.SCHEDULED: lambda seen, _: bool(seen & _PENDING),
    FhirStatus.COMPLETED: lambda seen, _: True,
}


@dataclass(frozen=True, slots=True)
class Sent:
    """What the attempt that sent a reminder kept of it."""

    #: Digest of the exact text sent.
    digest: str | None
    #: The provider's message id.
    provider_id: str | None


@dataclass
class PatientRecord:
    """One enrollment and what the store holds about it."""

    #: The enrollment.
    enrollment: Enrollment
    #: Its reminders, in due order.
    reminders: Sequence[TimelineEntry] = field(default_factory=list)
    #: The sending attempt of each sent reminder, by reminder id.
    sent: Mapping[int, Sent] = field(default_factory=dict)
    #: Its check-ins, first asked first.
    check_ins: Sequence[CheckIn] = field(default_factory=list)
    #: Its alerts.
    alerts: Sequence[Alert] = field(default_factory=list)


class Exporter:
    """Turns enrollments into FHIR resources, for one ``schedules.yaml``."""

    def __init__(self, schedules: Schedules, today: date) -> None:
        self.schedules = schedules
        self.mapping = schedules.fhir
        self.today = today
        #: The check-in questions whose Questionnaire is written already.
        self.asked: set[tuple[str, str]] = set()

    def resources(
        self, record: PatientRecord, since: datetime | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every resource of one enrollment (``since``: only what changed from then on)."""
        e = record.enrollment
        rows = list(record.reminders)
        if since is not None:
            changed = [r for r in rows if r.updated_at >= since]
            if e.updated_at < since and not changed:
                return
            fresh = changed
        else:
            fresh = rows
        patient = f"Patient/{patient_resource_id(e.patient_id)}"
        careplan = resource_id("CarePlan", e.patient_id, e.protocol)
        yield self.patient(e)
        yield self.procedure(e, patient)
        yield self.careplan(e, patient, careplan, rows)
        for row in fresh:
            yield self.request(e, patient, careplan, row)
        for row in fresh:
            sent = record.sent.get(row.id) if row.id is not None else None
            if (
                row.sent_at is not None
                and REQUEST_STATUS[ReminderStatus(row.status)] == FhirStatus.COMPLETED
            ):
                yield self.communication(e, patient, row, sent)
        yield from self.answers(record, patient, careplan, since)

    def answers(
        self, record: PatientRecord, patient: str, careplan: str, since: datetime | None
    ) -> Iterator[dict[str, Any]]:
        """A QuestionnaireResponse per answer (after its Questionnaire, once per Bundle) and
        a Flag per alert."""
        for check_in in record.check_ins:
            if check_in.status != CheckInStatus.ANSWERED or check_in.value is None:
                continue
            if since is not None and (check_in.answered_at or since) < since:
                continue
            key = (check_in.protocol, check_in.milestone)
            question = self.schedules.question(*key)
            if question is not None and key not in self.asked:
                self.asked.add(key)
                yield questionnaire(*key, question)
            yield response(check_in, patient, careplan)
        for alert in record.alerts:
            moments = (alert.raised_at, alert.acknowledged_at, alert.resolved_at)
            if since is None or max(m for m in moments if m is not None) >= since:
                yield flag(alert, patient)

    def patient(self, e: Enrollment) -> dict[str, Any]:
        """The Patient resource of an enrollment."""
        system = self.mapping.patient_identifier or PATIENT_SYSTEM
        channels = e.channels.split(",")
        telecom = []
        if e.phone and "sms" in channels:
            telecom.append({"system": "sms", "value": e.phone, "use": "mobile"})
        if e.email and "email" in channels:
            telecom.append({"system": "email", "value": e.email})
        name: dict[str, Any] = {"use": "official", "given": [e.first_name]}
        if e.last_name:
            name["family"] = e.last_name
        resource: dict[str, Any] = {
            "resourceType": "Patient",
            "id": patient_resource_id(e.patient_id),
            "extension": [{"url": self.mapping.timezone_extension, "valueCode": e.timezone}],
            "identifier": [{"use": "usual", "system": system, "value": e.patient_id}],
            "name": [name],
            "communication": [
                {
                    "language": {"coding": [{"system": LANGUAGE_SYSTEM, "code": e.language}]},
                    "preferred": True,
                }
            ],
        }
        if telecom:
            resource["telecom"] = telecom
        return resource

    def procedure(self, e: Enrollment, patient: str) -> dict[str, Any]:
        """The Procedure the reminders are anchored on."""
        codes = self.mapping.codes_of(e.protocol)
        code: dict[str, Any] = (
            {"coding": [{"system": system, "code": value} for system, value in codes[:1]]}
            if codes
            else {"text": e.protocol}
        )
        resource: dict[str, Any] = {
            "resourceType": "Procedure",
            "id": resource_id("Procedure", e.patient_id, e.protocol),
            "status": (
                FhirStatus.PREPARATION if e.surgery_date > self.today else FhirStatus.COMPLETED
            ),
            "code": code,
            "subject": {"reference": patient},
            "performedDateTime": e.surgery_date.isoformat(),
        }
        attributes = json.loads(e.attributes or "{}")
        url = self.mapping.attribute_extension
        if url and attributes:
            resource["extension"] = [
                {
                    "url": url,
                    "extension": [
                        {"url": "name", "valueString": name},
                        {"url": "value", "valueString": value},
                    ],
                }
                for name, value in sorted(attributes.items())
            ]
        return resource

    def careplan(
        self, e: Enrollment, patient: str, careplan: str, rows: Sequence[TimelineEntry]
    ) -> dict[str, Any]:
        """The CarePlan of an enrollment: one activity per milestone of its protocol."""
        protocol = self.schedules.protocols.get(e.protocol)
        order = [m.id for m in protocol.milestones] if protocol else []
        by_milestone: dict[str, list[TimelineEntry]] = {}
        for row in rows:
            if row.kind == MessageKind.REMINDER:  # not the responses to the patient's texts
                by_milestone.setdefault(row.milestone, []).append(row)
        order += sorted(set(by_milestone) - set(order))
        paused = e.status == EnrollmentStatus.PAUSED
        activities = []
        for milestone in order:
            members = by_milestone.get(milestone)
            if not members:
                continue  # a milestone this patient's plan leaves out (a condition)
            seen = frozenset(r.status for r in members)
            status = next(code for code, test in ACTIVITY_STATUS.items() if test(seen, paused))
            days = sorted({_first_due(members, occ) for occ in _occurrences(members)})
            activities.append(
                {
                    "detail": {
                        "kind": "CommunicationRequest",
                        "code": {
                            "coding": [{"system": _milestone_system(e.protocol), "code": milestone}]
                        },
                        "status": status,
                        "scheduledTiming": {"event": [instant(d) for d in days]},
                    }
                }
            )
        resource: dict[str, Any] = {
            "resourceType": "CarePlan",
            "id": careplan,
            "status": CAREPLAN_STATUS[EnrollmentStatus(e.status)],
            "intent": "plan",
            "subject": {"reference": patient},
            "period": {"start": e.surgery_date.isoformat()},
            "created": instant(e.created_at),
        }
        if protocol is not None:
            resource["title"] = protocol.title
            resource["instantiatesUri"] = [_milestone_system(e.protocol)]
        if activities:
            resource["activity"] = activities
        return resource

    def request(
        self, e: Enrollment, patient: str, careplan: str, row: TimelineEntry
    ) -> dict[str, Any]:
        """The CommunicationRequest of one reminder (or response to the patient's text: one
        the CarePlan did not plan, so not ``basedOn`` it)."""
        status = REQUEST_STATUS[ReminderStatus(row.status)]
        if row.status in _PENDING and e.status == EnrollmentStatus.PAUSED:
            status = FhirStatus.ON_HOLD
        reason = row.status + (f" ({row.error_code})" if row.error_code else "")
        resource: dict[str, Any] = {
            "resourceType": "CommunicationRequest",
            "id": resource_id("CommunicationRequest", *_key(row)),
            "status": status,
            "statusReason": {"text": reason},
            "subject": {"reference": patient},
            "recipient": [{"reference": patient}],
            "medium": [{"text": row.channel}],
            "payload": [{"contentString": f"{row.milestone} #{base_occurrence(row.occurrence)}"}],
            "occurrenceDateTime": instant(row.due_at),
            "authoredOn": instant(e.created_at),
        }
        if row.id is not None:  # None: expired before enrollment, a late history's slot
            resource["identifier"] = [{"system": REMINDER_SYSTEM, "value": str(row.id)}]
        if row.kind == MessageKind.REMINDER:
            resource["basedOn"] = [{"reference": f"CarePlan/{careplan}"}]
        return resource

    def communication(
        self, e: Enrollment, patient: str, row: TimelineEntry, sent: Sent | None
    ) -> dict[str, Any]:
        """The Communication of one sent reminder: a reference to its text, never the text."""
        assert row.sent_at is not None  # noqa: S101  # only sent reminders are passed
        reference: dict[str, Any] = {"display": f"{row.template} ({e.language}, {row.channel})"}
        if sent is not None and sent.digest:
            reference["identifier"] = {"system": TEXT_SYSTEM, "value": sent.digest}
        resource: dict[str, Any] = {
            "resourceType": "Communication",
            "id": resource_id("Communication", *_key(row)),
            "basedOn": [
                {
                    "reference": f"CommunicationRequest/{resource_id('CommunicationRequest', *_key(row))}"
                }
            ],
            "status": FhirStatus.COMPLETED,
            "subject": {"reference": patient},
            "recipient": [{"reference": patient}],
            "medium": [{"text": row.channel}],
            "sent": instant(row.sent_at),
            "payload": [{"contentReference": reference}],
        }
        provider = row.provider_id or (sent.provider_id if sent else None)
        if provider:
            resource["identifier"] = [{"system": PROVIDER_SYSTEM, "value": provider}]
        return resource


def _key(row: TimelineEntry) -> tuple[str, str, str, int, str]:
    return (row.patient_id, row.protocol, row.milestone, row.occurrence, row.channel)


def _milestone_system(protocol: str) -> str:
    return f"urn:recovery-reminders:protocol:{protocol}"


def _occurrences(rows: Iterable[TimelineEntry]) -> set[int]:
    return {base_occurrence(r.occurrence) for r in rows}


def _first_due(rows: Iterable[TimelineEntry], occurrence: int) -> datetime:
    live = [r for r in rows if base_occurrence(r.occurrence) == occurrence]
    current = [r for r in live if r.status != ReminderStatus.CANCELLED] or live
    return min(r.due_at for r in current)


def write_bundle(
    out: IO[str], bundle_id: str, now: datetime, resources: Iterable[dict[str, Any]]
) -> int:
    """Write a ``collection`` Bundle of ``resources`` to ``out`` as they come; returns how many."""
    head = {
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "collection",
        "timestamp": instant(now),
    }
    out.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "entry": [')
    count = 0
    for resource in resources:
        out.write(",\n" if count else "\n")
        out.write(json.dumps({"resource": resource}, ensure_ascii=False))
        count += 1
    out.write("\n]}\n")
    return count


#: Enrollments read from the store at a time (with their reminders and attempts).
PAGE: Final = 500


def records(tx: Transaction, patient: str | None = None) -> Iterator[PatientRecord]:
    """The enrollments to export (one, or all a page at a time) with what they need."""
    if patient is not None:
        pages: Iterator[list[Enrollment]] = iter([[tx.views.enrollment(patient)]])
    else:
        pages = _pages(tx)
    for page in pages:
        ids = [e.patient_id for e in page]
        reminders = tx.views.reminders_of(ids)
        sent_ids = [r.id for rows in reminders.values() for r in rows if r.sent_at and r.id]
        sent = {rid: Sent(*found) for rid, found in tx.views.sent_attempts(sent_ids).items()}
        for enrollment in page:
            pid = enrollment.patient_id
            yield PatientRecord(
                enrollment,
                reminders[pid],
                sent,
                tx.checkins.of(pid),
                tx.alerts.listed(patient_id=pid),
            )


def _pages(tx: Transaction) -> Iterator[list[Enrollment]]:
    after: str | None = None
    while page := tx.views.enrollments(after=after, limit=PAGE):
        yield page
        after = page[-1].patient_id


def export_bundle(
    tx: Transaction,
    schedules: Schedules,
    out: IO[str],
    now: datetime,
    *,
    patient: str | None = None,
    since: datetime | None = None,
) -> int:
    """Write the Bundle of one patient (or all) to ``out``; returns how many resources.

    Raises UnknownPatient before writing anything when ``patient`` is not enrolled.
    """
    exporter = Exporter(schedules, now.astimezone(UTC).date())
    chosen = records(tx, patient)
    first = next(chosen, None)  # an unknown patient raises here, before any output
    everything = itertools.chain([first] if first else [], chosen)
    bundle_id = resource_id("Bundle", patient or "*", instant(since) if since else "")
    return write_bundle(
        out, bundle_id, now, (r for record in everything for r in exporter.resources(record, since))
    )
