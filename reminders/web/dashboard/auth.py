"""Who is asking: session cookies, the trusted auth proxy, CSRF tokens and the sign-in limit.

- A request is signed in when its ``reminders_session`` cookie carries a genuine
  session (:mod:`reminders.accounts`) of an enabled account, idle for less than 8 hours;
  or, when ``REMINDERS_AUTH_PROXY_HEADER`` is set, when a peer listed in
  ``REMINDERS_TRUSTED_PROXIES`` names an enabled account in that header (the proxy did
  the sign-in; the dashboard still opens a session of its own for CSRF tokens). The
  header from any other peer is ignored, as is ``X-Forwarded-For``.
- Cookies are ``HttpOnly``, ``SameSite=Strict``, ``Path=/app`` and ``Secure`` unless the
  service is plain http on loopback.
- Sign-in: after :data:`~reminders.accounts.MAX_FAILURES` failures within a minute for
  an account, or from an address, the next attempt gets 429 before its password is
  looked at. Every failure, refusal and sign-in is an audit record
  (``user.sign_in_failed``, ``user.sign_in_limited``, ``user.signed_in``), with the
  account name as typed and the client's address, never the password.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum, auto
from typing import Final

from fastapi import Request, Response

from reminders import accounts, logs
from reminders.accounts import IDLE_TIMEOUT, KEEP_FAILURES, MAX_FAILURES, WINDOW, Role
from reminders.store import User
from reminders.web.context import DashboardSettings, WebContext

log = logs.get("reminders.web.dashboard")

SESSION_COOKIE: Final = "reminders_session"
SIGNIN_COOKIE: Final = "reminders_signin"
#: A session's idle clock is written at most this often (reading pages writes nothing else).
TOUCH_AFTER: Final = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Visitor:
    """A signed-in user, and the session their forms are bound to."""

    #: The account.
    user: User
    #: The session cookie's value (CSRF tokens are derived from it).
    cookie: str
    #: A session opened by this request (for a proxy-authenticated user): set the cookie.
    new: bool = False

    @property
    def name(self) -> str:
        """Who, as recorded in the audit trail and on alerts."""
        return self.user.email

    @property
    def coordinator(self) -> bool:
        """Whether the user may acknowledge and resolve alerts."""
        return self.user.role == Role.COORDINATOR


class Outcome(Enum):
    """How one sign-in attempt ended."""

    SIGNED_IN = auto()
    FAILED = auto()
    LIMITED = auto()


def client_address(request: Request, settings: DashboardSettings) -> str:
    """The client's address: the peer's, or the last X-Forwarded-For hop a trusted proxy added."""
    peer = request.client.host if request.client else "unknown"
    if peer in settings.proxies:
        forwarded = request.headers.get("x-forwarded-for", "").split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(forwarded))
        except ValueError:
            pass
    return peer


class Gate:
    """Sessions, sign-in and CSRF for one app."""

    def __init__(self, ctx: WebContext, settings: DashboardSettings) -> None:
        self.ctx = ctx
        self.settings = settings

    # -- who is asking ------------------------------------------------------------------

    def visitor(self, request: Request) -> Visitor | None:
        """The signed-in user of ``request``, or None."""
        cookie = request.cookies.get(SESSION_COOKIE)
        digest = accounts.session_digest(self.settings.secret, cookie)
        user = self._session_user(digest) if digest else None
        proxied = self._proxied(request)
        if proxied is None or (user is not None and user.email == proxied):
            return Visitor(user, cookie) if user is not None and cookie else None
        return self._proxy_session(proxied, request)

    def _session_user(self, digest: str) -> User | None:
        """The enabled account of a live session; an idle one is ended, a busy one touched."""
        now = self.ctx.clock()
        with self.ctx.store.read() as tx:
            found = tx.users.session(digest)
        if found is None:
            return None
        user, seen = found
        if now - seen >= IDLE_TIMEOUT:
            with self.ctx.store.write() as tx:
                tx.users.end_session(digest)
            return None
        if now - seen >= TOUCH_AFTER:
            with self.ctx.store.write() as tx:
                tx.users.touch(digest, now)
        return user if user.disabled_at is None else None

    def _proxied(self, request: Request) -> str | None:
        """The account a trusted proxy names, if the header is on and the peer trusted."""
        header = self.settings.proxy_header
        peer = request.client.host if request.client else None
        if header is None or peer not in self.settings.proxies:
            return None
        value = request.headers.get(header)
        return accounts.normalise_account(value) if value else None

    def _proxy_session(self, account: str, request: Request) -> Visitor | None:
        """Open a session for the account a trusted proxy signed in (None: no such enabled account)."""
        now = self.ctx.clock()
        signed = accounts.new_session(self.settings.secret)
        with self.ctx.store.write() as tx:
            user = tx.users.by_email(account)
            if user is None or user.disabled_at is not None or user.id is None:
                log.warning("dashboard.proxy_user_unknown")
                return None
            tx.users.open_session(signed.digest, user.id, now)
            tx.users.signed_in(user.id, now)
            tx.audit([self._event("user.signed_in", account, request, via="proxy")])
        return Visitor(user, signed.cookie, new=True)

    def _event(self, kind: str, account: str, request: Request, **detail: str) -> dict[str, object]:
        address = client_address(request, self.settings)
        return {
            "at": self.ctx.clock(),
            "kind": kind,
            "detail": {"user": account, "address": address, **detail},
        }

    # -- signing in and out -------------------------------------------------------------

    def sign_in(
        self, request: Request, account_text: str, password: str
    ) -> tuple[Outcome, str | None]:
        """Check a sign-in; returns the outcome and, when signed in, the new session cookie."""
        account = accounts.normalise_account(account_text)
        address = client_address(request, self.settings)
        now = self.ctx.clock()
        with self.ctx.store.read() as tx:
            by_account, by_address = tx.users.failures_since(
                now - WINDOW, account=account, address=address
            )
            user = tx.users.by_email(account)
        if by_account >= MAX_FAILURES or by_address >= MAX_FAILURES:
            with self.ctx.store.write() as tx:
                tx.audit([self._event("user.sign_in_limited", account, request)])
            log.warning("dashboard.sign_in_limited")
            return Outcome.LIMITED, None
        usable = user is not None and user.disabled_at is None and user.id is not None
        stored = user.password_hash if user is not None and usable else None
        # Argon2 runs outside any transaction: a slow hash never holds the write lock.
        if not accounts.verify_password(stored, password) or user is None or user.id is None:
            with self.ctx.store.write() as tx:
                tx.users.record_failure(account, address, now, KEEP_FAILURES)
                tx.audit([self._event("user.sign_in_failed", account, request)])
            log.info("dashboard.sign_in_failed")
            return Outcome.FAILED, None
        assert stored is not None  # noqa: S101  # verify_password is False without a hash
        rehash = accounts.hash_password(password) if accounts.needs_rehash(stored) else None
        signed = accounts.new_session(self.settings.secret)
        with self.ctx.store.write() as tx:
            tx.users.open_session(signed.digest, user.id, now)
            tx.users.signed_in(user.id, now, rehash)
            tx.audit([self._event("user.signed_in", account, request, via="password")])
        log.info("dashboard.signed_in")
        return Outcome.SIGNED_IN, signed.cookie

    def sign_out(self, visitor: Visitor, request: Request) -> None:
        """End the visitor's session."""
        digest = accounts.session_digest(self.settings.secret, visitor.cookie)
        with self.ctx.store.write() as tx:
            if digest:
                tx.users.end_session(digest)
            tx.audit([self._event("user.signed_out", visitor.name, request)])

    # -- cookies and tokens ---------------------------------------------------------------

    def csrf(self, visitor: Visitor) -> str:
        """The CSRF token of the visitor's forms."""
        return accounts.csrf_token(self.settings.secret, visitor.cookie)

    def csrf_ok(self, visitor: Visitor, sent: str | None) -> bool:
        """Whether a form carries the visitor's CSRF token (constant-time)."""
        return accounts.csrf_ok(self.settings.secret, visitor.cookie, sent)

    def signin_csrf(self, nonce: str) -> str:
        """The CSRF token of the sign-in form shown with pre-session cookie ``nonce``."""
        return accounts.csrf_token(self.settings.secret, f"signin:{nonce}")

    def signin_csrf_ok(self, request: Request, sent: str | None) -> bool:
        """Whether the sign-in form carries the token of this browser's pre-session cookie."""
        nonce = request.cookies.get(SIGNIN_COOKIE)
        return bool(nonce) and accounts.csrf_ok(self.settings.secret, f"signin:{nonce}", sent)

    def set_cookie(self, response: Response, name: str, value: str, path: str = "/app") -> None:
        """Set a cookie with the dashboard's attributes (HttpOnly, SameSite=Strict, Secure)."""
        response.set_cookie(
            name,
            value,
            path=path,
            httponly=True,
            samesite="strict",
            secure=self.settings.secure_cookies,
        )

    def clear_cookie(self, response: Response) -> None:
        """Remove the session cookie."""
        response.delete_cookie(
            SESSION_COOKIE,
            path="/app",
            httponly=True,
            samesite="strict",
            secure=self.settings.secure_cookies,
        )
