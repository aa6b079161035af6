"""Patients from a FHIR R4 Bundle (``--patients bundle.json``) against a real outbox.

The shipped sample bundle (``patients-fhir.json``) holds the same fictional patients as
``patients.yaml``: both must enrol and plan them identically, and a bundle goes through
the same sync (re-plan on a moved date, withdraw on removal, the 20% guard).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from reminders.errors import PatientFileError, SyncRefused
from reminders.lifecycle import EnrollmentStatus, ReminderStatus
from reminders.models import Schedules
from reminders.store import Store
from reminders.sync import sync_patients
from reminders.validation import load_patients
from tests.conftest import REPO

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
SAMPLE = REPO / "patients-fhir.json"
NEW_YORK = ZoneInfo("America/New_York")
IDS = ["P-1001", "P-1002", "P-1003", "P-1004", "P-1005"]


def sample() -> dict[str, Any]:
    """The shipped sample bundle, parsed (a fresh copy to modify)."""
    doc: dict[str, Any] = json.loads(SAMPLE.read_text(encoding="utf-8"))
    return doc


def write(path: Path, bundle: dict[str, Any]) -> Path:
    """Write ``bundle`` as JSON."""
    path.write_text(json.dumps(bundle), encoding="utf-8")
    return path


def resource(bundle: dict[str, Any], ref: str) -> dict[str, Any]:
    """The resource ``Type/id`` of ``bundle``."""
    kind, _, rid = ref.partition("/")
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == kind and entry["resource"]["id"] == rid:
            found: dict[str, Any] = entry["resource"]
            return found
    raise KeyError(ref)


def state(store: Store) -> dict[str, Any]:
    """Every enrollment (without bookkeeping columns) and every reminder, comparable."""
    with store.read() as tx:
        enrollments = {
            e.patient_id: e.model_dump(exclude={"source_hash", "created_at", "updated_at"})
            for e in tx.views.enrollments()
        }
        reminders = sorted(
            (
                r.patient_id,
                r.protocol,
                r.milestone,
                r.occurrence,
                r.channel,
                r.template,
                r.due_at,
                r.expires_at,
                r.status,
            )
            for r in tx.views.timeline()
        )
    return {"enrollments": enrollments, "reminders": reminders}


def test_sample_bundle_plans_the_same_timeline_as_the_yaml(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """The shipped bundle enrols every patient of patients.yaml with the same fields and plan."""
    from_yaml = Store(f"sqlite:///{tmp_path / 'yaml.db'}")
    try:
        yaml_report = sync_patients(from_yaml, shipped, REPO / "patients.yaml", NOW)
        expected = state(from_yaml)
    finally:
        from_yaml.close()
    report = sync_patients(store, shipped, SAMPLE, NOW)
    assert report.problems == []
    assert sorted(report.enrolled) == sorted(yaml_report.enrolled) == IDS
    assert report.paused == yaml_report.paused == ["P-1005"]
    got = state(store)
    assert got["enrollments"] == expected["enrollments"]
    assert got["reminders"] == expected["reminders"]
    assert len(got["reminders"]) > 100


def test_a_moved_performed_date_replans_the_unsent_reminders(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """Moving performedDateTime three days later moves that patient's planned reminders too."""
    bundle = sample()
    path = write(tmp_path / "bundle.json", bundle)
    sync_patients(store, shipped, path, NOW)
    before = {r[:5]: r[6] for r in state(store)["reminders"] if r[0] == "P-1001"}
    resource(bundle, "Procedure/proc-1001")["performedDateTime"] = "2026-11-23T08:30:00-05:00"
    report = sync_patients(store, shipped, write(path, bundle), NOW)
    assert report.updated == ["P-1001"]
    assert report.reminders["replanned"] == len(before)
    after = {r[:5]: r[6] for r in state(store)["reminders"] if r[0] == "P-1001"}
    local = {key: due.astimezone(NEW_YORK) for key, due in before.items()}
    assert {key: due.astimezone(NEW_YORK) for key, due in after.items()} == {
        key: datetime.combine(at.date() + timedelta(days=3), at.time(), NEW_YORK)
        for key, at in local.items()
    }
    with store.read() as tx:
        assert str(tx.views.enrollment("P-1001").surgery_date) == "2026-11-23"


