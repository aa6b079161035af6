"""What the running service tells an operator: a configuration accepted again, the next reminders."""

from __future__ import annotations

import io
from pathlib import Path

import structlog
import yaml
from rich.console import Console

from .test_service_config import make_service


def break_schedules(folder: Path) -> str:
    """Make schedules.yaml invalid (a send window that ends before it starts); return the good text."""
    path = folder / "schedules.yaml"
    good = path.read_text()
    doc = yaml.safe_load(good)
    doc["defaults"]["send_window"] = "22:00-06:00"
    path.write_text(yaml.safe_dump(doc))
    return good


def events(logs: list[dict[str, object]], name: str) -> list[dict[str, object]]:
    """The captured log events called ``name``."""
    return [e for e in logs if e["event"] == name]


def test_a_fixed_configuration_is_logged_as_accepted_after_a_rejection(
    tmp_path: Path, database_url: str
) -> None:
    """After config.rejected, the next valid configuration logs config.accepted once, with its fingerprint."""
    service = make_service(tmp_path, database_url)
    with structlog.testing.capture_logs() as logs:
        service.sync()
        good = break_schedules(tmp_path)
        service.sync()
        before_fix = list(logs)
        (tmp_path / "schedules.yaml").write_text(good)
        service.sync()
        service.sync()
    service.store.close()

    assert len(events(before_fix, "config.rejected")) == 1
    assert events(before_fix, "config.accepted") == []
    [accepted] = events(logs, "config.accepted")
    assert accepted["schedules"] == service.config.schedules.fingerprint


def test_an_ordinary_edit_is_logged_as_changed_not_as_accepted(
    tmp_path: Path, database_url: str
) -> None:
    """A valid edit with no rejection before it logs config.changed and no config.accepted."""
    service = make_service(tmp_path, database_url)
    service.sync()
    doc = yaml.safe_load((tmp_path / "schedules.yaml").read_text())
    doc["clinic"]["name"] = "Example Orthopaedics"
    (tmp_path / "schedules.yaml").write_text(yaml.safe_dump(doc))
    with structlog.testing.capture_logs() as logs:
        service.sync()
    service.store.close()

    assert [e["schedules"] for e in events(logs, "config.changed")] == [
        service.config.schedules.fingerprint
    ]
    assert events(logs, "config.accepted") == []


def test_the_next_reminders_are_a_table_on_a_terminal(tmp_path: Path, database_url: str) -> None:
    """On a terminal, the next reminders are printed as a table (with local times) and not logged."""
    screen = io.StringIO()
    service = make_service(tmp_path, database_url)
    service.console = Console(file=screen, force_terminal=True, width=200)
    service.sync()
    with structlog.testing.capture_logs() as logs:
        service.show_upcoming()
    service.store.close()

    assert "Next 15 reminders" in screen.getvalue()
    assert "local time" in screen.getvalue()
    assert events(logs, "upcoming") == []


def test_the_next_reminders_are_one_log_line_off_a_terminal(
    tmp_path: Path, database_url: str
) -> None:
    """Off a terminal, nothing is printed and the next reminders are one ``upcoming`` log event."""
    screen = io.StringIO()
    service = make_service(tmp_path, database_url)
    service.console = Console(file=screen)  # a file: not a terminal
    service.sync()
    with structlog.testing.capture_logs() as logs:
        service.show_upcoming()
    with service.store.read() as tx:
        expected = tx.views.upcoming(15)
    service.store.close()

    assert screen.getvalue() == ""
    [upcoming] = events(logs, "upcoming")
    assert upcoming["count"] == 15
    assert upcoming["reminders"] == [
        {
            "patient_id": e.patient_id,
            "milestone": e.milestone,
            "occurrence": e.occurrence,
            "channel": e.channel,
            "not_before": e.not_before.isoformat(),
        }
        for e in expected
    ]
