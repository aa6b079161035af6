"""The test kit: what this package's tests (and tests of code built on it) use, in one place.

It ships with the package behind the ``testing`` extra (``pip install
'recovery-reminders[testing]'``); the runtime package never imports it. Fictional data
only: 555 phone numbers and example.com addresses.

================  ==============================================================
``builders``      schedules and patients files, stores and dispatchers for tests
``twilio``        a Twilio-compatible HTTP endpoint (model + server) for the real client
``smtp``          an SMTP server (aiosmtpd) that records what it received
``runner``        the installed ``reminders`` command run as a subprocess
``peer``          free ports, held closed ports, listening sockets for tests in parallel
================  ==============================================================
"""

from reminders.testing.builders import (
    CLINIC_PHONE,
    OTHER_PROTOCOL,
    PROTOCOL,
    ZONES,
    make_dispatcher,
    make_schedules,
    mark_sent,
    milestone,
    patient_record,
    schedules_doc,
    schedules_yaml,
    write_patients,
    write_schedules,
    zone_at,
)

__all__ = [
    "CLINIC_PHONE",
    "OTHER_PROTOCOL",
    "PROTOCOL",
    "ZONES",
    "make_dispatcher",
    "make_schedules",
    "mark_sent",
    "milestone",
    "patient_record",
    "schedules_doc",
    "schedules_yaml",
    "write_patients",
    "write_schedules",
    "zone_at",
]