def test_performed_period_start_is_the_anchor(shipped: Schedules, tmp_path: Path) -> None:
    """A Procedure with performedPeriod (P-1002 in the sample) anchors on the start's local date."""
    bundle = sample()
    resource(bundle, "Procedure/proc-1002")["performedPeriod"]["start"] = (
        "2026-11-25T23:30:00-06:00"  # 05:30 UTC on the 26th: the date as written counts
    )
    loaded = load_patients(write(tmp_path / "b.json", bundle), shipped)
    found = {p.id: p for p in loaded.patients}
    assert str(found["P-1002"].surgery_date) == "2026-11-25"


def malformed() -> dict[str, Any]:
    """The sample with one thing wrong in each patient's entries, and a stray Procedure."""
    bundle = sample()
    entries = bundle["entry"]
    resource(bundle, "Patient/pat-1001")["resourceType"] = "Patinet"
    del resource(bundle, "Procedure/proc-1002")["performedPeriod"]
    resource(bundle, "Procedure/proc-1003")["code"]["coding"][0]["code"] = "KNEE-42"
    resource(bundle, "Patient/pat-1004")["telecom"][0]["value"] = "555-01"
    resource(bundle, "Patient/pat-1005")["telecom"][1]["value"] = 5
    stray = copy.deepcopy(resource(bundle, "Procedure/proc-1004"))
    stray["id"] = "proc-9999"
    stray["subject"]["reference"] = "Patient/pat-9999"
    entries.append({"resource": stray})
    return bundle


#: The one problem each bad entry gets: (record, element, words of the message).
EXPECTED_PROBLEMS = [
    ("entry[0] Patinet/pat-1001 id=P-1001", "resourceType", "not a FHIR R4 resource type"),
    ("entry[3] Procedure/proc-1002 id=P-1002", "performed[x]", "performedDateTime"),
    ("entry[5] Procedure/proc-1003 id=P-1003", "code.coding", "unknown procedure code"),
    ("entry[6] Patient/pat-1004 id=P-1004", "telecom[0].value", "'555-01' is not a valid phone"),
    ("entry[8] Patient/pat-1005 id=P-1005", "telecom[1].value", "valid string"),
    ("entry[10] Procedure/proc-9999", "subject.reference", "names no Patient"),
]


