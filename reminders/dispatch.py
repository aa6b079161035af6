"""The dispatcher: expire, claim, render, send, record.

One :meth:`Dispatcher.tick` delivers everything due at ``now`` and returns the counts
of each outcome. The outbox decides what is due; whoever calls ``tick`` (the CLI, the
APScheduler job, a test) only decides when.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from reminders.channels.base import Channel, Message
from reminders.errors import (
    DeliveryError,
    InDoubtError,
    PermanentError,
    TemplateError,
    TransientError,
)
from reminders.models import Schedules
from reminders.planning import in_window, next_window_open
from reminders.retry import RetryPolicy
from reminders.store import Claimed, Store
from reminders.templates import Templates, message_context


@dataclass
class TickReport:
    """Counts of what one tick did, by outcome."""

    #: ``sent``, ``failed``, ``retry``, ``expired``, ``suppressed``, ``deferred``, ``in_doubt``.
    counts: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, int]:
        """JSON-ready counts, every outcome present."""
        keys = ("sent", "failed", "retry", "expired", "suppressed", "deferred", "in_doubt")
        return {k: int(self.counts.get(k, 0)) for k in keys}


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
        lease: timedelta = timedelta(minutes=5),
        batch_size: int = 200,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        message_domain: str = "recovery-reminders.invalid",
    ) -> None:
        self.store = store
        self.schedules = schedules
        self.templates = templates
        self.channels = channels
        #: Lease owner name: unique per process.
        self.owner = owner
        self.lease = lease
        self.batch_size = batch_size
        self.retry = retry or RetryPolicy()
        self._rng = rng or random.Random()  # noqa: S311  # jitter, not cryptography
        self._domain = message_domain
        self._zones: dict[str, ZoneInfo] = {}

    def tick(self, now: datetime) -> TickReport:
        """Deliver everything due at ``now``; returns the outcome counts."""
        report = TickReport()
        with self.store.write() as tx:
            expired = tx.expire_overdue(now)
            tx.recover_expired_leases(now)
            tx.audit({"at": now, "kind": "reminder.expired", "reminder_id": rid} for rid in expired)
        report.counts["expired"] += len(expired)
        while True:
            with self.store.write() as tx:
                claimed = tx.claim_due(now, self.owner, now + self.lease, self.batch_size)
                opted = {
                    channel: tx.opted_out(
                        channel, (c.address for c in claimed if c.channel == channel and c.address)
                    )
                    for channel in self.channels
                }
            if not claimed:
                break
            for reminder in claimed:
                report.counts[self._deliver(reminder, now, opted)] += 1
        with self.store.write() as tx:
            done = tx.complete_finished(now)
            tx.audit({"at": now, "kind": "enrollment.completed", "patient_id": pid} for pid in done)
        return report

    def release(self, now: datetime) -> int:
        """Give back this dispatcher's leases that have no attempt in flight (on shutdown)."""
        with self.store.write() as tx:
            return tx.release_owner(self.owner, now)

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

    def _deliver(self, r: Claimed, now: datetime, opted: Mapping[str, set[str]]) -> str:
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
        if r.address in opted.get(r.channel, set()):
            return self._finish(r, now, "suppressed", "reminder.suppressed", reason="opted out")
        local = now.astimezone(zone)
        try:
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
                    send_date=local.date(),
                ),
            )
        except TemplateError as exc:
            return self._finish(
                r, now, "failed", "reminder.failed", reason=f"template: {exc.detail}"
            )
        message = Message(
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
        )
        number = r.attempts + 1
        with self.store.write() as tx:
            attempt = tx.begin_attempt(r.id, number, self.owner, now)
        try:
            receipt = channel.send(message)
        except DeliveryError as exc:
            return self._failed(r, now, attempt, number, exc)
        with self.store.write() as tx:
            tx.finish_attempt(
                attempt,
                r.id,
                outcome="sent",
                status=receipt.status,
                now=now,
                provider_id=receipt.provider_id,
            )
            tx.audit(
                [
                    _event(
                        now,
                        "reminder.sent",
                        r,
                        {"provider_id": receipt.provider_id, "attempt": number},
                    )
                ]
            )
        return "sent"

    def _failed(
        self, r: Claimed, now: datetime, attempt: int, number: int, exc: DeliveryError
    ) -> str:
        code = exc.code or None
        detail: dict[str, Any] = {"attempt": number, "code": code}
        with self.store.write() as tx:
            if isinstance(exc, TransientError):
                when = self.retry.next_try(now, number, r.expires_at, self._rng, exc.retry_after)
                status, outcome = ("planned", "retry") if when else ("expired", "expired")
                tx.finish_attempt(
                    attempt,
                    r.id,
                    outcome="transient",
                    status=status,
                    now=now,
                    error_code=code,
                    error=str(exc),
                    not_before=when,
                )
            elif isinstance(exc, InDoubtError):
                # Leave it leased-but-lapsed: recovery sees the in-doubt attempt and the
                # reconciler, not a blind resend, decides whether it went out.
                tx.finish_attempt(
                    attempt, r.id, outcome="in_doubt", status="sending", now=now, error=str(exc)
                )
                status, outcome = "sending", "in_doubt"
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
                    tx.opt_out(r.channel, r.address, now, source=f"provider {code}")
                    detail["opted_out"] = True
            tx.audit([_event(now, f"reminder.{outcome}", r, detail)])
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
