"""The check-in page: email patients answer on ``/checkin/{token}``, with the same rules as texts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from reminders.compose import Links
from reminders.http import WebContext, create_app
from reminders.metrics import Metrics
from reminders.models import Schedules
from reminders.store import Store
from reminders.templates import Templates
from reminders.testing import make_dispatcher
from reminders.tokens import sign
from tests.integration.checkin_desk import ASKED, Desk, open_desk
from tests.integration.test_audit import serve

SECRET = "s3cret-key-for-tests-only-0123456789"
PUBLIC_URL = "https://clinic.example.com"


@dataclass
class Page:
    """The served app, the desk behind it, and the clock the app reads."""

    desk: Desk
    client: httpx.Client
    now: list  # type: ignore[type-arg]  # one mutable datetime

    def email_link(self, address: str) -> str:
        """The check-in link in the last email sent to ``address`` (path only)."""
        [mail] = [m for m in self.desk.email.sent if m.to == address and "/checkin/" in m.text]
        found = re.search(r"https://clinic\.example\.com(/checkin/\S+)", mail.text)
        assert found, mail.text
        return found.group(1)


@pytest.fixture
def page(store: Store, shipped: Schedules, templates: Templates, tmp_path: Path) -> Iterator[Page]:
    """The desk with check-in links in emails, and the app serving its pages."""
    desk = next(open_desk(store, shipped, templates, tmp_path))
    links = Links(PUBLIC_URL, SECRET)
    # Re-send the day-4 question by email with links: a dispatcher composing with them.
    desk.dispatcher = make_dispatcher(
        store,
        shipped,
        templates,
        {"sms": desk.sms, "email": desk.email},
        owner="t",
        unsubscribe=links,
    )
    with store.write() as tx:
        tx.conn.exec_driver_sql("DELETE FROM check_ins")
        tx.conn.exec_driver_sql(
            "UPDATE reminders SET status = 'planned' WHERE milestone = 'pain-check' "
            "AND occurrence = 1 AND channel = 'email'"
        )
    desk.email.sent.clear()
    desk.tick(ASKED)
    now = [ASKED + timedelta(minutes=10)]
    context = WebContext(
        store=store,
        twilio_auth_token=None,
        public_url=PUBLIC_URL,
        secret_key=SECRET,
        schedules=lambda: shipped,
        metrics=Metrics(store, lambda: now[0]),
        running=lambda: True,
        clock=lambda: now[0],
        templates=lambda: templates,
    )
    with serve(create_app(context)) as client:
        yield Page(desk, client, now)


def test_the_page_asks_the_question_in_the_patients_language_without_script(page: Page) -> None:
    """GET shows the email's question, a 0-10 form and no script; nothing is recorded by a GET."""
    response = page.client.get(page.email_link("sam@example.com"))
    assert response.status_code == 200
    body = response.text
    assert "Pain check: how is your pain today?" in body
    assert body.count('type="radio"') == 11
    assert "<script" not in body
    assert response.headers["cache-control"] == "no-store"
    with page.desk.store.read() as tx:
        [check_in] = tx.checkins.of("P-3")
    assert check_in.status == "open"


def test_an_urgent_answer_on_the_page_raises_the_alert_and_shows_the_safety_text(
    page: Page,
) -> None:
    """POST 9 -> one urgent alert with its notices, the safety text on the page; again -> already answered."""
    link = page.email_link("sam@example.com")
    response = page.client.post(link, content=b"answer=9", headers=FORM)
    assert response.status_code == 200
    assert "care team has been told" in response.text
    assert "911" in response.text
    again = page.client.post(link, content=b"answer=2", headers=FORM)
    assert "already answered" in again.text
    with page.desk.store.read() as tx:
        [alert] = tx.alerts.listed()
        [check_in] = tx.checkins.of("P-3")
    assert (alert.patient_id, alert.level) == ("P-3", "urgent")
    assert (check_in.value, check_in.via) == (9, "web")
    assert len([n for n in page.desk.notices() if n.alert_id == alert.id]) == 2


@pytest.mark.parametrize(
    "answer", [b"answer=11", b"answer=-1", b"answer=x", b"", b"answer=1&answer=2x"]
)
def test_an_answer_the_form_does_not_offer_changes_nothing(page: Page, answer: bytes) -> None:
    """Out of range, not a number, missing: the form again with a prompt; nothing recorded."""
    link = page.email_link("sam@example.com")
    response = page.client.post(link, content=answer, headers=FORM)
    assert response.status_code == 200
    assert 'role="alert"' in response.text
    with page.desk.store.read() as tx:
        [check_in] = tx.checkins.of("P-3")
    assert check_in.status == "open"


def test_a_forged_or_foreign_token_gets_not_valid(page: Page) -> None:
    """A tampered token, an unsubscribe token for the same email, a token for no check-in: 404."""
    link = page.email_link("sam@example.com")
    token = link.rsplit("/", 1)[1]
    reminder = int(token.split(".")[0], 36)
    for bad in (
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        sign(SECRET, reminder),
        sign(SECRET, 1, "check-in"),
    ):
        response = page.client.post(f"/checkin/{bad}", content=b"answer=9", headers=FORM)
        assert response.status_code == 404, bad
    with page.desk.store.read() as tx:
        assert tx.alerts.listed() == []


def test_after_the_window_the_page_says_closed(page: Page) -> None:
    """Once the reply window has closed, the page takes no answer."""
    link = page.email_link("sam@example.com")
    page.now[0] = ASKED + timedelta(hours=25)
    response = page.client.post(link, content=b"answer=9", headers=FORM)
    assert "closed" in response.text
    with page.desk.store.read() as tx:
        assert tx.alerts.listed() == []


FORM = {"content-type": "application/x-www-form-urlencoded"}