def test_a_malformed_bundle_gets_one_error_per_entry_and_changes_nothing(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """Wrong resourceType, missing anchor, unknown code, invalid telecom: one problem naming each
    entry and element; every stored enrollment and reminder stays as it was (no withdrawal)."""
    sync_patients(store, shipped, SAMPLE, NOW)
    before = state(store)
    report = sync_patients(store, shipped, write(tmp_path / "bad.json", malformed()), NOW)
    got = [(p.record, p.field, p.message) for p in report.problems]
    assert len(got) == len(EXPECTED_PROBLEMS), got
    for (record, field, message), (want_record, want_field, words) in zip(
        got, EXPECTED_PROBLEMS, strict=True
    ):
        assert (record, field) == (want_record, want_field)
        assert words in message
    assert all(str(p).startswith(f"{tmp_path / 'bad.json'}: entry[") for p in report.problems)
    assert report.withdrawn == report.enrolled == report.updated == []
    assert state(store) == before


def test_a_malformed_bundle_enrols_nobody_in_an_empty_store(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """The same bundle into an empty store enrols nobody and plans nothing."""
    report = sync_patients(store, shipped, write(tmp_path / "bad.json", malformed()), NOW)
    assert len(report.problems) == len(EXPECTED_PROBLEMS)
    assert state(store) == {"enrollments": {}, "reminders": []}


def test_removing_a_patient_withdraws_after_the_guard(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """Patients left out of the bundle are withdrawn only past the 20% guard (--force here)."""
    sync_patients(store, shipped, SAMPLE, NOW)
    bundle = sample()
    left_out = ("pat-1003", "proc-1003", "pat-1004", "proc-1004")
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["id"] not in left_out]
    path = write(tmp_path / "b.json", bundle)
    with pytest.raises(
        SyncRefused, match=r"withdraw 2 of 5 enrolled patients \(4 active, 1 paused"
    ):
        sync_patients(store, shipped, path, NOW)
    report = sync_patients(store, shipped, path, NOW, force=True)
    assert report.withdrawn == ["P-1003", "P-1004"]
    with store.read() as tx:
        assert tx.views.enrollment("P-1004").status == EnrollmentStatus.WITHDRAWN
        statuses = {r.status for r in tx.views.timeline("P-1004")}
    assert statuses == {ReminderStatus.CANCELLED}


@pytest.mark.parametrize(
    ("change", "status"),
    [
        (lambda b: resource(b, "Patient/pat-1001").update(active=False), "withdrawn"),
        (lambda b: resource(b, "Patient/pat-1001").update(deceasedBoolean=True), "withdrawn"),
        (lambda b: resource(b, "Procedure/proc-1001").update(status="not-done"), "withdrawn"),
        (lambda b: resource(b, "Procedure/proc-1001").update(status="on-hold"), "paused"),
        (lambda b: resource(b, "Procedure/proc-1001").update(status="completed"), "active"),
    ],
)
def test_patient_and_procedure_status_give_the_enrollment_status(
    shipped: Schedules, tmp_path: Path, change: Any, status: str
) -> None:
    """An inactive or deceased Patient, or a Procedure not done, is withdrawn; on hold pauses."""
    bundle = sample()
    change(bundle)
    loaded = load_patients(write(tmp_path / "b.json", bundle), shipped)
    assert {p.id: p.status for p in loaded.patients}["P-1001"] == status


def test_identifier_language_phone_and_zone_are_read_as_documented(
    shipped: Schedules, tmp_path: Path
) -> None:
    """The id comes from the configured identifier system, the language from the preferred
    communication (``es-MX`` reads ``es``), the phone prefers ``sms`` then ``mobile``, the zone
    from the extension, else the clinic's."""
    bundle = sample()
    patient = resource(bundle, "Patient/pat-1001")
    patient["identifier"].insert(0, {"system": "urn:other", "value": "X-1"})
    patient["communication"] = [
        {"language": {"coding": [{"code": "en"}]}},
        {"language": {"coding": [{"code": "es-MX"}]}, "preferred": True},
    ]
    patient["telecom"] = [
        {"system": "phone", "value": "+12015550100", "use": "home"},
        {"system": "phone", "value": "+12015550101", "use": "old"},
        {"system": "phone", "value": "+12015550102", "use": "mobile"},
        {"system": "email", "value": "dana.reyes@example.com"},
    ]
    del patient["extension"]
    found = {p.id: p for p in load_patients(write(tmp_path / "b.json", bundle), shipped).patients}
    dana = found["P-1001"]
    assert (dana.language, dana.phone, dana.timezone) == (
        "es",
        "+12015550102",
        shipped.clinic.timezone,
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"resourceType": "Patient", "id": "x"}', "expected a FHIR Bundle"),
        ("[1, 2]", "expected a FHIR Bundle"),
        ('{"resourceType": "Bundle", "type": "collection", "entry": {}}', "list of entries"),
        ('{"resourceType": "Bundle", "type": "collection", "entry": [', "not valid JSON"),
        ('{"resourceType": "Bundle", "resourceType": "Bundle"}', "appears twice"),
        ('{"resourceType": "Bundle", "type": NaN}', "NaN is not a JSON value"),
        ('{"resourceType": "Bundle", "type": "collection", "bogus": 1}', "bogus"),
        ("[" * 60 + "]" * 60, "nested more than 50 levels"),
    ],
)
def test_an_unreadable_bundle_is_refused_whole_naming_the_file(
    store: Store, shipped: Schedules, tmp_path: Path, text: str, words: str
) -> None:
    """Not a Bundle, not JSON, a repeated key, NaN or nesting past the limit: one error naming
    the file, and nothing changes."""
    sync_patients(store, shipped, SAMPLE, NOW)
    before = state(store)
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PatientFileError, match=r"bad\.json") as caught:
        sync_patients(store, shipped, path, NOW)
    assert words in str(caught.value)
    assert state(store) == before


