"""SMS through the real Twilio client against the local Twilio-compatible endpoint.

Every test drives the dispatcher with a real :class:`TwilioChannel` pointed at
:class:`FakeTwilio` and asserts on what the endpoint actually received. The channel
reads the real clock for ``ValidityPeriod`` and Twilio stamps messages with its own
clock, so each test ticks at the real current time (a few minutes ago), in a time
zone where that is early afternoon and a patient whose day-1 milestone is due.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import yaml

from reminders.channels.base import Message, Receipt, body_digest
from reminders.channels.memory import MemoryChannel
from reminders.channels.twilio import (
    MAX_VALIDITY,
    RECONCILE_SLACK,
    TwilioChannel,
    TwilioSettings,
)
from reminders.compose import Composer
from reminders.dispatch import Dispatcher
from reminders.models import Recipient, Schedules
from reminders.ratelimit import TokenBucket
from reminders.store import Store, TimelineEntry
from reminders.sync import sync_patients
from reminders.templates import Templates
from reminders.testing import make_dispatcher, make_schedules, zone_at
from reminders.testing.peer import closed_port
from reminders.testing.twilio import (
    DEFAULT_AUTH_TOKEN,
    FakeTwilio,
    Fault,
    RecordedRequest,
    twilio_client,
)
from tests.conftest import REPO
from tests.integration.test_sync import patient, timeline, write

#: The clinic's fictional sender number.
FROM = "+12015550100"
#: A fictional Messaging Service SID.
SERVICE = "MG" + "5a" * 16
PUBLIC_URL = "https://reminders.example.com"
DAY1 = "crutches-toe-touch"


@dataclass(frozen=True)
class DueNow:
    """A pinned tick time near the real clock, and the patients' zone and surgery date."""

    #: The pinned tick time (the fixture's: five minutes before the real now).
    at: datetime
    #: The patients' zone (the fixture's: one where ``at`` is early afternoon).
    zone: ZoneInfo
    #: The patients' surgery date (the fixture's: the day before, so day 1 is due).
    surgery: date

    @property
    def local_date(self) -> date:
        """The patient's local date at ``at``."""
        return self.at.astimezone(self.zone).date()


def settings_for(fake: FakeTwilio, **changes: Any) -> TwilioSettings:
    """Channel settings pointing at ``fake``, sending from :data:`FROM` with a 1 s timeout."""
    settings = TwilioSettings(
        account_sid=fake.account_sid,
        auth_token=DEFAULT_AUTH_TOKEN,
        from_number=FROM,
        api_base_url=fake.url,
        public_url=PUBLIC_URL,
        timeout=1.0,
    )
    return replace(settings, **changes)


def dana(pid: str = "P-1", phone: str = "+12015550123", **fields: Any) -> dict[str, Any]:
    """A fictional patient record."""
    return patient(pid, phone=phone, last_name="Reyes", **fields)


@dataclass
class Rig:
    """An outbox, the protocol, a running endpoint and a tick time at which day 1 is due."""

    #: The SQLite outbox.
    store: Store
    #: The protocol patients are enrolled on (the shipped one unless a test swaps it).
    schedules: Schedules
    #: The shipped templates.
    templates: Templates
    #: Where the patients file goes.
    folder: Path
    #: The Twilio-compatible endpoint.
    fake: FakeTwilio
    #: When to tick.
    due: DueNow

    def enrol(self, *records: dict[str, Any]) -> None:
        """Enrol ``records`` with the surgery date and zone that make day 1 due at the tick."""
        path = write(
            self.folder / "patients.yaml",
            *(
                {**r, "surgery_date": self.due.surgery.isoformat(), "timezone": self.due.zone.key}
                for r in records
            ),
        )
        sync_patients(self.store, self.schedules, path, self.due.at)

    def dispatcher(
        self,
        *,
        email: MemoryChannel | None = None,
        limits: Mapping[str, TokenBucket] | None = None,
        **settings: Any,
    ) -> Dispatcher:
        """A dispatcher sending SMS through the real Twilio client and email to memory."""
        return make_dispatcher(
            self.store,
            self.schedules,
            self.templates,
            {
                "sms": TwilioChannel(settings_for(self.fake, **settings)),
                "email": email or MemoryChannel("email"),
            },
            owner="test",
            limits=limits,
            rng=random.Random(7),
        )

    def entry(self, pid: str = "P-1", channel: str = "sms") -> TimelineEntry:
        """The day-1 reminder of ``pid`` on ``channel``."""
        return next(
            e for e in timeline(self.store, pid) if e.milestone == DAY1 and e.channel == channel
        )

    def creates(self) -> list[RecordedRequest]:
        """Every create (POST) request the endpoint received."""
        return [r for r in self.fake.requests if r.method == "POST"]

    def lists(self) -> list[RecordedRequest]:
        """Every list (GET Messages.json) request the endpoint received."""
        return [
            r for r in self.fake.requests if r.method == "GET" and r.path.endswith("/Messages.json")
        ]

    def methods(self) -> list[str]:
        """The HTTP methods the endpoint received, in order."""
        return [r.method for r in self.fake.requests]


