"""Every decision the dispatcher can make about a claimed reminder, with no database.

Each function of :mod:`reminders.lifecycle` returns one Transition; these tests pin the
new status, what the tick reports, the attempt's outcome, the next try and the audit
record of every branch.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from reminders import lifecycle
from reminders.errors import DeliveryError, InDoubtError, PermanentError, TransientError
from reminders.lifecycle import AttemptOutcome, Outcome, ReminderStatus
from reminders.retry import RetryPolicy

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
POLICY = RetryPolicy(base=timedelta(seconds=30), cap=timedelta(hours=1))


def rng() -> random.Random:
    """A seeded source of jitter."""
    return random.Random(7)


def failed(
    error: DeliveryError, *, expires_in: timedelta, attempt: int = 1
) -> lifecycle.Transition:
    """The transition of attempt ``attempt`` failing with ``error``."""
    return lifecycle.delivery_failed(
        error, now=NOW, attempt=attempt, expires_at=NOW + expires_in, policy=POLICY, rng=rng()
    )


def test_outside_the_window_waits_for_the_opening() -> None:
    """Due at night: back to planned until the window opens, no audit record."""
    opening = NOW + timedelta(hours=8)
    t = lifecycle.outside_window(opening, NOW + timedelta(days=1))
    assert (t.outcome, t.status, t.not_before, t.event) == (
        Outcome.DEFERRED,
        ReminderStatus.PLANNED,
        opening,
        None,
    )


def test_a_window_that_opens_at_or_after_expiry_expires_it() -> None:
    """If the window opens only when (or after) the reminder expires, it expires now."""
    opening = NOW + timedelta(hours=8)
    t = lifecycle.outside_window(opening, opening)
    assert (t.outcome, t.status) == (Outcome.EXPIRED, ReminderStatus.EXPIRED)
    assert t.event is not None
    assert t.event.kind == "reminder.expired"
    assert t.error == "send window closed until expiry"


@pytest.mark.parametrize(
    ("transition", "outcome", "status", "error"),
    [
        (
            lifecycle.unreachable("sms"),
            Outcome.FAILED,
            ReminderStatus.FAILED,
            "no sms address or channel",
        ),
        (lifecycle.opted_out(), Outcome.SUPPRESSED, ReminderStatus.SUPPRESSED, "opted out"),
        (
            lifecycle.unrenderable("x is undefined"),
            Outcome.FAILED,
            ReminderStatus.FAILED,
            "template: x is undefined",
        ),
        (lifecycle.too_late(), Outcome.EXPIRED, ReminderStatus.EXPIRED, "expired while waiting"),
    ],
)
def test_reasons_not_to_call_the_provider_end_the_reminder_with_a_record(
    transition: lifecycle.Transition, outcome: Outcome, status: ReminderStatus, error: str
) -> None:
    """No address, opted out, a broken template, no time left: a final status, the reason, an audit record, no attempt."""
    assert (transition.outcome, transition.status, transition.error) == (outcome, status, error)
    assert transition.attempt is None
    assert transition.event is not None
    assert transition.event.kind == f"reminder.{outcome}"
    assert transition.event.detail == {"reason": error}


def test_an_sms_too_long_fails_with_a_code_coordinators_can_read() -> None:
    """An SMS past the segment limit: failed, code ``sms-too-long``, what to fix, no attempt."""
    t = lifecycle.sms_too_long(655, 2, "100,195 GSM-7 units")

    assert (t.outcome, t.status, t.attempt, t.error_code) == (
        Outcome.FAILED,
        ReminderStatus.FAILED,
        None,
        "sms-too-long",
    )
    assert t.error == (
        "SMS too long: 655 segments (100,195 GSM-7 units), the limit is 2; "
        "shorten the patient's first name in the patients file, or the template"
    )
    assert t.event == lifecycle.Event(
        "reminder.failed", {"reason": "sms too long", "code": "sms-too-long", "segments": 655}
    )


def test_accepted_records_the_provider_id_and_the_attempt() -> None:
    """An accepted send: sent, the attempt closed sent, the SID in the audit record."""
    t = lifecycle.accepted("SM123", ReminderStatus.SENT, 2)
    assert (t.outcome, t.status, t.attempt, t.provider_id) == (
        Outcome.SENT,
        ReminderStatus.SENT,
        AttemptOutcome.SENT,
        "SM123",
    )
    assert t.event == lifecycle.Event("reminder.sent", {"provider_id": "SM123", "attempt": 2})


def test_a_transient_error_retries_inside_the_expiry_window() -> None:
    """429 with time left: planned again, later than now but before expiry, attempt transient."""
    t = failed(TransientError("429", code="20429"), expires_in=timedelta(hours=2))
    assert (t.outcome, t.status, t.attempt) == (
        Outcome.RETRY,
        ReminderStatus.PLANNED,
        AttemptOutcome.TRANSIENT,
    )
    assert t.not_before is not None
    assert NOW <= t.not_before < NOW + timedelta(hours=2)
    assert t.error_code == "20429"
    assert t.event is not None
    assert t.event.detail == {"attempt": 1, "code": "20429"}


def test_a_transient_error_with_no_time_left_expires() -> None:
    """A retry that would land at or past expiry expires the reminder instead."""
    t = failed(
        TransientError("429", code="20429", retry_after=120), expires_in=timedelta(seconds=60)
    )
    assert (t.outcome, t.status, t.attempt, t.not_before) == (
        Outcome.EXPIRED,
        ReminderStatus.EXPIRED,
        AttemptOutcome.TRANSIENT,
        None,
    )


def test_retry_after_is_a_floor_for_the_next_try() -> None:
    """A provider's Retry-After is never undercut by the jittered backoff."""
    t = failed(TransientError("429", retry_after=600), expires_in=timedelta(hours=2))
    assert t.not_before is not None
    assert t.not_before >= NOW + timedelta(seconds=600)


