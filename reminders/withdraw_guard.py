"""The withdraw guard: a sync refuses to withdraw a large share of patients unasked.

A patients file exported half-empty, or the wrong clinic's file, would otherwise withdraw
most patients in one sync; ``--force`` says it is meant.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Set
from pathlib import Path
from typing import Final

from reminders.errors import SyncRefused
from reminders.lifecycle import LIVE_ENROLLMENTS, EnrollmentStatus
from reminders.patients import PatientFile
from reminders.store import StoredEnrollment

#: A sync refuses to withdraw more than this share of enrolled (active or paused) patients without --force.
WITHDRAW_GUARD: Final = 0.20


def guard(
    stored: Mapping[str, StoredEnrollment],
    checked: PatientFile,
    in_file: Set[str],
    *,
    force: bool,
    path: Path,
) -> list[str]:
    """The live patients the file removes; raises SyncRefused past the withdraw guard (pure)."""
    rejected = checked.rejected_ids
    removed = [
        pid
        for pid, known in stored.items()
        if known.status in LIVE_ENROLLMENTS and pid not in in_file and pid not in rejected
    ]
    newly_withdrawn = [
        p.id
        for p in checked.patients
        if p.status == EnrollmentStatus.WITHDRAWN and _was_live(stored.get(p.id))
    ]
    # Both sides of the share count the same patients: the live ones (active or paused), since
    # paused patients are withdrawn too (counting only the active made it "5 of 4 (125%)").
    live = Counter(known.status for known in stored.values() if known.status in LIVE_ENROLLMENTS)
    enrolled = sum(live.values())
    leaving = len(removed) + len(newly_withdrawn)
    if not force and enrolled and leaving > WITHDRAW_GUARD * enrolled:
        share = f"{leaving / enrolled:.0%}, more than {WITHDRAW_GUARD:.0%}"
        raise SyncRefused(
            f"{path}: this sync would withdraw {leaving} of {_population(live, share)}",
            withdrawing=[*removed, *newly_withdrawn],
            enrolled=enrolled,
        )
    return removed


def _population(live: Counter[str], share: str) -> str:
    """``5 active patients (40%, ...)``, or ``5 enrolled patients (4 active, 1 paused; 100%, ...)``."""
    enrolled = sum(live.values())
    if set(live) == {EnrollmentStatus.ACTIVE}:
        return f"{enrolled} active patients ({share})"
    parts = [
        f"{live[s]} {s}" for s in (EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED) if live[s]
    ]
    return f"{enrolled} enrolled patients ({', '.join(parts)}; {share})"


def _was_live(known: StoredEnrollment | None) -> bool:
    return known is not None and known.status in LIVE_ENROLLMENTS
