"""The one exception tree of the project.

::

    ReminderError                     every error this package raises on purpose
    ├── ConfigError                   a file a person edits is wrong; never a traceback
    │   ├── ScheduleError             schedules.yaml
    │   ├── TemplateError             a template under templates/
    │   └── PatientFileError          the patients file as a whole (unreadable, wrong shape)
    ├── SyncRefused                   a sync that would do harm (mass withdrawal) without --force
    ├── StoreError                    the database cannot be used (unreachable, wrong schema)
    ├── UnknownPatient                a command named a patient the store does not know
    ├── AccountError                  a dashboard account cannot be made or changed as asked
    └── DeliveryError                 a channel could not deliver; raised by channels only
        ├── TransientError            try again later (429, 5xx, connection, SMTP 4xx)
        ├── PermanentError            never retry (invalid number, unsubscribed, SMTP 5xx)
        └── InDoubtError              the provider may have accepted it: reconcile before resending

Problems with single patient records are not exceptions: they are collected as
:class:`reminders.patients.Problem` values so that the other records still proceed.

Every message names what a person must fix: the file, the record and the field.
"""

from __future__ import annotations

from collections.abc import Sequence


class ReminderError(Exception):
    """Base of every error raised on purpose by this package."""


class ConfigError(ReminderError):
    """A configuration file is wrong; the message names file, record and field."""

    def __init__(self, file: str, message: str, *, record: str = "", field: str = "") -> None:
        #: The file a person must edit.
        self.file = file
        #: The record inside it (``protocols.x.milestones[2] id=brace``), if any.
        self.record = record
        #: The field inside the record, if any.
        self.field = field
        #: What is wrong, in words.
        self.detail = message
        super().__init__(self.format())

    def format(self) -> str:
        """Render as ``file: record: field: detail`` leaving out empty parts."""
        parts = [self.file, self.record, self.field, self.detail]
        return ": ".join(p for p in parts if p)


class ScheduleError(ConfigError):
    """``schedules.yaml`` failed validation."""


class TemplateError(ConfigError):
    """A template is missing, does not compile or does not render."""


class PatientFileError(ConfigError):
    """The patients file cannot be read at all (a single bad record is a Problem)."""


class SyncRefused(ReminderError):
    """The sync would withdraw too many enrolled patients at once.

    The message names the first :attr:`NAMED` of them and says how to go ahead anyway.
    """

    #: How many of the patients it would withdraw the message names.
    NAMED = 20

    def __init__(self, message: str, *, withdrawing: Sequence[str], enrolled: int) -> None:
        #: Every patient the refused sync would have withdrawn, in id order.
        self.withdrawing = sorted(withdrawing)
        #: Enrolled (active or paused) patients before the sync.
        self.enrolled = enrolled
        named = ", ".join(self.withdrawing[: self.NAMED])
        more = len(self.withdrawing) - self.NAMED
        super().__init__(
            f"{message}: {named}{f' and {more} more' if more > 0 else ''}; "
            "if the file is right, run it again with --force"
        )


class StoreError(ReminderError):
    """The database cannot be used."""


class UnknownPatient(ReminderError):
    """No enrollment with that patient id."""


class AccountError(ReminderError):
    """A dashboard account cannot be made or changed as asked (exists, unknown, weak password)."""


class DeliveryError(ReminderError):
    """A channel could not deliver; subclasses say what the dispatcher should do next."""

    def __init__(self, message: str, *, code: str = "", retry_after: float | None = None) -> None:
        #: Provider error code (``21211``, ``550``), recorded and shown to coordinators.
        self.code = code
        #: Seconds the provider asked us to wait, if it said.
        self.retry_after = retry_after
        super().__init__(message)


class TransientError(DeliveryError):
    """Worth retrying with backoff inside the expiry window."""


class PermanentError(DeliveryError):
    """Retrying cannot help; the reminder fails at once with ``code``."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        opted_out: bool = False,
    ) -> None:
        #: The provider says the recipient has unsubscribed (Twilio 21610).
        self.opted_out = opted_out
        super().__init__(message, code=code)


class InDoubtError(DeliveryError):
    """The provider may have accepted the message (timeout after the request was sent)."""