@pytest.fixture
def rig(store: Store, shipped: Schedules, templates: Templates, tmp_path: Path) -> Iterator[Rig]:
    """The shipped protocol on a fresh outbox, with a running endpoint stopped after the test."""
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    zone = zone_at(at)
    local = at.astimezone(zone)
    assert 11 <= local.hour < 16, f"no zone in ZONES has early afternoon at {at}"
    with FakeTwilio() as fake:
        yield Rig(
            store,
            shipped,
            templates,
            tmp_path,
            fake,
            DueNow(at, zone, local.date() - timedelta(days=1)),
        )


def test_sms_reaches_the_endpoint_with_sender_callback_and_validity(rig: Rig) -> None:
    """The endpoint receives To, the rendered Body, From, a StatusCallback naming the reminder and ValidityPeriod capped at 36,000 s."""
    rig.enrol(dana())
    report = rig.dispatcher().tick(rig.due.at)
    assert report.counts["sent"] == 2  # the SMS and the email
    sms = rig.entry()
    [request] = rig.creates()
    expected = (
        Composer(rig.schedules, rig.templates)
        .render(
            "sms",
            Recipient("P-1", "Dana", "Reyes", "en", rig.due.zone.key, rig.due.surgery),
            template=DAY1,
            milestone=DAY1,
            occurrence=1,
            day=rig.due.local_date,
            first=True,  # Dana's first message: it says how to opt out
        )
        .text
    )
    assert request.params["To"] == "+12015550123"
    assert request.params["From"] == FROM
    assert "MessagingServiceSid" not in request.params
    assert request.params["Body"] == expected
    assert request.params["StatusCallback"] == f"{PUBLIC_URL}/twilio/status?reminder={sms.id}"
    # Due at 10:00 local with a 1-day expiry: ~20 hours are left, more than Twilio allows.
    assert request.params["ValidityPeriod"] == str(MAX_VALIDITY) == "36000"
    [message] = rig.fake.messages
    assert (sms.status, sms.attempts, sms.provider_id) == ("sent", 1, message.sid)


def test_validity_period_is_the_time_left_before_expiry(rig: Rig) -> None:
    """With less than 10 hours left, ValidityPeriod is the seconds left until expiry, by the dispatcher's clock."""
    doc = yaml.safe_load((REPO / "schedules.yaml").read_text(encoding="utf-8"))
    step = next(
        m for m in doc["protocols"]["proximal-hamstring-repair"]["milestones"] if m["id"] == DAY1
    )
    send_at = (rig.due.at - timedelta(minutes=10)).astimezone(rig.due.zone)
    step["send_time"] = send_at.strftime("%H:%M")
    step["expires_after"] = "3 hours"
    rig.schedules = make_schedules(doc)
    rig.enrol(dana())
    expires = datetime.combine(
        rig.due.local_date, send_at.time().replace(second=0), rig.due.zone
    ) + (timedelta(hours=3))
    assert rig.entry().expires_at == expires
    rig.dispatcher().tick(rig.due.at)
    [request] = rig.creates()
    validity = int(request.params["ValidityPeriod"])
    # The tick pins the clock at rig.due.at: the time left is counted from there.
    assert validity == int((expires - rig.due.at).total_seconds())
    assert 2 * 3600 < validity < 3 * 3600


def test_messaging_service_replaces_the_from_number(rig: Rig) -> None:
    """With a Messaging Service SID the endpoint receives MessagingServiceSid and no From."""
    rig.enrol(dana())
    dispatcher = rig.dispatcher(from_number=None, messaging_service_sid=SERVICE)
    assert dispatcher.tick(rig.due.at).counts["sent"] == 2
    [request] = rig.creates()
    assert request.params["MessagingServiceSid"] == SERVICE
    assert "From" not in request.params
    [message] = rig.fake.messages
    assert (message.messaging_service_sid, message.from_) == (SERVICE, None)
    assert rig.entry().provider_id == message.sid


