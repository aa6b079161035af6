"""The dispatcher: expire, claim, reconcile, compose, send, settle.

One :meth:`Dispatcher.tick` delivers everything due and returns the counts of each
outcome. The outbox decides what is due; whoever calls ``tick`` (the CLI, the
APScheduler job, a test) only decides when.

Exactly once, per channel, across crashes and instances:

1. due reminders are leased in one transaction (``status='sending'``, owner, expiry);
2. the attempt is committed *before* the provider is called, its outcome after;
3. a lease that lapses with no attempt in flight goes back to ``planned``; one that
   lapses mid-attempt, and every attempt the channel reported *in doubt*, is
   reconciled with the provider (Twilio: the messages sent to that number since
   the attempt) before anything is sent again;
4. when the database stops taking writes (a full disk, a lost connection) the tick
   stops sending, gives back every lease it holds (an attempt whose outcome it could
   not record goes in doubt) and raises :class:`~reminders.errors.StoreError` saying
   so: nothing is left ``sending`` for the length of a lease, nothing is sent twice.

What happens to each claimed reminder is decided by the pure functions of
:mod:`reminders.lifecycle` and applied by the store in one call
(:meth:`Outbox.settle`).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

from reminders import lifecycle, logs
from reminders.channels.base import Channel, Message, Reconciling, body_digest
from reminders.compose import Composer
from reminders.errors import DeliveryError, StoreError, TemplateError
from reminders.lifecycle import MessageKind, Outcome, Transition
from reminders.models import Schedules
from reminders.planning import in_window, next_window_open
from reminders.ratelimit import TokenBucket
from reminders.retry import RetryPolicy
from reminders.sms import MAX_SEGMENTS, over_limit
from reminders.store import Asked, Claimed

log = logs.get("reminders.dispatch")


class Observer(Protocol):
    """Receives what the dispatcher does (metrics); must not block."""

    def outcome(self, channel: str, outcome: str, lateness: float | None) -> None:
        """One reminder's outcome; ``lateness`` in seconds after its due time for a send."""
        ...

    def provider_error(self, channel: str, code: str) -> None:
        """A provider error code was returned."""
        ...


class Outbox(Protocol):
    """What the dispatcher needs of the store (:class:`reminders.store.OutboxManager`)."""

    def prepare(self, now: datetime) -> list[int]:
        """Recover lapsed leases and expire what is overdue; returns the expired ids."""
        ...

    def claim(self, now: datetime, owner: str, lease_until: datetime, limit: int) -> list[Claimed]:
        """Lease a batch of due reminders to ``owner``."""
        ...

    def begin_attempt(
        self, r: Claimed, number: int, owner: str, now: datetime, body_digest: str
    ) -> int | None:
        """Commit an attempt before the provider is called and return its id; None (and the
        reminder settled ``suppressed``) when its address has opted out meanwhile."""
        ...

    def settle(
        self,
        r: Claimed,
        t: Transition,
        now: datetime,
        *,
        attempt_id: int | None = None,
        opens: Asked | None = None,
    ) -> None:
        """Apply one transition in one transaction (and open the check-in ``opens``)."""
        ...

    def sweep(self, schedules: Schedules, now: datetime) -> Counter[str]:
        """Close reply windows and re-escalate unacknowledged alerts due by ``now``."""
        ...

    def release_owner(self, owner: str, now: datetime) -> int:
        """Give back ``owner``'s leases that have no attempt in flight."""
        ...

    def complete(self, now: datetime) -> list[str]:
        """Mark enrollments with nothing left to send ``completed``."""
        ...

    def give_back(self, owner: str, now: datetime) -> tuple[int, int]:
        """Return every lease of ``owner``, an attempt in flight put in doubt; (given back, in doubt)."""
        ...


class _Halted(Exception):
    """A claimed reminder left untouched because the database stopped taking writes."""


@dataclass
class TickReport:
    """Counts of what one tick did, by outcome."""

    #: Outcome -> count; see :class:`~reminders.lifecycle.Outcome`.
    counts: Counter[str] = field(default_factory=Counter)
    #: What the check-in sweep did: check-ins closed unanswered, missed-reply alerts,
    #: urgent alerts re-escalated.
    sweep: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, int]:
        """JSON-ready counts, every outcome and sweep count present."""
        counts = {str(k): int(self.counts.get(k, 0)) for k in Outcome}
        return counts | {k: int(self.sweep.get(k, 0)) for k in SWEEP_COUNTS}


#: What :meth:`Outbox.sweep` counts (always present in ``tick --json``).
SWEEP_COUNTS: Final = ("check_ins_unanswered", "missed_reply_alerts", "escalated")


