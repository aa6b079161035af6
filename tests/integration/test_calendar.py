"""A patient's calendar of milestones (iCalendar), read back with the ``icalendar`` library.

The sample patients (``patients-fhir.json``) are enrolled in a real outbox; the calendar
is built from what is stored, as ``reminders calendar`` and ``/calendar/{token}.ics`` do.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from reminders import testing
from reminders.calendar import calendar
from reminders.compose import Composer, Links
from reminders.copies import base_occurrence
from reminders.lifecycle import MessageKind, ReminderStatus
from reminders.models import Schedules
from reminders.store import Outgoing, Store
from reminders.sync import sync_patients
from reminders.templates import Templates
from reminders.tokens import sign
from tests.conftest import REPO
from tests.integration.webhook_desk import PUBLIC_URL, SECRET, Desk, desk

__all__ = ["desk"]  # the fixture, imported for pytest

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
SAMPLE = REPO / "patients-fhir.json"


def events(store: Store, shipped: Schedules, patient: str) -> dict[str, dict[str, Any]]:
    """The patient's calendar, built from the store and parsed back: event fields by UID."""
    with store.read() as tx:
        enrollment = tx.views.enrollment(patient)
        rows = tx.views.timeline(patient)
    return parse(calendar(shipped.clinic, enrollment.recipient(), rows))


def parse(ics: bytes) -> dict[str, dict[str, Any]]:
    """Every VEVENT of ``ics`` as plain values, by UID."""
    found = {}
    for event in Calendar.from_ical(ics).walk("VEVENT"):
        found[str(event["UID"])] = {
            "day": event.decoded("DTSTART"),
            "end": event.decoded("DTEND"),
            "sequence": int(event["SEQUENCE"]),
            "status": str(event["STATUS"]),
            "summary": str(event["SUMMARY"]),
            "description": str(event["DESCRIPTION"]),
        }
    return found


def local_days(store: Store, patient: str, zone: str) -> dict[tuple[str, int], set[date]]:
    """The local day(s) of each milestone occurrence's reminders, from the timeline."""
    days: dict[tuple[str, int], set[date]] = {}
    with store.read() as tx:
        for r in tx.views.timeline(patient):
            key = (r.milestone, base_occurrence(r.occurrence))
            days.setdefault(key, set()).add(r.due_at.astimezone(ZoneInfo(zone)).date())
    return days


def bundle_with(tmp_path: Path, **performed: str) -> Path:
    """The sample bundle with the performedDateTime of some patients' Procedure changed."""
    doc = json.loads(SAMPLE.read_text(encoding="utf-8"))
    for entry in doc["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Procedure" and resource["id"] in performed:
            resource.pop("performedPeriod", None)
            resource["performedDateTime"] = performed[resource["id"]]
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("patient", "zone"),
    [("P-1001", "America/New_York"), ("P-1002", "America/Chicago"), ("P-1005", "Pacific/Auckland")],
)
def test_one_event_per_milestone_occurrence_on_its_local_day(
    store: Store, shipped: Schedules, patient: str, zone: str
) -> None:
    """Each milestone occurrence is one all-day event on the patient's local day of its message
    (Auckland's day 1 is the evening before in UTC), and every UID is distinct."""
    sync_patients(store, shipped, SAMPLE, NOW)
    found = events(store, shipped, patient)
    days = local_days(store, patient, zone)
    assert len(found) == len(days)
    assert sorted(e["day"] for e in found.values()) == sorted(d for [d] in days.values())
    assert all(e["end"] == e["day"] + timedelta(days=1) for e in found.values())
    assert {e["status"] for e in found.values()} == {"CONFIRMED"}
    assert {e["sequence"] for e in found.values()} == {0}


def test_titles_and_descriptions_carry_no_diagnosis(store: Store, shipped: Schedules) -> None:
    """No event names the protocol, its title, a milestone or the body part: only the clinic and
    the day after the procedure, in the patient's language."""
    sync_patients(store, shipped, SAMPLE, NOW)
    words = {"hamstring", "brace", "crutch", "sport", "surgery", "cirug", "isquio"}
    for protocol in shipped.protocols.values():
        words |= {protocol.id, *(m.id for m in protocol.milestones)}
    for patient in ("P-1001", "P-1002", "P-1004"):
        for event in events(store, shipped, patient).values():
            text = (event["summary"] + " " + event["description"]).lower()
            assert not [w for w in words if w in text], text
    spanish = events(store, shipped, "P-1002")
    assert {e["summary"] for e in spanish.values()} >= {
        "NJOI: mensaje de recuperación (día 1)",
        "NJOI: mensaje de recuperación (semana 6)",
    }


