"""Check-ins end to end inside the package: asked, answered by text, judged, alerted, told.

Every test runs the shipped protocol on SQLite and PostgreSQL, with the dispatcher
delivering through memory channels and texts handled by :func:`reminders.inbound.receive`
(what ``POST /twilio/inbound`` and ``reminders inbound`` call).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from reminders.metrics import Metrics
from reminders.models import Schedules
from reminders.states import AlertLevel
from reminders.store import Store
from reminders.templates import Templates
from tests.integration.checkin_desk import ASKED, PHONES, PRIVATE, Desk, open_desk

CARE_TEAM = "care-team@example.com"
ON_CALL = "+12015550199"


@pytest.fixture
def desk(store: Store, shipped: Schedules, templates: Templates, tmp_path: Path) -> Iterator[Desk]:
    """The shipped protocol with three patients, the day-4 pain check-in just sent."""
    yield from open_desk(store, shipped, templates, tmp_path)


def open_check_ins(desk: Desk, patient: str) -> list[str]:
    with desk.store.read() as tx:
        return [f"{c.milestone}#{c.occurrence}:{c.status}" for c in tx.checkins.of(patient)]


def test_the_check_in_opens_when_its_question_is_sent(desk: Desk) -> None:
    """The pain question went out at the patients' local 18:00+, and each opened one check-in."""
    assert open_check_ins(desk, "P-1") == ["pain-check#1:open"]  # SMS and email: one check-in
    assert open_check_ins(desk, "P-2") == ["pain-check#1:open"]
    assert any("Pain check" in t for t in desk.sent_to(PHONES["P-1"]))
    assert any("Control del dolor" in t for t in desk.sent_to(PHONES["P-2"]))


def test_an_urgent_answer_raises_one_alert_tells_the_team_and_answers_the_patient(
    desk: Desk,
) -> None:
    """ "9" -> one urgent alert, one care-team email, one on-call SMS, one safety reply; no PHI in the notices."""
    handled = desk.reply("P-1", "pain is 9", ASKED + timedelta(minutes=5))
    assert (handled.kind, handled.level) == ("answer", "urgent")
    desk.tick(ASKED + timedelta(minutes=6))
    with desk.store.read() as tx:
        [alert] = tx.alerts.listed()
    assert (alert.level, alert.status, alert.patient_id) == ("urgent", "open", "P-1")
    assert alert.reason == "threshold:urgent:>=8"
    team, on_call = desk.sent_to(CARE_TEAM), desk.sent_to(ON_CALL)
    assert len(team) == 1
    assert len(on_call) == 1
    for text in (*team, *on_call):
        assert f"alert {alert.id}" in text
        assert "P-1" in text
        assert not [word for word in (*PRIVATE, "pain is 9") if word in text]
    safety = [t for t in desk.sent_to(PHONES["P-1"]) if "care team has been told" in t]
    assert len(safety) == 1
    assert "911" in safety[0]
    assert open_check_ins(desk, "P-1") == ["pain-check#1:answered"]


def test_the_same_text_again_changes_nothing(desk: Desk) -> None:
    """The same MessageSid handled twice (a webhook retry, ``inbound --sid``): nothing new at all."""
    at = ASKED + timedelta(minutes=5)
    desk.reply("P-1", "9", at, sid="SM" + "a" * 32)
    before = desk.snapshot()
    again = desk.reply("P-1", "9", at + timedelta(seconds=30), sid="SM" + "a" * 32)
    assert again.duplicate
    assert desk.snapshot() == before


def test_a_second_answer_is_free_text_and_raises_nothing(desk: Desk) -> None:
    """After the check-in is answered, another "9" is free text: forwarded, answered once a day, no alert."""
    desk.reply("P-1", "9", ASKED + timedelta(minutes=5))
    later = desk.reply("P-1", "9 still", ASKED + timedelta(minutes=20))
    also = desk.reply("P-1", "and worse", ASKED + timedelta(minutes=40))
    assert (later.kind, later.alert_id, also.kind) == ("other", None, "other")
    with desk.store.read() as tx:
        assert len(tx.alerts.listed()) == 1
    unwatched = [r for r in desk.responses("P-1") if r.milestone == "response:unwatched"]
    assert len(unwatched) == 1  # at most once a day
    forwards = [n for n in desk.notices() if n.milestone.startswith("notice:forward")]
    assert len(forwards) == 2


