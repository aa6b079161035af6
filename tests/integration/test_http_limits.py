"""Request bodies are capped before anything reads them, and the OpenAPI document is off.

Four concurrent 50 MB POSTs to ``/twilio/status`` once took the process from 99 MB to
437 MB: the body was read whole before the signature was checked. These tests speak
HTTP/1.1 over a plain socket to the app as uvicorn serves it, so they control exactly
what is sent (a large ``Content-Length`` with a small body behind it, a chunked body
that never ends), and call the ASGI app directly to count the bytes it pulls.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from reminders.http import create_app
from reminders.web.limits import MAX_BODY
from tests.integration.test_audit import serve
from tests.integration.webhook_desk import PHONE, Desk, desk
from tests.twilio_webhooks import inbound_form, message_sid

__all__ = ["desk"]  # the fixture, imported for pytest

#: Every endpoint, as (method, path and query).
ENDPOINTS = [
    ("POST", "/twilio/inbound"),
    ("POST", "/twilio/status?reminder=1"),
    ("POST", "/unsubscribe/1.abc"),
    ("GET", "/unsubscribe/1.abc"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
]
FIFTY_MB = 50 * 1024 * 1024


def exchange(desk: Desk, head: str, *parts: bytes) -> str:
    """Send ``head`` and ``parts`` over one connection to the served app; the status line back.

    The socket's timeout only keeps a server that waits for the rest of the body from
    hanging the test: it then says so instead of a status line.
    """
    url = desk.client.base_url
    with socket.create_connection((url.host, url.port), timeout=30) as sock:
        answer = b""
        try:
            sock.sendall(head.encode())
            for part in parts:
                sock.sendall(part)
            while b"\r\n" not in answer:
                received = sock.recv(4096)
                if not received:
                    return f"closed without an answer: {answer!r}"
                answer += received
        except TimeoutError:
            return "no answer: the server waits for the rest of the body"
    return answer.split(b"\r\n")[0].decode()


@pytest.mark.parametrize(("method", "target"), ENDPOINTS)
def test_a_declared_body_over_the_cap_gets_413_before_it_is_sent(
    desk: Desk, method: str, target: str
) -> None:
    """A request announcing a 50 MB body is answered 413 after its first kilobyte, without waiting for the rest."""
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: reminders.example.com\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {FIFTY_MB}\r\n\r\n"
    )
    before = desk.snapshot()
    assert exchange(desk, head, b"a=" + b"b" * 1024) == "HTTP/1.1 413 Request Entity Too Large"
    assert desk.snapshot() == before


@pytest.mark.parametrize(("method", "target"), ENDPOINTS)
def test_a_chunked_body_is_refused_with_413_once_it_passes_the_cap(
    desk: Desk, method: str, target: str
) -> None:
    """A chunked body that goes on past the cap is answered 413 as soon as it does, its end never sent."""
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: reminders.example.com\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"b" * 8192
    chunks = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (MAX_BODY // len(chunk) + 1)
    before = desk.snapshot()
    assert exchange(desk, head, b"2\r\na=\r\n", *chunks) == "HTTP/1.1 413 Request Entity Too Large"
    assert desk.snapshot() == before


def test_the_app_pulls_no_more_than_the_cap_of_a_body_streamed_to_it(desk: Desk) -> None:
    """Fed a 50 MB body in 64 KiB pieces, the app answers 413 having pulled at most the cap and one piece."""
    piece = 64 * 1024
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += piece
        return {"type": "http.request", "body": b"b" * piece, "more_body": pulled < FIFTY_MB}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/twilio/status",
        "raw_path": b"/twilio/status",
        "query_string": b"reminder=1",
        "root_path": "",
        "headers": [(b"content-type", b"application/x-www-form-urlencoded")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(create_app(desk.context)(scope, receive, send))
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 413
    assert pulled <= MAX_BODY + piece


def test_the_longest_text_twilio_sends_fits_under_the_cap(desk: Desk) -> None:
    """An inbound text of 1,600 four-byte characters (about 19 KB encoded) is accepted and stored whole."""
    body = "\U0001f9b5" * 1600  # a leg, 4 bytes in UTF-8, 12 once percent-encoded
    form = inbound_form(PHONE["P-2"], body, message_sid("long"))
    assert len(urlencode(form)) > 19_000
    response = desk.twilio_post("/twilio/inbound", form)
    assert response.status_code == 200, response.text
    with desk.store.read() as tx:
        stored = tx.conn.execute(sa.text("SELECT body FROM inbound_messages")).scalars().all()
    assert stored == [body]


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"])
def test_the_openapi_document_and_its_viewers_are_off_by_default(desk: Desk, path: str) -> None:
    """The app as ``run`` serves it answers 404 for the OpenAPI document and the docs pages."""
    assert desk.client.get(path).status_code == 404


def test_the_openapi_document_is_served_when_asked_for(desk: Desk) -> None:
    """``create_app(..., openapi=True)`` (the schema tests' app) serves ``/openapi.json`` listing the webhooks."""
    with serve(create_app(desk.context, openapi=True)) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    assert {"/twilio/inbound", "/twilio/status"} <= set(response.json()["paths"])
