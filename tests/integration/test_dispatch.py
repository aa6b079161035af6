"""The dispatcher on a real SQLite outbox with the in-memory channel."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from reminders.channels.base import Message, Receipt, body_digest
from reminders.channels.memory import MemoryChannel
from reminders.dispatch import Dispatcher
from reminders.errors import DeliveryError, InDoubtError, PermanentError, TransientError
from reminders.models import Schedules
from reminders.ratelimit import TokenBucket
from reminders.store import Store, TimelineEntry
from reminders.sync import sync_patients
from reminders.templates import Templates
from reminders.testing import make_dispatcher
from tests.integration.test_sync import patient, timeline, write

ENROLLED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
#: The phone number of the sample patient records (``patient()``).
PHONE = "+12015550123"
#: Day 1 after a 2026-11-24 surgery, 10:30 in New York: the day-1 milestone is due.
DAY1 = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)


def dispatcher(
    store: Store,
    schedules: Schedules,
    templates: Templates,
    sms: MemoryChannel | None = None,
    email: MemoryChannel | None = None,
    *,
    limits: Mapping[str, TokenBucket] | None = None,
) -> Dispatcher:
    return make_dispatcher(
        store,
        schedules,
        templates,
        {"sms": sms or MemoryChannel("sms"), "email": email or MemoryChannel("email")},
        owner="test",
        rng=random.Random(1),
        limits=limits,
    )


def enrol(store: Store, schedules: Schedules, tmp_path: Path, *pids: str) -> None:
    path = write(tmp_path / "p.yaml", *(patient(pid) for pid in pids))
    sync_patients(store, schedules, path, ENROLLED)


def test_due_reminders_are_sent_once_on_every_channel(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """Due reminders go out once per channel; a second tick at the same time sends nothing."""
    enrol(store, shipped, tmp_path, "P-1", "P-2")
    sms, email = MemoryChannel("sms"), MemoryChannel("email")
    d = dispatcher(store, shipped, templates, sms, email)
    assert d.tick(DAY1).counts["sent"] == 4
    assert d.tick(DAY1).counts["sent"] == 0
    assert sorted(m.to for m in sms.sent) == ["+12015550123", "+12015550123"]
    assert sorted(m.to for m in email.sent) == ["p-1@example.com", "p-2@example.com"]
    assert all("Dana" in m.text and "(201) 555-0100" in m.text for m in sms.sent + email.sent)
    assert all(m.subject and "<html" in m.html.lower() for m in email.sent)
    day1 = [e for e in timeline(store, "P-1") if e.milestone == "crutches-toe-touch"]
    assert {(e.status, e.attempts) for e in day1} == {("sent", 1)}
    assert all(e.provider_id and e.provider_id.startswith("MEM") for e in day1)


def test_nothing_is_sent_before_due(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """A tick before the first due time sends nothing."""
    enrol(store, shipped, tmp_path, "P-1")
    assert dispatcher(store, shipped, templates).tick(DAY1 - timedelta(hours=1)).counts["sent"] == 0


def test_expired_reminders_are_never_sent(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """After an outage longer than the expiry window, day-1 advice is expired, not sent late."""
    enrol(store, shipped, tmp_path, "P-1")
    sms = MemoryChannel("sms")
    week5 = DAY1 + timedelta(weeks=5)
    report = dispatcher(store, shipped, templates, sms).tick(week5)
    assert report.counts["expired"] > 0
    assert not any("crutches" in m.message_id for m in sms.sent)
    assert {e.status for e in timeline(store, "P-1") if e.milestone == "crutches-toe-touch"} == {
        "expired"
    }


def test_outside_send_window_waits_for_the_window(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """A due reminder picked up at night waits for the window to open the next morning."""
    enrol(store, shipped, tmp_path, "P-1")
    sms = MemoryChannel("sms")
    d = dispatcher(store, shipped, templates, sms)
    night = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)  # 21:00 in New York, window closed
    report = d.tick(night)
    assert report.counts["deferred"] == 2
    assert sms.sent == []
    entry = next(e for e in timeline(store, "P-1") if e.milestone == "crutches-toe-touch")
    opening = shipped.send_window.start
    local = entry.not_before.astimezone(ZoneInfo("America/New_York"))
    assert local.time() == opening
    assert local.date().isoformat() == "2026-11-26"


def test_transient_error_is_retried_with_backoff(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """A transient failure plans a retry later inside the expiry window, then succeeds once."""
    enrol(store, shipped, tmp_path, "P-1")
    failures = iter([TransientError("429", code="429", retry_after=60)])

    def flaky(_m: Message) -> DeliveryError | None:
        return next(failures, None)

    sms = MemoryChannel("sms", fail=flaky)
    d = dispatcher(store, shipped, templates, sms)
    assert d.tick(DAY1).counts["retry"] == 1
    entry = next(
        e
        for e in timeline(store, "P-1")
        if e.milestone == "crutches-toe-touch" and e.channel == "sms"
    )
    assert entry.status == "planned"
    assert entry.error_code == "429"
    assert entry.not_before >= DAY1 + timedelta(seconds=60)
    assert d.tick(entry.not_before).counts["sent"] == 1
    assert len(sms.sent) == 1
    assert len(sms.calls) == 2


def test_permanent_error_fails_at_once_with_its_code(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """A permanent failure is not retried and keeps the provider's code."""
    enrol(store, shipped, tmp_path, "P-1")
    sms = MemoryChannel("sms", fail=lambda _m: PermanentError("invalid number", code="21211"))
    d = dispatcher(store, shipped, templates, sms)
    assert d.tick(DAY1).counts["failed"] == 1
    assert d.tick(DAY1 + timedelta(hours=1)).counts["failed"] == 0
    assert len(sms.calls) == 1
    with store.read() as tx:
        summary = tx.views.summary()
    assert summary.failures[0].error_code == "21211"


