"""The dashboard over HTTP (SPEC 12): sign-in and its limits, CSRF, headers, audit, URLs, pages.

Everything runs against the served app in front of a real outbox whose messages went out
through the real Twilio client (:mod:`tests.integration.dashboard_kit`).
"""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urljoin, urlsplit

import pytest
from starlette.routing import Route

from reminders.web.dashboard.auth import SESSION_COOKIE, SIGNIN_COOKIE
from tests.integration.dashboard_kit import (
    COORDINATOR,
    PASSWORD,
    VIEWER,
    Board,
    board,
    csrf_of,
    desk,
    submit_sign_in,
)
from tests.integration.test_audit import contact_forms
from tests.integration.webhook_desk import PATIENTS, PHONE

__all__ = ["board", "desk"]

#: Every GET page of the dashboard, with a patient id where the route has one.
PAGES = ("/app/", "/app/worklist", "/app/patients", "/app/patients/P-1", "/app/overview")
#: Routes that need no session: the sign-in page and the stylesheet.
OPEN = {"/app/signin", "/app/static/dashboard.css"}
HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


def routes_of(board: Board) -> list[tuple[str, str]]:
    """(method, path) of every /app/ route the served app has, with P-1 and alert 1 filled in."""
    found = []
    for route in board.app.routes:
        if not isinstance(route, Route) or not route.path.startswith("/app"):
            continue
        path = re.sub(r"\{patient_id(:path)?\}", "P-1", route.path)
        path = re.sub(r"\{alert_id\}", "1", path)
        found += [(method, path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return found


def test_every_app_route_sends_a_visitor_without_a_session_to_sign_in(board: Board) -> None:
    """Each /app/ route but the sign-in page and the stylesheet answers 303 to /app/signin without a session, whatever the method."""
    client = board.browser()
    routes = [(m, p) for m, p in routes_of(board) if p not in OPEN]
    assert {p for _, p in routes} >= set(PAGES)
    assert ("POST", "/app/signout") in routes
    for method, path in routes:
        response = client.request(method, path, data={"csrf": "x"})
        assert response.status_code == 303, (method, path, response.status_code)
        assert urlsplit(response.headers["location"]).path == "/app/signin", (method, path)


def test_sign_in_opens_a_session_with_a_strict_http_only_cookie_and_is_audited(
    board: Board,
) -> None:
    """The right password signs in (303 to the worklist) with an HttpOnly, SameSite=Strict session cookie on /app, and leaves a user.signed_in record."""
    client = board.browser()
    response = submit_sign_in(client, COORDINATOR, PASSWORD)
    assert response.status_code == 303
    assert response.headers["location"] == "/app/worklist"
    cookie = next(
        h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE)
    )
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/app"} <= attributes
    worklist = client.get("/app/worklist")
    assert worklist.status_code == 200
    assert f"{COORDINATOR} (coordinator)" in worklist.text
    [event] = board.audit("user.signed_in")
    assert event["detail"] == {"user": COORDINATOR, "address": "127.0.0.1", "via": "password"}


def test_a_wrong_password_is_refused_and_audited(board: Board) -> None:
    """A wrong password answers 401 with the sign-in form saying so, opens no session, and leaves a user.sign_in_failed record."""
    client = board.browser()
    response = submit_sign_in(client, COORDINATOR, "not the password at all")
    assert response.status_code == 401
    assert "Wrong email or password." in response.text
    assert SESSION_COOKIE not in response.cookies
    assert client.get("/app/worklist").status_code == 303
    [event] = board.audit("user.sign_in_failed")
    assert event["detail"] == {"user": COORDINATOR, "address": "127.0.0.1"}


def test_the_sixth_failed_sign_in_of_an_account_in_a_minute_gets_429(board: Board) -> None:
    """Five wrong passwords for one account answer 401; the sixth attempt within the minute gets 429 even with the right password; a minute later it signs in."""
    client = board.browser()
    for _ in range(5):
        assert submit_sign_in(client, COORDINATOR, "wrong password 123").status_code == 401
    limited = submit_sign_in(client, COORDINATOR, PASSWORD)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "60"
    assert "Too many failed sign-ins" in limited.text
    assert len(board.audit("user.sign_in_limited")) == 1
    board.clock.advance(seconds=61)
    assert submit_sign_in(client, COORDINATOR, PASSWORD).status_code == 303


def test_the_sixth_failed_sign_in_from_one_address_gets_429_whatever_the_account(
    board: Board,
) -> None:
    """Five failures from one address on five different accounts make the sixth attempt from it 429, for any account."""
    client = board.browser()
    for n in range(5):
        assert submit_sign_in(client, f"nobody{n}@example.com", "guess guess 1").status_code == 401
    assert submit_sign_in(client, VIEWER, PASSWORD).status_code == 429


def test_a_post_without_or_with_a_wrong_csrf_token_is_403_and_changes_nothing(
    board: Board,
) -> None:
    """Sign-out and search without the form's token, or with another's, answer 403 and leave every table as it was (the session still works)."""
    client = board.sign_in()
    other = board.sign_in(VIEWER)
    foreign = csrf_of(other.get("/app/worklist").text)
    before = board.desk.snapshot()
    own = csrf_of(client.get("/app/worklist").text)
    altered = own[:-1] + ("A" if own[-1] != "A" else "B")
    for data in ({}, {"csrf": ""}, {"csrf": foreign}, {"csrf": altered}):
        for path in ("/app/signout", "/app/patients"):
            response = client.post(path, data={**data, "q": "Dana"})
            assert response.status_code == 403, (path, data)
    assert board.desk.snapshot() == before
    assert client.get("/app/worklist").status_code == 200


def test_the_sign_in_form_needs_its_own_token(board: Board) -> None:
    """A sign-in POST without the token of the browser's sign-in page is 403 and signs nobody in."""
    client = board.browser()
    client.get("/app/signin")
    response = client.post(
        "/app/signin", data={"csrf": "forged", "email": COORDINATOR, "password": PASSWORD}
    )
    assert response.status_code == 403
    stranger = board.browser()  # no pre-session cookie at all
    page = board.browser().get("/app/signin")
    response = stranger.post(
        "/app/signin",
        data={"csrf": csrf_of(page.text), "email": COORDINATOR, "password": PASSWORD},
    )
    assert response.status_code == 403
    assert board.audit("user.signed_in") == []
    assert SIGNIN_COOKIE in page.cookies


@pytest.mark.parametrize("path", [*PAGES, "/app/signin", "/app/static/dashboard.css"])
def test_every_app_response_carries_the_security_headers(board: Board, path: str) -> None:
    """Pages, redirects, the sign-in page and the stylesheet carry the CSP, X-Frame-Options: DENY and Cache-Control: no-store."""
    for client in (board.browser(), board.sign_in()):
        response = client.get(path)
        for name, value in HEADERS.items():
            assert response.headers.get(name) == value, (path, name)


def test_a_patient_page_view_is_an_audit_record_of_who_read_which_patient(board: Board) -> None:
    """Opening P-1's page writes patient.viewed with the patient id and the user, once per view."""
    client = board.sign_in()
    assert client.get("/app/patients/P-1").status_code == 200
    assert client.get("/app/patients/P-1").status_code == 200
    events = board.audit("patient.viewed")
    assert [(e["patient_id"], e["detail"]) for e in events] == [("P-1", {"user": COORDINATOR})] * 2


def links(html: str, base: str) -> set[str]:
    """Every address a page links to or posts to."""
    found = re.findall(r'(?:href|action|src)="([^"]*)"', html)
    return {urljoin(base, unescape(u)) for u in found}


def test_no_patient_name_or_phone_appears_in_any_address(board: Board) -> None:
    """Crawling every page as a coordinator (and searching by name), no link, form action or redirect carries a patient's name or phone number."""
    client = board.sign_in()
    seen: set[str] = set()
    queue = [client.base_url.join(p).__str__() for p in PAGES]
    addresses: set[str] = set()
    search = client.post(
        "/app/patients", data={"csrf": csrf_of(client.get("/app/patients").text), "q": "Dana"}
    )
    assert search.status_code == 200
    assert "/app/patients/P-1" in search.text
    addresses |= links(search.text, str(search.url))
    while queue:
        url = queue.pop()
        if url in seen or not url.startswith(str(client.base_url)):
            continue
        seen.add(url)
        response = client.get(url, follow_redirects=True)
        addresses.add(str(response.url))
        addresses |= {str(r.headers.get("location", "")) for r in response.history}
        found = (
            links(response.text, url)
            if "html" in response.headers.get("content-type", "")
            else set()
        )
        addresses |= found
        queue += [u for u in found if "/app/" in u and "signout" not in u]
    assert len(seen) >= 8
    names = {"Dana", "Reyes"}
    phones = {form for phone in PHONE.values() for form in contact_forms(phone)}
    emails = {email for _, _, email, _ in PATIENTS if email}
    for address in addresses:
        for secret in names | phones | emails:
            assert secret not in address, (secret, address)


def test_an_idle_session_ends_after_eight_hours(board: Board) -> None:
    """A session used within 8 hours stays open; after 8 idle hours the next request goes to sign-in."""
    client = board.sign_in()
    board.clock.advance(hours=7, minutes=59)
    assert client.get("/app/worklist").status_code == 200
    board.clock.advance(hours=7, minutes=59)
    assert client.get("/app/worklist").status_code == 200
    board.clock.advance(hours=8)
    assert client.get("/app/worklist").status_code == 303


def test_sign_out_ends_the_session(board: Board) -> None:
    """Sign-out with the form's token ends the session: the old cookie no longer opens pages."""
    client = board.sign_in()
    cookie = client.cookies[SESSION_COOKIE]
    token = csrf_of(client.get("/app/worklist").text)
    assert client.post("/app/signout", data={"csrf": token}).status_code == 303
    replay = board.browser()
    replay.cookies.set(SESSION_COOKIE, cookie, path="/app")
    assert replay.get("/app/worklist").status_code == 303


def test_a_forged_session_cookie_opens_nothing(board: Board) -> None:
    """A cookie of the right shape whose signature was not made with the secret key is no session."""
    client = board.browser()
    client.cookies.set(SESSION_COOKIE, "a" * 43 + "." + "b" * 43, path="/app")
    assert client.get("/app/worklist").status_code == 303


def test_the_worklist_explains_an_invalid_number_and_an_opt_out_in_plain_words(
    board: Board,
) -> None:
    """P-3's text failed with 21211 and P-2 replied STOP: the worklist says so in words, with what to fix."""
    page = board.sign_in().get("/app/worklist").text
    text = re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", page)))
    assert "P-3 Dana text The phone number is not a valid number. Check the phone number" in text
    assert "code 21211" in text
    assert "P-2 Dana text The patient replied STOP" in text


def test_the_patient_page_shows_each_text_exactly_as_the_provider_received_it(
    board: Board,
) -> None:
    """The day-1 text on P-1's page is the body the Twilio endpoint received, marked as sent."""
    [sent] = [m for m in board.desk.fake.messages if m.to == PHONE["P-1"]]
    page = board.sign_in().get("/app/patients/P-1").text
    bodies = [unescape(b) for b in re.findall(r'<pre class="body">(.*?)</pre>', page, re.S)]
    assert sent.body in bodies
    assert "The message (as sent)" in page


def test_search_finds_patients_by_name_or_id_through_a_post(board: Board) -> None:
    """A search for 'dana' (any case) lists the patients of that name; one for 'p-4' lists P-4."""
    client = board.sign_in()
    token = csrf_of(client.get("/app/patients").text)
    by_name = client.post("/app/patients", data={"csrf": token, "q": "dana"}).text
    assert "/app/patients/P-1" in by_name
    by_id = client.post("/app/patients", data={"csrf": token, "q": "p-4"}).text
    assert re.findall(r'href="/app/patients/(P-\d)"', by_id) == ["P-4"]


def test_a_trusted_proxy_header_signs_in_only_from_a_trusted_peer(board: Board) -> None:
    """With REMINDERS_AUTH_PROXY_HEADER on, the header from a trusted peer (loopback here) signs its user in; with loopback not trusted it is ignored; an unknown user gets nothing."""
    from dataclasses import replace

    from reminders.http import create_app
    from tests.integration.test_audit import serve

    settings = board.context.dashboard
    assert settings is not None
    for proxies, user, expected in (
        (frozenset({"127.0.0.1"}), VIEWER, 200),
        (frozenset({"10.0.0.1"}), VIEWER, 303),
        (frozenset({"127.0.0.1"}), "nobody@example.com", 303),
    ):
        proxied = replace(settings, proxy_header="X-Forwarded-Email", proxies=proxies)
        app = create_app(replace(board.context, dashboard=proxied))
        with serve(app) as client:
            response = client.get("/app/worklist", headers={"X-Forwarded-Email": user})
            assert response.status_code == expected, (proxies, user)
            if expected == 200:
                assert f"{VIEWER} (viewer)" in response.text


def test_a_disabled_account_loses_its_session_at_once(board: Board) -> None:
    """Disabling an account ends its open sessions: the next request goes to sign-in."""
    client = board.sign_in(VIEWER)
    with board.store.write() as tx:
        assert tx.users.disable(VIEWER, board.clock())
    assert client.get("/app/worklist").status_code == 303


def test_the_dashboard_is_not_served_without_a_secret_key(board: Board) -> None:
    """Without dashboard settings (no REMINDERS_SECRET_KEY) every /app/ address is 404."""
    from dataclasses import replace

    from reminders.http import create_app
    from tests.integration.test_audit import serve

    with serve(create_app(replace(board.context, dashboard=None))) as client:
        for path in (*PAGES, "/app/signin"):
            assert client.get(path).status_code == 404, path


def test_a_failure_leaves_the_worklist_once_a_later_text_reaches_the_patient(board: Board) -> None:
    """When a text to P-3 is accepted after the 21211 failure (the number was fixed), the failure is no longer listed."""
    client = board.sign_in()
    assert "code 21211" in client.get("/app/worklist").text
    later = next(
        e for e in board.desk.entries("P-3") if e.channel == "sms" and e.status == "planned"
    )
    assert later.id is not None
    board.clock.advance(minutes=5)
    with board.store.write() as tx:
        tx.outbox.record_sent(later.id, "SM" + "0" * 32, board.clock())
    page = client.get("/app/worklist").text
    assert "code 21211" not in page
    assert 'Messages that could not be delivered <span class="count">0</span>' in page


def test_the_patient_page_shows_each_email_exactly_as_it_went_out(board: Board) -> None:
    """P-4's day-1 email on her page is the text the email channel sent (unsubscribe and calendar links included), marked as sent."""
    [mail] = [m for m in board.desk.email.sent if m.to == "aroha.ngata@example.com"]
    page = board.sign_in().get("/app/patients/P-4").text
    bodies = [unescape(b) for b in re.findall(r'<pre class="body">(.*?)</pre>', page, re.S)]
    assert mail.text in bodies
    assert "today&#39;s text" not in page
    assert "The message (as sent)" in page
