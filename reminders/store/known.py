"""What a sync knows of the stored enrollments: :class:`StoredEnrollment`, and the compact
:class:`EnrollmentIndex` of all of them that it holds while it streams the patients file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from reminders.lifecycle import EnrollmentStatus


@dataclass(frozen=True, slots=True)
class StoredEnrollment:
    """What a sync needs to know of an existing enrollment."""

    #: Patient id.
    patient_id: str
    #: Digest of the record it was made from.
    source_hash: str
    #: Enrollment status.
    status: str


#: The statuses an :class:`EnrollmentIndex` packs, by their two-bit code.
_PACKED_STATUSES: Final = tuple(EnrollmentStatus)
_STATUS_CODES: Final = {s.value: code for code, s in enumerate(_PACKED_STATUSES)}
_STATUS_BITS: Final = (len(_PACKED_STATUSES) - 1).bit_length()
#: Hex digits of a record digest (:meth:`reminders.records.RawRecord.digest`).
_DIGEST_HEX: Final = 32


class EnrollmentIndex(Mapping[str, StoredEnrollment]):
    """Every stored enrollment by patient id, compact: what a sync holds while it streams.

    A sync keeps one entry per stored patient for its whole length; at 100,000 patients a
    dict of :class:`StoredEnrollment` (two more strings each) took 27 MiB. Here an entry is
    one int, the 128-bit digest shifted left by the bits of the status code; a digest or
    status of any other form is kept as it is. Entries are read back as
    :class:`StoredEnrollment`, equal to what was added.
    """

    def __init__(self) -> None:
        self._packed: dict[str, int] = {}
        self._other: dict[str, StoredEnrollment] = {}

    def add(self, patient_id: str, source_hash: str, status: str) -> None:
        """Record (or replace) one stored enrollment."""
        code = _STATUS_CODES.get(status)
        if code is not None and len(source_hash) == _DIGEST_HEX:
            try:
                digest = int(source_hash, 16)
            except ValueError:
                digest = -1
            if digest >= 0 and format(digest, "032x") == source_hash:
                self._other.pop(patient_id, None)
                self._packed[patient_id] = digest << _STATUS_BITS | code
                return
        self._packed.pop(patient_id, None)
        self._other[patient_id] = StoredEnrollment(patient_id, source_hash, status)

    def __getitem__(self, patient_id: str) -> StoredEnrollment:
        packed = self._packed.get(patient_id)
        if packed is None:
            return self._other[patient_id]
        status = _PACKED_STATUSES[packed & ((1 << _STATUS_BITS) - 1)].value
        return StoredEnrollment(patient_id, format(packed >> _STATUS_BITS, "032x"), status)

    def __contains__(self, patient_id: object) -> bool:
        return patient_id in self._packed or patient_id in self._other

    def __iter__(self) -> Iterator[str]:
        yield from self._packed
        yield from self._other

    def __len__(self) -> int:
        return len(self._packed) + len(self._other)