class Dispatcher:
    """Delivers due reminders through the configured channels."""

    def __init__(
        self,
        outbox: Outbox,
        composer: Composer,
        channels: Mapping[str, Channel],
        *,
        owner: str,
        limits: Mapping[str, TokenBucket] | None = None,
        workers: int = 8,
        lease: timedelta = timedelta(minutes=10),
        batch_size: int = 100,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observer: Observer | None = None,
    ) -> None:
        self.outbox = outbox
        self.composer = composer
        self.channels = channels
        #: Lease owner name: unique per process.
        self.owner = owner
        self.limits = dict(limits or {})
        self.workers = max(workers, 1)
        self.lease = lease
        self.batch_size = batch_size
        self.retry = retry or RetryPolicy()
        self.clock = clock
        self.observer = observer
        self._rng = rng or random.Random()  # noqa: S311  # jitter, not cryptography
        self._rng_lock = threading.Lock()
        self._stopping = threading.Event()
        #: The first database error of the running tick: it stops sending anything more.
        self._broken: StoreError | None = None
        self._broken_lock = threading.Lock()

    def use(self, composer: Composer) -> None:
        """Compose from a new configuration from the next reminder on (a reload)."""
        self.composer = composer

    def stop(self) -> None:
        """Stop claiming new work; sends already started finish."""
        self._stopping.set()

    def tick(self, now: datetime | None = None, *, complete: bool = True) -> TickReport:
        """Deliver everything due; ``now`` pins the clock (``tick --now``, tests).

        ``complete`` also marks finished enrollments (a full scan: the service leaves
        it to hourly housekeeping). Raises StoreError, after giving back every lease it
        holds, when the database stops taking writes.
        """
        clock: Callable[[], datetime] = (lambda: now) if now is not None else self.clock
        report = TickReport()
        self._broken = None
        try:
            report.counts[Outcome.EXPIRED] += len(self.outbox.prepare(clock()))
            report.sweep.update(self.outbox.sweep(self.composer.schedules, clock()))
            with ThreadPoolExecutor(self.workers, thread_name_prefix="dispatch") as pool:
                while not self._stopping.is_set() and self._broken is None:
                    at = clock()
                    claimed = self.outbox.claim(at, self.owner, at + self.lease, self.batch_size)
                    if not claimed:
                        break
                    futures = [pool.submit(self._observed, r, clock) for r in claimed]
                    for future in futures:
                        report.counts[future.result()] += 1
        except StoreError as exc:
            self._break(exc)
        finally:
            for channel in self.channels.values():
                channel.close()
        if self._broken is not None:
            raise self._given_back(self._broken, clock())
        if complete:
            self.complete(clock())
        return report

    def _break(self, exc: StoreError) -> None:
        """Remember the first database error of this tick; no reminder is sent after it."""
        with self._broken_lock:
            if self._broken is None:
                self._broken = exc

    def _given_back(self, cause: StoreError, now: datetime) -> StoreError:
        """Give back this tick's leases after ``cause``; the error that says what became of them."""
        try:
            held, doubtful = self.outbox.give_back(self.owner, now)
        except StoreError:
            minutes = max(int(self.lease.total_seconds() // 60), 1)
            return StoreError(
                f"tick stopped: {cause}; the reminders it had claimed could not be given back "
                f"either: they are claimed again once their lease lapses (within {minutes} "
                "minutes), and any that may have reached the provider is checked with it "
                "before a resend"
            )
        doubt = (
            f" ({doubtful} may have reached the provider: each is checked with it before "
            "any resend)"
            if doubtful
            else ""
        )
        return StoreError(
            f"tick stopped: {cause}; {held} claimed reminders given back, none lost{doubt}"
        )

    def complete(self, now: datetime) -> list[str]:
        """Mark enrollments with nothing left to send ``completed`` (a scan: housekeeping)."""
        return self.outbox.complete(now)

    def release(self) -> int:
        """Give back this dispatcher's leases that have no attempt in flight (on shutdown)."""
        return self.outbox.release_owner(self.owner, self.clock())

    def _settle(
        self, r: Claimed, t: Transition, now: datetime, attempt_id: int | None = None
    ) -> Outcome | None:
        opens = self._asks(r, now) if t.status in lifecycle.ACCEPTED else None
        self.outbox.settle(r, t, now, attempt_id=attempt_id, opens=opens)
        return t.outcome

    def _asks(self, r: Claimed, now: datetime) -> Asked | None:
        """The check-in a reminder opens when the provider accepts it, if it asks a question."""
        if r.kind != MessageKind.REMINDER:
            return None
        question = self.composer.schedules.question(r.protocol, r.milestone)
        if question is None:
            return None
        return Asked(
            r.patient_id,
            r.protocol,
            r.milestone,
            r.occurrence,
            r.id,
            question.kind,
            question.measure,
            now,
            now + question.window,
        )

    def _observed(self, r: Claimed, clock: Callable[[], datetime]) -> Outcome:
        try:
            if self._broken is not None:
                raise _Halted
            outcome = self._deliver(r, clock)
        except _Halted:
            return Outcome.ERROR  # untouched: given back at the end of the tick
        except StoreError as exc:
            # Its own message, no traceback: the tick stops and says it once.
            log.error("reminder.not_recorded", reminder_id=r.id, channel=r.channel, error=str(exc))
            self._break(exc)
            return Outcome.ERROR
        except Exception:
            # A bug must not stop the batch. The lease is kept: when it lapses, an
            # attempt left pending is reconciled, and one never started is retried.
            log.exception("reminder.error", reminder_id=r.id, channel=r.channel)
            return Outcome.ERROR
        sent = outcome in (Outcome.SENT, Outcome.RECONCILED)
        lateness = (clock() - r.due_at).total_seconds() if sent else None
        log.info(
            f"reminder.{outcome}",
            kind=r.kind,
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

    def _deliver(self, r: Claimed, clock: Callable[[], datetime]) -> Outcome:
        now = clock()
        composer = self.composer
        zone = composer.zone(r.recipient.timezone)
        window = composer.schedules.send_window
        # Replies to a patient's text and notices to staff go out at once, whatever the hour.
        if r.kind == MessageKind.REMINDER and not in_window(now, zone, window):
            t = lifecycle.outside_window(next_window_open(now, zone, window), r.expires_at)
            return self._settled(r, t, now)
        channel = self.channels.get(r.channel)
        if channel is None or not r.address:
            return self._settled(r, lifecycle.unreachable(r.channel), now)
        try:
            message = composer.message(r, now)
        except TemplateError as exc:
            return self._settled(r, lifecycle.unrenderable(exc.detail), now)

        if r.in_doubt_since is not None:
            settled = self._reconcile(r, channel, message, clock)
            if settled is not None:
                return settled

        if r.channel == "sms" and (count := over_limit(message.text)) is not None:
            size = f"{count.units:,} {count.encoding} units"
            t = lifecycle.sms_too_long(count.segments, MAX_SEGMENTS, size)
            return self._settled(r, t, clock())

        limit = self.limits.get(r.channel)
        if limit is not None:
            limit.acquire()
        started = clock()
        left = int((r.expires_at - started).total_seconds())
        if left <= 0:
            return self._settled(r, lifecycle.too_late(), started)
        message = replace(message, validity_seconds=left)
        number = r.attempts + 1
        if self._broken is not None:
            raise _Halted  # waited for the rate limit while another send found the database gone
        attempt = self.outbox.begin_attempt(
            r, number, self.owner, started, body_digest(message.text)
        )
        if attempt is None:
            return Outcome.SUPPRESSED
        try:
            receipt = channel.send(message)
        except DeliveryError as exc:
            done = clock()
            if exc.code and self.observer is not None:
                self.observer.provider_error(r.channel, exc.code)
            with self._rng_lock:
                t = lifecycle.delivery_failed(
                    exc,
                    now=done,
                    attempt=number,
                    expires_at=r.expires_at,
                    policy=self.retry,
                    rng=self._rng,
                )
            return self._settled(r, t, done, attempt)
        t = lifecycle.accepted(receipt.provider_id, receipt.status, number)
        return self._settled(r, t, clock(), attempt)

    def _settled(
        self, r: Claimed, t: Transition, now: datetime, attempt_id: int | None = None
    ) -> Outcome:
        """Apply a transition that ends this reminder's turn."""
        outcome = self._settle(r, t, now, attempt_id)
        assert outcome is not None  # noqa: S101  # only reconciliation may go on
        return outcome

    def _reconcile(
        self, r: Claimed, channel: Channel, message: Message, clock: Callable[[], datetime]
    ) -> Outcome | None:
        """Settle an in-doubt reminder before resending; ``None`` means: go ahead and send."""
        assert r.in_doubt_since is not None  # noqa: S101  # the caller checked
        now = clock()
        if not isinstance(channel, Reconciling):
            # No way to ask (SMTP): resend with the same Message-ID so mail clients can
            # fold a duplicate; record that this was a resend after doubt.
            return self._settle(r, lifecycle.resend_unasked(), now)
        try:
            found = channel.reconcile(message, r.in_doubt_since, r.in_doubt_digests)
        except DeliveryError as exc:
            with self._rng_lock:
                t = lifecycle.reconcile_failed(
                    exc,
                    now=now,
                    attempts=r.attempts,
                    expires_at=r.expires_at,
                    policy=self.retry,
                    rng=self._rng,
                )
            return self._settle(r, t, now)
        if found is None:
            return self._settle(r, lifecycle.absent_at_provider(now, r.expires_at), now)
        return self._settle(r, lifecycle.found_at_provider(found.provider_id), now)
