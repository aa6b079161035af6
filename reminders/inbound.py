"""One inbound text, handled exactly once: stored, read, answered, alerted, forwarded.

``POST /twilio/inbound`` and ``reminders inbound`` both call :func:`receive`; everything
it decides is written in one transaction, keyed by the text's MessageSid, so a webhook
Twilio retries, a text replayed with ``inbound --sid`` or two instances handling the
same burst change nothing the second time::

    text ──store once (by sid)──> read (reminders.replies) against the open check-in
      STOP        opt the number out (and forward a sentence: it may say more)
      START       opt back in
      HELP        answer: who we are, whom to call                     responses/help
      answer      record it; judge the rules -> one alert + notices;
                  urgent: a safety reply to the patient                 responses/safety
      unreadable  ask again once (responses/reprompt-<kind>), then as free text
      free text   forward to the coordinator; at most once a day tell the patient the
                  number is not watched for urgent problems           responses/unwatched

Replies to patients and notices to staff go through the outbox like reminders (exactly
once, retried, audited) but leave at once, whatever the hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from reminders import logs
from reminders.alerting import ANSWER, raise_alert
from reminders.lifecycle import AlertLevel, MessageKind
from reminders.models import Schedules
from reminders.questions import judge_answer
from reminders.replies import Reading, ReplyKind, read_reply
from reminders.store import CheckIn, Enrollment, Outgoing, Store, Transaction

log = logs.get("reminders.inbound")

#: How long a reply to a patient may wait for the provider: after that it is stale.
RESPONSE_EXPIRY: Final = timedelta(hours=6)
#: Day numbers of the once-a-day answer count from here.
_EPOCH: Final = date(2000, 1, 1)


@dataclass(frozen=True, slots=True)
class Text:
    """One text a patient sent, as the provider reported it."""

    #: The sender's number, E.164.
    sender: str
    #: What they wrote (PHI: stored, never logged).
    body: str
    #: The provider's message id (Twilio's MessageSid): one text is handled once.
    sid: str
    #: When it arrived.
    at: datetime
    #: ``sms`` (the webhook) or ``cli`` (``reminders inbound``).
    via: str = "sms"


@dataclass(frozen=True, slots=True)
class Handled:
    """What handling one text did (ids and counts only: safe to log and print)."""

    #: The text was handled before (same sid): nothing was done now.
    duplicate: bool
    #: How it was read (:class:`~reminders.replies.ReplyKind`).
    kind: str = ""
    #: The stored inbound row.
    inbound_id: int | None = None
    #: Enrolled patients with that number.
    patients: tuple[str, ...] = ()
    #: The check-in it answered (or tried to).
    check_in_id: int | None = None
    #: The alert it raised, and its level.
    alert_id: int | None = None
    level: str | None = None
    #: Replies and notices queued.
    queued: int = 0
    #: Reminders an opt-out or opt-in changed.
    changed: int = 0


def receive(store: Store, schedules: Schedules, text: Text) -> Handled:
    """Handle one inbound text in one transaction (see the module's docstring)."""
    with store.write() as tx:
        check_in = tx.checkins.open_for(text.sender, text.at)
        question = schedules.question(check_in.protocol, check_in.milestone) if check_in else None
        if question is None:
            check_in = None
        patients = tx.contacts.patients_with("sms", text.sender)
        owner = check_in.patient_id if check_in else (patients[0] if patients else None)
        enrollment = tx.views.enrollment(owner) if owner else None
        language = enrollment.language if enrollment else schedules.languages[0]
        reading = read_reply(text.body, question.reading if question else None, language)
        stored = tx.contacts.record_inbound(
            text.sender, text.body, str(reading.kind), text.at, provider_id=text.sid
        )
        if stored is None:
            return Handled(duplicate=True)
        inbound_id, _ = stored
        handled = _Handling(
            tx,
            schedules,
            text,
            inbound_id=inbound_id,
            enrollment=enrollment,
            patients=tuple(patients),
        )
        result = handled.act(reading, check_in)
    log.info(
        "sms.inbound",
        kind=result.kind,
        via=text.via,
        patients=list(result.patients),
        check_in_id=result.check_in_id,
        alert_id=result.alert_id,
        level=result.level,
        queued=result.queued,
        reminders_changed=result.changed,
    )
    return result


def answer(
    tx: Transaction,
    schedules: Schedules,
    check_in: CheckIn,
    value: int,
    now: datetime,
    *,
    via: str,
    inbound_id: int | None = None,
) -> Judged | None:
    """Record ``value`` as the answer of an open check-in and judge it; returns what it
    raised, or None if the check-in was no longer open. Shared by texts and the page."""
    assert check_in.id is not None  # noqa: S101  # stored check-ins have ids
    previous = tx.checkins.previous_value(check_in)
    if not tx.checkins.answer(check_in.id, value, now, via=via, inbound_id=inbound_id):
        return None
    tx.audit(
        [
            {
                "at": now,
                "kind": "check_in.answered",
                "patient_id": check_in.patient_id,
                "reminder_id": check_in.reminder_id,
                "detail": {"check_in_id": check_in.id, "via": via},
            }
        ]
    )
    question = schedules.question(check_in.protocol, check_in.milestone)
    firing = judge_answer(question, value, previous) if question else None
    if firing is None:
        return Judged()
    raised = raise_alert(tx, schedules, check_in, firing, source=ANSWER, now=now)
    if raised is None:  # pragma: no cover - an answer closes its check-in: one firing
        return Judged(level=firing.level)
    return Judged(raised[0], firing.level, raised[1])


@dataclass(frozen=True, slots=True)
class Judged:
    """What an answer raised: an alert (its id and level) and how many notices were queued."""

    alert_id: int | None = None
    level: AlertLevel | None = None
    notices: int = 0


class _Handling:
    """The decisions about one stored text, inside its transaction."""

    def __init__(
        self,
        tx: Transaction,
        schedules: Schedules,
        text: Text,
        *,
        inbound_id: int,
        enrollment: Enrollment | None,
        patients: tuple[str, ...],
    ) -> None:
        self.tx, self.schedules, self.text = tx, schedules, text
        self.inbound_id, self.enrollment, self.patients = inbound_id, enrollment, patients
        self.queued = 0

    def act(self, reading: Reading, check_in: CheckIn | None) -> Handled:
        kind = reading.kind
        changed, alert_id, level = 0, None, None
        if kind in (ReplyKind.STOP, ReplyKind.START):
            changed = self._opt(stop=kind is ReplyKind.STOP)
            if reading.in_sentence:
                self._forward()
        elif kind is ReplyKind.HELP:
            self._respond("help", self.inbound_id)
        elif kind is ReplyKind.ANSWER and check_in is not None and reading.value is not None:
            judged = answer(
                self.tx,
                self.schedules,
                check_in,
                reading.value,
                self.text.at,
                via=self.text.via,
                inbound_id=self.inbound_id,
            )
            if judged is not None:
                alert_id, level = judged.alert_id, judged.level
                self.queued += judged.notices
            if level == AlertLevel.URGENT:
                self._respond("safety", self.inbound_id)
        elif kind is ReplyKind.UNREADABLE and check_in is not None:
            assert check_in.id is not None  # noqa: S101  # stored check-ins have ids
            if self.tx.checkins.reprompt(check_in.id):
                self._respond(reading.reprompt or "reprompt-scale", check_in.id)
            else:
                self._forward()
        else:
            self._forward()
            self._respond("unwatched", self._today())
        return Handled(
            duplicate=False,
            kind=str(kind),
            inbound_id=self.inbound_id,
            patients=self.patients,
            check_in_id=check_in.id if check_in else None,
            alert_id=alert_id,
            level=level,
            queued=self.queued,
            changed=changed,
        )

    def _opt(self, *, stop: bool) -> int:
        now, sender = self.text.at, self.text.sender
        source = f"sms {'stop' if stop else 'start'}"
        changed = self.tx.contacts.opt_out("sms", sender, now, source=source, opted_out=stop)
        if stop:  # no answer is awaited from someone who opted out: no missed-reply alert
            self.tx.checkins.cancel_open_for(sender)
        self.tx.audit(
            {
                "at": now,
                "kind": f"opt_out.sms.{'on' if stop else 'off'}",
                "patient_id": pid,
                "detail": {"source": f"inbound {self.text.via}", "reminders": changed},
            }
            for pid in (list[str | None](self.patients) or [None])
        )
        return changed

    def _today(self) -> int:
        zone = self.enrollment.timezone if self.enrollment else self.schedules.clinic.timezone
        return (self.text.at.astimezone(ZoneInfo(zone)).date() - _EPOCH).days

    def _respond(self, what: str, occurrence: int) -> None:
        """Queue a reply to the sender in their language (only to an enrolled patient)."""
        e = self.enrollment
        if e is None:
            return
        reply = Outgoing(
            patient_id=e.patient_id,
            protocol=e.protocol,
            milestone=f"response:{what}",
            occurrence=occurrence,
            channel="sms",
            template=f"responses/{what}",
            kind=MessageKind.RESPONSE,
            expires_after=RESPONSE_EXPIRY,
            address=self.text.sender,
            inbound_id=self.inbound_id,
        )
        self.queued += len(self.tx.outbox.queue([reply], self.text.at))

    def _forward(self) -> None:
        """Queue the text to the coordinator (or the care team) as a notice."""
        clinic = self.schedules.clinic
        to = (clinic.coordinator_email,) if clinic.coordinator_email else clinic.care_team
        if not to:
            log.warning(
                "inbound.not_forwarded",
                reason="no coordinator_email or care_team",
                id=self.inbound_id,
            )
            return
        e = self.enrollment
        notices = [
            Outgoing(
                patient_id=e.patient_id if e else "",
                protocol=e.protocol if e else "",
                milestone=f"notice:forward:{i}",
                occurrence=self.inbound_id,
                channel="email",
                template="notices/forward",
                kind=MessageKind.NOTICE,
                expires_after=timedelta(days=2),
                address=address,
                inbound_id=self.inbound_id,
            )
            for i, address in enumerate(to)
        ]
        self.queued += len(self.tx.outbox.queue(notices, self.text.at))
