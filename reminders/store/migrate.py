"""Schema migrations (Alembic, shipped in ``reminders/migrations``), applied at start.

Several instances may start at once: on PostgreSQL the upgrade runs under a
transaction-scoped advisory lock, on SQLite inside a ``BEGIN IMMEDIATE``
transaction, so exactly one of them migrates and the others find the schema current.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Final

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

#: pg_advisory_xact_lock key: "reminders" in ASCII, as a number.
_LOCK: Final = 0x72656D696E646572
_SCRIPTS: Final = Path(__file__).resolve().parent.parent / "migrations"


@cache
def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


@cache
def head() -> str:
    """The newest revision shipped with this version."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None  # noqa: S101  # the package ships at least one revision
    return revision


def current(conn: Connection) -> str | None:
    """The revision the database is at (None: empty or unversioned)."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision``, safely against concurrent starts."""
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
        if revision == "head" and current(conn) == head():
            return
        config = _config()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
