"""The dispatcher: expire, claim, reconcile, compose, send, settle.

:meth:`Dispatcher.tick` delivers everything due and counts the outcomes. The outbox decides
what is due; whoever calls ``tick`` (the CLI, the scheduler, a test) only decides when.

Exactly once, per channel, across crashes and instances:

1. due reminders are leased in one transaction (``status='sending'``, owner, expiry);
2. the attempt is committed *before* the provider is called, and only while the lease is
   still held; its outcome after (a batch's attempts in one transaction, outcomes in another);
3. a lease that lapses with no attempt in flight goes back to ``planned``; one that
   lapses mid-attempt, and every attempt the channel reported *in doubt*, is
   reconciled with the provider (Twilio: the messages sent to that number since
   the attempt) before anything is sent again;
4. when the database stops taking writes (a full disk, a lost connection) the tick
   stops sending, gives back every lease it holds (an attempt whose outcome it could
   not record goes in doubt) and raises :class:`~reminders.errors.StoreError` saying
   so: nothing is left ``sending`` for the length of a lease, nothing is sent twice.

What becomes of each claimed reminder is decided by the pure functions of
:mod:`reminders.lifecycle`, applied by the store a batch at a time (:meth:`Outbox.settle_many`).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Final

from reminders import lifecycle, logs
from reminders.channels.base import Channel, Message, Reconciling, body_digest
from reminders.compose import Composer
from reminders.errors import DeliveryError, StoreError, TemplateError
from reminders.lifecycle import MessageKind, Outcome, Transition
from reminders.planning import in_window, next_window_open
from reminders.ports import Observer, Outbox
from reminders.ratelimit import TokenBucket
from reminders.retry import RetryPolicy
from reminders.sms import MAX_SEGMENTS, over_limit
from reminders.store import Asked, Claimed, Settlement

#: Observer and Outbox stay importable from here (they were defined here before ports).
__all__ = ["SWEEP_COUNTS", "Dispatcher", "Observer", "Outbox", "TickReport"]

log = logs.get("reminders.dispatch")


@dataclass(frozen=True, slots=True)
class _Ready:
    """A claimed reminder composed and cleared to go: its attempt is next."""

    r: Claimed
    channel: Channel
    message: Message


@dataclass(frozen=True, slots=True)
class _Done:
    """What became of a claimed reminder, already recorded (or left to its lease)."""

    outcome: Outcome
    #: When the provider took it, for the lateness of a send.
    sent_at: datetime | None = None

    @classmethod
    def of(cls, s: Settlement) -> _Done:
        """The end of a reminder's turn that ``s`` records."""
        assert s.t.outcome is not None  # noqa: S101  # only reconciliation may go on
        sent = s.t.outcome in (Outcome.SENT, Outcome.RECONCILED)
        return cls(s.t.outcome, s.now if sent else None)


