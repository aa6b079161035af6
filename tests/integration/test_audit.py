"""Audit records of sends, status changes and opt-outs, on a real outbox and through the real HTTP app.

Every record names its kind, the patient and (where there is one) the reminder; its
``detail`` never holds a phone number, an email address or any message text.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from twilio.request_validator import RequestValidator

from reminders.channels.base import Message
from reminders.channels.memory import MemoryChannel
from reminders.compose import Links
from reminders.errors import DeliveryError, PermanentError
from reminders.http import WebContext, create_app
from reminders.metrics import Metrics
from reminders.models import Schedules
from reminders.store import Store, TimelineEntry
from reminders.sync import sync_patients
from reminders.templates import Templates
from reminders.testing import make_dispatcher, patient_record, write_patients
from reminders.testing.peer import listening_socket
from tests.twilio_webhooks import ACCOUNT_SID, SidChannel, inbound_form, message_sid, status_form

PUBLIC_URL = "https://reminders.example.com"
AUTH_TOKEN = "audit-test-auth-token"
SECRET = "audit-test-secret-key"
ENROLLED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
#: Day 1 after a 2026-11-24 surgery, 10:30 in New York: crutches-toe-touch is due.
DAY1 = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
LATER = DAY1 + timedelta(minutes=10)
#: (patient id, phone, email); P-3 is reached by SMS only.
PATIENTS = (
    ("P-1", "+12015550123", "dana.reyes@example.com"),
    ("P-2", "+19735550142", "luis.ortega@example.com"),
    ("P-3", "+12015550191", None),
)
PHONE = {pid: phone for pid, phone, _ in PATIENTS}
REPLY = "My calf is swollen and warm since last night"


@dataclass
class Outbox:
    """A store whose day-1 reminders went out, the messages sent, and the app in front of it."""

    store: Store
    client: httpx.Client
    sms: MemoryChannel
    email: MemoryChannel

    def entries(self, patient: str) -> list[TimelineEntry]:
        with self.store.read() as tx:
            return tx.views.timeline(patient)

    def sent(self, patient: str, channel: str) -> TimelineEntry:
        [entry] = [e for e in self.entries(patient) if e.status == "sent" and e.channel == channel]
        return entry

    def events(self, *kinds: str) -> list[dict[str, Any]]:
        with self.store.read() as tx:
            return [e for e in tx.views.audit_events() if not kinds or e["kind"] in kinds]

    def post_twilio(self, path: str, form: dict[str, str]) -> int:
        """POST a webhook signed as Twilio signs it; returns the status code."""
        signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + path, form)
        return self.client.post(
            path, data=form, headers={"X-Twilio-Signature": signature}
        ).status_code


def enrol(store: Store, schedules: Schedules, folder: Path) -> None:
    records = [
        patient_record(
            pid,
            phone=phone,
            email=email,
            surgery_date="2026-11-24",
            timezone="America/New_York",
            channels=["sms", "email"] if email else ["sms"],
        )
        for pid, phone, email in PATIENTS
    ]
    sync_patients(store, schedules, write_patients(folder / "patients.yaml", records), ENROLLED)


@pytest.fixture
def outbox(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> Iterator[Outbox]:
    """Three patients whose day-1 reminders went out through the memory channel, behind the app."""
    enrol(store, shipped, tmp_path)
    sms, email = SidChannel("sms"), MemoryChannel("email")
    report = make_dispatcher(
        store,
        shipped,
        templates,
        {"sms": sms, "email": email},
        owner="test",
        rng=random.Random(1),
        unsubscribe=Links(PUBLIC_URL, SECRET),
    ).tick(DAY1)
    assert report.counts["sent"] == 5
    context = WebContext(
        store=store,
        twilio_auth_token=AUTH_TOKEN,
        public_url=PUBLIC_URL,
        secret_key=SECRET,
        schedules=lambda: shipped,
        metrics=Metrics(store, lambda: LATER),
        running=lambda: True,
        clock=lambda: LATER,
        twilio_account_sid=ACCOUNT_SID,
    )
    with serve(create_app(context)) as client:
        yield Outbox(store, client, sms, email)


@contextmanager
def serve(app: Any) -> Iterator[httpx.Client]:
    """The app served by uvicorn on a free loopback port (as ``run`` serves it), and a client."""
    sock = listening_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="http", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn exited before it started"
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def contact_forms(phone: str) -> list[str]:
    """Every way a detail could write a phone number: E.164, national digits, the local part."""
    digits = phone.removeprefix("+1")
    return [phone, digits, digits[3:], f"{digits[3:6]}-{digits[6:]}"]


def assert_detail_clean(events: list[dict[str, Any]], *channels: MemoryChannel) -> None:
    """No detail holds a phone number, an email address, a sentence of a sent message or a reply."""
    assert events
    messages = [m for channel in channels for m in channel.calls]
    texts = [part for m in messages for part in (m.text, m.html, m.subject)]
    sentences = {
        s.strip() for t in texts for s in re.split(r"(?<=[.?!:])\s+|\n+", t) if len(s.strip()) > 20
    }
    assert len(sentences) > 10
    for event in events:
        detail = json.dumps(event["detail"])
        for _, phone, email in PATIENTS:
            for form in contact_forms(phone):
                assert form not in detail, f"{form!r} in {event}"
            if email:
                assert email.split("@")[0] not in detail, f"{email!r} in {event}"
        assert "@" not in detail, event
        assert REPLY not in detail, event
        leaked = [s for s in sentences if s in detail]
        assert leaked == [], f"message text in {event}"


def test_every_send_is_audited_with_patient_and_reminder(outbox: Outbox) -> None:
    """Each sent reminder has one ``reminder.sent`` record naming its patient and reminder, and no contact detail.

    Catches: a send without an audit record, or a record carrying the address or the text.
    """
    sent = [e for pid, _, _ in PATIENTS for e in outbox.entries(pid) if e.status == "sent"]
    events = outbox.events("reminder.sent")
    assert sorted((e["patient_id"], e["reminder_id"]) for e in events) == sorted(
        (e.patient_id, e.id) for e in sent
    )
    for event in events:
        entry = next(e for e in sent if e.id == event["reminder_id"])
        assert event["detail"]["channel"] == entry.channel
        assert event["detail"]["milestone"] == entry.milestone == "crutches-toe-touch"
        assert event["detail"]["provider_id"] == entry.provider_id
    assert_detail_clean(outbox.events(), outbox.sms, outbox.email)


def test_status_callbacks_are_audited_once_with_patient_and_reminder(outbox: Outbox) -> None:
    """A delivered and a failed callback each leave one record naming the patient and reminder; a repeat adds none.

    Catches: status changes from Twilio missing from the audit, or recorded without the patient
    (then a patient's audit history omits them).
    """
    delivered, failed = outbox.sent("P-1", "sms"), outbox.sent("P-2", "sms")
    for entry, status, code in ((delivered, "delivered", None), (failed, "undelivered", "30003")):
        assert entry.provider_id
        form = status_form(entry.provider_id, status, to=PHONE[entry.patient_id], code=code)
        path = f"/twilio/status?reminder={entry.id}"
        assert outbox.post_twilio(path, form) == 204
        assert outbox.post_twilio(path, form) == 204
    events = outbox.events("reminder.delivered", "reminder.failed")
    assert [(e["kind"], e["patient_id"], e["reminder_id"]) for e in events] == [
        ("reminder.delivered", "P-1", delivered.id),
        ("reminder.failed", "P-2", failed.id),
    ]
    assert events[1]["detail"]["code"] == "30003"
    with outbox.store.read() as tx:
        assert [e["kind"] for e in tx.views.audit_events("P-1")] == [
            "enrollment.created",
            "reminder.sent",
            "reminder.sent",
            "reminder.delivered",
        ]
    assert_detail_clean(outbox.events(), outbox.sms, outbox.email)


def test_stop_and_start_replies_are_audited_as_opt_out_and_back_in(outbox: Outbox) -> None:
    """STOP leaves ``opt_out.sms.on`` and START ``opt_out.sms.off`` for the patient of that number, without number or text.

    Catches: an SMS opt-out or opt-in that leaves no audit record, or one that names no patient.
    """
    for n, body in enumerate(("STOP", "START"), start=1):
        form = inbound_form(PHONE["P-1"], body, message_sid(n))
        assert outbox.post_twilio("/twilio/inbound", form) == 200
    events = outbox.events("opt_out.sms.on", "opt_out.sms.off")
    assert [(e["kind"], e["patient_id"], e["reminder_id"]) for e in events] == [
        ("opt_out.sms.on", "P-1", None),
        ("opt_out.sms.off", "P-1", None),
    ]
    assert all(e["detail"]["source"] == "inbound sms" for e in events)
    assert_detail_clean(outbox.events(), outbox.sms, outbox.email)


def test_a_free_text_reply_is_not_copied_into_the_audit(outbox: Outbox) -> None:
    """A patient's free-text reply never reaches an audit record's detail.

    Catches: the reply body written into the audit trail (PHI outside the inbound table).
    """
    form = inbound_form(PHONE["P-2"], REPLY, message_sid(9))
    assert outbox.post_twilio("/twilio/inbound", form) == 200
    assert REPLY not in repr(outbox.events())
    assert_detail_clean(outbox.events(), outbox.sms, outbox.email)


def test_email_unsubscribe_is_audited_as_an_email_opt_out(outbox: Outbox) -> None:
    """A one-click unsubscribe leaves ``opt_out.email.on`` for the patient, without the address.

    Catches: an email opt-out that leaves no audit record.
    """
    [mail] = [m for m in outbox.email.sent if m.to == "luis.ortega@example.com"]
    assert mail.unsubscribe_url
    path = mail.unsubscribe_url.removeprefix(PUBLIC_URL)
    assert outbox.client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    [event] = outbox.events("opt_out.email.on")
    assert (event["patient_id"], event["detail"]["source"]) == ("P-2", "unsubscribe link")
    assert_detail_clean(outbox.events(), outbox.sms, outbox.email)


def test_21610_in_a_status_callback_is_audited_as_an_sms_opt_out(outbox: Outbox) -> None:
    """A callback reporting 21610 (the number replied STOP to the carrier) opts the number out and audits it.

    Catches: the provider's opt-out applied silently, with no audit record of the opt-out.
    """
    entry = outbox.sent("P-3", "sms")
    assert entry.provider_id
    form = status_form(entry.provider_id, "failed", to=PHONE["P-3"], code="21610")
    assert outbox.post_twilio(f"/twilio/status?reminder={entry.id}", form) == 204
    [event] = outbox.events("opt_out.sms.on")
    assert (event["patient_id"], event["reminder_id"]) == ("P-3", entry.id)
    assert event["detail"]["source"] == "provider 21610"
    with outbox.store.read() as tx:
        assert tx.contacts.opted_out("sms", [PHONE["P-3"]]) == {PHONE["P-3"]}
    assert_detail_clean(outbox.events(), outbox.sms, outbox.email)


def test_21610_on_send_is_audited_as_a_failure_and_an_sms_opt_out(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """A send refused with 21610 leaves ``reminder.failed`` (code 21610) and ``opt_out.sms.on`` for that patient.

    Catches: the number opted out by the dispatcher with no opt-out record in the audit.
    """
    enrol(store, shipped, tmp_path)

    def unsubscribed(message: Message) -> DeliveryError | None:
        if message.to != PHONE["P-3"]:
            return None
        return PermanentError("Twilio 21610: unsubscribed", code="21610", opted_out=True)

    sms, email = MemoryChannel("sms", fail=unsubscribed), MemoryChannel("email")
    channels = {"sms": sms, "email": email}
    make_dispatcher(store, shipped, templates, channels, owner="t", rng=random.Random(2)).tick(DAY1)
    with store.read() as tx:
        [reminder] = [e for e in tx.views.timeline("P-3") if e.status == "failed"]
        events = [
            e for e in tx.views.audit_events("P-3") if not e["kind"].startswith("enrollment.")
        ]
    assert [(e["kind"], e["patient_id"], e["reminder_id"]) for e in events] == [
        ("reminder.failed", "P-3", reminder.id),
        ("opt_out.sms.on", "P-3", reminder.id),
    ]
    assert events[0]["detail"]["code"] == "21610"
    assert events[1]["detail"]["source"] == "provider 21610"
    with store.read() as tx:
        assert_detail_clean(tx.views.audit_events(), sms, email)
