"""The life of a reminder and of each attempt to deliver it, as pure values and functions.

Nothing here touches the database, the clock or the network: the dispatcher asks a
function of this module what happens next and hands the answer, one
:class:`Transition`, to the store, which applies it in one call
(:meth:`reminders.store.OutboxManager.settle`), as procrastinate's ``RetryDecision`` or
APScheduler 4's ``JobOutcome``.

A reminder's statuses::

    sync ──> planned ──claim──> sending ──accepted──> sent ──callback──> delivered
               ▲  │               │  │                 └──callback──> failed
               │  │               │  └──permanent error──────────────> failed
               │  │               └──transient error, in doubt, send window closed
               └──┼───────────────┘      (back to planned, with a later not_before)
                  ├──> failed      no address, a broken template, an SMS too long
                  ├──> expired     due + expiry passed (never sent late)
                  ├──> cancelled   patient withdrawn, milestone no longer in the plan
                  └──> suppressed  the address opted out

An attempt is written ``pending`` before the provider is called and closed with its
outcome after; an attempt left ``in_doubt`` (the provider may have the message) is
reconciled before anything is sent again, and closed ``in_doubt:sent``,
``in_doubt:absent`` or ``in_doubt:resent``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from reminders.errors import DeliveryError, InDoubtError, PermanentError, TransientError
from reminders.retry import RetryPolicy, Rng
from reminders.states import AlertLevel, AlertStatus, CheckInStatus, FhirStatus, MessageKind

#: The states of check-ins, alerts, message kinds and FHIR codes live in
#: :mod:`reminders.states` and are re-exported here.
__all__ = [
    "AlertLevel",
    "AlertStatus",
    "CheckInStatus",
    "FhirStatus",
    "MessageKind",
]


class ReminderStatus(StrEnum):
    """Where one reminder (one message on one channel) stands."""

    #: Waiting for its due time, or for its next try (``not_before``).
    PLANNED = "planned"
    #: Leased to one dispatcher, which may be talking to the provider.
    SENDING = "sending"
    #: Accepted by the provider.
    SENT = "sent"
    #: The provider reported it delivered.
    DELIVERED = "delivered"
    #: Will not be sent: a permanent provider error, no address, a broken template.
    FAILED = "failed"
    #: The patient was withdrawn, or the milestone left the patient's plan.
    CANCELLED = "cancelled"
    #: Not sent by its due time plus expiry; never sent late.
    EXPIRED = "expired"
    #: The address opted out of the channel.
    SUPPRESSED = "suppressed"


class AttemptOutcome(StrEnum):
    """How one attempt to deliver a reminder ended."""

    #: Written before the provider is called; the call has not returned (yet).
    PENDING = "pending"
    #: The provider accepted the message.
    SENT = "sent"
    #: Failed in a way worth retrying (429, refused connection, SMTP 4xx).
    TRANSIENT = "transient"
    #: Failed for good (invalid number, unsubscribed, SMTP 5xx).
    PERMANENT = "permanent"
    #: The provider may have the message: reconciled before anything is resent.
    IN_DOUBT = "in_doubt"
    #: In doubt, then found at the provider.
    IN_DOUBT_SENT = "in_doubt:sent"
    #: In doubt, then not found at the provider.
    IN_DOUBT_ABSENT = "in_doubt:absent"
    #: In doubt with no way to ask the provider (email): resent with the same Message-ID.
    IN_DOUBT_RESENT = "in_doubt:resent"


class EnrollmentStatus(StrEnum):
    """Where one patient's enrollment stands."""

    #: Reminders go out as they fall due.
    ACTIVE = "active"
    #: Held: nothing is sent; what passes its expiry meanwhile expires.
    PAUSED = "paused"
    #: Removed from the patients file or set withdrawn: pending reminders cancelled.
    WITHDRAWN = "withdrawn"
    #: Nothing left to send (reached, never set in the patients file).
    COMPLETED = "completed"


class Outcome(StrEnum):
    """What one dispatcher tick did with one claimed reminder (``tick --json`` counts)."""

    #: Handed to the provider and accepted.
    SENT = "sent"
    #: Found at the provider by reconciliation; not sent again.
    RECONCILED = "reconciled"
    #: Failed for good.
    FAILED = "failed"
    #: A transient error: tried again later within the expiry window.
    RETRY = "retry"
    #: Expired before it could go out.
    EXPIRED = "expired"
    #: Not sent: the address opted out.
    SUPPRESSED = "suppressed"
    #: Outside the send window: given back until the window opens.
    DEFERRED = "deferred"
    #: The provider may have it; reconciled before any resend.
    IN_DOUBT = "in_doubt"
    #: A bug stopped this reminder; its lease lapses and it is picked up again.
    ERROR = "error"