def test_a_patient_needs_exactly_one_procedure(shipped: Schedules, tmp_path: Path) -> None:
    """A Patient no Procedure refers to, or one with two, is one problem and is skipped."""
    bundle = sample()
    second = copy.deepcopy(resource(bundle, "Procedure/proc-1001"))
    second["id"] = "proc-1001-b"
    bundle["entry"].append({"resource": second})
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["id"] != "proc-1003"]
    loaded = load_patients(write(tmp_path / "b.json", bundle), shipped)
    assert sorted(p.id for p in loaded.patients) == ["P-1002", "P-1004", "P-1005"]
    got = {p.patient_id: (p.record, p.field, p.message) for p in loaded.problems}
    assert len(loaded.problems) == 2
    assert got["P-1001"][:2] == ("entry[9] Procedure/proc-1001-b id=P-1001", "subject")
    assert "a second Procedure for this patient (the first is entry[1]" in got["P-1001"][2]
    assert got["P-1003"][:2] == ("entry[4] Patient/pat-1003 id=P-1003", "id")
    assert "no Procedure in this Bundle" in got["P-1003"][2]


def test_two_patients_with_one_identifier_are_both_skipped(
    shipped: Schedules, tmp_path: Path
) -> None:
    """Two Patient resources whose MRN identifiers agree are a duplicate id, named by element."""
    bundle = sample()
    resource(bundle, "Patient/pat-1002")["identifier"][0]["value"] = "P-1001"
    loaded = load_patients(write(tmp_path / "b.json", bundle), shipped)
    assert [(p.record, p.field) for p in loaded.problems] == [
        ("entry[0] Patient/pat-1001 id=P-1001", "identifier[0].value"),
        ("entry[2] Patient/pat-1002 id=P-1001", "identifier[0].value"),
    ]
    assert "duplicate id" in loaded.problems[0].message


def test_other_resource_types_are_left_alone(shipped: Schedules, tmp_path: Path) -> None:
    """An Encounter or Practitioner in the export is neither read nor reported."""
    bundle = sample()
    bundle["entry"].append({"resource": {"resourceType": "Practitioner", "id": "dr-1"}})
    bundle["entry"].append(
        {
            "resource": {
                "resourceType": "Encounter",
                "id": "enc-1",
                "status": "finished",
                "class": {"code": "AMB"},
                "subject": {"reference": "Patient/pat-1001"},
            }
        }
    )
    loaded = load_patients(write(tmp_path / "b.json", bundle), shipped)
    assert loaded.problems == []
    assert len(loaded.patients) == 5


def test_the_bundle_is_bounded_before_it_is_parsed(
    shipped: Schedules, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bundle over the patients file's size limit is refused whole, before parsing."""
    monkeypatch.setattr("reminders.patients.MAX_PATIENTS_BYTES", 1000)
    with pytest.raises(PatientFileError, match="refused: the file is too large"):
        load_patients(SAMPLE, shipped)


def test_a_fault_in_an_otherwise_unchanged_record_is_still_reported(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """An unknown Procedure.status leaves the record's fields as they were stored (active is
    the default), yet the next sync reports it instead of skipping the record as unchanged."""
    bundle = sample()
    path = write(tmp_path / "b.json", bundle)
    sync_patients(store, shipped, path, NOW)
    resource(bundle, "Procedure/proc-1001")["status"] = "finished"
    report = sync_patients(store, shipped, write(path, bundle), NOW)
    assert [(p.record, p.field) for p in report.problems] == [
        ("entry[1] Procedure/proc-1001 id=P-1001", "status")
    ]
    assert "unknown status 'finished'" in report.problems[0].message
    assert report.unchanged == 4