def test_an_unacknowledged_urgent_alert_is_escalated_once(desk: Desk) -> None:
    """No acknowledgement within ack_within (30 minutes): the on-call list is texted again, once."""
    at = ASKED + timedelta(minutes=5)
    desk.reply("P-1", "10", at)
    assert desk.tick(at + timedelta(minutes=29)).sweep["escalated"] == 0
    assert desk.tick(at + timedelta(minutes=30)).sweep["escalated"] == 1
    assert desk.tick(at + timedelta(minutes=90)).sweep["escalated"] == 0
    on_call = desk.sent_to(ON_CALL)
    assert len(on_call) == 2
    assert "still not acknowledged" in on_call[1]


def test_an_acknowledged_alert_is_not_escalated(desk: Desk) -> None:
    """Acknowledged within ack_within: no re-escalation."""
    at = ASKED + timedelta(minutes=5)
    desk.reply("P-1", "8", at)
    with desk.store.write() as tx:
        [alert] = tx.alerts.listed()
        assert alert.id is not None
        assert tx.alerts.acknowledge(alert.id, by="Nurse Kim", note="called", at=at)
    assert desk.tick(at + timedelta(hours=2)).sweep["escalated"] == 0
    assert len(desk.sent_to(ON_CALL)) == 1


def test_two_unanswered_check_ins_raise_one_review_alert(desk: Desk) -> None:
    """The protocol's missed: 2 -> the second check-in in a row closing unanswered raises one review alert; the third none."""
    # Day 4 pain (asked), day 5 brace (yes-no), day 11 pain: none answered.
    day = timedelta(days=1)
    report = desk.tick(ASKED + day)  # day-4 window closes; day 5 brace question goes out
    assert report.sweep["check_ins_unanswered"] == 3  # P-1, P-2 and P-3 (who answers by email)
    with desk.store.read() as tx:
        assert tx.alerts.listed() == []
    desk.tick(ASKED + 2 * day)  # day-5 brace check-ins close: the second in a row
    with desk.store.read() as tx:
        alerts = tx.alerts.listed()
    assert sorted(a.patient_id for a in alerts) == ["P-1", "P-2", "P-3"]
    assert {(a.level, a.reason) for a in alerts} == {("review", "missed:2")}
    desk.tick(ASKED + 7 * day)  # the day-11 pain check-in goes out
    assert desk.tick(ASKED + 8 * day).sweep["check_ins_unanswered"] == 3  # a third in a row
    with desk.store.read() as tx:
        assert len(tx.alerts.listed()) == 3


def test_a_rise_of_three_raises_a_review_alert(desk: Desk) -> None:
    """rise: 3 -> a score 3 higher than the last answer of the same measure raises review."""
    desk.reply("P-1", "2", ASKED + timedelta(minutes=5))
    week = timedelta(days=7)
    desk.tick(ASKED + week)  # day-11 pain check goes out
    handled = desk.reply("P-1", "5", ASKED + week + timedelta(minutes=5))
    assert handled.level == "review"
    with desk.store.read() as tx:
        [alert] = tx.alerts.listed()
    assert alert.reason == "rise:3"
    assert "2 to 5" in alert.words
    assert desk.sent_to(ON_CALL) == []  # review: email only


def test_an_unreadable_answer_is_asked_again_once_then_forwarded(desk: Desk) -> None:
    """Unreadable -> one re-prompt in the patient's language; unreadable again -> forwarded, no alert."""
    first = desk.reply("P-2", "me duele bastante", ASKED + timedelta(minutes=5))
    second = desk.reply("P-2", "mucho", ASKED + timedelta(minutes=6))
    assert (first.kind, second.kind) == ("unreadable", "unreadable")
    desk.tick(ASKED + timedelta(minutes=7))
    reprompts = [t for t in desk.sent_to(PHONES["P-2"]) if "no entendimos" in t]
    assert len(reprompts) == 1
    assert "del 0 al 10" in reprompts[0]
    assert [n.milestone for n in desk.notices()] == ["notice:forward:0"]
    assert open_check_ins(desk, "P-2") == ["pain-check#1:open"]


