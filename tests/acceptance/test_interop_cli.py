"""Interoperability through the installed command: ``sync --patients bundle.json``, ``calendar``."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import date

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
