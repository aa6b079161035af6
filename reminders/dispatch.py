"""The dispatcher: expire, claim, reconcile, render, send, record.

One :meth:`Dispatcher.tick` delivers everything due and returns the counts of each
outcome. The outbox decides what is due; whoever calls ``tick`` (the CLI, the
APScheduler job, a test) only decides when.

Exactly once, per channel, across crashes and instances:

1. due reminders are leased in one transaction (``status='sending'``, owner, expiry);
2. the attempt is committed *before* the provider is called, its outcome after;
3. a lease that lapses with no attempt in flight goes back to ``planned``; one that
   lapses mid-attempt, and every attempt the channel reported *in doubt*, is
   reconciled with the provider (Twilio: the messages sent to that number since
   the attempt) before anything is sent again.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from reminders import logs
from reminders.channels.base import Channel, Message, Receipt, body_digest
from reminders.errors import (
    DeliveryError,
    InDoubtError,
    PermanentError,
    TemplateError,
    TransientError,
)
from reminders.models import Schedules
from reminders.planning import in_window, next_window_open
from reminders.ratelimit import TokenBucket
from reminders.retry import RetryPolicy
from reminders.store import Claimed, Store
from reminders.templates import Templates, message_context
from reminders.tokens import sign

log = logs.get("reminders.dispatch")

#: Every outcome a tick reports, in display order.
OUTCOMES: Final = (
    "sent",
    "reconciled",
    "failed",
    "retry",
    "expired",
    "suppressed",
    "deferred",
    "in_doubt",
    "error",
)


class Observer(Protocol):
    """Receives what the dispatcher does (metrics); must not block."""

    def outcome(self, channel: str, outcome: str, lateness: float | None) -> None:
        """One reminder's outcome; ``lateness`` in seconds after its due time for a send."""
        ...

    def provider_error(self, channel: str, code: str) -> None:
        """A provider error code was returned."""
        ...


@runtime_checkable
class Reconciling(Protocol):
    """A channel that can tell whether an earlier, in-doubt attempt reached the provider."""

    def reconcile(
        self, message: Message, since: datetime, digests: frozenset[str]
    ) -> Receipt | None:
        """The receipt of a message sent since ``since`` whose text has one of ``digests``
        (the texts of the in-doubt attempts) or is ``message.text``, if any."""
        ...


@dataclass
class TickReport:
    """Counts of what one tick did, by outcome."""

    #: Outcome -> count; see :data:`OUTCOMES`.
    counts: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, int]:
        """JSON-ready counts, every outcome present."""
        return {k: int(self.counts.get(k, 0)) for k in OUTCOMES}


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """How to build one-click unsubscribe links for email."""

    #: Public base URL of the service.
    public_url: str
    #: HMAC key (REMINDERS_SECRET_KEY).
    secret: str

    def url(self, reminder_id: int) -> str:
        """The signed unsubscribe URL that comes with email reminder ``reminder_id``."""
        return f"{self.public_url}/unsubscribe/{sign(self.secret, reminder_id)}"


