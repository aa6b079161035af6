"""Acceptance tests: the installed ``reminders`` command, driven as a coordinator would.

Every test runs the real executable in a subprocess against a copy of the shipped
``schedules.yaml`` and ``templates/``, a patients file it writes, and its own SQLite
database (see ``conftest.py``). Delivery is the console dry run.
"""

from __future__ import annotations

import csv
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from .conftest import (
    REPO,
    Cli,
    expected_plan,
    iso,
    parse_utc,
    sample_patients,
    tick_counts,
)

REPAIR = "proximal-hamstring-repair"
NEW_YORK = ZoneInfo("America/New_York")
#: Before any sample patient's first reminder.
BEFORE_ANY = "2026-11-15T12:00:00Z"
TIMELINE_KEYS = {
    "patient_id",
    "milestone",
    "occurrence",
    "channel",
    "due_at",
    "status",
    "attempts",
    "provider_id",
    "error",
}


def _dana() -> dict[str, Any]:
    return sample_patients()[0]


def _day1_of_dana(cli: Cli) -> datetime:
    """One hour after Dana's first reminder is due (UTC)."""
    first = expected_plan(cli.schedules(), REPAIR, _dana()["attributes"])[0]
    return first.due_utc(_dana()["surgery_date"], NEW_YORK) + timedelta(hours=1)


def _by_key(rows: list[dict[str, Any]]) -> dict[tuple[str, int, str], dict[str, Any]]:
    return {(r["milestone"], r["occurrence"], r["channel"]): r for r in rows}


# -- validate --------------------------------------------------------------------------------


def test_validate_accepts_the_shipped_configuration(cli: Cli) -> None:
    """`validate` on the shipped schedules.yaml, templates and patients.yaml exits 0."""
    shutil.copy(REPO / "patients.yaml", cli.patients_file)

    result = cli("validate")

    assert "error" not in result.stderr.lower(), str(result)


def test_validate_reports_each_bad_patient_record_on_its_own_line(cli: Cli) -> None:
    """`validate` names file, record and field of every bad patient on stderr and exits 1."""
    good = {"first_name": "Ana", "phone": "+12015550155", "surgery_date": date(2026, 11, 20)}
    records = [
        {"id": "P-1001", **good},
        {"id": "P-1002", **good, "phone": "12345"},
        {"id": "P-1003", **good, "protocol": "knee-replacement"},
        {"id": "P-1004", **good, "surgery_date": "2026-13-45"},
        {"id": "P-1005", **{k: v for k, v in good.items() if k != "first_name"}},
        {"id": "P-1006", **good},
        {"id": "P-1006", **good, "phone": "+12015550156"},
        {"id": "P-1008", **good, "timezone": "Mars/Olympus_Mons"},
    ]
    path = cli.write_patients(records)
    expected = [
        ("patients[1] id=P-1002", "phone"),
        ("patients[2] id=P-1003", "protocol"),
        ("patients[3] id=P-1004", "surgery_date"),
        ("patients[4] id=P-1005", "first_name"),
        ("patients[5] id=P-1006", "id"),
        ("patients[6] id=P-1006", "id"),
        ("patients[7] id=P-1008", "timezone"),
    ]

    result = cli("validate", expect=1)

    lines = result.stderr.splitlines()
    for label, field in expected:
        matching = [line for line in lines if label in line]
        assert len(matching) == 1, f"{label}: want one line\n{result}"
        line = matching[0]
        assert str(path) in line, f"{label}: file not named\n{result}"
        after = line.split(label, 1)[1]
        assert re.search(rf"\b{field}\b", after), f"{label}: field {field} not named\n{result}"
    assert "patients[0]" not in result.stderr, str(result)