def test_429_is_retried_no_sooner_than_retry_after_then_sent_once(rig: Rig) -> None:
    """A 429 with Retry-After plans the retry no sooner than asked, and the retry delivers once."""
    rig.enrol(dana())
    rig.fake.fail_next(Fault.status(429, retry_after=120))
    dispatcher = rig.dispatcher()
    assert dispatcher.tick(rig.due.at).counts["retry"] == 1
    assert rig.creates()[0].response_headers["Retry-After"] == "120"
    assert rig.fake.messages == []
    planned = rig.entry()
    assert (planned.status, planned.error_code) == ("planned", "20429")
    assert planned.not_before >= rig.due.at + timedelta(seconds=120)
    assert dispatcher.tick(rig.due.at + timedelta(seconds=119)).counts["sent"] == 0
    assert len(rig.creates()) == 1
    assert dispatcher.tick(planned.not_before).counts["sent"] == 1
    assert len(rig.creates()) == 2
    assert rig.lists() == []  # a 429 is not in doubt: nothing to reconcile
    [message] = rig.fake.messages
    sent = rig.entry()
    assert (sent.status, sent.attempts, sent.provider_id) == ("sent", 2, message.sid)


def test_500_without_acceptance_is_reconciled_then_sent_once(rig: Rig) -> None:
    """A 500 leaves the send in doubt; the endpoint is asked, has nothing, and gets the message once."""
    rig.enrol(dana())
    rig.fake.fail_next(Fault.status(500))
    dispatcher = rig.dispatcher()
    assert dispatcher.tick(rig.due.at).counts["in_doubt"] == 1
    assert rig.fake.messages == []
    retry_at = rig.entry().not_before
    assert retry_at > rig.due.at
    assert dispatcher.tick(retry_at).counts["sent"] == 1
    methods = rig.methods()
    assert methods == ["POST", "GET", "POST"]  # the list comes before the resend
    assert rig.lists()[0].params["To"] == "+12015550123"
    [message] = rig.fake.messages
    sent = rig.entry()
    assert (sent.status, sent.attempts, sent.provider_id) == ("sent", 2, message.sid)


def test_accepted_then_500_is_found_by_reconciliation_and_not_resent(rig: Rig) -> None:
    """A message accepted before a 500 is found by listing and recorded sent with its SID, never resent."""
    rig.enrol(dana())
    rig.fake.fail_next(Fault.accept_then_500())
    dispatcher = rig.dispatcher()
    assert dispatcher.tick(rig.due.at).counts["in_doubt"] == 1
    [accepted] = rig.fake.messages
    assert rig.entry().status == "planned"
    report = dispatcher.tick(rig.entry().not_before)
    assert report.counts["reconciled"] == 1
    assert report.counts["sent"] == 0
    assert len(rig.creates()) == 1
    assert len(rig.lists()) == 1
    assert rig.fake.messages == [accepted]
    sent = rig.entry()
    assert (sent.status, sent.attempts, sent.provider_id) == ("sent", 1, accepted.sid)
    assert dispatcher.tick(sent.not_before + timedelta(hours=1)).counts["sent"] == 0
    assert len(rig.fake.messages) == 1


def test_timeout_before_acceptance_is_reconciled_then_sent_once(rig: Rig) -> None:
    """A request held past the 1 s client timeout is in doubt; nothing is found, so it is sent once."""
    rig.enrol(dana())
    rig.fake.fail_next(Fault.timeout(2.0))
    dispatcher = rig.dispatcher()
    assert dispatcher.tick(rig.due.at).counts["in_doubt"] == 1
    assert rig.entry().error_code == "read-timeout"  # the client gave up, not the fake
    assert dispatcher.tick(rig.entry().not_before).counts["sent"] == 1
    assert rig.methods() == ["POST", "GET", "POST"]
    [message] = rig.fake.messages
    assert rig.entry().provider_id == message.sid


def test_timeout_after_acceptance_is_reconciled_not_resent(rig: Rig) -> None:
    """A message accepted and then not answered within the timeout is found by listing, never resent."""
    rig.enrol(dana())
    rig.fake.fail_next(Fault.accept_then_timeout(2.0))
    dispatcher = rig.dispatcher()
    assert dispatcher.tick(rig.due.at).counts["in_doubt"] == 1
    [accepted] = rig.fake.messages
    assert dispatcher.tick(rig.entry().not_before).counts["reconciled"] == 1
    assert rig.methods() == ["POST", "GET"]
    assert rig.fake.messages == [accepted]
    sent = rig.entry()
    assert (sent.status, sent.provider_id) == ("sent", accepted.sid)