def test_unsubscribed_error_opts_out_and_suppresses_pending_sms(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """Twilio 21610 opts the number out: the rest of that patient's SMS are suppressed, email goes on."""
    enrol(store, shipped, tmp_path, "P-1")
    sms = MemoryChannel(
        "sms", fail=lambda _m: PermanentError("unsubscribed", code="21610", opted_out=True)
    )
    dispatcher(store, shipped, templates, sms).tick(DAY1)
    entries = timeline(store, "P-1")
    later_sms = {
        e.status for e in entries if e.channel == "sms" and e.milestone != "crutches-toe-touch"
    }
    later_email = {
        e.status for e in entries if e.channel == "email" and e.milestone != "crutches-toe-touch"
    }
    assert later_sms == {"suppressed"}
    assert later_email == {"planned"}


def once(error: DeliveryError) -> Callable[[Message], DeliveryError | None]:
    """A failure hook that raises ``error`` on the first call only."""
    errors = iter([error])
    return lambda _m: next(errors, None)


def sms_entry(store: Store) -> TimelineEntry:
    return next(
        e
        for e in timeline(store, "P-1")
        if e.milestone == "crutches-toe-touch" and e.channel == "sms"
    )


def test_in_doubt_send_that_was_accepted_is_reconciled_not_resent(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """A provider that took the message then timed out is asked before any resend, and nothing is resent."""
    enrol(store, shipped, tmp_path, "P-1")
    sms = MemoryChannel("sms", fail=once(InDoubtError("read timeout")), accept_in_doubt=True)
    d = dispatcher(store, shipped, templates, sms)
    assert d.tick(DAY1).counts["in_doubt"] == 1
    retry_at = sms_entry(store).not_before
    assert retry_at > DAY1
    assert d.tick(retry_at).counts["reconciled"] == 1
    assert len(sms.calls) == 1
    assert len(sms.reconciled) == 1
    entry = sms_entry(store)
    assert entry.status == "sent"
    assert entry.provider_id == "MEM000001"


def test_in_doubt_send_that_was_not_accepted_is_resent_once(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """When reconciliation finds nothing at the provider, the reminder is sent again, once."""
    enrol(store, shipped, tmp_path, "P-1")
    sms = MemoryChannel("sms", fail=once(InDoubtError("connection reset")))
    d = dispatcher(store, shipped, templates, sms)
    d.tick(DAY1)
    assert d.tick(sms_entry(store).not_before).counts["sent"] == 1
    assert len(sms.reconciled) == 1
    assert len(sms.sent) == 1
    assert sms_entry(store).attempts == 2


def test_crash_mid_attempt_is_reconciled_after_the_lease_lapses(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """An attempt left pending by a dead process is reconciled, not blindly resent, once its lease lapses."""
    enrol(store, shipped, tmp_path, "P-1")
    sms = MemoryChannel("sms")
    with store.write() as tx:
        claimed = tx.outbox.claim_due(DAY1, "dead", DAY1 + timedelta(minutes=5), 10)
        for c in claimed:
            tx.attempts.begin(c.id, 1, "dead", DAY1)
    d = dispatcher(store, shipped, templates, sms)
    assert d.tick(DAY1 + timedelta(minutes=1)).counts["sent"] == 0  # lease still held
    report = d.tick(DAY1 + timedelta(minutes=6))
    assert report.counts["sent"] == 2  # the SMS and the email, each not found by reconciliation
    assert len(sms.reconciled) == 1
    assert len(sms.sent) == 1


def test_abandoned_lease_without_attempt_is_claimed_again(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """A claim whose owner died before calling the provider is released when its lease expires."""
    enrol(store, shipped, tmp_path, "P-1")
    with store.write() as tx:
        claimed = tx.outbox.claim_due(DAY1, "dead", DAY1 + timedelta(minutes=5), 10)
    assert len(claimed) == 2
    sms = MemoryChannel("sms")
    d = dispatcher(store, shipped, templates, sms)
    assert d.tick(DAY1 + timedelta(minutes=1)).counts["sent"] == 0
    assert d.tick(DAY1 + timedelta(minutes=6)).counts["sent"] == 2


def test_opt_out_suppresses_pending_sms_and_opting_back_in_resumes_future_ones(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """An opt-out suppresses that number's SMS; opting back in resumes only those not yet due."""
    enrol(store, shipped, tmp_path, "P-1")
    with store.write() as tx:
        tx.contacts.opt_out("sms", "+12015550123", DAY1, source="test")
    sms = MemoryChannel("sms")
    dispatcher(store, shipped, templates, sms).tick(DAY1)
    assert sms.calls == []
    assert {e.status for e in timeline(store, "P-1") if e.channel == "sms"} == {"suppressed"}
    with store.write() as tx:
        resumed = tx.contacts.opt_out("sms", "+12015550123", DAY1, source="test", opted_out=False)
    assert resumed > 0
    sms = [e for e in timeline(store, "P-1") if e.channel == "sms"]
    assert {e.status for e in sms if e.due_at > DAY1} == {"planned"}  # future ones resume
    assert {e.status for e in sms if e.due_at <= DAY1} == {"suppressed"}  # not sent late


def due_sms(store: Store, pid: str) -> list[TimelineEntry]:
    """The SMS reminders of ``pid`` due by :data:`DAY1`."""
    return [e for e in timeline(store, pid) if e.channel == "sms" and e.due_at <= DAY1]


def test_patient_enrolled_with_a_number_that_opted_out_earlier_gets_no_sms(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """A patient enrolled after their number replied STOP has the due SMS suppressed at send time, and the channel is never called.

    Catches: dispatcher without the send-time opt-out check (the sync plans the new
    patient's SMS as ``planned``; the opt-out recorded before enrolment touched no row).
    """
    with store.write() as tx:
        tx.contacts.opt_out("sms", PHONE, ENROLLED - timedelta(days=30), source="sms stop")
    enrol(store, shipped, tmp_path, "P-1")
    assert {e.status for e in due_sms(store, "P-1")} == {"planned"}  # nothing suppressed yet
    sms, email = MemoryChannel("sms"), MemoryChannel("email")
    report = dispatcher(store, shipped, templates, sms, email).tick(DAY1)
    assert sms.calls == []
    assert [(e.status, e.attempts) for e in due_sms(store, "P-1")] == [("suppressed", 0)]
    assert report.counts["suppressed"] == 1
    assert [m.to for m in email.sent] == ["p-1@example.com"]  # email is not opted out


def test_phone_changed_to_an_opted_out_number_gets_no_sms(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """A patient whose phone number changes to one that replied STOP has the due SMS suppressed at send time, and the channel is never called.

    Catches: dispatcher without the send-time opt-out check (the re-sync keeps the
    patient's SMS ``planned``; they now go to a number that opted out before).
    """
    path = tmp_path / "p.yaml"
    sync_patients(store, shipped, write(path, patient("P-1", phone="+12015550199")), ENROLLED)
    with store.write() as tx:
        tx.contacts.opt_out("sms", PHONE, ENROLLED, source="sms stop")
    assert {e.status for e in due_sms(store, "P-1")} == {"planned"}  # another number opted out
    sync_patients(store, shipped, write(path, patient("P-1", phone=PHONE)), ENROLLED)
    assert {e.status for e in due_sms(store, "P-1")} == {"planned"}  # the sync left them planned
    sms = MemoryChannel("sms")
    report = dispatcher(store, shipped, templates, sms).tick(DAY1)
    assert sms.calls == []
    assert [(e.status, e.attempts) for e in due_sms(store, "P-1")] == [("suppressed", 0)]
    assert report.counts["suppressed"] == 1


class StopWhileWaiting(TokenBucket):
    """A rate limiter during whose wait the patient replies STOP.

    The dispatcher asks the limiter after it has claimed a reminder and before it calls
    the provider; ``acquire`` records the opt-out there, in a transaction of its own,
    as the inbound webhook does, and notes what the claimed SMS looked like then.
    """

    def __init__(self, store: Store, number: str) -> None:
        super().__init__(0)
        self.store = store
        self.number = number
        #: Statuses of the due SMS when the STOP was recorded, one set per wait.
        self.seen: list[set[str]] = []

    def acquire(self) -> float:
        """Record the STOP (once) instead of waiting."""
        with self.store.write() as tx:
            if not self.seen:
                tx.contacts.opt_out("sms", self.number, DAY1, source="sms stop")
            self.seen.append(
                {
                    e.status
                    for e in tx.views.timeline("P-1")
                    if e.channel == "sms" and e.due_at <= DAY1
                }
            )
        return 0.0


def test_stop_between_claim_and_send_suppresses_the_claimed_sms(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """A STOP recorded after an SMS was claimed but before the provider call suppresses it: the channel is never called.

    Catches: dispatcher that checks opt-outs only when it claims the batch (a STOP
    while the SMS waits for the rate limit is sent anyway; the store's opt-out only
    suppresses ``planned`` rows, and this one is already ``sending``).
    """
    enrol(store, shipped, tmp_path, "P-1")
    stop = StopWhileWaiting(store, PHONE)
    sms, email = MemoryChannel("sms"), MemoryChannel("email")
    report = dispatcher(store, shipped, templates, sms, email, limits={"sms": stop}).tick(DAY1)
    assert stop.seen[:1] == [{"sending"}]  # the STOP came after the claim
    assert sms.calls == []
    assert [(e.status, e.attempts) for e in due_sms(store, "P-1")] == [("suppressed", 0)]
    assert report.counts["suppressed"] == 1
    assert [m.to for m in email.sent] == ["p-1@example.com"]


class StopWhileReconciling(MemoryChannel):
    """An SMS channel during whose reconciliation lookup the patient replies STOP."""

    def __init__(self, store: Store, number: str, fail: Callable[[Message], DeliveryError | None]):
        super().__init__("sms", fail=fail)
        self.store = store
        self.number = number

    def reconcile(
        self, message: Message, since: datetime, digests: frozenset[str]
    ) -> Receipt | None:
        """Record the STOP, then answer as the memory channel does."""
        with self.store.write() as tx:
            tx.contacts.opt_out("sms", self.number, since, source="sms stop")
        return super().reconcile(message, since, digests)


def test_stop_while_an_in_doubt_sms_is_reconciled_suppresses_it_instead_of_resending(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """A STOP recorded while an in-doubt SMS is looked up at the provider, which has nothing, suppresses it: it is not resent.

    Catches: dispatcher that checks opt-outs before reconciling and not after (the
    lookup finds nothing, and the SMS is resent to a number that just opted out).
    """
    enrol(store, shipped, tmp_path, "P-1")
    sms = StopWhileReconciling(store, PHONE, once(InDoubtError("connection reset")))
    d = dispatcher(store, shipped, templates, sms)
    assert d.tick(DAY1).counts["in_doubt"] == 1
    report = d.tick(sms_entry(store).not_before)
    assert len(sms.reconciled) == 1
    assert len(sms.calls) == 1  # the first, in-doubt try only
    assert sms.sent == []
    assert report.counts["suppressed"] == 1
    assert (sms_entry(store).status, sms_entry(store).attempts) == ("suppressed", 1)


def test_completed_when_nothing_is_left(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """After the last milestone the enrollment is marked completed."""
    enrol(store, shipped, tmp_path, "P-1")
    d = dispatcher(store, shipped, templates)
    d.tick(DAY1 + timedelta(weeks=40))
    with store.read() as tx:
        assert tx.views.enrollment("P-1").status == "completed"


def test_every_attempt_is_written_before_the_provider_is_called(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """When either channel is called, a pending attempt with the text's digest is already committed for that reminder."""
    enrol(store, shipped, tmp_path, "P-1")
    seen: list[tuple[str, list[tuple[str, str | None]]]] = []

    def check(message: Message) -> DeliveryError | None:
        with store.engine.connect() as conn:  # another connection: sees only what is committed
            found = conn.execute(
                sa.text("SELECT outcome, body_digest FROM attempts WHERE reminder_id = :id"),
                {"id": message.reminder_id},
            ).all()
        seen.append((message.channel, [(row.outcome, row.body_digest) for row in found]))
        return None

    sms, email = MemoryChannel("sms", fail=check), MemoryChannel("email", fail=check)
    assert dispatcher(store, shipped, templates, sms, email).tick(DAY1).counts["sent"] == 2
    digests = {m.channel: body_digest(m.text) for m in sms.sent + email.sent}
    assert sorted(seen) == [
        ("email", [("pending", digests["email"])]),
        ("sms", [("pending", digests["sms"])]),
    ]


def test_sms_past_the_segment_limit_fails_without_reaching_the_provider(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """An SMS a name pushes past 2 segments fails with ``sms-too-long``; the email still goes."""
    # Cyrillic has no GSM-7 form: the whole English SMS becomes UCS-2 (67 units a segment).
    path = write(tmp_path / "p.yaml", patient("P-1", first_name="Александра"))
    sync_patients(store, shipped, path, ENROLLED)
    sms, email = MemoryChannel("sms"), MemoryChannel("email")

    report = dispatcher(store, shipped, templates, sms, email).tick(DAY1)

    assert (report.counts["failed"], report.counts["sent"]) == (1, 1)
    assert sms.calls == []
    assert [m.to for m in email.sent] == ["p-1@example.com"]
    (failed,) = [e for e in timeline(store, "P-1") if e.status == "failed"]
    assert (failed.channel, failed.error_code, failed.attempts) == ("sms", "sms-too-long", 0)
    assert failed.error is not None
    assert re.match(r"SMS too long: \d segments \(\d+ UCS-2 units\), the limit is 2;", failed.error)
