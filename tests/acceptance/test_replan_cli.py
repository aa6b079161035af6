"""Acceptance: a coordinator edits schedules.yaml and runs `reminders sync`; `timeline` shows the re-plan.

Runs the installed executable against a copy of the shipped configuration (see ``conftest.py``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from .conftest import Cli, expected_plan, iso, parse_utc, sample_patients, tick_counts

REPAIR = "proximal-hamstring-repair"
NEW_YORK = ZoneInfo("America/New_York")


def _by_key(rows: list[dict[str, Any]]) -> dict[tuple[str, int, str], dict[str, Any]]:
    return {(r["milestone"], r["occurrence"], r["channel"]): r for r in rows}


def test_sync_after_a_schedules_edit_shows_moved_and_removed_milestones(cli: Cli) -> None:
    """After moving one milestone and removing another, `sync` re-plans and `timeline --json` shows both.

    Catches: sync that never cancels reminders dropped from the plan, or leaves a moved
    milestone at its old due time.
    """
    dana = sample_patients()[0]  # New York, SMS and email, goal: sport
    cli.write_patients([dana])
    surgery = dana["surgery_date"]
    plan = {(o.milestone, o.occurrence): o for o in expected_plan(cli.schedules(), REPAIR, {})}
    week = [plan["brace-crutch-check", n].due_utc(surgery, NEW_YORK) for n in (1, 2)]
    # Week 1's check goes out on both channels: it is history from here on.
    sent = tick_counts(cli("tick", "--now", iso(week[0] + timedelta(hours=1)), "--json"))
    assert sent["sent"] == 2, sent
    before = _by_key(cli.timeline(dana["id"]))

    doc = cli.schedules()
    milestones = doc["protocols"][REPAIR]["milestones"]
    moved = next(m for m in milestones if m["id"] == "brace-removal")
    assert moved["at"] == "week 6"
    moved["at"] = "week 7"
    milestones.remove(next(m for m in milestones if m["id"] == "brace-crutch-check"))
    (cli.folder / "schedules.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    report = cli("sync", "--now", iso(week[0] + timedelta(hours=2)), "--json").json()
    after = _by_key(cli.timeline(dana["id"]))
    # Week 2 may lie days ahead of the real clock: --simulate (a test database).
    later = tick_counts(
        cli("tick", "--now", iso(week[1] + timedelta(hours=1)), "--simulate", "--json")
    )

    assert after.keys() == before.keys()
    week6 = plan["brace-removal", 1].due_utc(surgery, NEW_YORK)
    for key, row in after.items():
        milestone, occurrence, _ = key
        if milestone == "brace-removal":
            assert before[key]["status"] == "planned"
            assert parse_utc(before[key]["due_at"]) == week6
            assert row["status"] == "planned", row
            assert parse_utc(row["due_at"]) == week6 + timedelta(weeks=1), row
        elif milestone == "brace-crutch-check" and occurrence == 1:
            assert (row["status"], row["attempts"]) == ("sent", 1), row
            assert row == before[key], "sent history changed"
        elif milestone == "brace-crutch-check":
            assert before[key]["status"] == "planned"
            assert (row["status"], row["attempts"]) == ("cancelled", 0), row
            assert row["due_at"] == before[key]["due_at"], row
        else:  # as it was; an expired-at-enrollment one gets an id when written out as a row
            assert before[key]["id"] in (None, row["id"]), row
            assert {**row, "id": None} == {**before[key], "id": None}, row
    assert report["updated"] == [dana["id"]]
    assert report["reminders"].get("cancelled") == 2 * 4, report
    assert report["reminders"].get("replanned") == 2, report
    assert later["sent"] == 0, later  # week 2's check was cancelled: nothing goes out