def test_invalid_number_fails_at_once_with_21211_and_is_never_retried(rig: Rig) -> None:
    """Twilio 21211 fails the reminder with that code on the first attempt; later ticks send nothing."""
    rig.enrol(dana())
    rig.fake.fail_next(Fault.status(400, twilio_code=21211))
    dispatcher = rig.dispatcher()
    assert dispatcher.tick(rig.due.at).counts["failed"] == 1
    failed = rig.entry()
    assert (failed.status, failed.attempts, failed.error_code) == ("failed", 1, "21211")
    for later in (timedelta(minutes=5), timedelta(hours=2)):
        assert dispatcher.tick(rig.due.at + later).counts["sent"] == 0
    assert len(rig.creates()) == 1
    assert rig.lists() == []
    assert rig.fake.messages == []
    with rig.store.read() as tx:
        summary = tx.views.summary()
    assert [(f.patient_id, f.error_code) for f in summary.failures] == [("P-1", "21211")]


def test_unsubscribed_number_is_opted_out_and_its_pending_sms_suppressed(rig: Rig) -> None:
    """Twilio 21610 fails the SMS, opts the number out and suppresses that patient's pending SMS; email goes on."""
    rig.enrol(dana("P-1"), dana("P-2", phone="+19735550142"))
    rig.fake.unsubscribe("+12015550123")
    email = MemoryChannel("email")
    dispatcher = rig.dispatcher(email=email)
    report = dispatcher.tick(rig.due.at)
    assert (report.counts["failed"], report.counts["sent"]) == (1, 3)
    failed = rig.entry("P-1")
    assert (failed.status, failed.error_code) == ("failed", "21610")
    later = [e for e in timeline(rig.store, "P-1") if e.milestone != DAY1]
    assert {e.status for e in later if e.channel == "sms"} == {"suppressed"}
    assert {e.status for e in later if e.channel == "email"} == {"planned"}
    assert rig.entry("P-1", "email").status == "sent"
    assert rig.entry("P-2").status == "sent"
    with rig.store.read() as tx:
        assert tx.contacts.opted_out("sms", ["+12015550123", "+19735550142"]) == {"+12015550123"}
        assert tx.views.summary().opted_out == {"sms": 1}
    assert [m.to for m in rig.fake.messages] == ["+19735550142"]
    assert sorted(m.to for m in email.sent) == ["p-1@example.com", "p-2@example.com"]
    # The next week's SMS for P-1 never reaches the endpoint; its email does.
    dispatcher.tick(rig.due.at + timedelta(days=6, hours=1))
    assert "+12015550123" not in [m.to for m in rig.fake.messages]
    assert [r.params["To"] for r in rig.creates()].count("+12015550123") == 1


def test_dropped_connection_is_in_doubt_and_delivered_exactly_once(rig: Rig) -> None:
    """A connection closed without an answer leaves the send in doubt; after reconciling, it arrives once."""
    rig.enrol(dana())
    rig.fake.fail_next(Fault.drop_connection())
    dispatcher = rig.dispatcher()
    assert dispatcher.tick(rig.due.at).counts["in_doubt"] == 1
    assert rig.entry().error_code == "connection"
    assert dispatcher.tick(rig.entry().not_before).counts["sent"] == 1
    assert rig.methods() == ["POST", "GET", "POST"]
    [message] = rig.fake.messages
    sent = rig.entry()
    assert (sent.status, sent.attempts, sent.provider_id) == ("sent", 2, message.sid)


def test_token_bucket_spaces_create_requests(rig: Rig) -> None:
    """At 5 messages per second, ten SMS reach the endpoint spread over at least 1.6 s (nine 0.2 s gaps, less slack)."""
    arrivals: list[float] = []

    def stamp(_index: int, _params: Mapping[str, str]) -> None:
        arrivals.append(time.monotonic())

    rig.fake.faults = stamp  # called as each create request arrives; injects nothing
    numbers = [f"+1{area}55501{n:02d}" for area in (201, 973) for n in range(10, 15)]
    rig.enrol(*(dana(f"P-{i}", phone=p, channels=["sms"]) for i, p in enumerate(numbers)))
    dispatcher = rig.dispatcher(limits={"sms": TokenBucket(5.0)})
    assert dispatcher.tick(rig.due.at).counts["sent"] == 10
    assert sorted(m.to for m in rig.fake.messages) == sorted(numbers)
    arrivals.sort()
    # A lower bound only: a loaded machine can make requests later, never earlier.
    assert arrivals[-1] - arrivals[0] >= 1.6  # nine gaps of 0.2 s, minus scheduling slack


