"""Dashboard accounts, their sessions, and failed sign-ins (the rate limit's memory).

Sessions and failures live in the database, not in one process, so several ``run``
instances behind one address share them: a sign-out, a disabled account or a burst of
guesses counts everywhere at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from reminders.store.schema import SESSIONS, SIGN_IN_FAILURES, USERS, User, inserted_id


class UserQueries:
    """Accounts, sessions and failed sign-ins, inside one transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # -- accounts ---------------------------------------------------------------------------

    def add(self, email: str, role: str, password_hash: str | None, now: datetime) -> int | None:
        """A new account; None if one with that email exists (the table's unique key says so)."""
        if self.by_email(email) is not None:
            return None
        return inserted_id(
            self.conn.execute(
                USERS.insert().values(
                    email=email, role=role, password_hash=password_hash, created_at=now
                )
            )
        )

    def by_email(self, email: str) -> User | None:
        """The account named ``email`` (lower case), enabled or not."""
        with Session(bind=self.conn) as session:
            return session.exec(select(User).where(col(User.email) == email)).first()

    def by_id(self, user_id: int) -> User | None:
        """The account with that id."""
        with Session(bind=self.conn) as session:
            return session.get(User, user_id)

    def listed(self) -> list[User]:
        """Every account, by email."""
        with Session(bind=self.conn) as session:
            return list(session.exec(select(User).order_by(col(User.email))))

    def disable(self, email: str, now: datetime) -> bool:
        """Disable an account and end its sessions; False if there is no such enabled account."""
        user = self.by_email(email)
        if user is None or user.disabled_at is not None:
            return False
        self.conn.execute(USERS.update().where(USERS.c.id == user.id).values(disabled_at=now))
        self.conn.execute(SESSIONS.delete().where(SESSIONS.c.user_id == user.id))
        return True

    def signed_in(self, user_id: int, now: datetime, password_hash: str | None = None) -> None:
        """Record a sign-in (and a re-made hash, when the parameters were raised)."""
        values: dict[str, object] = {"last_sign_in_at": now}
        if password_hash is not None:
            values["password_hash"] = password_hash
        self.conn.execute(USERS.update().where(USERS.c.id == user_id).values(**values))

    # -- sessions ---------------------------------------------------------------------------

    def open_session(self, digest: str, user_id: int, now: datetime) -> None:
        """Store a new session under its token's digest."""
        self.conn.execute(
            SESSIONS.insert().values(id=digest, user_id=user_id, created_at=now, last_seen_at=now)
        )

    def session(self, digest: str) -> tuple[User, datetime] | None:
        """The account of the session stored under ``digest`` and when it was last seen."""
        s = SESSIONS.c
        row = self.conn.execute(
            sa.select(s.user_id, s.last_seen_at).where(s.id == digest)
        ).one_or_none()
        if row is None:
            return None
        user = self.by_id(row.user_id)
        return None if user is None else (user, row.last_seen_at)

    def touch(self, digest: str, now: datetime) -> None:
        """Restart a session's idle clock."""
        self.conn.execute(SESSIONS.update().where(SESSIONS.c.id == digest).values(last_seen_at=now))

    def end_session(self, digest: str) -> None:
        """Sign a session out."""
        self.conn.execute(SESSIONS.delete().where(SESSIONS.c.id == digest))

    def end_idle_sessions(self, now: datetime, idle: timedelta) -> int:
        """Delete every session idle for ``idle``; returns how many."""
        return self.conn.execute(
            SESSIONS.delete().where(SESSIONS.c.last_seen_at <= now - idle)
        ).rowcount

    # -- failed sign-ins ----------------------------------------------------------------------

    def failures_since(self, since: datetime, *, account: str, address: str) -> tuple[int, int]:
        """Failed sign-ins after ``since``: for ``account``, and from ``address``."""
        f = SIGN_IN_FAILURES.c

        def count(where: sa.ColumnElement[bool]) -> int:
            query = sa.select(sa.func.count()).select_from(SIGN_IN_FAILURES)
            return int(self.conn.execute(query.where(where, f.at > since)).scalar_one())

        return count(f.account == account), count(f.address == address)

    def record_failure(self, account: str, address: str, now: datetime, keep: timedelta) -> None:
        """Remember one failed sign-in, and forget those older than ``keep``."""
        self.conn.execute(SIGN_IN_FAILURES.delete().where(SIGN_IN_FAILURES.c.at < now - keep))
        self.conn.execute(
            SIGN_IN_FAILURES.insert().values(at=now, account=account, address=address)
        )
