"""Acceptance: patient-safety rules of content (SPEC 14) through the installed command.

The sample patients on the shipped configuration, console delivery (see ``conftest.py``):
a late enrollee's first text says how to opt out, and a coordinator's ``resend`` sends
one message again as a new reminder, audited with who asked and why.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta

from .conftest import Cli, iso, parse_utc, sample_patients, tick_counts

#: 10:30 in Los Angeles on 2026-11-30, a week after P-1004's treatment started: the
#: day-1 message (expiring after a day) is long gone, the week-1 check-in is due.
WEEK1_OF_SAM = datetime(2026, 11, 30, 18, 30, tzinfo=UTC)
#: 10:30 in New York on 2026-11-21, Dana's (P-1001) day 1; noon, nothing else due.
DAY1_OF_DANA = datetime(2026, 11, 21, 15, 30, tzinfo=UTC)
NOON = datetime(2026, 11, 21, 17, 0, tzinfo=UTC)


def printed_sms(stdout: str, patient: str) -> list[str]:
    """The texts the console dry run printed for ``patient``'s SMS (one string each)."""
    blocks = re.findall(rf"SMS\s+{patient} -> \S+\n((?:  .*\n)+)", stdout)
    return [" ".join(line.strip() for line in block.splitlines()) for block in blocks]


def test_a_late_enrollees_first_text_says_how_to_opt_out(cli: Cli) -> None:
    """Sample patient P-1004, enrolled after the day-1 message expired, gets a week-1 check-in that ends with the opt-out line.

    Catches: the STOP notice carried only by the day-1 message, which a late enrollee
    never receives.
    """
    # Off a terminal the dry run prints texts only when asked to.
    result = cli("tick", "--now", iso(WEEK1_OF_SAM), env={"REMINDERS_CONSOLE_TEXT": "1"})
    [text] = printed_sms(result.stdout, "P-1004")
    assert "Week 1 check-in" in text
    assert text.endswith("Reply STOP to opt out."), text


def test_resend_sends_one_message_again_as_a_new_reminder_and_audits_who_and_why(
    cli: Cli,
) -> None:
    """`resend` plans a copy of Dana's day-1 SMS due now; `tick` sends it once; the sent one stays; the audit names who and why.

    Catches: no way to send advice again on purpose, a resend that rewrites the sent
    reminder, or one that leaves no record of who asked.
    """
    cli.write_patients([sample_patients()[0]])
    assert tick_counts(cli("tick", "--now", iso(DAY1_OF_DANA), "--json"))["sent"] == 2
    before = cli.timeline("P-1001")

    planned = cli(
        "resend",
        "P-1001",
        "crutches-toe-touch",
        "--channel",
        "sms",
        "--by",
        "Coordinator Kim",
        "--reason",
        "patient lost the text",
        "--now",
        iso(NOON),
        "--json",
    ).json()
    sent = tick_counts(cli("tick", "--now", iso(NOON + timedelta(minutes=1)), "--json"))
    again = tick_counts(cli("tick", "--now", iso(NOON + timedelta(minutes=2)), "--json"))
    after = cli.timeline("P-1001")

    [row] = planned
    assert (row["milestone"], row["occurrence"], row["repeats"], row["channel"]) == (
        "crutches-toe-touch",
        1001,
        1,
        "sms",
    )
    assert parse_utc(row["due_at"]) == NOON
    assert (sent["sent"], again["sent"]) == (1, 0)
    assert [r for r in after if r["occurrence"] < 1000] == before
    [copy] = [r for r in after if r["occurrence"] == 1001]
    assert (copy["channel"], copy["status"], copy["attempts"]) == ("sms", "sent", 1)
    with sqlite3.connect(cli.folder / "r.db") as db:
        events = db.execute(
            "SELECT patient_id, reminder_id, detail FROM audit_events WHERE kind = 'reminder.resent'"
        ).fetchall()
    assert [(pid, rid) for pid, rid, _ in events] == [("P-1001", row["reminder_id"])]
    assert '"by": "Coordinator Kim"' in events[0][2]
    assert '"reason": "patient lost the text"' in events[0][2]


#: Resends that must be refused, with the exit code (2: usage; 1: nothing to send).
REFUSED = {
    "no --by": (("P-1001", "crutches-toe-touch", "--reason", "lost"), 2),
    "unknown milestone": (("P-1001", "no-such-step", "--by", "Kim", "--reason", "lost"), 2),
    "no such occurrence": (
        ("P-1001", "brace-crutch-check", "--occurrence", "6", "--by", "K", "--reason", "r"),
        2,
    ),
    "no phone": (
        ("P-1003", "crutches-toe-touch", "--channel", "sms", "--by", "K", "--reason", "r"),
        1,
    ),
    "unknown patient": (("P-9999", "crutches-toe-touch", "--by", "Kim", "--reason", "lost"), 1),
}


def test_resend_refuses_what_it_cannot_send_and_changes_nothing(cli: Cli) -> None:
    """A resend without who asks, of an unknown milestone or occurrence, or to a channel or patient that does not exist exits non-zero and plans nothing.

    Catches: a resend that plans a message no one can account for, or one the patient
    cannot receive.
    """
    cli("sync", "--now", iso(DAY1_OF_DANA))
    before = cli("status", "--json").json()["reminders"]
    codes = {
        name: cli("resend", *args, "--now", iso(NOON), expect=None).code
        for name, (args, _) in REFUSED.items()
    }
    assert codes == {name: code for name, (_, code) in REFUSED.items()}
    assert cli("status", "--json").json()["reminders"] == before


def test_resend_to_a_patient_whose_protocol_is_over_goes_out(cli: Cli) -> None:
    """A patient whose every reminder expired is `completed`; a resend to them still goes out at the next tick.

    Catches: a resend refused, or planned and never sent, because the patient's protocol
    is over (the dispatcher sends only to active patients).
    """
    cli.write_patients(
        [{**sample_patients()[0], "surgery_date": DAY1_OF_DANA.date().replace(year=2025)}]
    )
    cli("tick", "--now", iso(DAY1_OF_DANA))
    assert cli("status", "--json").json()["patients"] == {"completed": 1}
    cli(
        "resend",
        "P-1001",
        "return-to-sport-review",
        "--channel",
        "email",
        "--by",
        "Kim",
        "--reason",
        "asked for it",
        "--now",
        iso(NOON),
    )
    sent = tick_counts(cli("tick", "--now", iso(NOON + timedelta(minutes=1)), "--json"))
    assert sent["sent"] == 1