def test_in_doubt_send_deferred_to_the_next_morning_is_reconciled_not_resent(rig: Rig) -> None:
    """A week-12 check-in left in doubt at 19:59:59, deferred overnight by the send window, is found the next morning, not sent twice."""
    # A zone where it is about 20:00 now; the tick is pinned at 19:59:59 today, local.
    now = datetime.now(UTC)
    zone = zone_at(now, hour=20.0)
    today = now.astimezone(zone).date()
    evening = datetime.combine(today, dt_time(19, 59, 59), zone)
    assert evening - timedelta(hours=1) <= now, "reconciliation looks back one hour"
    # Surgery 90 days ago: the week-12 check-in (day 84 at 10:00, expires 7 days later)
    # is the current milestone; its SMS says "Week {{ weeks_since_surgery }} check-in".
    surgery = today - timedelta(days=90)
    rig.due = DueNow(evening, zone, surgery)
    rig.enrol(dana(channels=["sms"]))
    rig.fake.fail_next(Fault.accept_then_500())
    dispatcher = rig.dispatcher()
    assert dispatcher.tick(evening).counts["in_doubt"] == 1
    [accepted] = rig.fake.messages
    assert "Week 12 check-in" in accepted.body

    def check_in() -> TimelineEntry:
        return next(
            e
            for e in timeline(rig.store, "P-1")
            if e.milestone == "exercise-check-in" and e.occurrence == 1
        )

    retry_at = check_in().not_before
    assert retry_at.astimezone(zone).time() >= dt_time(20, 0), "the retry fell inside the window"
    assert dispatcher.tick(retry_at).counts["deferred"] == 1  # the window has closed
    morning = check_in().not_before
    assert morning == datetime.combine(today + timedelta(days=1), dt_time(9, 0), zone)
    assert morning < check_in().expires_at
    report = dispatcher.tick(morning)
    assert rig.methods()[:2] == ["POST", "GET"], "the in-doubt send was not reconciled"
    assert len(rig.fake.messages) == 1, (
        f"sent twice: {[m.body[:40] for m in rig.fake.messages]}; tick {report.as_dict()}"
    )
    assert report.counts["reconciled"] == 1
    assert (check_in().status, check_in().provider_id) == ("sent", accepted.sid)


def test_in_doubt_send_at_expiry_is_recorded_as_sent_not_expired(rig: Rig) -> None:
    """An SMS the endpoint accepted (then answered 500) a second before expiry is recorded sent, not expired."""
    # Expiry must stay ahead of the real clock (the channel checks it), so this tick
    # is pinned a second before an expiry some 25 minutes from now.
    doc = yaml.safe_load((REPO / "schedules.yaml").read_text(encoding="utf-8"))
    step = next(
        m for m in doc["protocols"]["proximal-hamstring-repair"]["milestones"] if m["id"] == DAY1
    )
    step["send_time"] = rig.due.at.astimezone(rig.due.zone).strftime("%H:%M")
    step["expires_after"] = "30 minutes"
    rig.schedules = make_schedules(doc)
    rig.enrol(dana(channels=["sms"]))
    last_second = rig.entry().expires_at - timedelta(seconds=1)
    assert last_second > datetime.now(UTC)
    rig.fake.fail_next(Fault.accept_then_500())
    dispatcher = rig.dispatcher()
    dispatcher.tick(last_second)
    [accepted] = rig.fake.messages
    dispatcher.tick(last_second + timedelta(minutes=1))
    settled = rig.entry()
    assert (settled.status, settled.provider_id) == ("sent", accepted.sid), (
        f"the endpoint accepted {accepted.sid}, the outbox says {settled.status!r} "
        f"(error {settled.error_code}: {settled.error})"
    )
    assert len(rig.fake.messages) == 1


def test_refused_connection_is_retried_without_reconciliation(rig: Rig) -> None:
    """A refused connection (nothing sent) plans a plain retry; the retry sends once without listing first."""
    rig.enrol(dana(channels=["sms"]))
    with closed_port() as port:
        closed = f"http://127.0.0.1:{port}"
        assert rig.dispatcher(api_base_url=closed).tick(rig.due.at).counts["retry"] == 1
    planned = rig.entry()
    assert (planned.status, planned.error_code) == ("planned", "connection-refused")
    assert rig.dispatcher().tick(planned.not_before).counts["sent"] == 1
    assert rig.methods() == ["POST"]
    [message] = rig.fake.messages
    assert rig.entry().provider_id == message.sid


