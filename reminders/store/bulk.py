"""Rows to the driver without SQLAlchemy's processing of each value (bulk writes).

A sync of 100,000 patients writes 100,000 enrollments, as many audit events and millions
of reminders: values go as the column types would write them (datetimes and dates as
text on SQLite), encoded once per distinct value where values repeat.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Final, Generic, TypeVar

import sqlalchemy as sa

from reminders.store.schema import batches

V = TypeVar("V")

#: From this many rows on, PostgreSQL takes them through ``COPY`` (:func:`copy_rows`).
COPY_ROWS: Final = 1_000
#: How SQLAlchemy stores DATETIME on SQLite; raw inserts must write the same text.
_SQLITE_DATETIME: Final = "%Y-%m-%d %H:%M:%S.%f"


class ByIdentity(Generic[V]):
    """A value per object, by identity, the objects held so that no other takes their ``id``
    meanwhile: a sync's plans, shared by many patients, are one list object each
    (:class:`reminders.planning.Planner`), so they are stored or uploaded once per object."""

    def __init__(self) -> None:
        self._items: dict[int, tuple[object, V]] = {}

    def get(self, key: object) -> V | None:
        found = self._items.get(id(key))
        return None if found is None else found[1]

    def put(self, key: object, value: V) -> None:
        self._items[id(key)] = (key, value)

    def __len__(self) -> int:
        return len(self._items)


def datetime_encoder(conn: sa.Connection) -> Callable[[datetime], Any]:
    """How a raw statement writes a datetime: naive UTC text on SQLite, as is elsewhere.

    Plans share their instants (a milestone's send time on a date in a zone), so each
    is formatted once: ``strftime`` was a tenth of a large sync's CPU.
    """
    if conn.dialect.name != "sqlite":
        return lambda value: value
    texts: dict[datetime, str] = {}

    def text(value: datetime) -> str:
        found = texts.get(value)
        if found is None:
            found = texts[value] = value.astimezone(UTC).strftime(_SQLITE_DATETIME)
        return found

    return text


def insert_many(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) through the driver's ``executemany``.

    Values go as the column types would write them (datetimes and dates as text on
    SQLite) without SQLAlchemy's processing of each value, which was most of the time of
    inserting 100,000 enrollments and their audit events.
    """
    if not rows:
        return
    columns = list(rows[0])
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608  # declared names
        f"VALUES ({', '.join([mark] * len(columns))})"
    )
    moment = datetime_encoder(conn)
    sqlite = conn.dialect.name == "sqlite"

    def value(v: Any) -> Any:
        if isinstance(v, datetime):
            if v.tzinfo is None:  # as UTCDateTime refuses it
                raise ValueError("naive datetime reached the store; make it aware at the boundary")
            return moment(v)
        if sqlite and isinstance(v, date):
            return v.isoformat()
        return v

    try:
        if conn.dialect.name == "postgresql" and len(rows) >= COPY_ROWS:
            copy_rows(
                conn, table.name, columns, [tuple(value(row[c]) for c in columns) for row in rows]
            )
            return
        for chunk in batches(rows):
            conn.exec_driver_sql(sql, [tuple(value(row[c]) for c in columns) for row in chunk])
    except ValueError as exc:  # as SQLAlchemy reports a value its column type refused
        raise sa.exc.StatementError(str(exc), sql, None, exc) from None


def copy_rows(
    conn: sa.Connection, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """``COPY table (columns) FROM STDIN`` on PostgreSQL: a third of the time of
    ``executemany``. Its errors come as SQLAlchemy's, as a statement's would."""
    import psycopg  # noqa: PLC0415  # PostgreSQL's driver, there only

    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    raw: Any = conn.connection.dbapi_connection
    try:
        with raw.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as exc:
        raise sa.exc.DBAPIError.instance(
            sql, None, exc, psycopg.Error, hide_parameters=True
        ) from None
