"""A patient record as read from a patients file, before validation.

Every reader (YAML, CSV, a FHIR Bundle) yields :class:`RawRecord` values with the fields
of the patients file; :func:`reminders.patients.validate_record` checks them all alike.
A reader whose records are not where their fields are written (a FHIR Bundle: a
patient's phone is ``telecom[0].value`` of one entry, the surgery date an element of
another) says where each field came from, so that every problem names the place a person
must fix; a fault found while reading (an entry that is no valid resource) travels with
the record and rejects it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reminders.fields import LIMITS, shorten


@dataclass(frozen=True, slots=True)
class Fault:
    """Something a reader found wrong with a record, reported as a problem of the record."""

    #: The patients-file field it stands for (its own checks are then skipped); empty
    #: when the record as a whole is unusable (nothing else is checked).
    field: str
    #: What is wrong.
    message: str
    #: Where, when not where the field was read: ``entry[1] Procedure/p-1``.
    place: str = ""
    #: The element at fault there, e.g. ``code.coding``.
    element: str = ""


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record as read from the file, before validation."""

    #: Where it is, e.g. ``patients[3]``, ``row 5`` or ``entry[0] Patient/pat-1``.
    position: str
    #: Its fields as read.
    fields: Mapping[str, Any]
    #: Where each field was read when that is not the field itself, as ``(place,
    #: element)``: ``{"phone": ("entry[0] Patient/pat-1", "telecom[0].value")}``.
    sources: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    #: What the reader found wrong (see :class:`Fault`).
    faults: tuple[Fault, ...] = ()

    @property
    def patient_id(self) -> str | None:
        """The id as written, if any (a list or mapping is no id: the record reports it)."""
        value = self.fields.get("id")
        if value is None or isinstance(value, Mapping | list):
            return None
        return str(value).strip() or None

    @property
    def label(self) -> str:
        """``patients[3] id=P-1004`` (an over-long id is shortened: it is reported, not echoed)."""
        return self.labelled(self.position)

    def labelled(self, place: str) -> str:
        """``place`` followed by the record's id, if it has one."""
        pid = self.patient_id
        return f"{place} id={shorten(pid, LIMITS['id'])}" if pid else place

    def where(self, field_name: str) -> tuple[str, str]:
        """The record and element a problem with ``field_name`` names (``attributes.goal``
        falls back to where ``attributes`` came from)."""
        found = self.sources.get(field_name) or self.sources.get(field_name.partition(".")[0])
        if found is None:
            return self.label, field_name
        return self.labelled(found[0]), found[1]

    def digest(self, salt: str) -> str:
        """Digest of the raw fields (and faults) plus ``salt`` (the schedules fingerprint)."""
        content: Any = self.fields
        if self.faults:  # a new fault makes the record changed, so that it is reported
            content = [self.fields, [[f.field, f.message, f.place] for f in self.faults]]
        payload = json.dumps(content, sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.blake2b((salt + payload).encode(), digest_size=16).hexdigest()