def test_reconciliation_that_cannot_list_waits_and_never_resends_blindly(rig: Rig) -> None:
    """When listing fails during reconciliation, nothing is resent; the next try lists again and finds the message."""
    rig.enrol(dana(channels=["sms"]))
    rig.fake.fail_next(Fault.accept_then_500())
    rig.fake.fail_next(Fault.status(503), endpoint="list")
    dispatcher = rig.dispatcher()
    assert dispatcher.tick(rig.due.at).counts["in_doubt"] == 1
    [accepted] = rig.fake.messages
    assert dispatcher.tick(rig.entry().not_before).counts["in_doubt"] == 1
    assert rig.methods() == ["POST", "GET"]
    assert rig.entry().status == "planned"
    assert dispatcher.tick(rig.entry().not_before).counts["reconciled"] == 1
    assert rig.methods() == ["POST", "GET", "GET"]
    assert rig.fake.messages == [accepted]
    assert (rig.entry().status, rig.entry().provider_id) == ("sent", accepted.sid)


# -- How reconciliation recognises a message: its own text, since an hour before --------

#: Two different texts for one number (fictional).
FIRST = "NJOI: Hi Dana. Keep your brace on and use both crutches. Questions? (201) 555-0100"
SECOND = "NJOI: Hi Dana. Week 2: start gentle ankle pumps. Questions? (201) 555-0100"
PHONE = "+12015550123"


def sms(text: str, reminder_id: int = 1) -> Message:
    """An SMS to :data:`PHONE` for reminder ``reminder_id``."""
    return Message(reminder_id=reminder_id, channel="sms", to=PHONE, text=text)


def digests(*texts: str) -> frozenset[str]:
    """The digests in-doubt attempts that sent ``texts`` hold."""
    return frozenset(body_digest(t) for t in texts)


def test_reconcile_returns_the_message_with_its_own_text_not_a_newer_one_to_the_same_number() -> (
    None
):
    """Of two messages to one number, reconciling one text returns that text's SID, though the other is newer and listed first.

    Catches: reconciliation that ignores the text digest (it takes the newest message
    to the number).
    """
    with FakeTwilio() as fake:
        channel = TwilioChannel(settings_for(fake))
        since = datetime.now(UTC) - timedelta(minutes=1)
        first = channel.send(sms(FIRST, 1))
        second = channel.send(sms(SECOND, 2))
        listed = [m.sid for m in twilio_client(fake).messages.list(to=PHONE)]
        assert listed == [second.provider_id, first.provider_id]  # newest first
        assert channel.reconcile(sms(FIRST, 1), since, digests(FIRST)) == first
        assert channel.reconcile(sms(SECOND, 2), since, digests(SECOND)) == second


def test_reconcile_finds_nothing_when_only_another_text_went_to_the_number() -> None:
    """Reconciling a text the endpoint never took returns nothing, though another message to that number is there.

    Catches: reconciliation that ignores the text digest (it takes any message to the
    number as this one's).
    """
    with FakeTwilio() as fake:
        channel = TwilioChannel(settings_for(fake))
        since = datetime.now(UTC) - timedelta(minutes=1)
        channel.send(sms(SECOND, 2))
        assert channel.reconcile(sms(FIRST, 1), since, digests(FIRST)) is None


def test_reconcile_matches_the_text_the_in_doubt_attempt_sent_when_the_message_now_reads_differently() -> (
    None
):
    """A message that renders differently now (the patient was renamed) is still found by the text the in-doubt attempt sent.

    Catches: reconciliation that ignores the in-doubt attempts' digests and compares
    only the text rendered now (the message it did send is missed, and resent).
    """
    renamed = FIRST.replace("Dana", "Danielle")
    with FakeTwilio() as fake:
        channel = TwilioChannel(settings_for(fake))
        since = datetime.now(UTC) - timedelta(minutes=1)
        sent = channel.send(sms(FIRST))
        assert channel.reconcile(sms(renamed), since, digests(FIRST)) == sent
        assert channel.reconcile(sms(renamed), since, digests(SECOND)) is None


def test_reconcile_counts_an_identical_text_only_from_an_hour_before_the_attempt() -> None:
    """An identical text created a minute more than an hour before the in-doubt attempt does not count as its message; one a minute less than an hour before does.

    Catches: reconciliation that ignores its time floor (an old message with the same
    text, a week's repeat or an earlier resend, is taken for the one in doubt), and one
    that drops the hour of slack for clock skew (the floor at the attempt itself).
    """
    with FakeTwilio() as fake:
        channel = TwilioChannel(settings_for(fake))
        since = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
        old = fake.add_message(
            PHONE, FIRST, date_created=since - RECONCILE_SLACK - timedelta(minutes=1), from_=FROM
        )
        [listed] = twilio_client(fake).messages.list(to=PHONE)
        assert (listed.sid, listed.date_created) == (old.sid, old.date_created)
        assert channel.reconcile(sms(FIRST), since, digests(FIRST)) is None
        skewed = fake.add_message(
            PHONE, FIRST, date_created=since - RECONCILE_SLACK + timedelta(minutes=1), from_=FROM
        )
        assert channel.reconcile(sms(FIRST), since, digests(FIRST)) == Receipt(skewed.sid)


