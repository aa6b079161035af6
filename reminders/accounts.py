"""Dashboard accounts: roles, passwords, session tokens and CSRF tokens (no SQL, no clock).

- Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's second
  recommended setting); a hash made with older parameters is re-made at the next sign-in.
  An unknown account is checked against a dummy hash, so a wrong name costs as long
  as a wrong password and the answer does not tell which accounts exist.
- A session cookie is ``<token>.<HMAC of the token>``: the token is 32 random bytes, the
  MAC is keyed with ``REMINDERS_SECRET_KEY``, and the store keeps only the token's SHA-256,
  so neither a leaked database nor a forged cookie opens a session.
- A form's CSRF token is an HMAC of the session's token (or, on the sign-in page, of a
  random pre-session cookie): it is never stored, and is compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from functools import cache
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from reminders.errors import AccountError
from reminders.fields import LIMITS, normalise_email


class Role(StrEnum):
    """What a dashboard user may do."""

    #: Reads every page and acknowledges and resolves alerts.
    COORDINATOR = "coordinator"
    #: Reads every page; changes nothing.
    VIEWER = "viewer"


#: Shortest password accepted (NIST SP 800-63B asks at least 8; a clinic's PHI merits more).
MIN_PASSWORD: Final = 12
#: Longest password read (Argon2 takes any length; a bound keeps a request's cost bounded).
MAX_PASSWORD: Final = 256
#: A session ends after this long without a request (SPEC 12).
IDLE_TIMEOUT: Final = timedelta(hours=8)
#: Failed sign-ins tolerated per account, and per client address, within :data:`WINDOW`;
#: the next attempt is refused with 429 before its password is looked at.
MAX_FAILURES: Final = 5
WINDOW: Final = timedelta(minutes=1)
#: Failures older than this are deleted.
KEEP_FAILURES: Final = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Signed:
    """A new session: the cookie value for the browser, the digest for the store."""

    #: ``<token>.<mac>``.
    cookie: str
    #: SHA-256 of the token, hex: the ``web_sessions`` key.
    digest: str


def normalise_account(text: str) -> str:
    """An account name as stored: trimmed, lower case, at most the email field's length."""
    return text.strip().lower()[: LIMITS["email"]]


def check_account(text: str) -> str:
    """A new account's name (an email address, lower case); raises AccountError if it is not one."""
    name = normalise_account(text)
    try:
        return normalise_email(name).lower()
    except ValueError as exc:
        raise AccountError(f"account name: {exc}") from None


def check_password(password: str, account: str) -> None:
    """Raise AccountError unless ``password`` is acceptable for ``account``."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password must have at most {MAX_PASSWORD} characters")
    if password.strip().lower() == account.lower() or password.lower() in account.lower():
        raise AccountError("the password must not be the account name")


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@cache
def _dummy() -> str:
    return _hasher().hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """The Argon2id hash of ``password`` (a PHC string with its salt and parameters)."""
    return _hasher().hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; None (no such account) still costs one check."""
    try:
        return _hasher().verify(stored or _dummy(), password[:MAX_PASSWORD]) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with weaker parameters than today's."""
    return _hasher().check_needs_rehash(stored)


def _mac(secret: str, purpose: str, value: str) -> str:
    digest = hmac.new(secret.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def digest(token: str) -> str:
    """SHA-256 of a session token, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_session(secret: str) -> Signed:
    """A fresh session token, signed for the cookie."""
    token = secrets.token_urlsafe(32)
    return Signed(f"{token}.{_mac(secret, 'session', token)}", digest(token))


def session_digest(secret: str, cookie: str | None) -> str | None:
    """The store key of a genuine session cookie, else None."""
    if not cookie or len(cookie) > 200:
        return None
    token, dot, mac = cookie.partition(".")
    if not dot or not hmac.compare_digest(mac.encode(), _mac(secret, "session", token).encode()):
        return None
    return digest(token)


def csrf_token(secret: str, cookie: str) -> str:
    """The CSRF token of every form of the session (or pre-session) whose cookie is ``cookie``."""
    return _mac(secret, "csrf", cookie)


def csrf_ok(secret: str, cookie: str | None, sent: str | None) -> bool:
    """Whether a form's token ``sent`` belongs to ``cookie`` (constant-time comparison)."""
    if not cookie or not sent:
        return False
    return hmac.compare_digest(sent.encode(), csrf_token(secret, cookie).encode())


def new_nonce() -> str:
    """A random value for the sign-in page's pre-session cookie."""
    return secrets.token_urlsafe(24)