def test_a_moved_date_keeps_each_uid_and_raises_its_sequence(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """Surgery three days later: the same UIDs, every day three days later, SEQUENCE up by one;
    another patient's events are untouched."""
    sync_patients(store, shipped, SAMPLE, NOW)
    before = events(store, shipped, "P-1001")
    other = events(store, shipped, "P-1003")
    moved = bundle_with(tmp_path, **{"proc-1001": "2026-11-23T08:30:00-05:00"})
    sync_patients(store, shipped, moved, NOW)
    after = events(store, shipped, "P-1001")
    assert after.keys() == before.keys()
    for uid, event in after.items():
        assert event["day"] == before[uid]["day"] + timedelta(days=3)
        assert event["sequence"] == before[uid]["sequence"] + 1
    sync_patients(store, shipped, bundle_with(tmp_path), NOW)  # and back
    again = events(store, shipped, "P-1001")
    assert {uid: e["day"] for uid, e in again.items()} == {
        uid: e["day"] for uid, e in before.items()
    }
    assert all(again[uid]["sequence"] == 2 for uid in before)
    assert events(store, shipped, "P-1003") == other


def test_withdrawal_cancels_the_events_still_to_come(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """A withdrawn patient's pending events are CANCELLED (same UID, SEQUENCE raised); what was
    already sent stays CONFIRMED."""
    sync_patients(store, shipped, SAMPLE, NOW)
    with store.read() as tx:  # day 1 went out before the withdrawal
        first = min(tx.views.timeline("P-1004"), key=lambda r: r.due_at)
    testing.mark_sent(store, [first.id], NOW)
    before = events(store, shipped, "P-1004")
    doc = json.loads(SAMPLE.read_text(encoding="utf-8"))
    for entry in doc["entry"]:
        if entry["resource"]["id"] == "proc-1004":
            entry["resource"]["status"] = "entered-in-error"
    path = tmp_path / "b.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    report = sync_patients(store, shipped, path, NOW)
    assert report.withdrawn == ["P-1004"]
    after = events(store, shipped, "P-1004")
    assert after.keys() == before.keys()
    sent_day = first.due_at.astimezone(ZoneInfo("America/Los_Angeles")).date()
    for _uid, event in after.items():
        if event["day"] == sent_day:
            assert (event["status"], event["sequence"]) == ("CONFIRMED", 0)
        else:
            assert (event["status"], event["sequence"]) == ("CANCELLED", 1)
    with store.read() as tx:
        statuses = {r.status for r in tx.views.timeline("P-1004")}
    assert statuses == {ReminderStatus.SENT, ReminderStatus.CANCELLED}


def calendar_link(desk: Desk, patient: str) -> str:
    """Path of the calendar link in ``patient``'s first email (day 1)."""
    [entry] = [e for e in desk.entries(patient) if e.channel == "email" and e.status == "sent"]
    [mail] = [m for m in desk.email.sent if m.reminder_id == entry.id]
    [url] = [w for w in mail.text.split() if "/calendar/" in w]
    assert url.startswith(f"{PUBLIC_URL}/calendar/")
    assert url.endswith(".ics")
    assert url in (mail.html or "")
    return url.removeprefix(PUBLIC_URL)


def test_the_first_email_links_the_calendar_and_the_link_serves_it(desk: Desk) -> None:
    """The day-1 email carries the signed calendar link; GET returns the patient's calendar."""
    response = desk.client.get(calendar_link(desk, "P-2"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    assert "no-store" in response.headers["cache-control"]
    served = parse(response.content)
    days = {r.due_at.astimezone(ZoneInfo("America/New_York")).date() for r in desk.entries("P-2")}
    assert {e["day"] for e in served.values()} == days
    assert all("recuperación" in e["summary"] for e in served.values())


def test_a_tampered_or_foreign_token_is_not_found(desk: Desk) -> None:
    """A changed signature, another reminder's id, an unsubscribe token or junk: 404."""
    path = calendar_link(desk, "P-1")
    token = path.removeprefix("/calendar/").removesuffix(".ics")
    payload, _, signature = token.partition(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    reminder = int(payload, 36)
    for bad in (
        f"{payload}.{flipped}",
        f"{int(payload, 36) + 1:x}.{signature}",
        sign(SECRET, reminder),  # the unsubscribe link's token of the same reminder
        "1.x",
        "%2e%2e",
    ):
        response = desk.client.get(f"/calendar/{bad}.ics")
        assert response.status_code == 404, bad
        assert "BEGIN:VCALENDAR" not in response.text
    assert desk.client.get(path).status_code == 200


def test_later_emails_do_not_repeat_the_calendar_link(desk: Desk, shipped: Schedules) -> None:
    """Only the first email a patient receives carries the link."""
    with desk.store.read() as tx:
        enrollment = tx.views.enrollment("P-4")
        later = next(r for r in tx.views.timeline("P-4") if r.status == ReminderStatus.PLANNED)
    links = Links(PUBLIC_URL, SECRET)
    render = Composer(shipped, Templates(REPO / "templates"), unsubscribe=links)
    for first in (True, False):
        text = render.render_occurrence(
            later, enrollment.recipient(), first=first, calendar_url=links.calendar(later.id)
        ).text
        assert ("/calendar/" in text) is first


def test_a_response_to_the_patients_text_is_no_milestone(store: Store, shipped: Schedules) -> None:
    """A reply queued to a patient's text (HELP) adds no event to their calendar."""
    sync_patients(store, shipped, SAMPLE, NOW)
    before = events(store, shipped, "P-1001")
    reply = Outgoing(
        patient_id="P-1001",
        protocol="proximal-hamstring-repair",
        milestone="response:help",
        occurrence=1,
        channel="sms",
        template="responses/help",
        kind=MessageKind.RESPONSE,
        expires_after=timedelta(hours=6),
        address="+12015550123",
    )
    with store.write() as tx:
        assert tx.outbox.queue([reply], NOW)
    assert events(store, shipped, "P-1001") == before