def provider_ids(store: Store, pid: str) -> set[str]:
    """Every provider id the outbox holds for ``pid``: reminders, attempts, audit events."""
    ids = {e.provider_id for e in timeline(store, pid) if e.provider_id}
    with store.engine.connect() as conn:
        ids.update(
            conn.execute(
                sa.text(
                    "SELECT a.provider_id FROM attempts a JOIN reminders r ON r.id = a.reminder_id"
                    " WHERE r.patient_id = :pid AND a.provider_id IS NOT NULL"
                ),
                {"pid": pid},
            ).scalars()
        )
    with store.read() as tx:
        ids.update(
            str(e["detail"]["provider_id"])
            for e in tx.views.audit_events(pid)
            if e["detail"].get("provider_id")
        )
    return ids


def in_doubt_then_another_patient_texted(rig: Rig, fault: Fault) -> tuple[Dispatcher, datetime]:
    """P-1's day-1 SMS left in doubt by ``fault``; then P-2 (Lee, same number) sent theirs.

    Returns the dispatcher and the time P-1's retry is due. P-2's message is newer than
    anything P-1's attempt sent, so the endpoint lists it first.
    """
    rig.enrol(dana(channels=["sms"]))
    rig.fake.fail_next(fault)
    dispatcher = rig.dispatcher()
    assert dispatcher.tick(rig.due.at).counts["in_doubt"] == 1
    retry_at = rig.entry().not_before
    assert retry_at > rig.due.at
    rig.enrol(dana(channels=["sms"]), dana("P-2", first_name="Lee", channels=["sms"]))
    assert (rig.entry().status, rig.entry().not_before) == ("planned", retry_at)  # untouched
    assert dispatcher.tick(rig.due.at).counts["sent"] == 1  # P-2 only: P-1 waits for its retry
    return dispatcher, retry_at


def test_in_doubt_sms_is_matched_to_its_own_message_not_another_patients_newer_one(
    rig: Rig,
) -> None:
    """Two patients share a number: P-1's accepted-then-500 SMS is reconciled with its own SID, not with P-2's newer message.

    Catches: reconciliation that ignores the text digest (P-1 would be recorded sent
    with P-2's SID, the newest message to the number).
    """
    dispatcher, retry_at = in_doubt_then_another_patient_texted(rig, Fault.accept_then_500())
    mine, other = rig.fake.messages
    assert "Lee" in other.body
    assert "Lee" not in mine.body
    report = dispatcher.tick(retry_at)
    assert (report.counts["reconciled"], report.counts["sent"]) == (1, 0)
    assert rig.fake.messages == [mine, other]
    assert (rig.entry().status, rig.entry().provider_id) == ("sent", mine.sid)
    assert rig.entry("P-2").provider_id == other.sid
    assert provider_ids(rig.store, "P-1") == {mine.sid}


def test_in_doubt_sms_the_endpoint_never_took_is_resent_not_matched_to_another_patients_message(
    rig: Rig,
) -> None:
    """Two patients share a number: P-1's SMS answered 500 and never taken is resent, not recorded with P-2's SID.

    Catches: reconciliation that ignores the text digest (P-1 would be marked sent
    with P-2's message, and never get its own).
    """
    dispatcher, retry_at = in_doubt_then_another_patient_texted(rig, Fault.status(500))
    [other] = rig.fake.messages
    report = dispatcher.tick(retry_at)
    assert (report.counts["sent"], report.counts["reconciled"]) == (1, 0)
    other_again, mine = rig.fake.messages
    assert other_again == other
    assert mine.body == rig.creates()[0].params["Body"]  # P-1's text, taken at last
    assert (rig.entry().status, rig.entry().attempts, rig.entry().provider_id) == (
        "sent",
        2,
        mine.sid,
    )
    assert provider_ids(rig.store, "P-1") == {mine.sid}
    assert other.sid not in provider_ids(rig.store, "P-1")


