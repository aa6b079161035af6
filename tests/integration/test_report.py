"""``reminders report``: exact figures on ten patients with known answers (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

from reminders.channels.memory import MemoryChannel
from reminders.inbound import Text, receive
from reminders.models import Schedules
from reminders.store import Store
from reminders.sync import sync_patients
from reminders.templates import Templates
from reminders.testing import make_dispatcher, patient_record, write_patients
from tests.integration.checkin_desk import ASKED, ENROLLED, SURGERY

#: Each patient's answer to the day-4 pain check-in and to the day-5 brace check-in
#: (None: no reply), and minutes from the alert to its acknowledgement.
ANSWERS: dict[str, tuple[str | None, str | None, int | None]] = {
    "P-01": ("9", "yes", 10),  # urgent, acknowledged after 10 minutes
    "P-02": ("2", "no", None),  # review (brace: no)
    "P-03": ("7", None, 120),  # review (>= 6), acknowledged after 2 hours
    "P-04": (None, None, None),  # two missed: review
    "P-05": ("0", None, None),
    "P-06": ("10", None, 30),  # urgent, acknowledged after 30 minutes
    "P-07": (None, None, None),  # two missed: review
    "P-08": ("5", None, None),
    "P-09": ("6", None, None),  # review (>= 6)
    "P-10": ("3", None, None),
}


def phone(pid: str) -> str:
    return f"+1201555{int(pid[2:]):04d}"


def test_report_figures_are_exact(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """Per patient: asked, answered, unanswered, last and highest score, open alerts; per protocol:
    answer rate, alerts by level, median minutes to acknowledge."""
    records = [
        patient_record(
            pid,
            phone=phone(pid),
            email=None,
            surgery_date=SURGERY,
            timezone="America/New_York",
            channels=["sms"],
        )
        for pid in ANSWERS
    ]
    sync_patients(store, shipped, write_patients(tmp_path / "p.yaml", records), ENROLLED)
    dispatcher = make_dispatcher(
        store,
        shipped,
        templates,
        {"sms": MemoryChannel("sms"), "email": MemoryChannel("email")},
        owner="t",
        rng=random.Random(1),
    )
    day = timedelta(days=1)

    def answer_all(which: int, at: object) -> None:
        for n, (pid, answers) in enumerate(ANSWERS.items()):
            body = answers[which]
            if body is not None:
                sid = f"SM{which}{n:031x}"
                receive(
                    store,
                    shipped,
                    Text(phone(pid), body, sid, ASKED + which * day + timedelta(minutes=5)),
                )

    dispatcher.tick(ASKED)
    answer_all(0, None)
    with store.write() as tx:
        for alert in tx.alerts.listed():
            minutes = ANSWERS[alert.patient_id][2]
            if minutes is not None and alert.id is not None:
                tx.alerts.acknowledge(
                    alert.id,
                    by="Nurse Kim",
                    note=None,
                    at=alert.raised_at + timedelta(minutes=minutes),
                )
    dispatcher.tick(ASKED + day)  # pain windows close; brace questions go out
    answer_all(1, None)
    dispatcher.tick(ASKED + 2 * day)  # brace windows close: P-04 and P-07 missed two
    dispatcher.tick(ASKED + 7 * day)  # the day-11 pain questions go out: open, not closed

    with store.read() as tx:
        patients = {p.patient_id: asdict(p) for p in tx.reports.patients()}
        [protocol] = tx.reports.protocols()

    def row(asked: int, answered: int, last: int | None, open_alerts: int) -> dict[str, object]:
        return {
            "protocol": "proximal-hamstring-repair",
            "sent": asked,
            "answered": answered,
            "unanswered": 2 - answered,  # the third is still open
            "last_score": last,
            "highest_score": last,
            "open_alerts": open_alerts,
        }

    expected = {
        "P-01": row(3, 2, 9, 0),
        "P-02": row(3, 2, 2, 1),
        "P-03": row(3, 1, 7, 0),
        "P-04": row(3, 0, None, 1),
        "P-05": row(3, 1, 0, 0),
        "P-06": row(3, 1, 10, 0),
        "P-07": row(3, 0, None, 1),
        "P-08": row(3, 1, 5, 0),
        "P-09": row(3, 1, 6, 1),
        "P-10": row(3, 1, 3, 0),
    }
    assert {
        pid: {k: v for k, v in p.items() if k != "patient_id"} for pid, p in patients.items()
    } == expected
    assert asdict(protocol) == {
        "protocol": "proximal-hamstring-repair",
        "sent": 30,
        "answered": 10,
        "unanswered": 10,
        "answer_rate": 0.5,  # of the 20 closed, not of the 30 asked
        "alerts": {"urgent": 2, "review": 5},
        "median_minutes_to_ack": 30.0,  # of 10, 30 and 120 (the mean would be 53.33)
    }