def test_in_doubt_is_reconciled_before_anything_else_even_past_expiry() -> None:
    """In doubt with no time left: still planned (to be reconciled), never expired."""
    t = failed(InDoubtError("read timeout", code="read-timeout"), expires_in=timedelta(seconds=1))
    assert (t.outcome, t.status, t.attempt, t.not_before) == (
        Outcome.IN_DOUBT,
        ReminderStatus.PLANNED,
        AttemptOutcome.IN_DOUBT,
        NOW,
    )


def test_a_permanent_error_fails_at_once_with_its_code() -> None:
    """21211: failed, the attempt permanent, the code kept, no opt-out."""
    t = failed(PermanentError("invalid number", code="21211"), expires_in=timedelta(hours=2))
    assert (t.outcome, t.status, t.attempt, t.error_code, t.opt_out) == (
        Outcome.FAILED,
        ReminderStatus.FAILED,
        AttemptOutcome.PERMANENT,
        "21211",
        False,
    )


def test_an_unsubscribed_recipient_fails_and_is_opted_out() -> None:
    """21610: failed and the address opted out, said in the audit record."""
    t = failed(
        PermanentError("unsubscribed", code="21610", opted_out=True), expires_in=timedelta(hours=2)
    )
    assert (t.status, t.opt_out) == (ReminderStatus.FAILED, True)
    assert t.event is not None
    assert t.event.detail["opted_out"] is True


def test_a_channel_that_cannot_be_asked_resends_and_says_so() -> None:
    """No reconciliation (email): the in-doubt attempts close as resent and the send goes on."""
    t = lifecycle.resend_unasked()
    assert (t.outcome, t.status, t.resolve) == (None, None, AttemptOutcome.IN_DOUBT_RESENT)


def test_found_at_the_provider_is_sent_never_resent() -> None:
    """Reconciliation found it: sent with the provider's id, in-doubt attempts closed as found."""
    t = lifecycle.found_at_provider("SM9")
    assert (t.outcome, t.status, t.resolve, t.provider_id) == (
        Outcome.RECONCILED,
        ReminderStatus.SENT,
        AttemptOutcome.IN_DOUBT_SENT,
        "SM9",
    )


def test_absent_at_the_provider_is_sent_now_if_there_is_time() -> None:
    """Not found and time left: in-doubt attempts closed absent, the reminder stays leased to be sent."""
    t = lifecycle.absent_at_provider(NOW, NOW + timedelta(minutes=5))
    assert (t.outcome, t.status, t.resolve) == (None, None, AttemptOutcome.IN_DOUBT_ABSENT)
    assert t.event == lifecycle.Event("reminder.reconciled", {"found": False})


def test_absent_at_the_provider_after_expiry_expires() -> None:
    """Not found and too late: expired, never sent late."""
    t = lifecycle.absent_at_provider(NOW, NOW)
    assert (t.outcome, t.status, t.resolve) == (
        Outcome.EXPIRED,
        ReminderStatus.EXPIRED,
        AttemptOutcome.IN_DOUBT_ABSENT,
    )


def test_a_failed_reconciliation_asks_again_later_or_fails_at_expiry() -> None:
    """The provider could not be asked: planned for another look, or failed once nothing is left."""
    error = TransientError("list failed", code="list")
    later = lifecycle.reconcile_failed(
        error, now=NOW, attempts=1, expires_at=NOW + timedelta(hours=1), policy=POLICY, rng=rng()
    )
    assert (later.outcome, later.status) == (Outcome.IN_DOUBT, ReminderStatus.PLANNED)
    assert later.not_before is not None
    assert later.not_before > NOW
    too_late = lifecycle.reconcile_failed(
        error, now=NOW, attempts=1, expires_at=NOW, policy=POLICY, rng=rng()
    )
    assert (too_late.outcome, too_late.status) == (Outcome.FAILED, ReminderStatus.FAILED)
    assert too_late.error_code == lifecycle.UNRECONCILED
    assert too_late.event == lifecycle.Event("reminder.reconcile_failed", {"code": "list"})


@pytest.mark.parametrize(
    ("current", "callback", "expected"),
    [
        ("sending", "sent", ReminderStatus.SENT),
        ("sent", "delivered", ReminderStatus.DELIVERED),
        ("sent", "undelivered", ReminderStatus.FAILED),
        ("delivered", "sent", None),  # a late callback never moves a reminder back
        ("delivered", "delivered", None),  # a duplicate changes nothing
        ("failed", "delivered", None),  # two final statuses: the first one stands
        ("sent", "bogus", None),  # not a Twilio status
        ("cancelled", "delivered", None),  # not a status a callback may touch
    ],
)
def test_status_callbacks_only_ever_move_forward(
    current: str, callback: str, expected: ReminderStatus | None
) -> None:
    """Callbacks move a reminder to a higher rank only; duplicates and late ones change nothing."""
    assert lifecycle.callback_status(current, callback) == expected
