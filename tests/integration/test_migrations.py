"""Alembic migrations: applied at start, safe to run concurrently, lossless from the previous revision."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from reminders.store import Store, migrate

T0 = "2026-11-20 15:00:00.000000"


def _engine(url: str) -> sa.Engine:
    return Store(url, migrate=False).engine


def test_fresh_database_is_migrated_to_head_and_matches_the_models(database_url: str) -> None:
    """A new store lands at the newest revision, and the migrated schema equals the table models."""
    store = Store(database_url)
    with store.engine.connect() as conn:
        assert migrate.current(conn) == migrate.head()
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    store.close()
    assert diff == []


def test_upgrade_from_previous_revision_keeps_the_data(database_url: str) -> None:
    """A database made at revision 0001, with data in it, upgrades to head and loses nothing."""
    engine = _engine(database_url)
    migrate.upgrade(engine, "0001")
    stamp: object = (
        T0 if engine.dialect.name == "sqlite" else datetime(2026, 11, 20, 15, tzinfo=UTC)
    )
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO enrollments VALUES ('P-1', 'Dana', 'Reyes', '+12015550123', 'dana@example.com',"
                " '2026-11-19', 'proximal-hamstring-repair', 'America/New_York', 'en', 'sms,email', 'active',"
                " '{}', 'h', :t, :t)"
            ),
            {"t": stamp},
        )
        conn.execute(
            sa.text(
                "INSERT INTO reminders (id, patient_id, protocol, milestone, occurrence, channel, template,"
                " due_at, not_before, expires_at, status, attempts, provider_id, updated_at) VALUES"
                " (1, 'P-1', 'proximal-hamstring-repair', 'crutches-toe-touch', 1, 'sms', 'crutches-toe-touch',"
                " :t, :t, :t, 'sent', 1, 'SM123', :t),"
                " (2, 'P-1', 'proximal-hamstring-repair', 'protect-hamstring', 1, 'sms', 'protect-hamstring',"
                " :t, :t, :t, 'planned', 0, NULL, :t)"
            ),
            {"t": stamp},
        )
        conn.execute(
            sa.text(
                "INSERT INTO attempts (id, reminder_id, number, owner, started_at, finished_at, outcome, provider_id)"
                " VALUES (1, 1, 1, 'old', :t, :t, 'sent', 'SM123')"
            ),
            {"t": stamp},
        )
    engine.dispose()

    store = Store(database_url)  # applies the rest at start
    with store.read() as tx:
        enrollment = tx.views.enrollment("P-1")
        entries = tx.views.timeline("P-1")
    with store.engine.connect() as conn:
        assert migrate.current(conn) == migrate.head()
        digest = conn.execute(sa.text("SELECT body_digest FROM attempts WHERE id = 1")).scalar_one()
        inbound = conn.execute(sa.text("SELECT count(*) FROM inbound_messages")).scalar_one()
    store.close()
    assert (enrollment.first_name, enrollment.phone, enrollment.status) == (
        "Dana",
        "+12015550123",
        "active",
    )
    assert [(e.milestone, e.status, e.provider_id) for e in entries] == [
        ("crutches-toe-touch", "sent", "SM123"),
        ("protect-hamstring", "planned", None),
    ]
    assert entries[0].due_at == datetime(2026, 11, 20, 15, tzinfo=UTC)
    assert digest is None
    assert inbound == 0


def _open_at_once(url: str, stores: int) -> list[BaseException]:
    """Open ``stores`` stores on ``url`` from as many threads at once; the errors they met."""
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            Store(url).close()
        except BaseException as exc:  # collected and returned
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


def test_first_connections_to_new_sqlite_files_all_start(tmp_path: Path) -> None:
    """Four stores opening the same new SQLite file at once, 30 files: none fails.

    Catches: the switch to WAL raced by the first connections of a new file (SQLite answers
    the losers SQLITE_BUSY without waiting): about one start in twelve failed.
    """
    errors = [
        error
        for n in range(30)
        for error in _open_at_once(f"sqlite:///{tmp_path / f'new-{n}.db'}", 4)
    ]
    assert errors == []


def test_concurrent_starts_migrate_once(database_url: str) -> None:
    """Several stores opening an empty database at once all end at head without errors."""
    assert _open_at_once(database_url, 4) == []
    engine = _engine(database_url)
    with engine.connect() as conn:
        assert migrate.current(conn) == migrate.head()
    engine.dispose()


@pytest.mark.parametrize("revision", ["0001"])
def test_downgrade_then_upgrade_round_trips(database_url: str, revision: str) -> None:
    """Migrations also run backwards, so an upgrade can be rolled back."""
    from alembic import command

    Store(database_url).close()
    engine = _engine(database_url)
    config = migrate._config()  # the same configuration the store uses
    with engine.connect() as conn, conn.begin():
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
        assert migrate.current(conn) == revision
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert migrate.current(conn) == migrate.head()
    engine.dispose()