class Attention(StrEnum):
    """Why a reminder needs a coordinator's eye (``reminders status``), most urgent first.

    A provider outage shows here: its reminders are retrying or in doubt while it lasts,
    and expired (tried, never delivered) once their deadline passed.
    """

    #: An attempt may have reached the provider (5xx, a timeout): checked with the
    #: provider before anything is sent again. Still ``planned``.
    IN_DOUBT = "in_doubt"
    #: An attempt failed in a way worth retrying (outage, rate limit, SMTP 4xx): tried
    #: again by itself until its deadline. Still ``planned``.
    RETRYING = "retrying"
    #: Tried and never delivered before its deadline: ``expired`` with attempts.
    EXPIRED = "expired"
    #: Will not be sent: a permanent error, no address, a broken template (``failed``).
    FAILED = "failed"


#: What ``tick`` reports as stuck (exit 3): waiting on the provider, or lost to it.
STUCK: Final = (Attention.IN_DOUBT, Attention.RETRYING, Attention.EXPIRED)


#: Statuses a patients file may set (``completed`` is reached, not set).
FILE_STATUSES: Final = (
    EnrollmentStatus.ACTIVE,
    EnrollmentStatus.PAUSED,
    EnrollmentStatus.WITHDRAWN,
)
#: Enrollments whose reminders are still going out or held.
LIVE_ENROLLMENTS: Final = frozenset({EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED})
#: Reminders a sync may re-plan when a record or the schedules change. Anything else
#: (in flight, sent, delivered, failed, suppressed) is history and never re-sent.
REPLANNABLE: Final = frozenset(
    {ReminderStatus.PLANNED, ReminderStatus.CANCELLED, ReminderStatus.EXPIRED}
)
#: Reminders still waiting to go out (a sync may cancel them).
PENDING: Final = (ReminderStatus.PLANNED,)
#: Reminders not settled yet: waiting or in flight.
UNSETTLED: Final = (ReminderStatus.PLANNED, ReminderStatus.SENDING)
#: Reminders the provider accepted.
ACCEPTED: Final = frozenset({ReminderStatus.SENT, ReminderStatus.DELIVERED})


@dataclass(frozen=True, slots=True)
class Event:
    """The audit record of a transition (the store adds ids, milestone and channel)."""

    #: ``reminder.sent``, ``reminder.expired``, ...
    kind: str
    #: JSON-ready detail: codes and ids, never contact details or message text.
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Transition:
    """Everything one decision about a claimed reminder changes, applied in one call.

    ``status`` None leaves the reminder leased to this dispatcher, which goes on (an
    in-doubt attempt found absent: send now); ``outcome`` None means the same to the tick.
    """

    #: What the tick reports, or None when the dispatcher goes on with this reminder.
    outcome: Outcome | None
    #: The reminder's new status, or None to leave it leased.
    status: ReminderStatus | None
    #: Outcome of the attempt this dispatcher opened, if any.
    attempt: AttemptOutcome | None = None
    #: Closes the reminder's earlier in-doubt attempts with this resolution.
    resolve: AttemptOutcome | None = None
    #: Next time it may be tried (back to ``planned``).
    not_before: datetime | None = None
    #: The provider's id of the accepted message.
    provider_id: str | None = None
    #: Provider error code, shown to coordinators.
    error_code: str | None = None
    #: What went wrong, in words.
    error: str | None = None
    #: The provider says the address unsubscribed: opt it out of the channel.
    opt_out: bool = False
    #: The audit record, if the transition is worth one.
    event: Event | None = None


# -- before the provider is called ---------------------------------------------------------


def outside_window(opening: datetime, expires_at: datetime) -> Transition:
    """Due outside the send window: wait for ``opening``, or expire if it opens too late."""
    if opening >= expires_at:
        return _expired("send window closed until expiry")
    return Transition(Outcome.DEFERRED, ReminderStatus.PLANNED, not_before=opening)


def unreachable(channel: str) -> Transition:
    """No address for the channel, or no channel configured for it."""
    reason = f"no {channel} address or channel"
    return _final(Outcome.FAILED, ReminderStatus.FAILED, reason)


def opted_out() -> Transition:
    """The address opted out of the channel: never sent."""
    return _final(Outcome.SUPPRESSED, ReminderStatus.SUPPRESSED, "opted out")


