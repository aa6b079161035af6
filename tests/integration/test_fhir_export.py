"""``export fhir``: six simulated months of the sample patients, as FHIR R4 resources.

The sample patients (``patients-fhir.json``) are enrolled in a real outbox and every
reminder is dispatched on a simulated clock (as ``reminders demo`` does), to memory
channels. The export is then read back with the ``fhir.resources`` models.
"""

from __future__ import annotations

import io
import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from reminders.channels.memory import MemoryChannel
from reminders.errors import UnknownPatient
from reminders.fhir.export import export_bundle
from reminders.inbound import Text, receive
from reminders.lifecycle import AlertStatus, CheckInStatus, ReminderStatus
from reminders.models import Schedules
from reminders.replies import QuestionKind
from reminders.store import Store
from reminders.sync import sync_patients
from reminders.templates import Templates
from reminders.testing import make_dispatcher
from tests.conftest import REPO

START = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
SIX_MONTHS = START + timedelta(days=183)
SAMPLE = REPO / "patients-fhir.json"


#: What each patient texts back to every check-in (the others never answer).
ANSWERS = {"P-1001": ("9", "yes"), "P-1002": ("2", "no")}


def simulate(store: Store, schedules: Schedules, templates: Templates, until: datetime) -> int:
    """Dispatch every reminder due until ``until``, jumping from one due time to the next, and
    answer the open check-ins of the patients in :data:`ANSWERS` ten minutes after they are
    asked; returns how many messages went out."""
    channels = {name: MemoryChannel(name) for name in ("sms", "email")}
    dispatcher = make_dispatcher(
        store, schedules, templates, channels, owner="sim", rng=random.Random(0)
    )
    now = START
    texts = 0
    while True:
        with store.read() as tx:
            due = tx.views.next_due()
        if due is None or due > until:
            break
        now = max(now, due)
        dispatcher.tick(now)
        for pid, (score, yes_no) in ANSWERS.items():
            with store.read() as tx:
                phone = tx.views.enrollment(pid).phone
                waiting = [c for c in tx.checkins.of(pid) if c.status == CheckInStatus.OPEN]
            for check_in in waiting:
                texts += 1
                body = yes_no if check_in.kind == QuestionKind.YES_NO else score
                at = check_in.asked_at + timedelta(minutes=10)
                assert phone is not None
                receive(store, schedules, Text(phone, body, f"SM{texts:032d}", at))
    return sum(len(c.sent) for c in channels.values())


def export(store: Store, schedules: Schedules, **options: Any) -> dict[str, Any]:
    """``export fhir`` into memory, parsed."""
    out = io.StringIO()
    with store.read() as tx:
        export_bundle(tx, schedules, out, SIX_MONTHS, **options)
    doc: dict[str, Any] = json.loads(out.getvalue())
    return doc


@pytest.fixture
def six_months(store: Store, shipped: Schedules, templates: Templates) -> Store:
    """The sample patients, enrolled and dispatched through six simulated months."""
    sync_patients(store, shipped, SAMPLE, START)
    sent = simulate(store, shipped, templates, SIX_MONTHS)
    assert sent > 50
    return store


def test_every_resource_of_the_export_validates(six_months: Store, shipped: Schedules) -> None:
    """The Bundle and each of its resources validate with the fhir.resources R4B models; there
    is one CarePlan per enrollment, one CommunicationRequest per reminder and one Communication
    per sent one."""
    doc = export(six_months, shipped)
    Bundle.model_validate(doc)
    kinds = Counter(e["resource"]["resourceType"] for e in doc["entry"])
    for entry in doc["entry"]:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    with six_months.read() as tx:
        reminders = tx.views.timeline()
    sent = [r for r in reminders if r.status in (ReminderStatus.SENT, ReminderStatus.DELIVERED)]
    assert kinds["Patient"] == kinds["Procedure"] == kinds["CarePlan"] == 5
    assert kinds["CommunicationRequest"] == len(reminders)
    assert kinds["Communication"] == len(sent) > 50
    ids = [(e["resource"]["resourceType"], e["resource"]["id"]) for e in doc["entry"]]
    assert len(set(ids)) == len(ids)


def test_requests_and_communications_say_where_each_reminder_stands(
    six_months: Store, shipped: Schedules
) -> None:
    """A sent reminder's request is completed and its Communication is basedOn it with the sent
    time and a reference to the text (never the text); the paused patient's requests are held;
    no body and no contact detail appears outside the Patient."""
    doc = export(six_months, shipped)
    by_id = {e["resource"]["id"]: e["resource"] for e in doc["entry"]}
    communications = [r for r in by_id.values() if r["resourceType"] == "Communication"]
    for communication in communications:
        [based] = communication["basedOn"]
        request = by_id[based["reference"].removeprefix("CommunicationRequest/")]
        assert request["status"] == "completed"
        assert request["statusReason"]["text"] in ("sent", "delivered")
        [payload] = communication["payload"]
        assert set(payload) == {"contentReference"}
        assert payload["contentReference"]["identifier"]["value"]
        assert communication["sent"].endswith("Z")
    with six_months.read() as tx:
        people = tx.views.enrollments()
    others = json.dumps([r for r in by_id.values() if r["resourceType"] != "Patient"])
    for person in people:
        for detail in (person.phone, person.email, person.first_name, person.last_name):
            assert not detail or detail not in others, detail
    assert "STOP" not in others  # no message text (every first SMS says "Reply STOP")


