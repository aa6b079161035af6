"""Check-in answers and alerts as FHIR R4: Questionnaire, QuestionnaireResponse and Flag.

* ``Questionnaire``: one per check-in question (protocol and milestone), with one item named
  after its measure (``pain``): an ``integer`` for a 0-10 scale, a ``boolean`` for yes-no,
  a ``choice`` of the numbered options; its ``url`` is what each response names;
* ``QuestionnaireResponse``: one per answered check-in (``authored`` = when the answer came,
  the value as read, never the words of the reply);
* ``Flag``: one per alert, ``active`` until it is resolved, then ``inactive`` with the end of
  its period, so that a receiving server closes it; its code is the alert's level, its text
  the alert's reason in words (which never quote the patient).

Ids are name-based UUIDs of the check-in's key and of the alert's row id, as in
:mod:`reminders.fhir.export`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from reminders.fhir.ids import instant, resource_id
from reminders.lifecycle import AlertStatus, FhirStatus
from reminders.questions import CheckInQuestion
from reminders.replies import QuestionKind
from reminders.store import Alert, CheckIn

#: The canonical URL of a check-in question's Questionnaire.
QUESTIONNAIRE_URL: Final = "urn:recovery-reminders:questionnaire:{protocol}:{milestone}"
#: The level of an alert, as the code of its Flag.
ALERT_SYSTEM: Final = "urn:recovery-reminders:alert-level"
#: HL7's flag categories: an alert is clinical.
FLAG_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/flag-category"
#: The Questionnaire item type of each kind of question.
ITEM_TYPE: Final[Mapping[QuestionKind, str]] = {
    QuestionKind.SCALE: "integer",
    QuestionKind.YES_NO: "boolean",
    QuestionKind.CHOICE: "choice",
}


def questionnaire_url(protocol: str, milestone: str) -> str:
    """What a QuestionnaireResponse names as the Questionnaire it answers."""
    return QUESTIONNAIRE_URL.format(protocol=protocol, milestone=milestone)


def questionnaire(protocol: str, milestone: str, question: CheckInQuestion) -> dict[str, Any]:
    """The Questionnaire of one check-in question."""
    item: dict[str, Any] = {
        "linkId": question.measure,
        "text": question.measure,
        "type": ITEM_TYPE[question.kind],
        "required": True,
    }
    if question.kind == QuestionKind.CHOICE:
        item["answerOption"] = [{"valueInteger": n} for n in range(1, question.options + 1)]
    return {
        "resourceType": "Questionnaire",
        "id": resource_id("Questionnaire", protocol, milestone),
        "url": questionnaire_url(protocol, milestone),
        "name": f"{milestone}".replace("-", "_"),
        "status": FhirStatus.ACTIVE,
        "subjectType": ["Patient"],
        "item": [item],
    }


def response(check_in: CheckIn, patient: str, careplan: str) -> dict[str, Any]:
    """The QuestionnaireResponse of one answered check-in."""
    assert check_in.value is not None  # noqa: S101  # only answered check-ins are passed
    assert check_in.answered_at is not None  # noqa: S101
    answer: dict[str, Any] = (
        {"valueBoolean": bool(check_in.value)}
        if check_in.kind == QuestionKind.YES_NO
        else {"valueInteger": check_in.value}
    )
    key = (check_in.patient_id, check_in.protocol, check_in.milestone, check_in.occurrence)
    return {
        "resourceType": "QuestionnaireResponse",
        "id": resource_id("QuestionnaireResponse", *key),
        "questionnaire": questionnaire_url(check_in.protocol, check_in.milestone),
        "basedOn": [{"reference": f"CarePlan/{careplan}"}],
        "status": FhirStatus.COMPLETED,
        "subject": {"reference": patient},
        "source": {"reference": patient},
        "authored": instant(check_in.answered_at),
        "item": [{"linkId": check_in.measure, "answer": [answer]}],
    }


def flag(alert: Alert, patient: str) -> dict[str, Any]:
    """The Flag of one alert: active until it is resolved."""
    resolved = alert.status == AlertStatus.RESOLVED
    period = {"start": instant(alert.raised_at)}
    if resolved and alert.resolved_at is not None:
        period["end"] = instant(alert.resolved_at)
    return {
        "resourceType": "Flag",
        "id": resource_id("Flag", alert.id),
        "status": "inactive" if resolved else FhirStatus.ACTIVE,
        "category": [{"coding": [{"system": FLAG_CATEGORY, "code": "clinical"}]}],
        "code": {"coding": [{"system": ALERT_SYSTEM, "code": alert.level}], "text": alert.words},
        "subject": {"reference": patient},
        "period": period,
    }
