"""Acceptance: check-ins with the installed ``reminders`` command, a Twilio-compatible endpoint and
an SMTP server, on a simulated clock (``--now``).

The care team (``care-team@example.com``) and the on-call phone (``+12015550199``) are the
shipped schedules.yaml's placeholders. Patients (fictional): Dana (SMS and email, New
York), Luis (SMS, Spanish, Chicago), Priya (email only, New York); surgery 2026-11-20,
so the first pain check-in is due on day 4 at 18:00 local time.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest

from reminders.testing import runner
from reminders.testing.smtp import SmtpRecorder
from reminders.testing.twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio

from .conftest import Cli

ENROLLED = datetime(2026, 11, 20, 12, tzinfo=UTC)
#: Day 4 at 19:05 in New York, 18:05 in Chicago: both pain check-ins are due.
ASKED = datetime(2026, 11, 25, 0, 5, tzinfo=UTC)
CARE_TEAM = "care-team@example.com"
COORDINATOR = "coordinator@example.com"
ON_CALL = "+12015550199"
DANA, LUIS = "+12015550123", "+12015550142"
PRIVATE = ("Dana", "Reyes", "Luis", "Ortega", "Priya", "Shah", DANA, LUIS, "hamstring")
PATIENTS = [
    {
        "id": "P-1",
        "first_name": "Dana",
        "last_name": "Reyes",
        "phone": DANA,
        "email": "dana@example.com",
        "surgery_date": date(2026, 11, 20),
        "timezone": "America/New_York",
        "language": "en",
        "channels": ["sms", "email"],
    },
    {
        "id": "P-2",
        "first_name": "Luis",
        "last_name": "Ortega",
        "phone": LUIS,
        "surgery_date": date(2026, 11, 20),
        "timezone": "America/Chicago",
        "language": "es",
        "channels": ["sms"],
    },
    {
        "id": "P-3",
        "first_name": "Priya",
        "last_name": "Shah",
        "email": "priya@example.com",
        "surgery_date": date(2026, 11, 20),
        "timezone": "America/New_York",
        "language": "en",
        "channels": ["email"],
    },
]


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class Clinic:
    """The CLI with provider settings pointing at the fake Twilio and the SMTP recorder."""

    def __init__(self, cli: Cli, twilio: FakeTwilio, smtp: SmtpRecorder) -> None:
        self.cli, self.twilio, self.smtp = cli, twilio, smtp
        self.env = {
            "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": "+12015550100",
            "TWILIO_API_BASE_URL": twilio.url,
            "TWILIO_RATE_LIMIT": "0",
            "SMTP_HOST": smtp.host,
            "SMTP_PORT": str(smtp.port),
            "SMTP_SECURITY": "none",
            "EMAIL_FROM": "reminders@example.com",
        }

    def run(self, *args: str) -> Any:
        """Run a command with the provider settings; JSON output parsed."""
        return self.cli(*args, env=self.env).json()

    def tick(self, at: datetime) -> dict[str, Any]:
        """``tick --now AT --simulate --json`` (exit 0 or 3: something may stay stuck)."""
        result = self.cli("tick", "--now", iso(at), "--json", env=self.env, expect=None)
        assert result.code in (0, 3), str(result)
        counts: dict[str, Any] = result.json()
        return counts

    def reply(self, phone: str, body: str, at: datetime, sid: str) -> dict[str, Any]:
        """``inbound --from PHONE --body TEXT --sid SID --now AT --json``."""
        handled: dict[str, Any] = self.run(
            "inbound", "--from", phone, "--body", body, "--sid", sid, "--now", iso(at), "--json"
        )
        return handled

    def texts_to(self, phone: str) -> list[str]:
        return [m.body for m in self.twilio.messages if m.to == phone]

    def mail_to(self, address: str) -> list[EmailMessage]:
        with self.smtp.lock:
            return [m for m in self.smtp.messages if m["To"] == address]

    def alerts(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.run("alerts", "--json")
        return rows


def body_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return f"{message['Subject']}\n{part.get_content()}"


@pytest.fixture
def clinic(cli: Cli, twilio: FakeTwilio, smtp: SmtpRecorder) -> Clinic:
    """Three patients enrolled; the day-4 pain check-ins sent at local time."""
    cli.write_patients(PATIENTS)
    cli("sync", "--now", iso(ENROLLED))
    c = Clinic(cli, twilio, smtp)
    c.tick(ASKED)
    return c


def test_an_urgent_reply_reaches_the_care_team_once_and_is_escalated_once(clinic: Clinic) -> None:
    """Check-in sent at local time; "9" -> one urgent alert, one care-team email, one on-call SMS, one safety reply (no PHI); the same sid -> nothing; 30 minutes unacknowledged -> one re-escalation."""
    [asked] = [
        r
        for r in clinic.cli.timeline("P-1")
        if r["milestone"] == "pain-check" and r["occurrence"] == 1 and r["channel"] == "sms"
    ]
    assert asked["due_local"].startswith("2026-11-24T18:00:00")
    assert (asked["status"], asked["check_in_status"], asked["answer"]) == ("sent", "open", None)
    assert any("Pain check" in t for t in clinic.texts_to(DANA))

    handled = clinic.reply(DANA, "pain is 9", ASKED + timedelta(minutes=5), "SM" + "1" * 32)
    assert (handled["kind"], handled["level"], handled["duplicate"]) == ("answer", "urgent", False)
    clinic.tick(ASKED + timedelta(minutes=6))
    [alert] = clinic.alerts()
    assert (alert["level"], alert["status"], alert["patient_id"]) == ("urgent", "open", "P-1")
    [team] = clinic.mail_to(CARE_TEAM)
    [page] = clinic.texts_to(ON_CALL)
    [safety] = [t for t in clinic.texts_to(DANA) if "care team has been told" in t]
    assert "911" in safety
    for notice in (body_of(team), page):
        assert f"alert {alert['id']}" in notice
        assert "P-1" in notice
        assert [w for w in (*PRIVATE, "pain is 9") if w in notice] == []
    [row] = [r for r in clinic.cli.timeline("P-1") if r["id"] == asked["id"]]
    assert (row["check_in_status"], row["answer"]) == ("answered", "9")

    again = clinic.reply(DANA, "pain is 9", ASKED + timedelta(minutes=7), "SM" + "1" * 32)
    assert again["duplicate"] is True
    clinic.tick(ASKED + timedelta(minutes=8))
    assert len(clinic.alerts()) == 1
    assert len(clinic.mail_to(CARE_TEAM)) == 1
    assert len(clinic.texts_to(ON_CALL)) == 1

    assert clinic.tick(ASKED + timedelta(minutes=34))["escalated"] == 0
    assert clinic.tick(ASKED + timedelta(minutes=36))["escalated"] == 1
    assert clinic.tick(ASKED + timedelta(hours=3))["escalated"] == 0
    on_call = clinic.texts_to(ON_CALL)
    assert len(on_call) == 2
    assert "still not acknowledged" in on_call[1]


def test_an_acknowledged_alert_is_not_escalated_and_resolving_needs_a_note(clinic: Clinic) -> None:
    """``alerts ack`` within ack_within stops the re-escalation; ``resolve`` closes it with the note."""
    clinic.reply(LUIS, "ocho", ASKED + timedelta(minutes=5), "SM" + "2" * 32)
    [alert] = clinic.alerts()
    clinic.cli("alerts", "ack", str(alert["id"]), "--by", "Nurse Kim", "--note", "called back")
    assert clinic.tick(ASKED + timedelta(hours=2))["escalated"] == 0
    assert len(clinic.texts_to(ON_CALL)) == 1
    clinic.cli("alerts", "resolve", str(alert["id"]), "--by", "Dr Lee", expect=2)  # no --note
    clinic.cli("alerts", "resolve", str(alert["id"]), "--by", "Dr Lee", "--note", "seen in clinic")
    [done] = clinic.alerts()
    assert (done["status"], done["acknowledged_by"], done["resolved_by"]) == (
        "resolved",
        "Nurse Kim",
        "Dr Lee",
    )
    assert clinic.run("alerts", "--status", "open", "--json") == []


def test_silence_a_late_reply_and_stop(clinic: Clinic) -> None:
    """Two unanswered check-ins -> one review alert; a reply after the window -> free text, no alert; STOP during an open check-in -> opted out, no alert."""
    day = timedelta(days=1)
    clinic.tick(ASKED + day)  # day-4 windows close; the day-5 brace question goes out
    stop = clinic.reply(LUIS, "STOP", ASKED + day + timedelta(minutes=10), "SM" + "4" * 32)
    assert (stop["kind"], stop["alert_id"]) == ("stop", None)
    clinic.tick(ASKED + 2 * day)  # day-5 windows close: two in a row unanswered
    alerts = clinic.alerts()
    # Luis opted out during his open check-in: his silence is no missed reply.
    assert {(a["patient_id"], a["level"], a["reason"]) for a in alerts} == {
        ("P-1", "review", "missed:2"),
        ("P-3", "review", "missed:2"),
    }
    assert len(clinic.mail_to(CARE_TEAM)) == 2
    assert clinic.texts_to(ON_CALL) == []  # review alerts: email only
    # No check-in is open now: a reply is free text, forwarded, and raises nothing.
    after = clinic.reply(
        DANA, "9 my leg feels odd", ASKED + 2 * day + timedelta(hours=1), "SM" + "5" * 32
    )
    assert (after["kind"], after["alert_id"]) == ("other", None)
    clinic.tick(ASKED + 2 * day + timedelta(hours=1, minutes=1))
    assert len(clinic.alerts()) == 2
    assert any("my leg feels odd" in body_of(m) for m in clinic.mail_to(COORDINATOR))
    assert any("not watched" in t for t in clinic.texts_to(DANA))
    assert clinic.run("status", "--json")["opted_out"] == {"sms": 1}


@pytest.mark.postgres
def test_three_instances_answering_the_same_burst_raise_one_alert_each(
    clinic: Clinic, postgres_url: str
) -> None:
    """Three processes handle the same burst of urgent replies (same sids) on PostgreSQL at once: one alert each."""
    cli = clinic.cli
    cli.database = postgres_url
    cli("sync", "--now", iso(ENROLLED))
    clinic.tick(ASKED)
    burst = [(DANA, "9", "SM" + "6" * 32), (LUIS, "10", "SM" + "7" * 32)]
    procs = []
    for _ in range(3):
        for phone, body, sid in burst:
            args = (
                "inbound",
                "--from",
                phone,
                "--body",
                body,
                "--sid",
                sid,
                "--now",
                iso(ASKED + timedelta(minutes=5)),
                "--json",
            )
            procs.append(
                subprocess.Popen(
                    runner.argv(cli.folder, cli.database, args),
                    env=runner.clean_env(clinic.env),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            )
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    alerts = clinic.alerts()
    assert sorted(a["patient_id"] for a in alerts) == ["P-1", "P-2"]
    clinic.tick(ASKED + timedelta(minutes=6))
    assert len(clinic.texts_to(ON_CALL)) == 2
    assert len(clinic.mail_to(CARE_TEAM)) == 2
