"""The console dry run: message text on a terminal, or when asked; otherwise one masked log line.

Under journald, Docker or a cron job's pipe, stdout goes into the logs, and logs never
carry message bodies.
"""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from structlog.testing import capture_logs

from reminders.app import App
from reminders.channels.base import Message
from reminders.channels.console import ConsoleChannel
from reminders.settings import Settings

TEXT = "NJOI: Hi Dana. Wear your brace. Reply STOP to opt out."
SMS = Message(
    reminder_id=7,
    channel="sms",
    to="+12015550123",
    text=TEXT,
    patient_id="P-1001",
    local_time="Sat 2026-11-21 10:30 EST",
)


def screen(*, terminal: bool) -> tuple[Console, io.StringIO]:
    """A console writing to a buffer, as a terminal or as a pipe."""
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=terminal, color_system=None, width=200), buffer


def test_on_a_terminal_the_dry_run_prints_the_message_with_a_masked_recipient() -> None:
    """On a terminal the text is printed, the number masked."""
    console, buffer = screen(terminal=True)
    ConsoleChannel("sms", console).send(SMS)
    printed = buffer.getvalue()
    assert "Wear your brace" in printed
    assert "P-1001 -> +1201*****23" in printed
    assert "5550123" not in printed


def test_off_a_terminal_the_text_is_never_printed_and_one_masked_line_is_logged() -> None:
    """Piped (journald, cron), nothing is printed and the log line has ids and a masked number, no text."""
    console, buffer = screen(terminal=False)
    with capture_logs() as logs:
        receipt = ConsoleChannel("sms", console).send(SMS)
    assert buffer.getvalue() == ""
    [line] = logs
    assert line["event"] == "dry_run.delivered"
    assert (line["reminder_id"], line["patient_id"], line["to"]) == (7, "P-1001", "+1201*****23")
    assert receipt.provider_id.startswith("console-")
    assert not any("brace" in str(value) for value in line.values())


def test_reminders_console_text_prints_the_text_off_a_terminal_too() -> None:
    """``REMINDERS_CONSOLE_TEXT=1`` (asking for it) prints the text into a pipe as well."""
    console, buffer = screen(terminal=False)
    settings = Settings.from_env({"REMINDERS_CONSOLE_TEXT": "1"})
    channels, _ = App(Path(), settings=settings).channels(console)
    channels["sms"].send(SMS)
    assert "Wear your brace" in buffer.getvalue()


def test_without_asking_the_apps_dry_run_keeps_text_off_a_pipe() -> None:
    """The default settings leave the text off a console that is not a terminal."""
    console, buffer = screen(terminal=False)
    channels, _ = App(Path(), settings=Settings.from_env({})).channels(console)
    with capture_logs():
        channels["email"].send(SMS)
    assert "brace" not in buffer.getvalue()
