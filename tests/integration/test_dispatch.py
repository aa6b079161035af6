"""The dispatcher on a real SQLite outbox with the in-memory channel."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from reminders.channels.base import Message
from reminders.channels.memory import MemoryChannel
from reminders.dispatch import Dispatcher
from reminders.errors import DeliveryError, InDoubtError, PermanentError, TransientError
from reminders.models import Schedules
from reminders.store import Store, TimelineEntry
from reminders.sync import sync_patients
from reminders.templates import Templates
from reminders.testing import make_dispatcher
from tests.integration.test_sync import patient, timeline, write

ENROLLED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
#: Day 1 after a 2026-11-24 surgery, 10:30 in New York: the day-1 milestone is due.
DAY1 = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)


def dispatcher(
    store: Store,
    schedules: Schedules,
    templates: Templates,
    sms: MemoryChannel | None = None,
    email: MemoryChannel | None = None,
) -> Dispatcher:
    return make_dispatcher(
        store,
        schedules,
        templates,
        {"sms": sms or MemoryChannel("sms"), "email": email or MemoryChannel("email")},
        owner="test",
        rng=random.Random(1),
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


def test_opted_out_address_is_suppressed_at_send_time(
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
    """When the channel is called, a pending attempt for that reminder is already committed."""
    enrol(store, shipped, tmp_path, "P-1")
    seen: list[int] = []

    def check(message: Message) -> DeliveryError | None:
        with store.read() as tx:
            entry = next(e for e in tx.views.timeline("P-1") if e.id == message.reminder_id)
            seen.append(entry.attempts)
        return None

    sms = MemoryChannel("sms", fail=check)
    dispatcher(store, shipped, templates, sms).tick(DAY1)
    assert seen == [1]
