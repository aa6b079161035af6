"""The first message a patient actually receives on a channel says how to opt out.

Whatever expired, failed or was cancelled before it: the store decides at claim time
whether any earlier reminder of the patient on that channel was sent or delivered, and
the composer adds the opt-out line when none was. Every test runs on SQLite and
PostgreSQL, with the shipped protocol and templates and the in-memory channel; the
segment check of ``validate`` counts every SMS with that line.
"""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from reminders.channels.base import Message
from reminders.channels.memory import MemoryChannel
from reminders.compose import Composer
from reminders.errors import DeliveryError, PermanentError
from reminders.models import Schedules
from reminders.store import Store
from reminders.store.schema import REMINDERS
from reminders.sync import sync_patients
from reminders.templates import Templates
from reminders.testing import make_dispatcher
from tests.conftest import REPO
from tests.integration.test_sync import patient, write

#: Surgery 2026-11-24 (New York). Enrolled on day 5: the day-1 and day-2 advice expired.
LATE = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
#: Week 1, 10:30 in New York: the first weekly check-in is due.
WEEK1 = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)
SMS_STOP = "Reply STOP to opt out."
EMAIL_STOP = "To stop getting these emails"


def deliver(
    store: Store,
    shipped: Schedules,
    templates: Templates,
    now: datetime,
    sms: MemoryChannel,
    *,
    email: MemoryChannel | None = None,
) -> None:
    """One tick at ``now`` with the in-memory channels."""
    channels = {"sms": sms, "email": email or MemoryChannel("email")}
    make_dispatcher(store, shipped, templates, channels, owner="test", rng=random.Random(1)).tick(
        now
    )


def test_a_late_enrollees_first_text_says_how_to_opt_out_and_later_ones_do_not(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """Enrolled after the day-1 message expired, the patient's first SMS and email (a week-1 check-in) carry the opt-out line; the next week's do not.

    Catches: the opt-out line carried only by the day-1 message, which a late enrollee
    never receives (sample patient P-1004).
    """
    sync_patients(store, shipped, write(tmp_path / "p.yaml", patient("P-1")), LATE)
    sms, email = MemoryChannel("sms"), MemoryChannel("email")
    deliver(store, shipped, templates, WEEK1, sms, email=email)
    assert [m.message_id.split(".")[2] for m in sms.sent] == ["brace-crutch-check"]
    assert SMS_STOP in sms.sent[0].text
    assert EMAIL_STOP in email.sent[0].text
    deliver(store, shipped, templates, WEEK1 + timedelta(weeks=1), sms, email=email)
    assert len(sms.sent) == 2
    assert SMS_STOP not in sms.sent[1].text


def test_a_text_after_one_reported_delivered_does_not_repeat_the_opt_out_line(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """The week-1 SMS goes out and Twilio's callback reports it ``delivered``; the week-2 SMS
    does not carry the opt-out line: a delivered text reached the patient as a sent one does.

    Catches: "reached" read as ``status = 'sent'`` alone, so that every text after a
    delivery report would tell the patient again how to opt out.
    """
    sync_patients(store, shipped, write(tmp_path / "p.yaml", patient("P-1")), LATE)
    sms = MemoryChannel("sms")
    deliver(store, shipped, templates, WEEK1, sms)
    r = REMINDERS.c
    with store.write() as tx:
        [(reminder_id, sid)] = tx.conn.execute(
            sa.select(r.id, r.provider_id).where(r.channel == "sms", r.status == "sent")
        ).all()
        assert tx.outbox.apply_status_callback(reminder_id, sid, "delivered", None, WEEK1).matched
    deliver(store, shipped, templates, WEEK1 + timedelta(weeks=1), sms)
    assert len(sms.sent) == 2
    assert SMS_STOP in sms.sent[0].text
    assert SMS_STOP not in sms.sent[1].text


def test_the_text_after_one_that_failed_still_says_how_to_opt_out(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """When the day-1 SMS fails for good, the day-2 SMS is the first received: it carries the opt-out line.

    Catches: "first" decided by the protocol's order (the day-1 milestone) rather than by
    what actually reached the patient.
    """
    sync_patients(
        store, shipped, write(tmp_path / "p.yaml", patient("P-1")), LATE - timedelta(days=5)
    )

    def refuse_day_one(message: Message) -> DeliveryError | None:
        if "crutches-toe-touch" in message.message_id:
            return PermanentError("landline", code="30006")
        return None

    sms = MemoryChannel("sms", refuse_day_one)
    day1 = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
    deliver(store, shipped, templates, day1, sms)
    deliver(store, shipped, templates, day1 + timedelta(days=1), sms)
    assert [m.message_id.split(".")[2] for m in sms.sent] == ["protect-hamstring"]
    assert SMS_STOP in sms.sent[0].text


def test_the_check_counts_every_sms_with_its_opt_out_line(
    tmp_path: Path, shipped: Schedules
) -> None:
    """An SMS that fits 2 segments without the opt-out line but not with it fails the template check.

    Catches: ``validate`` measuring SMS without the line the first message adds.
    """
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    (tmp_path / "templates" / "en" / "brace-removal.sms.j2").write_text(
        "x" * 300 + '{% if first %} {% include "en/_optout.sms.j2" %}{% endif %}'
    )
    errors, _ = Composer(shipped, Templates(tmp_path / "templates")).check()
    assert [str(e) for e in errors] == [
        f"{tmp_path / 'templates' / 'en' / 'brace-removal.sms.j2'}: renders to 3 SMS segments "
        "(323 GSM-7 units, with the opt-out line); the limit is 2"
    ]


def test_the_check_counts_every_sms_with_the_clinic_number_as_written_abroad(
    tmp_path: Path, shipped: Schedules
) -> None:
    """An SMS that fits with the clinic's number in national format but not in international format fails the check.

    Catches: ``validate`` measuring SMS only as patients in the clinic's country get them.
    """
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    national = shipped.clinic.phone_display  # (201) 555-0100: 14 characters; abroad 15
    (tmp_path / "templates" / "en" / "brace-removal.sms.j2").write_text(
        "x" * (306 - len(national)) + "{{ clinic.phone }}"
    )
    errors, _ = Composer(shipped, Templates(tmp_path / "templates")).check()
    assert len(errors) == 1
    assert "brace-removal.sms.j2: renders to 3 SMS segments (307 GSM-7 units" in str(errors[0])
