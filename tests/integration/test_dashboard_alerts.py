"""Alerts on the dashboard over HTTP (SPEC 11-12): listed urgent first, acknowledged and
resolved by coordinators only, audited; answers charted on the patient's page.

The webhook desk's patients (surgery 2026-11-24, New York) got their day-4 pain question
through the dispatcher at 18:30 local time; P-2 answered 6 (a review alert), then P-1
answered 9 (urgent), each handled as the Twilio webhook handles a text.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta

import pytest

from reminders.channels.memory import MemoryChannel
from reminders.inbound import Text, receive
from reminders.models import Schedules
from reminders.templates import Templates
from reminders.testing import make_dispatcher
from tests.integration.dashboard_kit import (
    COORDINATOR,
    VIEWER,
    Board,
    board,
    csrf_of,
    desk,
)
from tests.integration.webhook_desk import PHONE

__all__ = ["board", "desk"]

#: Day 4 after the 2026-11-24 surgery, 18:30 in New York: the pain question has gone out.
ASKED = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)


@pytest.fixture
def alerted(board: Board, shipped: Schedules, templates: Templates) -> dict[str, int]:
    """P-2's review alert (answer 6), then P-1's urgent one (answer 9); returns their ids."""
    channels = {"sms": MemoryChannel("sms"), "email": MemoryChannel("email")}
    make_dispatcher(
        board.store, shipped, templates, channels, owner="test", rng=random.Random(2)
    ).tick(ASKED)
    for n, (patient, body) in enumerate((("P-2", "6"), ("P-1", "9"))):
        at = ASKED + timedelta(minutes=10 + n)
        receive(board.store, shipped, Text(PHONE[patient], body, f"SM{n + 1:032x}", at))
    board.clock.now = ASKED + timedelta(minutes=30)
    with board.store.read() as tx:
        ids = {a.patient_id: a.id for a in tx.alerts.listed() if a.id is not None}
    assert set(ids) == {"P-1", "P-2"}, ids
    return ids


def alert_ids(html: str, section: str) -> list[str]:
    """The alert ids listed in one section of a page, in order."""
    part = html.split(f'<section id="{section}">', 1)[1].split("</section>", 1)[0]
    return re.findall(r'id="alert-(\d+)"', part)


def status_of(board: Board, alert_id: int) -> tuple[str, str | None, str | None]:
    """An alert's status, who acknowledged it, and its note."""
    with board.store.read() as tx:
        alert = tx.alerts.get(alert_id)
    assert alert is not None
    return alert.status, alert.acknowledged_by, alert.note


def test_open_alerts_are_listed_urgent_first_then_oldest(
    board: Board, alerted: dict[str, int]
) -> None:
    """P-1's urgent alert heads the worklist although P-2's review alert is older."""
    page = board.sign_in().get("/app/worklist").text
    assert alert_ids(page, "alerts") == [str(alerted["P-1"]), str(alerted["P-2"])]
    assert '<strong class="answer">9/10</strong>' in page


