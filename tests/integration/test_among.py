"""``schema.among``: "one of these keys" for any number of keys, on real SQLite and PostgreSQL.

SQLite takes the keys in ``IN`` lists of ``IN_CHUNK`` (its limit on bound values), PostgreSQL
as one array; either way every key is asked about once and none is left out.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from reminders.store import Store
from reminders.store.schema import IN_CHUNK, OPT_OUTS, among

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _phone(n: int) -> str:
    return f"+1201555{n:04d}"


def test_opt_outs_are_found_among_more_keys_than_one_in_list_holds(store: Store) -> None:
    """Every other one of 2.5 x IN_CHUNK numbers opted out: exactly those are reported, the
    last chunk's included."""
    numbers = [_phone(n) for n in range(IN_CHUNK * 5 // 2)]
    with store.write() as tx:
        for number in numbers[1::2]:
            tx.contacts.opt_out("sms", number, NOW, source="test")

    with store.read() as tx:
        found = tx.contacts.opted_out("sms", numbers)

    assert found == set(numbers[1::2])


def test_among_no_keys_is_no_condition_and_one_array_on_postgresql(store: Store) -> None:
    """No keys: nothing to run. Many keys: one statement on PostgreSQL, ``IN`` lists of at
    most IN_CHUNK on SQLite."""
    keys = [_phone(n) for n in range(IN_CHUNK + 1)]
    with store.read() as tx:
        assert list(among(tx.conn, OPT_OUTS.c.address, [])) == []
        conditions = list(among(tx.conn, OPT_OUTS.c.address, keys))
        expected = 1 if tx.conn.dialect.name == "postgresql" else 2
        assert len(conditions) == expected
        counted = sum(
            tx.conn.execute(sa.select(sa.func.count()).select_from(OPT_OUTS).where(c)).scalar_one()
            for c in conditions
        )
    assert counted == 0