def unrenderable(detail: str) -> Transition:
    """The template does not render for this patient (the check at start should prevent it)."""
    return _final(Outcome.FAILED, ReminderStatus.FAILED, f"template: {detail}")


#: Error code of an SMS refused before the provider because it is past the segment limit.
SMS_TOO_LONG: Final = "sms-too-long"
#: Error code of a reminder left in doubt whose provider could not be asked before its
#: deadline: it may have reached the patient, and is never sent again.
UNRECONCILED: Final = "unreconciled"


def sms_too_long(segments: int, limit: int, size: str) -> Transition:
    """The composed SMS takes ``segments`` segments, past ``limit``: failed, never sent.

    ``size`` says it in units (``"655 segments"`` alone does not say why): for example
    ``"100,195 GSM-7 characters"``. Nothing reaches the provider, so no attempt is opened.
    """
    reason = (
        f"SMS too long: {segments} segments ({size}), the limit is {limit}; "
        "shorten the patient's first name in the patients file, or the template"
    )
    return Transition(
        Outcome.FAILED,
        ReminderStatus.FAILED,
        error_code=SMS_TOO_LONG,
        error=reason,
        event=Event(
            "reminder.failed",
            {"reason": "sms too long", "code": SMS_TOO_LONG, "segments": segments},
        ),
    )


def too_late() -> Transition:
    """The rate limit or reconciliation used up the time left before expiry."""
    return _expired("expired while waiting")


def _expired(reason: str) -> Transition:
    return _final(Outcome.EXPIRED, ReminderStatus.EXPIRED, reason)


def _final(outcome: Outcome, status: ReminderStatus, reason: str) -> Transition:
    return Transition(
        outcome, status, error=reason, event=Event(f"reminder.{outcome}", {"reason": reason})
    )


# -- reconciling an in-doubt reminder ------------------------------------------------------


def resend_unasked() -> Transition:
    """In doubt on a channel that cannot be asked (email): resend, same Message-ID."""
    return Transition(None, None, resolve=AttemptOutcome.IN_DOUBT_RESENT)


def found_at_provider(provider_id: str) -> Transition:
    """Reconciliation found the message: it was sent; never send it again."""
    return Transition(
        Outcome.RECONCILED,
        ReminderStatus.SENT,
        resolve=AttemptOutcome.IN_DOUBT_SENT,
        provider_id=provider_id,
        event=Event("reminder.reconciled", {"found": True, "provider_id": provider_id}),
    )


def absent_at_provider(now: datetime, expires_at: datetime) -> Transition:
    """Reconciliation did not find the message: send it now, unless it is too late."""
    event = Event("reminder.reconciled", {"found": False})
    if now >= expires_at:
        return Transition(
            Outcome.EXPIRED,
            ReminderStatus.EXPIRED,
            resolve=AttemptOutcome.IN_DOUBT_ABSENT,
            error="in doubt, not found at the provider, expired",
            event=event,
        )
    return Transition(None, None, resolve=AttemptOutcome.IN_DOUBT_ABSENT, event=event)


def reconcile_failed(
    error: DeliveryError,
    *,
    now: datetime,
    attempts: int,
    expires_at: datetime,
    policy: RetryPolicy,
    rng: Rng,
) -> Transition:
    """The provider could not be asked: ask again later, or give up at expiry."""
    event = Event("reminder.reconcile_failed", {"code": error.code or None})
    when = policy.next_try(now, attempts, expires_at, rng)
    if when is None:
        return Transition(
            Outcome.FAILED,
            ReminderStatus.FAILED,
            error_code=UNRECONCILED,
            error=f"in doubt, could not reconcile: {error}",
            event=event,
        )
    return Transition(Outcome.IN_DOUBT, ReminderStatus.PLANNED, not_before=when, event=event)


# -- after the provider answered -------------------------------------------------------------


def accepted(provider_id: str, status: ReminderStatus, attempt: int) -> Transition:
    """The provider accepted the message (``sent``, or ``delivered`` when it says so)."""
    return Transition(
        Outcome.SENT,
        status,
        attempt=AttemptOutcome.SENT,
        provider_id=provider_id,
        event=Event("reminder.sent", {"provider_id": provider_id, "attempt": attempt}),
    )


