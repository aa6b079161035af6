"""The dashboard in front of the webhook desk's outbox, with two accounts and a clock to move.

:mod:`tests.integration.webhook_desk` sent the day-1 messages of four fictional
patients through the real Twilio client. Here, through the real webhooks, P-3's text is
reported failed with Twilio 21211 (an invalid number) and P-2 replies STOP; then the
same app (with the dashboard on) is served by uvicorn on loopback, and accounts
``kim@example.com`` (coordinator) and ``lee@example.com`` (viewer) exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from html import unescape

import httpx
import pytest
from fastapi import FastAPI

from reminders.accounts import hash_password
from reminders.compose import Composer, Links
from reminders.http import DashboardSettings, WebContext, create_app
from reminders.models import Schedules
from reminders.store import Store
from reminders.templates import Templates
from tests.integration.test_audit import serve
from tests.integration.webhook_desk import LATER, PHONE, PUBLIC_URL, SECRET, Desk, desk
from tests.twilio_webhooks import inbound_form, message_sid, status_form

__all__ = ["desk"]

COORDINATOR = "kim@example.com"
VIEWER = "lee@example.com"
PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf" value="([^"]*)"')


@dataclass
class Clock:
    """A clock the test moves."""

    now: datetime = LATER

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move the clock forward."""
        self.now += timedelta(**delta)


@dataclass
class Board:
    """The desk, the served app with the dashboard, and the test's clock."""

    desk: Desk
    base_url: str
    clock: Clock
    #: The served app and its context.
    app: FastAPI
    context: WebContext
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def store(self) -> Store:
        """The outbox."""
        return self.desk.store

    def browser(self) -> httpx.Client:
        """A fresh client with no cookies (closed after the test)."""
        client = httpx.Client(base_url=self.base_url, timeout=30)
        self.clients.append(client)
        return client

    def sign_in(self, email: str = COORDINATOR, password: str = PASSWORD) -> httpx.Client:
        """A client signed in as ``email``."""
        client = self.browser()
        response = submit_sign_in(client, email, password)
        assert response.status_code == 303, response.text
        return client

    def audit(self, kind: str) -> list[dict[str, object]]:
        """Audit events of ``kind``."""
        with self.store.read() as tx:
            return [e for e in tx.views.audit_events() if e["kind"] == kind]


def csrf_of(html: str) -> str:
    """The CSRF token of the first form of a page."""
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return unescape(found.group(1))


def submit_sign_in(client: httpx.Client, email: str, password: str) -> httpx.Response:
    """GET the sign-in page, then POST its form with ``email`` and ``password``."""
    form = client.get("/app/signin")
    assert form.status_code == 200, form.text
    return client.post(
        "/app/signin",
        data={"csrf": csrf_of(form.text), "email": email, "password": password, "next": ""},
    )


def add_user(store: Store, email: str, role: str, now: datetime) -> None:
    """An account with :data:`PASSWORD`."""
    with store.write() as tx:
        tx.users.add(email, role, hash_password(PASSWORD), now)


@pytest.fixture
def board(desk: Desk, shipped: Schedules, templates: Templates) -> Iterator[Board]:
    """The dashboard on the desk: P-3's number invalid, P-2 opted out, two accounts."""
    [p3] = [m for m in desk.fake.messages if m.to == PHONE["P-3"]]
    target = f"/twilio/status?reminder={p3.status_callback.rpartition('=')[2]}"  # type: ignore[union-attr]
    assert (
        desk.twilio_post(target, status_form(p3.sid, "failed", to=p3.to, code="21211")).status_code
        == 204
    )
    stop = inbound_form(PHONE["P-2"], "STOP", message_sid("board-stop"))
    assert desk.twilio_post("/twilio/inbound", stop).status_code == 200
    clock = Clock()
    add_user(desk.store, COORDINATOR, "coordinator", clock())
    add_user(desk.store, VIEWER, "viewer", clock())
    composer = Composer(shipped, templates, unsubscribe=Links(PUBLIC_URL, SECRET))
    settings = DashboardSettings(secret=SECRET, composer=lambda: composer, secure_cookies=False)
    context = replace(desk.context, clock=clock, dashboard=settings)
    app = create_app(context)
    with serve(app) as client:
        board = Board(desk, str(client.base_url), clock, app, context)
        yield board
        for opened in board.clients:
            opened.close()