def test_a_coordinator_acknowledges_with_a_note_and_it_leaves_the_worklist_audited(
    board: Board, alerted: dict[str, int]
) -> None:
    """Acknowledge with a note: 303 back to the worklist, the alert gone from it, the note and who kept, an alert.acknowledged record via the dashboard."""
    client = board.sign_in()
    token = csrf_of(client.get("/app/worklist").text)
    urgent = alerted["P-1"]
    response = client.post(
        f"/app/alerts/{urgent}/acknowledge",
        data={"csrf": token, "note": "Called Dana", "next": "/app/worklist"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/app/worklist"
    assert status_of(board, urgent) == ("acknowledged", COORDINATOR, "Called Dana")
    assert str(urgent) not in alert_ids(client.get("/app/worklist").text, "alerts")
    patient = client.get("/app/patients/P-1").text
    assert f'Acknowledged by <strong class="by">{COORDINATOR}</strong>' in patient
    [event] = board.audit("alert.acknowledged")
    assert event["patient_id"] == "P-1"
    assert event["detail"] == {"alert_id": urgent, "by": COORDINATOR, "via": "dashboard"}


def test_a_viewer_sees_no_button_and_a_forged_post_is_403_and_changes_nothing(
    board: Board, alerted: dict[str, int]
) -> None:
    """A viewer's pages carry no alert form; their POST with a valid token to acknowledge or resolve answers 403 and leaves every table as it was."""
    viewer = board.sign_in(VIEWER)
    for path in ("/app/worklist", "/app/patients/P-1"):
        assert "/acknowledge" not in viewer.get(path).text
        assert 'class="actions"' not in viewer.get(path).text
    token = csrf_of(viewer.get("/app/worklist").text)
    before = board.desk.snapshot()
    for action in ("acknowledge", "resolve"):
        response = viewer.post(
            f"/app/alerts/{alerted['P-1']}/{action}", data={"csrf": token, "note": "x"}
        )
        assert response.status_code == 403
    assert board.desk.snapshot() == before


def test_an_alert_action_without_or_with_a_wrong_token_is_403_and_changes_nothing(
    board: Board, alerted: dict[str, int]
) -> None:
    """A coordinator's acknowledge without the form's token, or with another session's, is 403; nothing changes."""
    client = board.sign_in()
    other = csrf_of(board.sign_in().get("/app/worklist").text)
    before = board.desk.snapshot()
    for data in ({"note": "x"}, {"csrf": other, "note": "x"}):
        response = client.post(f"/app/alerts/{alerted['P-1']}/acknowledge", data=data)
        assert response.status_code == 403
    assert board.desk.snapshot() == before


def test_resolving_needs_a_note_and_records_who(board: Board, alerted: dict[str, int]) -> None:
    """Resolve without a note is refused (400, unchanged); with one, the alert is resolved by the coordinator, acknowledged by them too."""
    client = board.sign_in()
    token = csrf_of(client.get("/app/worklist").text)
    review = alerted["P-2"]
    refused = client.post(f"/app/alerts/{review}/resolve", data={"csrf": token, "note": "  "})
    assert refused.status_code == 400
    assert status_of(board, review)[0] == "open"
    done = client.post(f"/app/alerts/{review}/resolve", data={"csrf": token, "note": "Pain eased"})
    assert done.status_code == 303
    assert status_of(board, review) == ("resolved", COORDINATOR, "Pain eased")
    again = client.post(f"/app/alerts/{review}/resolve", data={"csrf": token, "note": "again"})
    assert again.status_code == 409


def test_the_patient_page_charts_the_answers_and_the_overview_gives_the_answer_rate(
    board: Board, alerted: dict[str, int]
) -> None:
    """P-1's page draws an SVG with one point (9) and lists the answer; the patients list shows it as the last answer; the overview counts the open alerts by level."""
    client = board.sign_in()
    page = client.get("/app/patients/P-1").text
    svg = page.split('<figure class="pain">', 1)[1].split("</figure>", 1)[0]
    assert svg.count("<circle") == 1
    assert ": 9</title>" in svg
    assert "9/10" in client.get("/app/patients").text
    overview = client.get("/app/overview").text
    assert re.search(r"Open urgent alerts</dt><dd[^>]*>1</dd>", overview)
    assert re.search(r"Open review alerts</dt><dd>1</dd>", overview)


def test_the_link_in_an_alert_notice_opens_the_patient_page_at_the_alert(
    board: Board, alerted: dict[str, int]
) -> None:
    """``/app/alerts/ID`` (what a notice links to) signs in first, then lands on the patient's page at that alert."""
    urgent = alerted["P-1"]
    stranger = board.browser().get(f"/app/alerts/{urgent}")
    assert stranger.status_code == 303
    assert stranger.headers["location"] == f"/app/signin?next=/app/alerts/{urgent}"
    client = board.sign_in()
    landed = client.get(f"/app/alerts/{urgent}")
    assert landed.status_code == 303
    assert landed.headers["location"] == f"/app/patients/P-1#alert-{urgent}"
    assert client.get("/app/alerts/999999").status_code == 404
