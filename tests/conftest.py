"""Fixtures shared by every test layer: the shipped configuration and a fresh store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reminders.config import load_schedules
from reminders.models import Schedules
from reminders.store import Store
from reminders.templates import Templates

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shipped() -> Schedules:
    """The shipped schedules.yaml, parsed."""
    return load_schedules(REPO)


@pytest.fixture(scope="session")
def templates() -> Templates:
    """The shipped templates."""
    return Templates(REPO / "templates")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLite outbox in a temporary folder."""
    s = Store(f"sqlite:///{tmp_path / 'reminders.db'}")
    yield s
    s.close()