def _send_time_outside_window(cli: Cli) -> str:
    doc = cli.schedules()
    doc["defaults"]["send_time"] = "11:00"  # valid: would move every due time if applied
    milestones = doc["protocols"][REPAIR]["milestones"]
    index = next(i for i, m in enumerate(milestones) if m["id"] == "brace-removal")
    milestones[index]["send_time"] = "22:00"
    (cli.folder / "schedules.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return rf"schedules\.yaml.*milestones\[{index}\] id=brace-removal.*send_time"


def _template_missing(cli: Cli) -> str:
    doc = cli.schedules()
    doc["defaults"]["send_time"] = "11:00"
    (cli.folder / "schedules.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    missing = cli.folder / "templates" / "es" / "protect-hamstring.subject.j2"
    missing.unlink()
    return re.escape(str(missing))


@pytest.mark.parametrize("breakage", [_send_time_outside_window, _template_missing])
def test_broken_schedules_fail_validate_and_change_nothing_on_sync(cli: Cli, breakage: Any) -> None:
    """A broken schedules.yaml or template fails `validate` and `sync` and leaves the DB as is."""
    cli("sync", "--now", BEFORE_ANY)
    before = cli.timeline("P-1001")
    where = breakage(cli)

    checked = cli("validate", expect=1)
    synced = cli("sync", "--now", BEFORE_ANY, expect=1)

    assert re.search(where, checked.stderr), str(checked)
    assert re.search(where, synced.stderr), str(synced)
    assert cli.timeline("P-1001") == before


# -- sync and timeline ------------------------------------------------------------------------


def test_sync_plans_every_milestone_at_its_local_send_time(cli: Cli) -> None:
    """After `sync`, `timeline --json` lists each planned occurrence at its local send time."""
    dana = _dana()
    plan = expected_plan(cli.schedules(), REPAIR, dana["attributes"])
    expected = {
        (o.milestone, o.occurrence, channel): o.due_local(dana["surgery_date"], NEW_YORK)
        for o in plan
        for channel in o.channels
        if channel in dana["channels"]
    }

    report = cli("sync", "--now", BEFORE_ANY, "--json").json()
    rows = cli.timeline("P-1001")

    assert sorted(report["enrolled"]) == sorted(p["id"] for p in sample_patients())
    assert report["problems"] == []
    for row in rows:
        assert row.keys() >= TIMELINE_KEYS, row
        assert row["patient_id"] == "P-1001"
        assert (row["status"], row["attempts"], row["provider_id"], row["error"]) == (
            "planned",
            0,
            None,
            None,
        ), row
    got = {k: parse_utc(r["due_at"]).astimezone(NEW_YORK) for k, r in _by_key(rows).items()}
    assert len(got) == len(rows), "duplicate (milestone, occurrence, channel) rows"
    assert got.keys() == expected.keys()
    for key, local in got.items():
        assert local.replace(tzinfo=None) == expected[key].replace(tzinfo=None), key
    brace_checks = sorted(k[1] for k in got if k[0] == "brace-crutch-check" and k[2] == "sms")
    assert brace_checks == [1, 2, 3, 4, 5]
    # Six months from November cross the March DST change: both offsets must appear.
    assert len({local.utcoffset() for local in got.values()}) == 2


# -- tick -------------------------------------------------------------------------------------


def test_tick_sends_due_reminders_exactly_once(cli: Cli) -> None:
    """`tick` sends the reminders due at T once; a second `tick` at T sends nothing."""
    at = _day1_of_dana(cli)
    cli("sync", "--now", BEFORE_ANY)

    first = tick_counts(cli("tick", "--now", iso(at), "--json"))
    rows = cli.timeline("P-1001")
    second = tick_counts(cli("tick", "--now", iso(at), "--json"))

    assert first.keys() >= {"sent", "failed", "expired"}
    assert first["failed"] == 0
    due = [r for r in rows if parse_utc(r["due_at"]) <= at]
    later = [r for r in rows if parse_utc(r["due_at"]) > at]
    assert due, "Dana has no reminder due at T"
    assert first["sent"] >= len(due)
    for row in due:
        assert (row["status"], row["attempts"]) == ("sent", 1), row
        assert row["provider_id"], row
    assert all((r["status"], r["attempts"]) == ("planned", 0) for r in later)
    assert second["sent"] == 0, second


def test_tick_json_prints_only_json(cli: Cli) -> None:
    """`tick --json` prints one JSON document on stdout even when the dry run delivers."""
    result = cli("tick", "--now", iso(_day1_of_dana(cli)), "--json")

    counts = result.json()

    assert counts["sent"] > 0


def test_late_enrollment_expires_past_milestones_and_never_sends_them(cli: Cli) -> None:
    """A patient enrolled 10 weeks after surgery gets past milestones `expired`, never sent."""
    now = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    surgery = now.date() - timedelta(weeks=10)
    cli.write_patients(
        [
            {
                "id": "P-2001",
                "first_name": "Noor",
                "phone": "+12015550111",
                "email": "noor@example.com",
                "surgery_date": surgery,
                "timezone": "America/New_York",
            }
        ]
    )
    plan = expected_plan(cli.schedules(), REPAIR)
    expired = {o.milestone for o in plan if o.due_utc(surgery, NEW_YORK) + o.expires_after <= now}
    next_due = min(o.due_utc(surgery, NEW_YORK) for o in plan if o.milestone not in expired)
    later = next_due + timedelta(hours=1)

    # Days ahead of the real clock: --simulate (a test database).
    cli("sync", "--now", iso(now), "--simulate")
    rows = cli.timeline("P-2001")
    counts = tick_counts(cli("tick", "--now", iso(later), "--simulate", "--json"))
    after = cli.timeline("P-2001")

    assert expired, "the test needs milestones that ended before enrollment"
    assert len(expired) < len({o.milestone for o in plan})
    for row in rows:
        want = "expired" if row["milestone"] in expired else "planned"
        assert (row["status"], row["attempts"]) == (want, 0), row
    sent = [r for r in after if r["status"] == "sent"]
    assert sent
    assert all(parse_utc(r["due_at"]) == next_due for r in sent), sent
    assert counts["sent"] == len(sent)
    for row in after:
        if row["milestone"] in expired:
            assert (row["status"], row["attempts"]) == ("expired", 0), row


def test_surgery_date_change_replans_unsent_and_keeps_sent_history(cli: Cli) -> None:
    """A changed surgery date re-plans unsent reminders; sent ones stay sent and are not re-sent.

    What was sent before the new date is planned again for it as a new reminder (a copy,
    occurrence 1001), which goes out on the new day 1 in place of the sent one.
    """
    dana = _dana()
    cli.write_patients([dana])
    at = _day1_of_dana(cli)
    plan = expected_plan(cli.schedules(), REPAIR, dana["attributes"])
    new_date = dana["surgery_date"] + timedelta(days=7)

    first = tick_counts(cli("tick", "--now", iso(at), "--json"))
    before = _by_key(cli.timeline("P-1001"))
    cli.write_patients([{**dana, "surgery_date": new_date}])
    cli("sync", "--now", iso(at + timedelta(hours=1)))
    after = _by_key(cli.timeline("P-1001"))
    new_day1 = plan[0].due_utc(new_date, NEW_YORK) + timedelta(hours=1)
    again = tick_counts(cli("tick", "--now", iso(new_day1), "--json"))
    final = _by_key(cli.timeline("P-1001"))

    sent = {k for k, r in before.items() if r["status"] == "sent"}
    assert sent
    assert first["sent"] == len(sent)
    copies = {(m, occurrence + 1000, ch): (m, occurrence, ch) for m, occurrence, ch in sent}
    assert after.keys() == before.keys() | copies.keys()
    wanted = {(o.milestone, o.occurrence): o for o in plan}
    for key, row in after.items():
        if key in sent:
            assert row == before[key], "sent history changed"
            continue
        occurrence = wanted[copies.get(key, key)[:2]]
        assert row["status"] == "planned", row
        assert parse_utc(row["due_at"]) == occurrence.due_utc(new_date, NEW_YORK), row
    assert again["sent"] == len(copies), again
    for key in sent:
        assert (final[key]["status"], final[key]["attempts"]) == ("sent", 1), final[key]
    for key in copies:
        assert (final[key]["status"], final[key]["attempts"]) == ("sent", 1), final[key]


# -- withdrawal -------------------------------------------------------------------------------


def test_removed_patient_is_withdrawn_and_pending_reminders_cancelled(cli: Cli) -> None:
    """Removing a patient from the file withdraws them and cancels their pending reminders."""
    cli("sync", "--now", BEFORE_ANY)
    cli.write_patients([p for p in sample_patients() if p["id"] != "P-1004"])

    report = cli("sync", "--now", BEFORE_ANY, "--json").json()
    rows = cli.timeline("P-1004")

    assert report["withdrawn"] == ["P-1004"]
    assert rows
    assert {r["status"] for r in rows} == {"cancelled"}
    assert report["reminders"].get("cancelled") == len(rows)


def test_emptied_patients_file_needs_force_to_withdraw_everyone(cli: Cli) -> None:
    """Emptying the file of 5 active patients is refused without --force and done with it."""
    cli("sync", "--now", BEFORE_ANY)
    before = cli("status", "--json").json()
    cli.write_patients([])

    refused = cli("sync", "--now", BEFORE_ANY, expect=1)
    unchanged = cli("status", "--json").json()
    forced = cli("sync", "--now", BEFORE_ANY, "--force", "--json").json()
    after = cli("status", "--json").json()

    assert before["patients"] == {"active": 5}
    assert "--force" in refused.stdout + refused.stderr, str(refused)
    assert unchanged == before
    assert sorted(forced["withdrawn"]) == sorted(p["id"] for p in sample_patients())
    assert after["patients"] == {"withdrawn": 5}
    assert set(after["reminders"]) == {"cancelled"}
    assert after["reminders"]["cancelled"] == sum(before["reminders"].values())


# -- status and preview -----------------------------------------------------------------------


def test_status_json_counts_patients_and_reminders(cli: Cli) -> None:
    """`status --json` counts patients and reminders by status, consistent with sync and tick."""
    patients = sample_patients()
    patients[4]["status"] = "paused"
    cli.write_patients(patients)
    at = _day1_of_dana(cli)

    planned = cli("sync", "--now", BEFORE_ANY, "--json").json()["reminders"]["planned"]
    counts = tick_counts(cli("tick", "--now", iso(at), "--json"))
    status = cli("status", "--json").json()

    assert status["patients"] == {"active": 4, "paused": 1}
    reminders = status["reminders"]
    assert sum(reminders.values()) == planned
    assert reminders.get("sent", 0) == counts["sent"] > 0
    assert reminders.get("expired", 0) == counts["expired"]
    assert parse_utc(status["next_due"]) > at


def _longest_literal(template: str) -> str:
    chunks = re.split(r"\{\{.*?\}\}|\{%.*?%\}", template)
    return max((c.strip(" ,.:;") for c in chunks), key=len)


def test_preview_renders_spanish_sms_with_clinic_phone(cli: Cli) -> None:
    """`preview brace-removal --language es --channel sms` shows Spanish and the clinic phone."""
    templates = cli.folder / "templates"
    spanish = _longest_literal((templates / "es" / "brace-removal.sms.j2").read_text())
    english = _longest_literal((templates / "en" / "brace-removal.sms.j2").read_text())
    phone = str(cli.schedules()["clinic"]["phone"])

    result = cli("preview", "brace-removal", "--language", "es", "--channel", "sms")

    assert spanish in result.stdout, str(result)
    assert english not in result.stdout, str(result)
    national = re.sub(r"\D", "", phone)[-10:]
    assert national in re.sub(r"\D", "", result.stdout), str(result)


def test_preview_of_unknown_milestone_is_a_usage_error(cli: Cli) -> None:
    """`preview nope` exits 2 and names the unknown milestone."""
    result = cli("preview", "nope", expect=2)

    assert "nope" in result.stderr, str(result)


# -- demo, usage, CSV -------------------------------------------------------------------------


def test_demo_prints_each_sample_patients_messages_in_local_time(cli: Cli) -> None:
    """`demo` exits 0 (within the runner's 60 s timeout) and prints every sample patient's messages in local time."""
    result = cli("demo")
    for patient in sample_patients():
        assert patient["id"] in result.stdout, f"{patient['id']} missing\n{result}"
    for zone_name in ("EST", "IST", "PST", "NZDT"):
        assert re.search(rf"\d\d:\d\d {zone_name}\b", result.stdout), zone_name


@pytest.mark.parametrize(
    "args",
    [("tick", "--now", "2026-12-01T10:00"), ("no-such-command",)],
    ids=["time-without-offset", "unknown-command"],
)
def test_usage_errors_exit_2(cli: Cli, args: tuple[str, ...]) -> None:
    """A time without a UTC offset or an unknown command is a usage error: exit 2."""
    result = cli(*args, expect=2)

    assert result.stderr.strip(), str(result)


def _as_csv_row(patient: dict[str, Any]) -> dict[str, str]:
    row = {k: str(v) for k, v in patient.items() if k not in ("channels", "attributes")}
    if "channels" in patient:
        row["channels"] = ", ".join(patient["channels"])
    if "attributes" in patient:
        row["attributes"] = "; ".join(f"{k}={v}" for k, v in patient["attributes"].items())
    return row


def test_csv_patients_file_enrols_the_same_patients_as_yaml(make_cli: Any) -> None:
    """A CSV with the same columns, given with --patients, enrols the same plan as the YAML."""
    from_yaml: Cli = make_cli("yaml")
    from_csv: Cli = make_cli("csv")
    from_yaml.write_patients(sample_patients())
    rows = [_as_csv_row(p) for p in sample_patients()]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    csv_path = from_csv.folder / "export.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)

    yaml_report = from_yaml("sync", "--now", BEFORE_ANY, "--json").json()
    csv_report = from_csv("sync", "--now", BEFORE_ANY, "--patients", str(csv_path), "--json")

    assert csv_report.json() == yaml_report
    assert len(yaml_report["enrolled"]) == len(rows)
    # Luis has a national-format phone, no channel list and an attribute: the CSV edge cases.
    assert from_csv.timeline("P-1002") == from_yaml.timeline("P-1002")