def test_in_doubt_sms_is_not_matched_to_an_identical_text_from_before_the_floor(
    rig: Rig,
) -> None:
    """An identical text to the number created three hours before the in-doubt attempt is not taken for it: the SMS is resent and recorded with its new SID.

    Catches: reconciliation that ignores its one-hour time floor (the old message's SID
    would be recorded and nothing sent).
    """
    rig.enrol(dana(channels=["sms"]))
    rig.fake.fail_next(Fault.status(500))
    dispatcher = rig.dispatcher()
    assert dispatcher.tick(rig.due.at).counts["in_doubt"] == 1
    assert rig.fake.messages == []
    body = rig.creates()[0].params["Body"]
    old = rig.fake.add_message(
        PHONE, body, date_created=rig.due.at - timedelta(hours=3), from_=FROM
    )
    report = dispatcher.tick(rig.entry().not_before)
    assert (report.counts["sent"], report.counts["reconciled"]) == (1, 0)
    old_again, new = rig.fake.messages
    assert (old_again, new.body) == (old, body)
    assert (rig.entry().status, rig.entry().provider_id) == ("sent", new.sid)
    assert provider_ids(rig.store, "P-1") == {new.sid}


def test_in_doubt_sms_of_a_renamed_patient_is_found_by_the_text_it_sent(rig: Rig) -> None:
    """A patient renamed after an accepted-then-500 SMS: the retry renders another text, yet the accepted message is found and nothing is resent.

    Catches: reconciliation that ignores the in-doubt attempt's digest and looks only
    for the text rendered now (the patient would get the message twice).
    """
    rig.enrol(dana(channels=["sms"]))
    rig.fake.fail_next(Fault.accept_then_500())
    dispatcher = rig.dispatcher()
    assert dispatcher.tick(rig.due.at).counts["in_doubt"] == 1
    [accepted] = rig.fake.messages
    rig.enrol(dana(channels=["sms"], first_name="Danielle"))
    report = dispatcher.tick(rig.entry().not_before + timedelta(minutes=1))
    assert (report.counts["reconciled"], report.counts["sent"]) == (1, 0)
    assert rig.fake.messages == [accepted]
    assert (rig.entry().status, rig.entry().provider_id) == ("sent", accepted.sid)


# -- answers that are not Twilio's usual JSON ---------------------------------------------------


def test_a_2xx_answer_that_is_not_json_is_in_doubt_and_reconciled_not_resent(rig: Rig) -> None:
    """A create answered 200 with an HTML page (a proxy in the way) is in doubt (``bad-response``); reconciliation finds the message, never resent."""
    rig.enrol(dana())
    rig.fake.fail_next(Fault.accept_then_html())
    dispatcher = rig.dispatcher()
    assert dispatcher.tick(rig.due.at).counts["in_doubt"] == 1
    assert (rig.entry().status, rig.entry().error_code) == ("planned", "bad-response")
    [accepted] = rig.fake.messages
    assert dispatcher.tick(rig.entry().not_before).counts["reconciled"] == 1
    assert rig.fake.messages == [accepted]
    assert (rig.entry().status, rig.entry().provider_id) == ("sent", accepted.sid)


def test_a_message_list_that_is_not_json_postpones_the_reconciliation_and_sends_nothing(
    rig: Rig,
) -> None:
    """When the list that reconciles an in-doubt send comes back as HTML, the question is asked again later; nothing is resent meanwhile."""
    rig.enrol(dana())
    rig.fake.fail_next(Fault.accept_then_500())
    rig.fake.fail_next(Fault.html(), endpoint="list")
    dispatcher = rig.dispatcher()
    assert dispatcher.tick(rig.due.at).counts["in_doubt"] == 1
    asked = dispatcher.tick(rig.entry().not_before).counts
    assert (asked["in_doubt"], asked["sent"], asked["error"]) == (1, 0, 0)
    assert dispatcher.tick(rig.entry().not_before).counts["reconciled"] == 1
    assert len(rig.creates()) == len(rig.fake.messages) == 1


@pytest.mark.parametrize(
    ("status", "code", "outcome", "reminder"),
    [(400, 21211, "failed", "failed"), (503, 20503, "in_doubt", "planned")],
)
def test_an_rfc_9457_error_answer_is_classified_like_twilios_usual_one(
    rig: Rig, status: int, code: int, outcome: str, reminder: str
) -> None:
    """An error in the problem-document shape of Twilio's newer APIs is classified by its status and code, not left to crash the send."""
    rig.enrol(dana())
    rig.fake.fail_next(Fault.problem(status, code))
    counts = rig.dispatcher().tick(rig.due.at).counts
    assert (counts[outcome], counts["error"]) == (1, 0)
    assert (rig.entry().status, rig.entry().error_code) == (reminder, str(code))
