"""Twilio webhooks against what an attacker or a hostile input tries (issue 10), on SQLite and PostgreSQL.

Each test posts to the real app (uvicorn on loopback) over an outbox whose day-1 texts
went out through the real Twilio client (:mod:`tests.integration.webhook_desk`), and
signs its requests with Twilio's own ``RequestValidator``. A spliced request keeps
the signature of the genuine one it was made from: Twilio's signature covers the URL
and the names and values run together, not where one ends and the next begins.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa
from twilio.request_validator import RequestValidator

from reminders import lifecycle
from reminders.lifecycle import ReminderStatus
from reminders.store import OutboxManager, Store
from tests.integration.webhook_desk import (
    AUTH_TOKEN,
    DAY1,
    LATER,
    PHONE,
    PUBLIC_URL,
    Desk,
    callback_target,
    desk,
    reminder_of,
)
from tests.twilio_webhooks import inbound_form, message_sid, status_form

__all__ = ["desk"]  # the fixture, imported for pytest

REPLY = "My calf is swollen and warm since last night"


def still_valid(target: str, pairs: list[tuple[str, str]], signed: str) -> bool:
    """Whether Twilio's validator accepts ``signed`` for ``pairs`` posted to ``target``."""
    return bool(RequestValidator(AUTH_TOKEN).validate(PUBLIC_URL + target, dict(pairs), signed))


# -- parameter splicing ---------------------------------------------------------------------


def test_a_start_replayed_after_stop_with_a_spliced_message_sid_changes_nothing(
    desk: Desk,
) -> None:
    """A captured, signed START re-sent as ``MessageSi=dSM…`` after the patient's STOP is refused and opts nobody back in."""
    start = inbound_form(PHONE["P-1"], "START", message_sid("start"))
    start_signature = desk.signature("/twilio/inbound", start)
    assert desk.post("/twilio/inbound", start, start_signature).status_code == 200
    stop = inbound_form(PHONE["P-1"], "STOP", message_sid("stop"))
    assert desk.twilio_post("/twilio/inbound", stop).status_code == 200
    assert desk.sms_statuses("P-1") == {"suppressed"}

    spliced = [
        ("MessageSi", "d" + value) if name == "MessageSid" else (name, value)
        for name, value in start.items()
    ]
    assert still_valid("/twilio/inbound", spliced, start_signature)
    before = desk.snapshot()
    response = desk.post("/twilio/inbound", spliced, start_signature)
    assert response.status_code == 400, response.text
    assert desk.snapshot() == before
    assert desk.sms_statuses("P-1") == {"suppressed"}


def test_a_callback_signed_for_one_reminder_cannot_be_moved_to_another_through_the_query(
    desk: Desk,
) -> None:
    """A signed callback moved to another reminder by shifting the id's last digit into the first name (``?reminder=57`` as ``?reminder=5`` + ``7AccountSid``) is refused and changes nothing."""
    # A sent SMS whose id, less its last digit, is another SMS reminder still to send:
    # recorded as sent here, so the pair does not hang on how the plan numbers its rows.
    sms = {e.id: e for e in desk.entries() if e.channel == "sms"}
    pairs = [
        (source, target)
        for target, entry in sms.items()
        if entry.status == "planned"
        for source in range(10 * target + 1, 10 * target + 10)
        if source in sms and sms[source].status == "planned"
    ]
    assert pairs, "no SMS reminder whose id, less its last digit, is another planned SMS"
    source, target = pairs[0]
    sid = message_sid(f"moved-{source}")
    with desk.store.write() as tx:
        tx.outbox.record_sent(source, sid, LATER)
    genuine_target = f"/twilio/status?reminder={source}"
    form = status_form(sid, "delivered", to=PHONE[sms[source].patient_id])
    signed = desk.signature(genuine_target, form)
    target_status = desk.reminder(target).status
    last = str(source)[-1]
    spliced = [(last + name if name == "AccountSid" else name, v) for name, v in form.items()]
    moved = f"/twilio/status?reminder={target}"
    assert still_valid(moved, spliced, signed)

    before = desk.snapshot()
    response = desk.post(moved, spliced, signed)
    assert response.status_code == 400, response.text
    assert desk.snapshot() == before
    # The genuine callback still works, on its own reminder.
    assert desk.post(genuine_target, form, signed).status_code == 204
    assert desk.reminder(source).status == "delivered"
    assert desk.reminder(target).status == target_status


# -- status callbacks apply only to the message recorded for the reminder -------------------