#: One claimed reminder's state within a batch.
_Step = _Ready | Settlement | _Done


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
                    report.counts.update(self._batch(claimed, pool, clock))
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

    def _batch(
        self, claimed: list[Claimed], pool: ThreadPoolExecutor, clock: Callable[[], datetime]
    ) -> list[Outcome]:
        """Deliver one claimed batch; the outcome of each reminder, in order.

        Three writes for the whole batch rather than two per message: every message is
        composed (and any in-doubt one reconciled) in the pool; the attempts of those to
        send are committed in one transaction *before* any of them is handed to the
        provider; the sends run in the pool; their outcomes, with every decision that
        sent nothing, are written in one transaction. A process that dies after the
        attempts' commit leaves them ``pending`` under its lease, whether or not their
        send happened: when the lease lapses they go in doubt and are reconciled with the
        provider before any resend, as after a death during a single send. A database
        error on the last write gives back every lease, the sent ones in doubt.
        Rate-limited channels wait for a token per message: those are sent and recorded
        one by one (:meth:`_one_by_one`), as a batch would outlive their lease.
        """
        steps: list[_Step] = list(
            pool.map(lambda r: self._guarded(r, lambda: self._prepare(r, clock)), claimed)
        )
        sends: dict[int, Future[_Step]] = {}
        batched: list[int] = []
        for i, step in enumerate(steps):
            if isinstance(step, _Ready):
                if self._limited(step.r.channel):
                    sends[i] = pool.submit(
                        self._guarded, step.r, partial(self._one_by_one, step, clock)
                    )
                else:
                    batched.append(i)
        sends |= self._begin_and_send(steps, batched, pool, clock)
        for i, future in sends.items():
            steps[i] = future.result()
        decided = [step for step in steps if isinstance(step, Settlement)]
        try:
            self.outbox.settle_many(decided)
        except StoreError as exc:
            # Its own message, no traceback: the tick stops and says it once.
            log.error("batch.not_recorded", reminders=len(decided), error=str(exc))
            self._break(exc)
            steps = [_Done(Outcome.ERROR) if isinstance(s, Settlement) else s for s in steps]
        return [self._observe(r, step) for r, step in zip(claimed, steps, strict=True)]

    def _limited(self, channel: str) -> bool:
        limit = self.limits.get(channel)
        return limit is not None and limit.rate > 0

    def _begin_and_send(
        self,
        steps: list[_Step],
        ready: list[int],
        pool: ThreadPoolExecutor,
        clock: Callable[[], datetime],
    ) -> dict[int, Future[_Step]]:
        """Commit the attempts of ``steps[ready]`` in one transaction, then submit their sends.

        What sends nothing is written into ``steps``: too late, opted out meanwhile, or
        left untouched (given back at the end of the tick) when the database failed.
        """
        if not ready:
            return {}
        if self._broken is not None:
            for i in ready:
                steps[i] = _Done(Outcome.ERROR)  # untouched: given back at the end of the tick
            return {}
        for i in ready:
            step = steps[i]
            assert isinstance(step, _Ready)  # noqa: S101  # the caller chose them so
            limit = self.limits.get(step.r.channel)
            if limit is not None:
                limit.acquire()  # off (rate 0): returns at once
        started = clock()
        batch: list[tuple[int, _Ready]] = []
        for i in ready:
            step = steps[i]
            assert isinstance(step, _Ready)  # noqa: S101  # the caller chose them so
            left = int((step.r.expires_at - started).total_seconds())
            if left <= 0:
                steps[i] = self._settlement(step.r, lifecycle.too_late(), started)
            else:
                batch.append(
                    (i, replace(step, message=replace(step.message, validity_seconds=left)))
                )
        try:
            attempts = self.outbox.begin_attempts(
                [(s.r, s.r.attempts + 1, body_digest(s.message.text)) for _, s in batch],
                self.owner,
                started,
            )
        except StoreError as exc:
            log.error("batch.not_recorded", reminders=len(batch), error=str(exc))
            self._break(exc)
            for i, _ in batch:
                steps[i] = _Done(Outcome.ERROR)  # nothing sent: given back at the end
            return {}
        sends: dict[int, Future[_Step]] = {}
        for (i, step), attempt in zip(batch, attempts, strict=True):
            if isinstance(attempt, Outcome):  # opted out (settled), or the lease was lost
                steps[i] = _Done(self._unsent(step.r, attempt))
            else:
                sends[i] = pool.submit(
                    self._guarded, step.r, partial(self._send, step, attempt, clock)
                )
        return sends

    def _one_by_one(self, step: _Ready, clock: Callable[[], datetime]) -> _Step:
        """Wait for the channel's rate limit, then begin, send and record this one message."""
        r = step.r
        self.limits[r.channel].acquire()
        started = clock()
        left = int((r.expires_at - started).total_seconds())
        if left <= 0:
            settled = self._settlement(r, lifecycle.too_late(), started)
        else:
            if self._broken is not None:
                raise _Halted  # waited for the rate limit while another send found the database gone
            message = replace(step.message, validity_seconds=left)
            attempt = self.outbox.begin_attempts(
                [(r, r.attempts + 1, body_digest(message.text))], self.owner, started
            )[0]
            if isinstance(attempt, Outcome):
                return _Done(self._unsent(r, attempt))
            settled = self._send(replace(step, message=message), attempt, clock)
        self.outbox.settle_many([settled])
        return _Done.of(settled)

    def _unsent(self, r: Claimed, outcome: Outcome) -> Outcome:
        """What ``begin_attempts`` said instead of an attempt id (logged when the lease was lost)."""
        if outcome is Outcome.DEFERRED:
            log.warning("reminder.lease_lost", reminder_id=r.id, owner=self.owner)
        return outcome

    def _send(self, step: _Ready, attempt: int, clock: Callable[[], datetime]) -> Settlement:
        """Hand one message whose attempt is committed to its channel; what to record."""
        r, number = step.r, step.r.attempts + 1
        try:
            receipt = step.channel.send(step.message)
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
            return self._settlement(r, t, done, attempt)
        t = lifecycle.accepted(receipt.provider_id, receipt.status, number)
        return self._settlement(r, t, clock(), attempt)

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

    def _settle(self, r: Claimed, t: Transition, now: datetime) -> Outcome | None:
        """Apply ``t`` now, in a transaction of its own (reconciliation)."""
        self.outbox.settle(r, t, now)
        return t.outcome

    def _settlement(
        self, r: Claimed, t: Transition, now: datetime, attempt_id: int | None = None
    ) -> Settlement:
        """``t`` to record for ``r``, with the check-in it opens if the provider accepted a question."""
        opens = self._asks(r, now) if t.status in lifecycle.ACCEPTED else None
        return Settlement(r, t, now, attempt_id, opens)

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

    def _guarded(self, r: Claimed, step: Callable[[], _Step]) -> _Step:
        """Run one step for ``r``; an error ends this reminder's turn, not the batch."""
        try:
            if self._broken is not None:
                raise _Halted
            return step()
        except _Halted:
            return _Done(Outcome.ERROR)  # untouched: given back at the end of the tick
        except StoreError as exc:
            # Its own message, no traceback: the tick stops and says it once.
            log.error("reminder.not_recorded", reminder_id=r.id, channel=r.channel, error=str(exc))
            self._break(exc)
            return _Done(Outcome.ERROR)
        except Exception:
            # A bug must not stop the batch. The lease is kept: when it lapses, an
            # attempt left pending is reconciled, and one never started is retried.
            log.exception("reminder.error", reminder_id=r.id, channel=r.channel)
            return _Done(Outcome.ERROR)

    def _observe(self, r: Claimed, step: _Step) -> Outcome:
        """Log and count what became of ``r``."""
        done = _Done.of(step) if isinstance(step, Settlement) else step
        assert isinstance(done, _Done)  # noqa: S101  # every ready message was sent or dropped
        if done.outcome is Outcome.ERROR:
            return done.outcome  # logged where it happened; nothing recorded
        log.info(
            f"reminder.{done.outcome}",
            kind=r.kind,
            reminder_id=r.id,
            patient_id=r.patient_id,
            milestone=r.milestone,
            occurrence=r.occurrence,
            channel=r.channel,
            attempt=r.attempts + 1,
        )
        if self.observer is not None:
            lateness = (done.sent_at - r.due_at).total_seconds() if done.sent_at else None
            self.observer.outcome(r.channel, done.outcome, lateness)
        return done.outcome

    def _prepare(self, r: Claimed, clock: Callable[[], datetime]) -> _Step:
        """Compose ``r``'s message (reconciling it first if in doubt): ready to send, or
        what to record instead."""
        now = clock()
        composer = self.composer
        zone = composer.zone(r.recipient.timezone)
        window = composer.schedules.send_window
        # Replies to a patient's text and notices to staff go out at once, whatever the hour.
        if r.kind == MessageKind.REMINDER and not in_window(now, zone, window):
            t = lifecycle.outside_window(next_window_open(now, zone, window), r.expires_at)
            return self._settlement(r, t, now)
        channel = self.channels.get(r.channel)
        if channel is None or not r.address:
            return self._settlement(r, lifecycle.unreachable(r.channel), now)
        try:
            message = composer.message(r, now)
        except TemplateError as exc:
            return self._settlement(r, lifecycle.unrenderable(exc.detail), now)

        if r.in_doubt_since is not None:
            settled = self._reconcile(r, channel, message, clock)
            if settled is not None:
                return _Done(settled, now if settled == Outcome.RECONCILED else None)

        if r.channel == "sms" and (count := over_limit(message.text)) is not None:
            size = f"{count.units:,} {count.encoding} units"
            t = lifecycle.sms_too_long(count.segments, MAX_SEGMENTS, size)
            return self._settlement(r, t, clock())
        return _Ready(r, channel, message)

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
