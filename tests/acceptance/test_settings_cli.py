"""The environment is checked first: every wrong variable at once, before the database is touched."""

from __future__ import annotations

from .conftest import Cli


def test_bad_settings_are_all_reported_before_the_database_is_touched(cli: Cli) -> None:
    """``tick`` with two wrong variables exits 1 naming both, and creates no database.

    Catches: settings read only when the dispatcher is built (after the sync wrote to the
    database), or read one variable at a time (only the first problem reported).
    """
    database = cli.folder / "r.db"
    result = cli(
        "tick",
        "--now",
        "2026-11-25T15:00:00Z",
        expect=1,
        env={"TWILIO_RATE_LIMIT": "abc", "REMINDERS_WORKERS": "0"},
    )
    assert "TWILIO_RATE_LIMIT" in result.stderr, result
    assert "'abc'" in result.stderr, result
    assert "REMINDERS_WORKERS" in result.stderr, result
    assert not database.exists()
    cli("tick", "--now", "2026-11-25T15:00:00Z")  # the same command, environment fixed
    assert database.exists()