@pytest.mark.parametrize("sid_of", ["no message", "another reminder's text"])
def test_a_signed_callback_for_a_reminder_never_sent_leaves_it_planned(
    desk: Desk, sid_of: str
) -> None:
    """A correctly signed ``delivered`` callback for a planned SMS reminder (no attempt, no SID) changes nothing."""
    [planned] = [
        e
        for e in desk.entries("P-1")
        if e.channel == "sms" and e.status == "planned" and e.milestone == "protect-hamstring"
    ]
    sid = message_sid("never") if sid_of == "no message" else desk.text_to("P-2").sid
    target = f"/twilio/status?reminder={planned.id}"
    before = desk.snapshot()
    response = desk.twilio_post(target, status_form(sid, "delivered", to=PHONE["P-1"]))
    assert response.status_code == 204, response.text
    assert desk.snapshot() == before
    assert desk.reminder(planned.id).status == "planned"


def test_a_callback_that_overtakes_our_own_commit_is_ignored_and_later_ones_apply(
    desk: Desk,
) -> None:
    """A callback for a reminder whose attempt is still open changes nothing; after our commit records the SID, the next callback applies."""
    [entry] = [
        e for e in desk.entries("P-1") if e.channel == "sms" and e.milestone == "protect-hamstring"
    ]
    outbox = OutboxManager(desk.store)
    claimed = [
        c
        for c in outbox.claim(
            entry.not_before, "test", entry.not_before + timedelta(minutes=10), 100
        )
        if c.id == entry.id
    ]
    assert claimed, "the day-2 text was not claimed"
    attempt = outbox.begin_attempt(claimed[0], 1, "test", entry.not_before, "digest")
    assert attempt is not None
    sid = message_sid("in flight")
    target = f"/twilio/status?reminder={entry.id}"

    before = desk.snapshot()
    early = desk.twilio_post(target, status_form(sid, "sent", to=PHONE["P-1"]))
    assert early.status_code == 204, early.text
    assert desk.snapshot() == before
    assert desk.reminder(entry.id).status == "sending"

    outbox.settle(
        claimed[0],
        lifecycle.accepted(sid, ReminderStatus.SENT, 1),
        entry.not_before,
        attempt_id=attempt,
    )
    assert desk.reminder(entry.id).status == "sent"
    later = desk.twilio_post(target, status_form(sid, "delivered", to=PHONE["P-1"]))
    assert later.status_code == 204, later.text
    assert desk.reminder(entry.id).status == "delivered"


def test_an_ignored_callback_counts_no_provider_error_and_opts_nobody_out(desk: Desk) -> None:
    """A 21610 callback quoting another message's SID is not counted and opts no number out; a matching failure is counted once, however often it comes."""
    text = desk.text_to("P-3")
    target = callback_target(text)
    stranger = status_form(message_sid("stranger"), "failed", to=PHONE["P-3"], code="21610")
    before = desk.snapshot()
    assert desk.twilio_post(target, stranger).status_code == 204
    assert desk.snapshot() == before
    assert desk.provider_errors("21610") is None
    assert desk.reminder(reminder_of(text)).status == "sent"

    failed = status_form(text.sid, "undelivered", to=PHONE["P-3"], code="30003")
    for _ in range(2):
        assert desk.twilio_post(target, failed).status_code == 204
    assert desk.provider_errors("30003") == 1
    assert desk.reminder(reminder_of(text)).status == "failed"


def test_a_21610_callback_for_the_recorded_message_opts_its_number_out(desk: Desk) -> None:
    """A failed callback with 21610 about the reminder's own text opts the number out and suppresses its pending texts."""
    text = desk.text_to("P-3")
    form = status_form(text.sid, "failed", to=PHONE["P-3"], code="21610")
    assert desk.twilio_post(callback_target(text), form).status_code == 204
    assert desk.sms_statuses("P-3") == {"suppressed"}
    assert desk.provider_errors("21610") == 1


# -- inbound texts ----------------------------------------------------------------------------


def test_an_inbound_text_without_message_sid_is_refused_and_never_stored(desk: Desk) -> None:
    """A signed inbound text without ``MessageSid`` (and its aliases), sent twice, is refused twice and stored never."""
    form = inbound_form(PHONE["P-2"], REPLY, message_sid("x"))
    for alias in ("MessageSid", "SmsSid", "SmsMessageSid"):
        del form[alias]
    before = desk.snapshot()
    for _ in range(2):
        response = desk.twilio_post("/twilio/inbound", form)
        assert response.status_code == 400, response.text
    assert desk.snapshot() == before
    assert desk.forwarded == []