def test_stop_during_an_open_check_in_opts_out_and_raises_nothing(desk: Desk) -> None:
    """STOP wins over the open question: opted out, no alert, no reply."""
    handled = desk.reply("P-1", "STOP", ASKED + timedelta(minutes=5))
    assert (handled.kind, handled.alert_id, handled.queued) == ("stop", None, 0)
    with desk.store.read() as tx:
        assert tx.contacts.is_opted_out("sms", PHONES["P-1"])
        assert tx.alerts.listed() == []
    # Nobody waits for an answer any more: the silence that follows is no missed reply.
    assert open_check_ins(desk, "P-1") == ["pain-check#1:cancelled"]


def test_help_is_answered_in_the_patients_language(desk: Desk) -> None:
    """AYUDA -> the help text in Spanish; HELP -> in English."""
    desk.reply("P-2", "AYUDA", ASKED + timedelta(minutes=5))
    desk.reply("P-1", "HELP", ASKED + timedelta(minutes=5))
    desk.tick(ASKED + timedelta(minutes=6))
    assert any("recordatorios" in t for t in desk.sent_to(PHONES["P-2"]))
    assert any("recovery reminders from" in t for t in desk.sent_to(PHONES["P-1"]))


def test_a_no_to_the_brace_question_raises_a_review_alert(desk: Desk) -> None:
    """The yes-no brace check-in: "no" -> review (email only); "sí" -> nothing."""
    day5 = ASKED + timedelta(days=1)
    desk.tick(day5)
    assert desk.reply("P-1", "no", day5 + timedelta(minutes=5)).level == "review"
    assert desk.reply("P-2", "sí", day5 + timedelta(minutes=5)).alert_id is None


def test_a_burst_of_answers_handled_at_once_raises_one_alert_each(desk: Desk) -> None:
    """Two patients' urgent answers, each delivered three times at once (retries, instances): one alert each."""
    at = ASKED + timedelta(minutes=5)
    threads = [
        threading.Thread(target=desk.reply, args=(patient, "9", at, f"SM{patient[-1] * 32}"))
        for patient in ("P-1", "P-2")
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with desk.store.read() as tx:
        alerts = tx.alerts.listed()
        inbound = desk.rows("inbound_messages")
    assert sorted(a.patient_id for a in alerts) == ["P-1", "P-2"]
    assert len(inbound) == 2
    assert len([n for n in desk.notices() if n.occurrence == 1]) == 4  # 2 x (email + SMS)


def test_a_rule_firing_stored_twice_keeps_the_first_alert(desk: Desk) -> None:
    """The alerts table's own guard, without the inbound de-duplication in front of it: a
    second store of the same rule firing for the same check-in returns None and adds nothing."""
    at = ASKED + timedelta(minutes=5)
    with desk.store.read() as tx:
        [check_in] = tx.checkins.of("P-1")
    stored = []
    for _ in range(2):
        with desk.store.write() as tx:
            stored.append(
                tx.alerts.raise_once(
                    check_in,
                    source="answer",
                    level=AlertLevel.URGENT,
                    reason="threshold:urgent:>=8",
                    words="pain 9 of 10",
                    now=at,
                )
            )
    first, second = stored
    assert first is not None
    assert second is None
    with desk.store.read() as tx:
        assert [a.id for a in tx.alerts.listed()] == [first]


def test_metrics_count_check_ins_alerts_and_time_to_acknowledge(desk: Desk) -> None:
    """/metrics: check-ins by status, alerts by level and status, seconds to acknowledge (10 minutes here)."""
    at = ASKED + timedelta(minutes=5)
    desk.reply("P-1", "9", at)
    with desk.store.write() as tx:
        [alert] = tx.alerts.listed()
        assert alert.id is not None
        tx.alerts.acknowledge(
            alert.id, by="Nurse Kim", note=None, at=alert.raised_at + timedelta(minutes=10)
        )
    text = Metrics(desk.store, lambda: at).render().decode()
    assert 'reminders_check_ins{status="answered"} 1.0' in text
    assert 'reminders_check_ins{status="open"} 2.0' in text
    assert 'reminders_alerts{level="urgent",status="acknowledged"} 1.0' in text
    assert 'reminders_alerts{level="urgent",status="open"} 0.0' in text
    assert 'reminders_alert_acknowledge_seconds_bucket{le="300.0",level="urgent"} 0.0' in text
    assert 'reminders_alert_acknowledge_seconds_bucket{le="900.0",level="urgent"} 1.0' in text
    assert 'reminders_alert_acknowledge_seconds_sum{level="urgent"} 600.0' in text
