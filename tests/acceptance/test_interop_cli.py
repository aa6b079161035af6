"""Interoperability through the installed command: ``sync --patients bundle.json``,
``calendar`` and ``export fhir``."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from datetime import date

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from icalendar import Calendar

from reminders.testing import runner
from tests.acceptance.conftest import REPO, Cli
from tests.integration.test_fhir_import import EXPECTED_PROBLEMS, malformed

BEFORE_ANY = "2026-11-15T12:00:00Z"


def test_sync_from_a_bundle_then_a_malformed_one_reports_each_entry_and_changes_nothing(
    cli: Cli,
) -> None:
    """``sync --patients bundle.json`` enrols the sample; a malformed bundle exits 1 with one
    line per bad entry on stderr (entry and element named, no traceback) and every timeline
    stays as it was."""
    bundle = cli.folder / "patients-fhir.json"
    shutil.copy(REPO / "patients-fhir.json", bundle)
    report = cli("sync", "--patients", str(bundle), "--now", BEFORE_ANY, "--json").json()
    assert sorted(report["enrolled"]) == ["P-1001", "P-1002", "P-1003", "P-1004", "P-1005"]
    before = {pid: cli.timeline(pid) for pid in report["enrolled"]}
    bad = cli.folder / "bad.json"
    bad.write_text(json.dumps(malformed()), encoding="utf-8")
    result = cli("sync", "--patients", str(bad), "--now", BEFORE_ANY, expect=1)
    lines = [line for line in result.stderr.splitlines() if str(bad) in line]
    assert len(lines) == len(EXPECTED_PROBLEMS), str(result)
    for line, (record, element, _) in zip(lines, EXPECTED_PROBLEMS, strict=True):
        assert f"{bad}: {record}: {element}: " in line
    assert "0 enrolled, 0 updated, 0 paused, 0 withdrawn" in result.stdout
    assert {pid: cli.timeline(pid) for pid in before} == before


def test_calendar_writes_the_patients_ics_and_timeline_shows_its_link(cli: Cli) -> None:
    """``calendar P-1005 > file.ics`` is a calendar whose first event is Auckland's day 1;
    ``timeline`` shows the signed link when the public URL and secret are set, else the
    command; an unknown patient is one error line."""
    cli("sync", "--now", BEFORE_ANY)
    argv = runner.argv(cli.folder, cli.database, ["calendar", "P-1005"])
    done = subprocess.run(
        argv, capture_output=True, env=runner.clean_env(), timeout=runner.TIMEOUT, check=False
    )
    assert done.returncode == 0, done.stderr
    parsed = Calendar.from_ical(done.stdout)
    days = sorted(e.decoded("DTSTART") for e in parsed.walk("VEVENT"))
    assert days[0] == date(2026, 11, 17)  # surgery 2026-11-16 in Auckland: day 1
    plain = cli("timeline", "P-1005")
    assert "calendar: reminders calendar P-1005 > P-1005.ics" in plain.stdout
    env = {
        "REMINDERS_PUBLIC_URL": "https://reminders.example.com",
        "REMINDERS_SECRET_KEY": "a-test-secret-key-of-enough-length-0123456789",
    }
    linked = cli("timeline", "P-1005", env=env)
    assert "calendar: https://reminders.example.com/calendar/" in linked.stdout
    missing = cli("calendar", "P-9999", expect=1)
    assert "no enrolled patient with id 'P-9999'" in missing.stderr


def test_export_fhir_writes_a_valid_bundle_and_logs_no_contact_detail(cli: Cli) -> None:
    """After a tick sent day 1 to one patient, ``export fhir > bundle.json`` is a Bundle whose
    resources all validate, with that message as a Communication; stderr says only how many;
    ``export fhir P-1003`` holds one patient; an unknown patient is exit 1 and no output."""
    bundle = cli.folder / "patients-fhir.json"
    shutil.copy(REPO / "patients-fhir.json", bundle)
    patients = ("--patients", str(bundle))
    cli("sync", *patients, "--now", BEFORE_ANY)
    cli("tick", *patients, "--now", "2026-11-19T04:31:00Z")  # day 1, 10:01 in Kolkata
    everything = cli("export", "fhir", "--now", "2026-11-19T05:00:00Z")
    doc = json.loads(everything.stdout)
    Bundle.model_validate(doc)
    kinds = Counter(e["resource"]["resourceType"] for e in doc["entry"])
    assert kinds["Patient"] == kinds["CarePlan"] == 5
    assert kinds["Communication"] == 1
    for entry in doc["entry"]:
        get_fhir_model_class(entry["resource"]["resourceType"]).model_validate(entry["resource"])
    assert everything.stderr.strip().splitlines()[-1] == f"exported {len(doc['entry'])} resources"
    for detail in ("555", "example.com", "Priya"):
        assert detail not in everything.stderr
    one = cli("export", "fhir", "P-1003").json()
    assert {e["resource"]["resourceType"] for e in one["entry"]} >= {"Patient", "Communication"}
    assert [
        e["resource"]["id"] for e in one["entry"] if e["resource"]["resourceType"] == "Patient"
    ] == ["P-1003"]
    unknown = cli("export", "fhir", "P-9999", expect=1)
    assert unknown.stdout == ""
    assert "no enrolled patient with id 'P-9999'" in unknown.stderr
