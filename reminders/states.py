"""The states of what the service hears back and tells others: check-ins, alerts, message
kinds, and the FHIR status codes the export writes.

Beside :mod:`reminders.lifecycle` (which re-exports them), the only other module that may
spell these values (``tests/unit/test_architecture.py``).
"""

from __future__ import annotations

from enum import StrEnum


class FhirStatus(StrEnum):
    """FHIR status codes the export writes (:mod:`reminders.fhir.export`); several are
    spelt like ours, and which of ours each stands for is decided there."""

    #: request-status: a reminder still to go out, an enrollment that runs.
    ACTIVE = "active"
    #: request-status: held (a paused patient); CarePlan activity: the same.
    ON_HOLD = "on-hold"
    #: request-status: will not happen (cancelled, expired, failed, opted out, withdrawn).
    REVOKED = "revoked"
    #: request-, event- and activity-status: done.
    COMPLETED = "completed"
    #: event-status: a procedure still to come.
    PREPARATION = "preparation"
    #: CarePlan activity: every occurrence still to come.
    SCHEDULED = "scheduled"
    #: CarePlan activity: some occurrences sent, some to come.
    IN_PROGRESS = "in-progress"
    #: CarePlan activity: every reminder of the milestone cancelled.
    CANCELLED = "cancelled"


class MessageKind(StrEnum):
    """What an outbox row is: a ``reminder`` the sync planned (the only kind a sync plans,
    moves or cancels); a ``response`` to a patient's text (HELP, a re-prompt, a safety
    reply) or a ``notice`` to the care team (an alert, a forwarded text), both sent at once."""

    REMINDER = "reminder"
    RESPONSE = "response"
    NOTICE = "notice"


class CheckInStatus(StrEnum):
    """Where one check-in stands: ``open`` (its reply window is), ``answered`` (a readable
    answer came in time), ``unanswered`` (the window closed), ``cancelled`` (the patient
    opted out while it was open: the silence that follows is no missed reply)."""

    OPEN = "open"
    ANSWERED = "answered"
    UNANSWERED = "unanswered"
    CANCELLED = "cancelled"


class AlertLevel(StrEnum):
    """How fast the care team must look: ``urgent`` (the on-call list is texted, again if
    nobody acknowledges) or ``review`` (the care team is emailed)."""

    URGENT = "urgent"
    REVIEW = "review"


class AlertStatus(StrEnum):
    """Where one alert stands: ``open``, ``acknowledged`` (someone has it: no more
    escalation), ``resolved`` (dealt with, with a note)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