class Dispatcher:
    """Delivers due reminders through the configured channels."""

    def __init__(
        self,
        store: Store,
        schedules: Schedules,
        templates: Templates,
        channels: Mapping[str, Channel],
        *,
        owner: str,
        limits: Mapping[str, TokenBucket] | None = None,
        workers: int = 8,
        lease: timedelta = timedelta(minutes=10),
        batch_size: int = 100,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        unsubscribe: Unsubscribe | None = None,
        message_domain: str = "recovery-reminders.invalid",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observer: Observer | None = None,
    ) -> None:
        self.store = store
        self.schedules = schedules
        self.templates = templates
        self.channels = channels
        #: Lease owner name: unique per process.
        self.owner = owner
        self.limits = dict(limits or {})
        self.workers = max(workers, 1)
        self.lease = lease
        self.batch_size = batch_size
        self.retry = retry or RetryPolicy()
        self.unsubscribe = unsubscribe
        self.clock = clock
        self.observer = observer
        self._rng = rng or random.Random()  # noqa: S311  # jitter, not cryptography
        self._rng_lock = threading.Lock()
        self._domain = message_domain
        self._zones: dict[str, ZoneInfo] = {}
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Stop claiming new work; sends already started finish."""
        self._stopping.set()

    def tick(self, now: datetime | None = None, *, complete: bool = True) -> TickReport:
        """Deliver everything due; ``now`` pins the clock (``tick --now``, tests).

        ``complete`` also marks finished enrollments (a full scan: the service leaves
        it to hourly housekeeping).
        """
        clock: Callable[[], datetime] = (lambda: now) if now is not None else self.clock
        report = TickReport()
        start = clock()
        with self.store.write() as tx:
            # Lapsed leases first: an attempt a dead process left in flight becomes in
            # doubt, and in-doubt reminders are reconciled rather than expired.
            tx.recover_expired_leases(start)
            expired = tx.expire_overdue(start)
            tx.audit(
                {"at": start, "kind": "reminder.expired", "reminder_id": rid} for rid in expired
            )
        report.counts["expired"] += len(expired)
        try:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="dispatch") as pool:
                while not self._stopping.is_set():
                    at = clock()
                    with self.store.write() as tx:
                        claimed = tx.claim_due(at, self.owner, at + self.lease, self.batch_size)
                    if not claimed:
                        break
                    futures = [pool.submit(self._observed, r, clock) for r in claimed]
                    for future in futures:
                        report.counts[future.result()] += 1
        finally:
            for channel in self.channels.values():
                close = getattr(channel, "close", None)
                if close is not None:
                    close()
        if complete:
            self.complete(clock())
        return report

    def complete(self, now: datetime) -> list[str]:
        """Mark enrollments with nothing left to send ``completed`` (a scan: housekeeping)."""
        with self.store.write() as tx:
            done = tx.complete_finished(now)
            tx.audit({"at": now, "kind": "enrollment.completed", "patient_id": pid} for pid in done)
        return done

    def release(self) -> int:
        """Give back this dispatcher's leases that have no attempt in flight (on shutdown)."""
        with self.store.write() as tx:
            return tx.release_owner(self.owner, self.clock())

    def _zone(self, name: str) -> ZoneInfo:
        zone = self._zones.get(name)
        if zone is None:
            zone = self._zones[name] = ZoneInfo(name)
        return zone

    def _finish(self, r: Claimed, now: datetime, status: str, kind: str, **detail: Any) -> str:
        with self.store.write() as tx:
            tx.set_status(r.id, status, now, error=detail.get("reason"))
            tx.audit([_event(now, kind, r, detail)])
        return status

    def _message(self, r: Claimed, now: datetime, zone: ZoneInfo) -> Message:
        assert r.address is not None  # noqa: S101  # checked by the caller
        local = now.astimezone(zone)
        # The text depends on the due day, not the send day, so a retry or a late
        # send says the same as the first try (and reconciliation can match it).
        due_day = r.due_at.astimezone(zone).date()
        unsubscribe = (
            self.unsubscribe.url(r.id) if self.unsubscribe and r.channel == "email" else None
        )
        rendered = self.templates.render(
            r.channel,
            r.language,
            r.template,
            message_context(
                clinic=self.schedules.clinic,
                first_name=r.first_name,
                last_name=r.last_name,
                milestone=r.milestone,
                occurrence=r.occurrence,
                surgery_date=r.surgery_date,
                send_date=due_day,
                unsubscribe_url=unsubscribe if r.channel == "email" else None,
            ),
        )
        return Message(
            reminder_id=r.id,
            channel=r.channel,
            to=r.address,
            text=rendered.text,
            subject=rendered.subject,
            html=rendered.html,
            message_id=f"<reminder.{r.id}.{r.milestone}.{r.occurrence}@{self._domain}>",
            expires_at=r.expires_at,
            patient_id=r.patient_id,
            local_time=local.strftime("%a %Y-%m-%d %H:%M %Z"),
            unsubscribe_url=unsubscribe if r.channel == "email" else None,
        )

    def _observed(self, r: Claimed, clock: Callable[[], datetime]) -> str:
        try:
            outcome = self._deliver(r, clock)
        except Exception:
            # A bug must not stop the batch. The lease is kept: when it lapses, an
            # attempt left pending is reconciled, and one never started is retried.
            log.exception("reminder.error", reminder_id=r.id, channel=r.channel)
            return "error"
        lateness = (
            (clock() - r.due_at).total_seconds() if outcome in ("sent", "reconciled") else None
        )
        log.info(
            "reminder." + outcome,
            reminder_id=r.id,
            patient_id=r.patient_id,
            milestone=r.milestone,
            occurrence=r.occurrence,
            channel=r.channel,
            attempt=r.attempts + 1,
        )
        if self.observer is not None:
            self.observer.outcome(r.channel, outcome, lateness)
        return outcome

    def _deliver(self, r: Claimed, clock: Callable[[], datetime]) -> str:
        now = clock()
        zone = self._zone(r.timezone)
        window = self.schedules.send_window
        if not in_window(now, zone, window):
            opening = next_window_open(now, zone, window)
            if opening >= r.expires_at:
                return self._finish(
                    r, now, "expired", "reminder.expired", reason="send window closed until expiry"
                )
            with self.store.write() as tx:
                tx.release(r.id, not_before=opening, now=now)
            return "deferred"
        channel = self.channels.get(r.channel)
        if channel is None or not r.address:
            return self._finish(
                r, now, "failed", "reminder.failed", reason=f"no {r.channel} address or channel"
            )
        try:
            message = self._message(r, now, zone)
        except TemplateError as exc:
            return self._finish(
                r, now, "failed", "reminder.failed", reason=f"template: {exc.detail}"
            )

        if r.in_doubt_since is not None:
            settled = self._reconcile(r, channel, message, clock)
            if settled is not None:
                return settled

        limit = self.limits.get(r.channel)
        if limit is not None:
            limit.acquire()
        started = clock()
        left = int((r.expires_at - started).total_seconds())
        if left <= 0:  # the rate limit or reconciliation used up the time left
            return self._finish(
                r, started, "expired", "reminder.expired", reason="expired while waiting"
            )
        message = replace(message, validity_seconds=left)
        number = r.attempts + 1
        with self.store.write() as tx:
            # The opt-out is read here, in the transaction that records the attempt, and
            # not when the batch is claimed: a STOP can arrive while a claimed message
            # waits for the rate limit or for reconciliation, and the store's opt-out
            # only suppresses reminders still planned. An in-doubt reminder is thus
            # reconciled first: if the provider has it, it was sent, whatever came after.
            if tx.opted_out(r.channel, [r.address]):
                tx.set_status(r.id, "suppressed", started, error="opted out")
                tx.audit([_event(started, "reminder.suppressed", r, {"reason": "opted out"})])
                return "suppressed"
            attempt = tx.begin_attempt(
                r.id, number, self.owner, started, body_digest=body_digest(message.text)
            )
        try:
            receipt = channel.send(message)
        except DeliveryError as exc:
            return self._failed(r, clock(), attempt, number, exc)
        done = clock()
        with self.store.write() as tx:
            tx.finish_attempt(
                attempt,
                r.id,
                outcome="sent",
                status=receipt.status,
                now=done,
                provider_id=receipt.provider_id,
            )
            tx.audit(
                [
                    _event(
                        done,
                        "reminder.sent",
                        r,
                        {"provider_id": receipt.provider_id, "attempt": number},
                    )
                ]
            )
        return "sent"

    def _reconcile(
        self, r: Claimed, channel: Channel, message: Message, clock: Callable[[], datetime]
    ) -> str | None:
        """Settle an in-doubt reminder before resending; ``None`` means: go ahead and send."""
        assert r.in_doubt_since is not None  # noqa: S101  # the caller checked
        reconcile = channel.reconcile if isinstance(channel, Reconciling) else None
        now = clock()
        if reconcile is None:
            # No way to ask (SMTP): resend with the same Message-ID so mail clients can
            # fold a duplicate; record that this was a resend after doubt.
            with self.store.write() as tx:
                tx.resolve_in_doubt(r.id, "resent", now)
            return None
        try:
            found = reconcile(message, r.in_doubt_since, r.in_doubt_digests)
        except DeliveryError as exc:
            with self._rng_lock:
                when = self.retry.next_try(now, r.attempts, r.expires_at, self._rng)
            with self.store.write() as tx:
                if when is None:
                    tx.set_status(
                        r.id, "failed", now, error=f"in doubt, could not reconcile: {exc}"
                    )
                else:
                    tx.release(r.id, not_before=when, now=now)
                tx.audit([_event(now, "reminder.reconcile_failed", r, {"code": exc.code or None})])
            return "failed" if when is None else "in_doubt"
        with self.store.write() as tx:
            if found is None:
                tx.resolve_in_doubt(r.id, "absent", now)
                tx.audit([_event(now, "reminder.reconciled", r, {"found": False})])
                if now >= r.expires_at:  # not delivered, and too late to send now
                    tx.set_status(
                        r.id, "expired", now, error="in doubt, not found at the provider, expired"
                    )
                    return "expired"
                return None
            tx.resolve_in_doubt(r.id, "sent", now, provider_id=found.provider_id)
            tx.mark_sent(r.id, found.provider_id, now)
            tx.audit(
                [
                    _event(
                        now,
                        "reminder.reconciled",
                        r,
                        {"found": True, "provider_id": found.provider_id},
                    )
                ]
            )
        return "reconciled"

    def _failed(
        self, r: Claimed, now: datetime, attempt: int, number: int, exc: DeliveryError
    ) -> str:
        code = exc.code or None
        if code and self.observer is not None:
            self.observer.provider_error(r.channel, code)
        detail: dict[str, Any] = {"attempt": number, "code": code}
        opt_outs: list[dict[str, Any]] = []
        with self.store.write() as tx:
            if isinstance(exc, TransientError | InDoubtError):
                with self._rng_lock:
                    when = self.retry.next_try(
                        now, number, r.expires_at, self._rng, exc.retry_after
                    )
                doubt = isinstance(exc, InDoubtError)
                if doubt:
                    # Whatever the time left, it is reconciled before anything else:
                    # it may have been delivered, so it is never just marked expired.
                    status, outcome, when = "planned", "in_doubt", when or now
                elif when is None:
                    status, outcome = "expired", "expired"
                else:
                    status, outcome = "planned", "retry"
                tx.finish_attempt(
                    attempt,
                    r.id,
                    outcome="in_doubt" if doubt else "transient",
                    status=status,
                    now=now,
                    error_code=code,
                    error=str(exc),
                    not_before=when,
                )
            else:
                tx.finish_attempt(
                    attempt,
                    r.id,
                    outcome="permanent",
                    status="failed",
                    now=now,
                    error_code=code,
                    error=str(exc),
                )
                status, outcome = "failed", "failed"
                if isinstance(exc, PermanentError) and exc.opted_out and r.address:
                    changed = tx.opt_out(r.channel, r.address, now, source=f"provider {code}")
                    detail["opted_out"] = True
                    # Every patient reached at that address is opted out, so each gets a record.
                    opt_outs = [
                        {
                            "at": now,
                            "kind": f"opt_out.{r.channel}.on",
                            "patient_id": pid,
                            "reminder_id": r.id,
                            "detail": {"source": f"provider {code}", "reminders": changed},
                        }
                        for pid in tx.patients_with(r.channel, r.address)
                    ]
            tx.audit([_event(now, f"reminder.{outcome}", r, detail), *opt_outs])
        return outcome


def _event(now: datetime, kind: str, r: Claimed, detail: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "at": now,
        "kind": kind,
        "patient_id": r.patient_id,
        "reminder_id": r.id,
        "detail": {
            "milestone": r.milestone,
            "occurrence": r.occurrence,
            "channel": r.channel,
            **detail,
        },
    }
