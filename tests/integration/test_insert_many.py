"""The driver-level bulk insert (``insert_many``) writes what SQLAlchemy's insert writes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from reminders.errors import StoreError
from reminders.store import Store
from reminders.store.bulk import insert_many
from reminders.store.schema import ENROLLMENTS

WHEN = datetime(2026, 11, 30, 18, 5, 7, 123456, tzinfo=UTC)


def enrollment(pid: str, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "patient_id": pid,
        "first_name": "Dana",
        "last_name": "",
        "phone": None,
        "email": f"{pid.lower()}@example.com",
        "surgery_date": date(2026, 11, 20),
        "protocol": "demo-repair",
        "timezone": "America/New_York",
        "language": "en",
        "channels": "email",
        "status": "active",
        "attributes": "{}",
        "source_hash": "x",
        "created_at": WHEN,
        "updated_at": WHEN,
        "late_plan_id": None,
    }
    row.update(fields)
    return row


def stored(store: Store, pid: str) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """The row as the column types read it, and as the driver returns it."""
    with store.read() as tx:
        typed = tx.conn.execute(ENROLLMENTS.select().where(ENROLLMENTS.c.patient_id == pid))
        mark = "?" if tx.conn.dialect.paramstyle == "qmark" else "%s"
        raw = tx.conn.exec_driver_sql(
            f"SELECT surgery_date, created_at, updated_at FROM enrollments WHERE patient_id = {mark}",  # noqa: S608  # a placeholder
            (pid,),
        )
        return dict(typed.one()._mapping), tuple(raw.one())


def test_rows_read_back_as_sqlalchemy_wrote_them(store: Store) -> None:
    """Dates, aware datetimes (from any offset) and NULLs come back as from a typed insert,
    and the stored text on SQLite is the same, so that comparisons in SQL agree."""
    later = WHEN.astimezone(timezone(timedelta(hours=-5)))  # the same instant, another offset
    with store.write() as tx:
        tx.conn.execute(ENROLLMENTS.insert(), [enrollment("P-1", updated_at=later)])
        insert_many(tx.conn, ENROLLMENTS, [enrollment("P-2", updated_at=later)])
    typed, typed_raw = stored(store, "P-1")
    bulk, bulk_raw = stored(store, "P-2")
    assert {**bulk, "patient_id": "P-1", "email": "p-1@example.com"} == typed
    assert bulk["updated_at"] == WHEN
    assert bulk_raw == typed_raw


def test_a_naive_datetime_is_refused_as_the_column_type_refuses_it(store: Store) -> None:
    """A datetime without a zone is an error, not a guess at the server's zone."""
    with pytest.raises(StoreError, match="a value could not be sent"), store.write() as tx:
        insert_many(tx.conn, ENROLLMENTS, [enrollment("P-1", created_at=WHEN.replace(tzinfo=None))])
    with store.read() as tx:
        assert tx.conn.execute(sa.select(sa.func.count()).select_from(ENROLLMENTS)).scalar() == 0
