"""Alerts: raised from answers and silences, told to the care team through the outbox.

Everything here runs inside the caller's write transaction, so an alert, its notices
and its audit record are stored together or not at all; the outbox then delivers the
notices exactly once, with retries, like any reminder.

Who is told (``schedules.yaml`` ``clinic``)::

    urgent alert   care_team (email) + on_call (SMS)     notices/alert-urgent
    review alert   care_team (email)                      notices/alert-review
    not acknowledged within ack_within: on_call again     notices/escalation (once)

A notice carries the alert's id and level, the clinic's patient id and where to open it
(the dashboard link, or the ``reminders alerts`` command), never a name, phone number,
diagnosis or what the patient wrote.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Final

from reminders import logs
from reminders.lifecycle import AlertLevel, MessageKind
from reminders.models import Schedules
from reminders.questions import Firing, judge_missed
from reminders.store import CheckIn, Outgoing, Transaction

log = logs.get("reminders.alerts")

#: How long a notice may wait for its provider: late is better than never for the care team.
NOTICE_EXPIRY: Final = timedelta(days=2)
#: Rounds of an alert's notices: the first telling, and the re-escalation.
FIRST, ESCALATION = 1, 2
#: Where the alert came from (one alert per check-in and source).
ANSWER, MISSED = "answer", "missed"


def notices(
    schedules: Schedules, alert_id: int, check_in: CheckIn, level: AlertLevel, round_: int
) -> list[Outgoing]:
    """The notices of one alert's round: care team (first round) and on-call (urgent)."""
    clinic = schedules.clinic
    key = f"notice:alert:{alert_id}"

    def notice(channel: str, index: int, address: str, template: str) -> Outgoing:
        return Outgoing(
            patient_id=check_in.patient_id,
            protocol=check_in.protocol,
            milestone=f"{key}:{index}",
            occurrence=round_,
            channel=channel,
            template=template,
            kind=MessageKind.NOTICE,
            expires_after=NOTICE_EXPIRY,
            address=address,
            alert_id=alert_id,
        )

    out: list[Outgoing] = []
    if round_ == FIRST:
        template = f"notices/alert-{level}"
        out += [notice("email", i, a, template) for i, a in enumerate(clinic.care_team)]
        if level == AlertLevel.URGENT:
            out += [notice("sms", i, a, template) for i, a in enumerate(clinic.on_call)]
    elif level == AlertLevel.URGENT:
        out += [notice("sms", i, a, "notices/escalation") for i, a in enumerate(clinic.on_call)]
    return out


def raise_alert(
    tx: Transaction,
    schedules: Schedules,
    check_in: CheckIn,
    firing: Firing,
    *,
    source: str,
    now: datetime,
) -> tuple[int, int] | None:
    """Store the alert of ``firing`` and queue its notices; returns the alert's id and how
    many notices were queued, or None if it was raised before."""
    alert_id = tx.alerts.raise_once(
        check_in,
        source=source,
        level=firing.level,
        reason=",".join(firing.codes),
        words=firing.words,
        now=now,
    )
    if alert_id is None:
        return None
    queued = tx.outbox.queue(notices(schedules, alert_id, check_in, firing.level, FIRST), now)
    tx.audit(
        [
            {
                "at": now,
                "kind": "alert.raised",
                "patient_id": check_in.patient_id,
                "detail": {
                    "alert_id": alert_id,
                    "level": firing.level,
                    "reason": ",".join(firing.codes),
                    "check_in_id": check_in.id,
                    "notices": len(queued),
                },
            }
        ]
    )
    log.info(
        "alert.raised",
        alert_id=alert_id,
        level=firing.level,
        patient_id=check_in.patient_id,
        reason=",".join(firing.codes),
    )
    return alert_id, len(queued)


def sweep(tx: Transaction, schedules: Schedules, now: datetime) -> Counter[str]:
    """Close reply windows due by ``now`` (missed-reply rules) and re-escalate urgent alerts
    nobody acknowledged within ``ack_within``; returns what it did, by name."""
    done: Counter[str] = Counter()
    for check_in in tx.checkins.close_due(now):
        done["check_ins_unanswered"] += 1
        tx.audit(
            [
                {
                    "at": now,
                    "kind": "check_in.unanswered",
                    "patient_id": check_in.patient_id,
                    "reminder_id": check_in.reminder_id,
                    "detail": {"check_in_id": check_in.id, "milestone": check_in.milestone},
                }
            ]
        )
        question = schedules.question(check_in.protocol, check_in.milestone)
        if question is None:
            continue
        firing = judge_missed(question, tx.checkins.unanswered_run(check_in))
        if firing is not None and raise_alert(
            tx, schedules, check_in, firing, source=MISSED, now=now
        ):
            done["missed_reply_alerts"] += 1
    for alert in tx.alerts.due_escalation(now - schedules.ack_within):
        assert alert.id is not None  # noqa: S101  # stored alerts have ids
        if not tx.alerts.mark_escalated(alert.id, now):
            continue
        asked = tx.checkins.get(alert.check_in_id)
        if asked is None:  # pragma: no cover - alerts are raised from stored check-ins
            continue
        level = AlertLevel(alert.level)
        queued = tx.outbox.queue(notices(schedules, alert.id, asked, level, ESCALATION), now)
        tx.audit(
            [
                {
                    "at": now,
                    "kind": "alert.escalated",
                    "patient_id": alert.patient_id,
                    "detail": {"alert_id": alert.id, "notices": len(queued)},
                }
            ]
        )
        log.warning("alert.escalated", alert_id=alert.id, patient_id=alert.patient_id)
        done["escalated"] += 1
    return done
