"""Dashboard accounts: passwords, session cookies and CSRF tokens (pure, no database)."""

from __future__ import annotations

import pytest

from reminders import accounts
from reminders.errors import AccountError
from reminders.web.dashboard.pages import safe_next
from reminders.web.dashboard.words import advice

SECRET = "unit-test-secret"


def test_a_password_hash_verifies_only_the_same_password() -> None:
    """An Argon2id hash verifies its password and refuses any other; no hash refuses all."""
    hashed = accounts.hash_password("correct horse battery staple")
    assert hashed.startswith("$argon2id$")
    assert accounts.verify_password(hashed, "correct horse battery staple")
    assert not accounts.verify_password(hashed, "correct horse battery stapler")
    assert not accounts.verify_password(None, "correct horse battery staple")
    assert not accounts.verify_password("not a hash", "x")


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "at least 12"),
        ("x" * 257, "at most 256"),
        ("kim@example.com", "not be the account name"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(password: str, reason: str) -> None:
    """Too short, too long, or the account name itself: AccountError saying which."""
    with pytest.raises(AccountError, match=reason):
        accounts.check_password(password, "kim@example.com")


def test_a_session_cookie_opens_only_with_its_own_signature() -> None:
    """A new session's cookie yields its digest; a changed token, signature or key yields None."""
    signed = accounts.new_session(SECRET)
    assert accounts.session_digest(SECRET, signed.cookie) == signed.digest
    token, _, mac = signed.cookie.partition(".")
    assert accounts.session_digest(SECRET, f"{token}x.{mac}") is None
    other = "A" if mac[-1] != "A" else "B"
    assert accounts.session_digest(SECRET, f"{token}.{mac[:-1]}{other}") is None
    assert accounts.session_digest("another key", signed.cookie) is None
    assert accounts.session_digest(SECRET, token) is None
    assert accounts.session_digest(SECRET, None) is None


def test_a_csrf_token_belongs_to_one_session() -> None:
    """The token of one cookie checks for it and for no other; an empty token never checks."""
    one, two = accounts.new_session(SECRET).cookie, accounts.new_session(SECRET).cookie
    token = accounts.csrf_token(SECRET, one)
    assert accounts.csrf_ok(SECRET, one, token)
    assert not accounts.csrf_ok(SECRET, two, token)
    assert not accounts.csrf_ok(SECRET, one, token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert not accounts.csrf_ok(SECRET, one, "")
    assert not accounts.csrf_ok(SECRET, one, None)


@pytest.mark.parametrize(
    ("asked", "goes"),
    [
        ("/app/patients/P-1", "/app/patients/P-1"),
        ("https://evil.example.com/app/", "/app/worklist"),
        ("//evil.example.com/app/", "/app/worklist"),
        ("/app//evil.example.com", "/app/worklist"),
        ("/app/../unsubscribe/x", "/app/worklist"),
        (None, "/app/worklist"),
    ],
)
def test_after_sign_in_the_browser_goes_only_to_a_dashboard_path(
    asked: str | None, goes: str
) -> None:
    """``next`` is followed only when it is a path under /app/ (no other host, no way out)."""
    assert safe_next(asked) == goes


def test_each_failure_code_has_words_and_a_fix() -> None:
    """Known codes, SMTP 5xx and a missing address read as sentences; an unknown code still says something."""
    assert advice("21211", None).what == "The phone number is not a valid number."
    assert "email address" in advice("552", None).fix
    assert advice(None, "no sms address or channel").what == "There is no address for this channel."
    assert advice("99999", "whatever").what == "The provider refused the message."
