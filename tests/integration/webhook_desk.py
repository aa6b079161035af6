"""The HTTP app in front of a real outbox whose day-1 texts went out through the real Twilio client.

Four fictional patients on the shipped protocol, their surgery on 2026-11-24 in New
York: P-1 (English, SMS and email), P-2 (Spanish, SMS and email), P-3 (SMS only) and
P-4 (email only). Their day-1 reminders were dispatched at :data:`DAY1`: SMS through
:class:`~reminders.channels.twilio.TwilioChannel` to the local Twilio-compatible
endpoint (so each text has a real ``SM…`` SID and the ``StatusCallback`` URL Twilio
would call), email to memory with unsubscribe links. The app is served by uvicorn on
loopback, as ``run`` serves it, and the test posts to it what Twilio would post.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from reminders.channels.memory import MemoryChannel
from reminders.channels.twilio import TwilioChannel, TwilioSettings
from reminders.compose import Links
from reminders.http import WebContext, create_app
from reminders.metrics import Metrics
from reminders.models import Schedules
from reminders.store import Store, TimelineEntry
from reminders.sync import sync_patients
from reminders.templates import Templates
from reminders.testing import make_dispatcher, patient_record, write_patients
from reminders.testing.twilio import DEFAULT_AUTH_TOKEN, FakeMessage, FakeTwilio
from tests.integration.test_audit import serve
from tests.twilio_webhooks import ACCOUNT_SID, CLINIC_NUMBER, signature

PUBLIC_URL = "https://reminders.example.com"
#: The auth token Twilio signs webhooks with (the fake endpoint's account's).
AUTH_TOKEN = DEFAULT_AUTH_TOKEN
SECRET = "webhook-test-secret-key"
ENROLLED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
#: Day 1 after a 2026-11-24 surgery, 10:30 in New York: crutches-toe-touch is due.
DAY1 = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
LATER = DAY1 + timedelta(minutes=10)
FIRST = "crutches-toe-touch"
#: (patient id, phone, email, language).
PATIENTS = (
    ("P-1", "+12015550123", "dana.reyes@example.com", "en"),
    ("P-2", "+19735550142", "luis.ortega@example.com", "es"),
    ("P-3", "+12015550191", None, "en"),
    ("P-4", None, "aroha.ngata@example.com", "en"),
)
PHONE = {pid: phone for pid, phone, _, _ in PATIENTS if phone}


@dataclass
class Desk:
    """The outbox, the endpoint that took the texts, the served app and what it forwarded."""

    store: Store
    client: httpx.Client
    fake: FakeTwilio
    email: MemoryChannel
    metrics: Metrics
    context: WebContext

    @property
    def forwarded(self) -> list[TimelineEntry]:
        """Free-text replies queued to the coordinator (notices forwarding a text)."""
        with self.store.read() as tx:
            return [
                e
                for e in tx.views.timeline(notices=True)
                if e.milestone.startswith("notice:forward")
            ]

    def entries(self, patient: str | None = None) -> list[TimelineEntry]:
        """Every reminder (of ``patient``), as the timeline shows it."""
        with self.store.read() as tx:
            return tx.views.timeline(patient)

    def reminder(self, reminder_id: int) -> TimelineEntry:
        """One reminder by id."""
        [entry] = [e for e in self.entries() if e.id == reminder_id]
        return entry

    def text_to(self, patient: str) -> FakeMessage:
        """The one text the endpoint accepted for ``patient``."""
        [message] = [m for m in self.fake.messages if m.to == PHONE[patient]]
        return message

    def sms_statuses(self, patient: str) -> set[str]:
        """The statuses of ``patient``'s SMS reminders after day 1."""
        return {e.status for e in self.entries(patient) if e.channel == "sms" and e.due_at > DAY1}

    def post(
        self,
        target: str,
        pairs: Sequence[tuple[str, str]] | Mapping[str, str],
        signed: str | None,
    ) -> httpx.Response:
        """POST ``pairs`` form-encoded (in that order, repeats kept) to ``target`` (path and
        query), with ``signed`` as the X-Twilio-Signature (None: no header)."""
        items = list(pairs.items()) if isinstance(pairs, Mapping) else list(pairs)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signed is not None:
            headers["X-Twilio-Signature"] = signed
        return self.client.post(target, content=urlencode(items), headers=headers)

    def signature(self, target: str, form: Mapping[str, str]) -> str:
        """The signature Twilio sends with a POST of ``form`` to ``target``."""
        return signature(AUTH_TOKEN, PUBLIC_URL + target, dict(form))

    def twilio_post(self, target: str, form: Mapping[str, str]) -> httpx.Response:
        """POST ``form`` to ``target`` signed as Twilio signs it."""
        return self.post(target, form, self.signature(target, form))

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, sorted: equal snapshots mean nothing changed."""
        with self.store.read() as tx:
            return {
                name: sorted((tuple(row) for row in tx.conn.execute(sa.select(table))), key=repr)
                for name, table in SQLModel.metadata.tables.items()
            }

    def provider_errors(self, code: str) -> float | None:
        """``reminders_provider_errors_total`` for SMS and ``code`` (None: never counted)."""
        return self.metrics.registry.get_sample_value(
            "reminders_provider_errors_total", {"channel": "sms", "code": code}
        )


def callback_target(message: FakeMessage) -> str:
    """Path and query of the status callback URL the service gave Twilio for ``message``."""
    assert message.status_callback, "the service sent no StatusCallback"
    url = urlsplit(message.status_callback)
    assert f"{url.scheme}://{url.netloc}" == PUBLIC_URL
    return f"{url.path}?{url.query}"


def reminder_of(message: FakeMessage) -> int:
    """The reminder id named by ``message``'s status callback URL."""
    return int(callback_target(message).rpartition("=")[2])


@pytest.fixture
def desk(store: Store, shipped: Schedules, templates: Templates, tmp_path: Path) -> Iterator[Desk]:
    """Four patients whose day-1 reminders went out (texts through the real Twilio client)."""
    records = [
        patient_record(
            pid,
            phone=phone,
            email=email,
            language=language,
            surgery_date="2026-11-24",
            timezone="America/New_York",
            channels=[c for c, a in (("sms", phone), ("email", email)) if a],
        )
        for pid, phone, email, language in PATIENTS
    ]
    sync_patients(store, shipped, write_patients(tmp_path / "patients.yaml", records), ENROLLED)
    with FakeTwilio() as fake:
        settings = TwilioSettings(
            account_sid=fake.account_sid,
            auth_token=AUTH_TOKEN,
            from_number=CLINIC_NUMBER,
            api_base_url=fake.url,
            public_url=PUBLIC_URL,
            timeout=10,
        )
        email = MemoryChannel("email")
        report = make_dispatcher(
            store,
            shipped,
            templates,
            {"sms": TwilioChannel(settings), "email": email},
            owner="test",
            rng=random.Random(1),
            unsubscribe=Links(PUBLIC_URL, SECRET),
        ).tick(DAY1)
        assert report.counts["sent"] == 6, report.counts
        metrics = Metrics(store, lambda: LATER)
        context = WebContext(
            store=store,
            twilio_auth_token=AUTH_TOKEN,
            public_url=PUBLIC_URL,
            secret_key=SECRET,
            schedules=lambda: shipped,
            metrics=metrics,
            running=lambda: True,
            clock=lambda: LATER,
            twilio_account_sid=ACCOUNT_SID,
        )
        with serve(create_app(context)) as client:
            yield Desk(store, client, fake, email, metrics, context)
