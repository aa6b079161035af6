"""Acceptance: a whole Twilio outage is visible to coordinators and to cron (issue 11).

The installed ``reminders`` command runs ``tick`` and ``status`` as a subprocess against
the Twilio-compatible endpoint made to fail everything: answering 500 to every request
(create, list, fetch), or refusing connections (no endpoint on the port). ``tick`` exits 3
while reminders are stuck; ``status`` lists every one of them, paged, with its attempts
and what went wrong in plain words; once the outage is over the next tick delivers and
exits 0.
"""

from __future__ import annotations

import re
import socket
from datetime import date, datetime, timedelta
from typing import Any

from reminders.testing.twilio import FakeTwilio, Fault

from .conftest import Cli, tick_counts
from .test_crash import STUCK, Scenario, fictional_numbers, tick_args, twilio_env

#: Patients in each outage: more than a page of ``status`` (50).
COUNT = 60
#: Every request the fake answers 500 to: more than any test sends.
ALWAYS = 100_000


def _tick(cli: Cli, url: str, at: datetime, expect: int) -> dict[str, Any]:
    """``tick --now AT --json`` against ``url``; checks the exit code; returns its JSON."""
    result = cli(*tick_args(at), env=twilio_env(url), expect=expect)
    return tick_counts(result)


def _attention(cli: Cli) -> dict[str, Any]:
    attention: dict[str, Any] = cli("status", "--json").json()["attention"]
    return attention


def test_twilio_answering_500_to_everything_is_stuck_in_doubt_until_it_recovers(
    make_cli: Any,
) -> None:
    """Every request answered 500: tick exits 3, status lists all 60 in doubt with 1 try and plain words; after the outage tick sends each once and exits 0."""
    scenario = Scenario.due(COUNT)
    cli: Cli = make_cli("clinic")
    cli.write_patients(scenario.records())
    with FakeTwilio() as fake:
        fake.fail_next(Fault.status(500), ALWAYS, endpoint="any")
        during = _tick(cli, fake.url, scenario.at, expect=STUCK)
        attention = _attention(cli)
        text = cli("status")

        fake.reset()
        after = _tick(cli, fake.url, scenario.at + timedelta(minutes=10), expect=0)
        messages = fake.messages

    assert during["stuck"] == {"in_doubt": COUNT, "retrying": 0, "expired": 0}
    assert during["in_doubt"] == COUNT
    assert attention["counts"] == {"in_doubt": COUNT, "retrying": 0, "expired": 0, "failed": 0}
    rows = attention["reminders"]
    assert len(rows) == attention["total"] == COUNT
    assert {r["patient_id"] for r in rows} == set(scenario.patients)
    for row in rows:
        assert (row["state"], row["status"], row["attempts"]) == ("in_doubt", "planned", 1)
        assert row["error_code"] == "20500"
        assert "outage" in row["meaning"]
        assert "never sent twice" in row["meaning"]
    assert f"needs a coordinator: {COUNT} in doubt" in text.stdout, str(text)
    # 50 rows on the page, the code explained once under the table.
    assert text.stdout.count("20500 (sms, in doubt): Twilio failed on its side") == 1, str(text)
    assert (
        f"showing 1-50 of {COUNT} (times in UTC); next: reminders status --page 2" in text.stdout
    ), str(text)

    assert after["stuck"] == {"in_doubt": 0, "retrying": 0, "expired": 0}
    assert after["sent"] == COUNT
    assert sorted(m.to for m in messages) == sorted(p for p, _ in scenario.patients.values())
    assert _attention(cli)["total"] == 0


def _closed_port() -> int:
    """A loopback port with nothing listening on it: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


#: Day 1 (the surgery was on the 1st): day-1 texts due at 10:00 New York, 15:00 UTC.
SURGERY = date(2026, 11, 1)
DAY1_DUE = datetime.fromisoformat("2026-11-02T15:00:00+00:00")


def _sms_patients(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"P-{i:04d}",
            "first_name": "Dana",
            "phone": phone,
            "surgery_date": SURGERY,
            "timezone": "America/New_York",
            "channels": ["sms"],
        }
        for i, phone in enumerate(fictional_numbers(count))
    ]


def test_twilio_refusing_connections_is_retrying_then_expired_and_listed(cli: Cli) -> None:
    """Connections refused: tick exits 3 with 60 retrying, then 3 with the 60 expired a day later; status keeps listing them after the outage."""
    cli.write_patients(_sms_patients(COUNT))
    down = f"http://127.0.0.1:{_closed_port()}"

    first = _tick(cli, down, DAY1_DUE + timedelta(hours=1), expect=STUCK)
    retrying = _attention(cli)
    # A day later, past the day-1 deadline, with the day-2 texts due: still down.
    second = _tick(cli, down, DAY1_DUE + timedelta(days=1, minutes=30), expect=STUCK)
    with FakeTwilio() as fake:
        third = _tick(cli, fake.url, DAY1_DUE + timedelta(days=1, hours=1), expect=0)
    attention = _attention(cli)
    page2 = cli("status", "--page", "2", "--limit", "25")

    assert first["stuck"] == {"in_doubt": 0, "retrying": COUNT, "expired": 0}
    assert retrying["counts"]["retrying"] == COUNT
    for row in retrying["reminders"]:
        assert (row["state"], row["attempts"], row["error_code"]) == (
            "retrying",
            1,
            "connection-refused",
        )
        assert "could not be reached" in row["meaning"]
        assert "tries again by itself until 2026-11-03 15:00 UTC" in row["meaning"]
    assert second["stuck"] == {"in_doubt": 0, "retrying": COUNT, "expired": COUNT}
    assert third["sent"] == COUNT
    assert third["stuck"] == {"in_doubt": 0, "retrying": 0, "expired": 0}
    assert attention["counts"] == {"in_doubt": 0, "retrying": 0, "expired": COUNT, "failed": 0}
    for row in attention["reminders"]:
        assert (row["state"], row["status"], row["milestone"]) == (
            "expired",
            "expired",
            "crutches-toe-touch",
        )
        assert row["attempts"] >= 1
        assert "deadline passed" in row["meaning"]
    assert (
        "showing 26-50 of 60 (times in UTC); next: reminders status --page 3 --limit 25"
        in page2.stdout
    )
    listed = re.findall(r"P-\d{4}", page2.stdout)
    assert len(listed) == 25, str(page2)


def test_status_pages_past_the_end_say_how_many_pages_there_are(cli: Cli) -> None:
    """`status --page 9` with 60 to list says 60 in 2 pages of 50, exit 0."""
    cli.write_patients(_sms_patients(COUNT))
    down = f"http://127.0.0.1:{_closed_port()}"
    _tick(cli, down, DAY1_DUE + timedelta(hours=1), expect=STUCK)

    result = cli("status", "--page", "9")

    assert "no reminders on this page: 60 in 2 page(s) of 50" in result.stdout, str(result)


def test_tick_help_names_its_exit_code_for_stuck_reminders(cli: Cli) -> None:
    """`tick --help` says it exits 3 when reminders are stuck."""
    result = cli("tick", "--help")

    assert re.search(r"3\s+when\s+reminders\s+are\s+stuck", result.stdout), str(result)