def refusals() -> dict[str, Callable[[dict[str, str]], list[tuple[str, str]]]]:
    """Ways to make a genuine inbound STOP into a form Twilio never sends (signed afterwards)."""

    def changed(**values: str) -> Callable[[dict[str, str]], list[tuple[str, str]]]:
        return lambda form: list({**form, **values}.items())

    return {
        "an unknown parameter": changed(Comment="hello"),
        "a parameter twice": lambda form: [*form.items(), ("From", form["From"])],
        "a short MessageSid": changed(MessageSid="SM123", SmsSid="SM123", SmsMessageSid="SM123"),
        "an upper-case MessageSid": lambda form: list(
            {
                **form,
                **{k: form[k].upper() for k in ("MessageSid", "SmsSid", "SmsMessageSid")},
            }.items()
        ),
        "another account": changed(AccountSid="AC" + "1" * 32),
        "a national-format From": changed(From="(201) 555-0123"),
        "an SmsSid that is not the MessageSid": changed(SmsSid=message_sid("other")),
        "a NUL in the body": changed(Body="STOP\x00"),
        "another ApiVersion": changed(ApiVersion="2008-08-01"),
    }


@pytest.mark.parametrize("mutation", list(refusals()))
def test_a_signed_inbound_text_that_is_not_twilios_form_is_refused(
    desk: Desk, mutation: str
) -> None:
    """A correctly signed STOP whose form Twilio would never send (see ``refusals``) gets 400 and changes nothing."""
    genuine = inbound_form(PHONE["P-1"], "STOP", message_sid(mutation))
    pairs = refusals()[mutation](genuine)
    signed = str(
        RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + "/twilio/inbound", dict(pairs))
    )
    before = desk.snapshot()
    response = desk.post("/twilio/inbound", pairs, signed)
    assert response.status_code == 400, response.text
    assert desk.snapshot() == before
    assert desk.twilio_post("/twilio/inbound", genuine).status_code == 200
    assert desk.sms_statuses("P-1") == {"suppressed"}


@pytest.mark.parametrize("query", ["reminder={id}&x=1", "reminder=0{id}", "x=1&reminder={id}"])
def test_a_callback_query_other_than_the_one_given_to_twilio_is_refused(
    desk: Desk, query: str
) -> None:
    """A correctly signed callback whose query string is not exactly ``reminder=<id>`` changes nothing."""
    text = desk.text_to("P-1")
    target = "/twilio/status?" + query.format(id=reminder_of(text))
    before = desk.snapshot()
    response = desk.twilio_post(target, status_form(text.sid, "delivered", to=PHONE["P-1"]))
    assert response.status_code == 400, response.text
    assert desk.snapshot() == before


def test_two_deliveries_of_one_text_at_once_store_it_once(postgres_url: str) -> None:
    """On PostgreSQL, a text stored by one transaction while a second stores the same MessageSid is stored once, without an error."""
    store = Store(postgres_url)
    sid = message_sid("twice")
    second: dict[str, object] = {}

    def deliver_again() -> None:
        try:
            with store.write() as tx:
                second["result"] = tx.contacts.record_inbound(
                    PHONE["P-1"], "STOP", "stop", DAY1, provider_id=sid
                )
        except Exception as exc:  # the failure is what the test reports
            second["error"] = exc

    try:
        thread = threading.Thread(target=deliver_again)
        with store.write() as tx:
            assert tx.contacts.record_inbound(PHONE["P-1"], "STOP", "stop", DAY1, provider_id=sid)
            thread.start()
            wait_for_lock_wait(store)
        thread.join(timeout=60)
        assert not thread.is_alive()
        assert second == {"result": None}
        with store.read() as tx:
            count = tx.conn.execute(sa.text("SELECT count(*) FROM inbound_messages")).scalar()
        assert count == 1
    finally:
        store.close()


def wait_for_lock_wait(store: Store) -> None:
    """Return once another session of ``store``'s database waits on a lock (a guard, not a timing)."""
    deadline = time.monotonic() + 60
    probe = sa.create_engine(store.url)
    try:
        while True:
            with probe.connect() as conn:
                waiting = conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE wait_event_type = 'Lock' AND datname = current_database() "
                        "AND query ILIKE '%inbound_messages%'"
                    )
                ).scalar()
            if waiting:
                return
            assert time.monotonic() < deadline, "the second delivery never waited on the first"
            time.sleep(0.05)
    finally:
        probe.dispose()