def test_a_paused_patients_requests_are_held(store: Store, shipped: Schedules) -> None:
    """Right after enrolment the paused patient's CarePlan and requests are on-hold, the
    others' active."""
    sync_patients(store, shipped, SAMPLE, START)
    doc = export(store, shipped)
    statuses: dict[tuple[str, str], set[str]] = {}
    for entry in doc["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] in ("CarePlan", "CommunicationRequest"):
            key = (resource["subject"]["reference"], resource["resourceType"])
            statuses.setdefault(key, set()).add(resource["status"])
    assert statuses[("Patient/P-1005", "CarePlan")] == {"on-hold"}
    assert statuses[("Patient/P-1005", "CommunicationRequest")] == {"on-hold"}
    assert statuses[("Patient/P-1001", "CommunicationRequest")] == {"active"}
    assert statuses[("Patient/P-1001", "CarePlan")] == {"active"}


def test_ids_are_the_same_in_two_exports(six_months: Store, shipped: Schedules) -> None:
    """Exporting twice names every resource alike (only the Bundle's timestamp may differ)."""
    first = export(six_months, shipped)
    second = export(six_months, shipped)
    assert [e["resource"] for e in first["entry"]] == [e["resource"] for e in second["entry"]]
    assert first["id"] == second["id"]


def test_one_patient_and_since(six_months: Store, shipped: Schedules) -> None:
    """``PATIENT`` limits the export to that patient; ``--since`` to what changed from then on;
    an unknown patient raises before anything is written."""
    one = export(six_months, shipped, patient="P-1002")
    subjects = {
        e["resource"].get("subject", {}).get("reference", "Patient/P-1002") for e in one["entry"]
    }
    assert subjects == {"Patient/P-1002"}
    nothing = export(six_months, shipped, since=SIX_MONTHS + timedelta(days=1))
    assert nothing["entry"] == []
    with pytest.raises(UnknownPatient):
        export(six_months, shipped, patient="P-9999")


def test_importing_the_patient_and_procedure_part_plans_the_same(
    six_months: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """The export's Patient and Procedure resources, read as a patients file into an empty
    store at the original time, enrol the same patients with the same plan."""
    doc = export(six_months, shipped)
    part = {
        **doc,
        "entry": [
            e for e in doc["entry"] if e["resource"]["resourceType"] in ("Patient", "Procedure")
        ],
    }
    path = tmp_path / "export.json"
    path.write_text(json.dumps(part), encoding="utf-8")
    fresh = Store(f"sqlite:///{tmp_path / 'fresh.db'}")
    original = Store(f"sqlite:///{tmp_path / 'original.db'}")
    try:
        report = sync_patients(fresh, shipped, path, START)
        assert report.problems == []
        sync_patients(original, shipped, SAMPLE, START)
        assert plan(fresh) == plan(original)
        assert enrolled(fresh) == enrolled(original)
    finally:
        fresh.close()
        original.close()


def plan(store: Store) -> list[tuple[Any, ...]]:
    """Every reminder as planned: key, template, due and expiry, status."""
    with store.read() as tx:
        return sorted(
            (r.patient_id, r.protocol, r.milestone, r.occurrence, r.channel, r.due_at, r.status)
            for r in tx.views.timeline()
        )


def enrolled(store: Store) -> dict[str, tuple[Any, ...]]:
    """What each enrollment holds (but its status: the export keeps that in the CarePlan)."""
    with store.read() as tx:
        return {
            e.patient_id: (
                e.first_name,
                e.last_name,
                e.phone,
                e.email,
                e.surgery_date,
                e.protocol,
                e.timezone,
                e.language,
                e.channels,
                e.attributes,
            )
            for e in tx.views.enrollments()
        }


def test_answers_and_alerts_are_questionnaire_responses_and_flags(
    six_months: Store, shipped: Schedules
) -> None:
    """Each answered check-in is a QuestionnaireResponse naming a Questionnaire of the Bundle
    (one per question), with the value as read; each alert is a Flag, inactive once resolved."""
    with six_months.write() as tx:
        alerts = tx.alerts.listed()
        resolved = alerts[0]
        assert resolved.id is not None
        tx.alerts.resolve(resolved.id, by="Kim Lee", note="called back", at=SIX_MONTHS)
        answered = [
            c for pid in ANSWERS for c in tx.checkins.of(pid) if c.status == CheckInStatus.ANSWERED
        ]
    doc = export(six_months, shipped)
    of_kind: dict[str, list[dict[str, Any]]] = {}
    for entry in doc["entry"]:
        of_kind.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    questionnaires = {q["url"]: q for q in of_kind["Questionnaire"]}
    assert len(questionnaires) == len(of_kind["Questionnaire"]) >= 2
    responses = of_kind["QuestionnaireResponse"]
    assert len(responses) == len(answered) > 5
    for qr in responses:
        [item] = qr["item"]
        [question_item] = questionnaires[qr["questionnaire"]]["item"]
        assert item["linkId"] == question_item["linkId"]
        [answer] = item["answer"]
        patient = qr["subject"]["reference"]
        expected = {
            ("Patient/P-1001", "integer"): {"valueInteger": 9},
            ("Patient/P-1001", "boolean"): {"valueBoolean": True},
            ("Patient/P-1002", "integer"): {"valueInteger": 2},
            ("Patient/P-1002", "boolean"): {"valueBoolean": False},
        }
        assert answer == expected[patient, question_item["type"]]
    flags = of_kind["Flag"]
    assert len(flags) == len(alerts) > 1
    statuses = Counter(f["status"] for f in flags)
    assert statuses == Counter({"active": len(alerts) - 1, "inactive": 1})
    words = {a.words for a in alerts if a.status != AlertStatus.RESOLVED}
    assert {f["code"]["text"] for f in flags if f["status"] == "active"} == words