def delivery_failed(
    error: DeliveryError,
    *,
    now: datetime,
    attempt: int,
    expires_at: datetime,
    policy: RetryPolicy,
    rng: Rng,
) -> Transition:
    """Decide what a failed attempt (number ``attempt``) means for its reminder.

    In doubt: back to ``planned`` and reconciled before anything else, whatever the
    time left (it may have been delivered, so it is never just expired). Transient:
    retried with backoff inside the expiry window, else expired. Anything else:
    failed at once, and the address opted out if the provider says so.
    """
    code = error.code or None
    detail: dict[str, Any] = {"attempt": attempt, "code": code}
    if isinstance(error, TransientError | InDoubtError):
        when = policy.next_try(now, attempt, expires_at, rng, error.retry_after)
        if isinstance(error, InDoubtError):
            outcome, status, when = Outcome.IN_DOUBT, ReminderStatus.PLANNED, when or now
            attempt_outcome = AttemptOutcome.IN_DOUBT
        else:
            attempt_outcome = AttemptOutcome.TRANSIENT
            if when is None:
                outcome, status = Outcome.EXPIRED, ReminderStatus.EXPIRED
            else:
                outcome, status = Outcome.RETRY, ReminderStatus.PLANNED
        return Transition(
            outcome,
            status,
            attempt=attempt_outcome,
            not_before=when,
            error_code=code,
            error=str(error),
            event=Event(f"reminder.{outcome}", detail),
        )
    opt_out = isinstance(error, PermanentError) and error.opted_out
    if opt_out:
        detail["opted_out"] = True
    return Transition(
        Outcome.FAILED,
        ReminderStatus.FAILED,
        attempt=AttemptOutcome.PERMANENT,
        error_code=code,
        error=str(error),
        opt_out=opt_out,
        event=Event("reminder.failed", detail),
    )


# -- provider status callbacks ---------------------------------------------------------------

#: Twilio ``MessageStatus`` -> the reminder status it means, and its rank: a callback
#: only ever moves a reminder to a higher rank, so late and duplicate ones change nothing.
CALLBACK_STATUS: Final[Mapping[str, tuple[ReminderStatus, int]]] = {
    "accepted": (ReminderStatus.SENT, 1),
    "scheduled": (ReminderStatus.SENT, 1),
    "queued": (ReminderStatus.SENT, 1),
    "sending": (ReminderStatus.SENT, 1),
    "sent": (ReminderStatus.SENT, 1),
    "delivered": (ReminderStatus.DELIVERED, 2),
    "read": (ReminderStatus.DELIVERED, 2),
    "undelivered": (ReminderStatus.FAILED, 2),
    "failed": (ReminderStatus.FAILED, 2),
    "canceled": (ReminderStatus.FAILED, 2),
}
_RANK: Final[Mapping[str, int]] = {
    ReminderStatus.PLANNED: 0,
    ReminderStatus.SENDING: 0,
    ReminderStatus.SENT: 1,
    ReminderStatus.DELIVERED: 2,
    ReminderStatus.FAILED: 2,
}


def callback_status(current: str, message_status: str) -> ReminderStatus | None:
    """The status a provider callback moves a reminder to, or None when it changes nothing."""
    mapped = CALLBACK_STATUS.get(message_status.lower())
    if mapped is None or current not in _RANK:
        return None
    status, rank = mapped
    return status if rank > _RANK[current] else None


@dataclass(frozen=True, slots=True)
class CallbackDecision:
    """What one provider status callback does to the reminder its URL names."""

    #: The callback is about this reminder's message: its MessageSid is the one recorded.
    matched: bool
    #: The reminder's new status, or None when the callback changes nothing.
    status: ReminderStatus | None = None


def status_callback(
    current: str,
    recorded: str | None,
    attempted: frozenset[str],
    message_sid: str,
    message_status: str,
) -> CallbackDecision:
    """What a callback about ``message_sid`` does to a reminder in status ``current``.

    It applies only to the message recorded for the reminder: its provider id
    (``recorded``) or, when none is recorded, the provider id of one of its attempts
    (``attempted``). A callback for a reminder whose message is not recorded yet is
    ignored, whatever it says: a reminder never sent, or one whose attempt is still
    open (the callback beat our own commit of the provider's answer, or the process
    died during the call). Our own commit, or reconciliation with the provider before
    any resend, then records the message, and Twilio's later callbacks for it apply.
    The cost is at most an early status (a ``delivered`` that overtakes our commit
    leaves the reminder ``sent``); the alternative would let any signed callback settle
    a reminder that was never sent, so that it never would be.
    """
    matched = message_sid == recorded if recorded is not None else message_sid in attempted
    if not matched:
        return CallbackDecision(matched=False)
    return CallbackDecision(matched=True, status=callback_status(current, message_status))
