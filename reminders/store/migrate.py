"""Schema migrations (Alembic, shipped in ``reminders/migrations``), applied at start.

Several instances may start at once: on PostgreSQL the upgrade runs under a
transaction-scoped advisory lock, on SQLite inside a ``BEGIN IMMEDIATE``
transaction, so exactly one of them migrates and the others find the schema current.
``reminders db upgrade`` takes the same lock.

A database at a revision this version does not ship (migrated by a newer release, then
the code rolled back) is refused with :class:`~reminders.errors.StoreError` and left as
it is: old code must not write to a schema it does not know.

Alembic's own INFO lines (one per plugin as it is imported, "Context impl ...",
"Running upgrade ...") are silenced; a migration that runs logs one ``database.migrated``
line instead, with the revisions it went from and to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from reminders import logs
from reminders.errors import StoreError
from reminders.store.engine import describe

# Before Alembic is imported, since it logs a line per plugin at INFO as it is imported.
logging.getLogger("alembic").setLevel(logging.WARNING)

from alembic import command  # noqa: E402  # after the logger level above
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402

log = logs.get("reminders.store.migrate")

#: pg_advisory_xact_lock key: "reminders" in ASCII, as a number.
_LOCK: Final = 0x72656D696E646572
_SCRIPTS: Final = Path(__file__).resolve().parent.parent / "migrations"


@dataclass(frozen=True, slots=True)
class Revisions:
    """Where a database stands against the revisions this version ships."""

    #: The database's revision (None: an empty or unversioned database).
    current: str | None
    #: The newest revision this version ships.
    head: str

    @property
    def at_head(self) -> bool:
        """The schema is the one this version expects."""
        return self.current == self.head

    @property
    def newer(self) -> bool:
        """The revision is not one this version ships: a newer release migrated the database."""
        return self.current is not None and self.current not in shipped()


@dataclass(frozen=True, slots=True)
class Upgrade:
    """What one upgrade did."""

    #: The revision before (None: the database was empty).
    before: str | None
    #: The revision after.
    after: str | None

    @property
    def ran(self) -> bool:
        """Whether a migration ran (False: the schema was already current)."""
        return self.before != self.after


@cache
def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


@cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


@cache
def head() -> str:
    """The newest revision shipped with this version."""
    revision = _scripts().get_current_head()
    assert revision is not None  # noqa: S101  # the package ships at least one revision
    return revision


@cache
def shipped() -> frozenset[str]:
    """Every revision shipped with this version."""
    return frozenset(s.revision for s in _scripts().walk_revisions())


def current(conn: Connection) -> str | None:
    """The revision the database is at (None: empty or unversioned)."""
    return MigrationContext.configure(conn).get_current_revision()


def _safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _refuse_newer(engine: Engine, at: Revisions) -> None:
    if at.newer:
        raise StoreError(
            f"database {_safe_url(engine)} is at schema revision {at.current}, which this "
            f"version does not know (its newest is {at.head}): a newer release migrated it. "
            "Run that release, or restore the backup taken before the upgrade; "
            "the database was left as it is"
        )


def revisions(engine: Engine) -> Revisions:
    """Where the database stands, without changing it; raises StoreError if unreachable."""
    try:
        with engine.connect() as conn:
            return Revisions(current(conn), head())
    except sa.exc.DBAPIError as exc:
        raise StoreError(f"cannot open database {_safe_url(engine)}: {describe(exc)}") from None


def upgrade(engine: Engine, revision: str = "head") -> Upgrade:
    """Bring the database to ``revision``, safely against concurrent starts.

    Raises StoreError, changing nothing, when the database is at a revision this
    version does not ship, or when the database fails the migration (a full disk: it
    is one transaction, rolled back).
    """
    try:
        return _upgrade(engine, revision)
    except sa.exc.DBAPIError as exc:
        raise StoreError(
            f"cannot migrate database {_safe_url(engine)}, nothing changed: {describe(exc)}"
        ) from None


def _upgrade(engine: Engine, revision: str) -> Upgrade:
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
        at = Revisions(current(conn), head())
        _refuse_newer(engine, at)
        if revision == "head" and at.at_head:
            return Upgrade(at.current, at.current)
        config = _config()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        done = Upgrade(at.current, current(conn))
    if done.ran:
        log.info(
            "database.migrated",
            from_revision=done.before,
            to_revision=done.after,
            database=_safe_url(engine),
        )
    return done
