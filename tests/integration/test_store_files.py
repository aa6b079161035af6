"""The SQLite files on disk: the database and its ``-wal`` and ``-shm`` hold PHI, so only the owner reads them."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reminders.store import Store


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Run the block under ``mask`` (the process-wide file-creation mask), then restore it."""
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> str:
    """``0o600``-style permission bits of ``path``."""
    return oct(stat.S_IMODE(path.stat().st_mode))


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o000])
def test_a_new_database_and_its_wal_and_shm_are_created_0600_whatever_the_umask(
    tmp_path: Path, mask: int
) -> None:
    """Under a permissive umask (022, the usual default), the database, ``-wal`` and ``-shm`` a store creates are 0600."""
    database = tmp_path / "reminders.db"
    with umask(mask):
        store = Store(f"sqlite:///{database}")
        try:
            with store.write() as tx:
                tx.audit([{"at": datetime.now(UTC), "kind": "test.write"}])
            files = {p.name: mode(p) for p in tmp_path.iterdir()}
        finally:
            store.close()
    assert files == {
        "reminders.db": "0o600",
        "reminders.db-wal": "0o600",
        "reminders.db-shm": "0o600",
    }


def test_an_existing_database_keeps_the_mode_its_operator_gave_it(tmp_path: Path) -> None:
    """A database file that already exists (say 0640 for a backup group) is opened as it is, not re-moded."""
    database = tmp_path / "reminders.db"
    Store(f"sqlite:///{database}").close()
    database.chmod(0o640)
    with umask(0o022):
        Store(f"sqlite:///{database}").close()
    assert mode(database) == "0o640"
