"""The email unsubscribe pages: the patient's language, what stops and what does not (issue 11).

The links are the ones the dispatcher put in the day-1 emails of
:mod:`tests.integration.webhook_desk`'s patients: P-1 reads English and also gets
texts, P-2 reads Spanish and also gets texts, P-4 reads English and gets email only.
"""

from __future__ import annotations

import re
from html import unescape

import pytest

from reminders.tokens import sign
from tests.integration.webhook_desk import PUBLIC_URL, SECRET, Desk, desk

__all__ = ["desk"]  # the fixture, imported for pytest

CLINIC = "New Jersey Orthopaedic Institute"
#: What each patient's confirmation page says, in their language.
CONFIRM = {
    "P-1": (
        "en",
        "Unsubscribe",
        f"If you unsubscribe, you will no longer receive recovery reminder emails from {CLINIC}.",
        f"Text messages from {CLINIC} continue. To stop them, reply STOP to one of them.",
    ),
    "P-2": (
        "es",
        "Darme de baja",
        "Si se da de baja, ya no recibirá los correos de recordatorio de su recuperación "
        f"de {CLINIC}.",
        f"Los mensajes de texto de {CLINIC} continúan. Para dejar de recibirlos, responda "
        "STOP a uno de ellos.",
    ),
    "P-4": (
        "en",
        "Unsubscribe",
        f"If you unsubscribe, you will no longer receive recovery reminder emails from {CLINIC}.",
        None,
    ),
}
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def link(desk: Desk, patient: str) -> str:
    """Path of the unsubscribe link in ``patient``'s day-1 email."""
    [entry] = [e for e in desk.entries(patient) if e.channel == "email" and e.status == "sent"]
    [mail] = [m for m in desk.email.sent if m.reminder_id == entry.id]
    assert mail.unsubscribe_url
    return mail.unsubscribe_url.removeprefix(PUBLIC_URL)


def paragraphs(html: str) -> list[str]:
    """The text of each ``<p>`` of a page."""
    return [unescape(p) for p in re.findall(r"<p>(.*?)</p>", html)]


@pytest.mark.parametrize("patient", sorted(CONFIRM))
def test_the_confirmation_page_says_what_stops_and_what_does_not_in_the_patients_language(
    desk: Desk, patient: str
) -> None:
    """GET shows, in the patient's language, that the clinic's recovery reminder emails stop, that texts go on until STOP (for a patient who gets them), and a button; it changes nothing."""
    language, button, stops, texts = CONFIRM[patient]
    before = desk.snapshot()
    page = desk.client.get(link(desk, patient))
    assert page.status_code == 200
    assert f'<html lang="{language}">' in page.text
    assert paragraphs(page.text) == [stops] + ([texts] if texts else [])
    assert f'<form method="post" action="{link(desk, patient)}">' in page.text
    assert f'<button type="submit">{button}</button>' in page.text
    assert desk.snapshot() == before


def test_one_click_unsubscribe_answers_in_the_patients_language_and_stops_only_email(
    desk: Desk,
) -> None:
    """An RFC 8058 one-click POST for the Spanish-speaking patient answers in Spanish and suppresses her pending email, not her texts."""
    response = desk.client.post(link(desk, "P-2"), data=ONE_CLICK)
    assert response.status_code == 200
    assert '<html lang="es">' in response.text
    assert "<h1>Baja confirmada</h1>" in response.text
    assert paragraphs(response.text) == [
        f"Ya no recibirá los correos de recordatorio de su recuperación de {CLINIC}.",
        f"Los mensajes de texto de {CLINIC} continúan. Para dejar de recibirlos, responda "
        "STOP a uno de ellos.",
    ]
    pending = [e for e in desk.entries("P-2") if e.status not in ("sent", "expired")]
    assert {e.status for e in pending if e.channel == "email"} == {"suppressed"}
    assert {e.status for e in pending if e.channel == "sms"} == {"planned"}


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_link_that_does_not_verify_gets_the_not_valid_page_in_every_language(
    desk: Desk, method: str
) -> None:
    """A tampered token gets 404 with "not valid" in English and Spanish, and changes nothing."""
    reminder, _, mac = link(desk, "P-2").rpartition("/")[2].partition(".")
    tampered = f"/unsubscribe/{reminder}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}"
    before = desk.snapshot()
    response = desk.client.request(method, tampered, data=ONE_CLICK if method == "POST" else None)
    assert response.status_code == 404
    assert paragraphs(response.text) == [
        "This unsubscribe link is not valid.",
        "Este enlace para darse de baja no es válido.",
    ]
    assert desk.snapshot() == before


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_genuine_token_for_a_text_message_reminder_unsubscribes_nobody(
    desk: Desk, method: str
) -> None:
    """A token signed with the service's key but naming an SMS reminder gets 404 and opts nobody out of texts."""
    [sms] = [e for e in desk.entries("P-1") if e.channel == "sms" and e.status == "sent"]
    target = f"/unsubscribe/{sign(SECRET, sms.id)}"
    before = desk.snapshot()
    response = desk.client.request(method, target, data=ONE_CLICK if method == "POST" else None)
    assert response.status_code == 404
    assert desk.snapshot() == before
    assert desk.sms_statuses("P-1") == {"planned"}


def test_the_pages_are_never_cached_framed_or_referred_on(desk: Desk) -> None:
    """The confirmation page forbids caching, framing and sending its address on as a referrer."""
    page = desk.client.get(link(desk, "P-1"))
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
