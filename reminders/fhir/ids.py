"""Ids and times as the FHIR export writes them.

Resource ids are name-based UUIDs (``uuid5``) of database keys: two exports name the same
thing alike, and a receiving server updates instead of duplicating.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Final

#: Namespace of every exported resource id.
NAMESPACE: Final = uuid.UUID("0b7d1f4e-2c1a-5e8f-9a51-3e6d2f7c4b10")
#: What FHIR allows as a resource id.
_FHIR_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def resource_id(kind: str, *key: object) -> str:
    """The id of the ``kind`` resource of database key ``key``: the same in every export."""
    return str(uuid.uuid5(NAMESPACE, "/".join([kind, *(str(part) for part in key)])))


def patient_resource_id(patient_id: str) -> str:
    """``Patient.id``: the patient id where FHIR allows it, else a name-based UUID of it."""
    return patient_id if _FHIR_ID.fullmatch(patient_id) else resource_id("Patient", patient_id)


def instant(moment: datetime) -> str:
    """A FHIR ``instant`` in UTC: ``2026-11-21T15:00:00Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
