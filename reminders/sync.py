"""Applying the patients file to the store: enrol, update, re-plan, withdraw.

The sync is idempotent: reminders are keyed on (patient, protocol, milestone,
occurrence, channel), so running it twice changes nothing the second time, and a
record whose raw fields and the schedules are unchanged is not even re-validated.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from reminders.errors import SyncRefused
from reminders.models import REPLANNABLE_STATUSES, Patient, Schedules
from reminders.patients import Problem, RawRecord, iter_records, validate_records
from reminders.planning import iter_plan
from reminders.store import PlanSlot, Store, StoredReminder, Transaction

#: A sync inserting at least this many reminders refreshes the planner's statistics.
BULK_ROWS: Final = 10_000
#: A sync refuses to withdraw more than this share of active patients without --force.
WITHDRAW_GUARD: Final = 0.20


@dataclass
class SyncReport:
    """What a sync changed."""

    #: Patients enrolled for the first time.
    enrolled: list[str] = field(default_factory=list)
    #: Patients whose record changed (and were re-planned).
    updated: list[str] = field(default_factory=list)
    #: Patients withdrawn (removed from the file, or set to withdrawn).
    withdrawn: list[str] = field(default_factory=list)
    #: Patients set to paused.
    paused: list[str] = field(default_factory=list)
    #: Records left as they were.
    unchanged: int = 0
    #: Problems with single records (their stored enrollments are untouched).
    problems: list[Problem] = field(default_factory=list)
    #: Reminder changes by kind: planned, expired (late enrollment), replanned, cancelled.
    reminders: Counter[str] = field(default_factory=Counter)

    @property
    def changed(self) -> bool:
        """Whether anything was written."""
        return bool(self.enrolled or self.updated or self.withdrawn or self.paused)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "enrolled": self.enrolled,
            "updated": self.updated,
            "withdrawn": self.withdrawn,
            "paused": self.paused,
            "unchanged": self.unchanged,
            "problems": [str(p) for p in self.problems],
            "reminders": dict(self.reminders),
        }


ProgressHook = Callable[[str, int, int], None]
"""Called as ``(stage, advance, total)`` during long syncs."""


def sync_patients(
    store: Store,
    schedules: Schedules,
    path: Path,
    now: datetime,
    *,
    force: bool = False,
    progress: ProgressHook | None = None,
) -> SyncReport:
    """Bring the store in line with the patients file at ``path`` as of ``now``.

    Raises :class:`~reminders.errors.PatientFileError` when the file cannot be read
    (nothing changes) and :class:`~reminders.errors.SyncRefused` when the sync would
    withdraw more than 20% of active patients without ``force``.
    """
    report = SyncReport()
    salt = schedules.fingerprint
    with store.write() as tx:
        tx.lock_sync()
        try:
            stored = tx.enrollment_index()
            # One streaming pass: unchanged records (the same raw fields under the same
            # schedules) are counted and dropped at once, so a re-sync of 100,000
            # patients neither validates nor keeps them.
            to_check: list[RawRecord] = []
            digest_of: dict[str, str] = {}
            kept: set[str] = set()
            places: dict[str, list[str]] = {}
            for record in iter_records(path):
                pid = record.patient_id
                if pid is None:
                    to_check.append(record)
                    continue
                places.setdefault(pid, []).append(record.position)
                digest = record.digest(salt)
                known = stored.get(pid)
                if known is None or known.source_hash != digest or pid in kept:
                    to_check.append(record)
                    digest_of[pid] = digest
                    kept.add(pid)
                else:
                    report.unchanged += 1
            ids_in_file = list(places)
            for pid, positions in places.items():
                if len(positions) > 1:
                    # A duplicated id rejects every record with it; the copies dropped as
                    # unchanged come back as bare records so that each is reported.
                    seen = {r.position for r in to_check if r.patient_id == pid}
                    to_check.extend(RawRecord(p, {"id": pid}) for p in positions if p not in seen)
                    report.unchanged -= len(positions) - len(seen)
            checked = validate_records(path, to_check, schedules)
            report.problems = checked.problems
            rejected = checked.rejected_ids

            in_file = set(ids_in_file)
            removed = [
                pid
                for pid, known in stored.items()
                if known.status in ("active", "paused")
                and pid not in in_file
                and pid not in rejected
            ]
            newly_withdrawn = [
                p.id
                for p in checked.patients
                if p.status == "withdrawn" and _was_live(stored.get(p.id))
            ]
            active = sum(1 for known in stored.values() if known.status == "active")
            leaving = len(removed) + len(newly_withdrawn)
            if not force and active and leaving > WITHDRAW_GUARD * active:
                raise SyncRefused(
                    f"{path}: this sync would withdraw {leaving} of {active} active patients "
                    f"({leaving / active:.0%}, more than {WITHDRAW_GUARD:.0%}); if the file is right, "
                    "run it again with --force"
                )

            _apply(
                tx,
                schedules,
                checked.patients,
                stored_ids=stored.keys(),
                digest_of=digest_of,
                now=now,
                report=report,
                progress=progress,
            )

            if removed:
                cancelled = tx.cancel_pending_of(
                    removed, now, "patient removed from the patients file"
                )
                tx.set_enrollment_status(removed, "withdrawn", now)
                report.withdrawn.extend(removed)
                report.reminders["cancelled"] += cancelled
                tx.audit(
                    {
                        "at": now,
                        "kind": "enrollment.withdrawn",
                        "patient_id": pid,
                        "detail": {"reason": "removed from file"},
                    }
                    for pid in removed
                )
            if report.changed or report.problems:
                tx.audit(
                    [
                        {
                            "at": now,
                            "kind": "config.sync",
                            "detail": {
                                "file": str(path),
                                "schedules": schedules.fingerprint,
                                "enrolled": len(report.enrolled),
                                "updated": len(report.updated),
                                "withdrawn": len(report.withdrawn),
                                "problems": len(report.problems),
                            },
                        }
                    ]
                )
        finally:
            tx.end_sync()
    return report


def _was_live(known: Any) -> bool:
    return known is not None and known.status in ("active", "paused")


def _enrollment_row(patient: Patient, digest: str, now: datetime) -> dict[str, Any]:
    return {
        "patient_id": patient.id,
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "phone": patient.phone,
        "email": patient.email,
        "surgery_date": patient.surgery_date,
        "protocol": patient.protocol,
        "timezone": patient.timezone,
        "language": patient.language,
        "channels": ",".join(patient.channels),
        "status": patient.status,
        "attributes": json.dumps(dict(patient.attributes), sort_keys=True),
        "source_hash": digest,
        "created_at": now,
        "updated_at": now,
    }


class _Planner:
    """Plans patients, computing each distinct plan once.

    A plan depends only on the protocol, anchor date, time zone, channels and the
    attributes the protocol's conditions read: 100,000 patients share a few
    thousand such combinations, so a large sync mostly reuses plans (and the store
    encodes each shared plan for the database once).
    """

    def __init__(self, schedules: Schedules, now: datetime) -> None:
        self.schedules = schedules
        self.now = now
        self._plans: dict[tuple[Any, ...], list[PlanSlot]] = {}
        self._zones: dict[str, ZoneInfo] = {}
        self._reads = {
            pid: tuple(sorted({key for m in p.milestones for key in m.when}))
            for pid, p in schedules.protocols.items()
        }

    def slots(self, patient: Patient) -> list[PlanSlot]:
        """The patient's whole plan, each slot ``expired`` if past its expiry (shared: do not modify)."""
        key = (
            patient.protocol,
            patient.surgery_date,
            patient.timezone,
            patient.channels,
            tuple(patient.attributes.get(k) for k in self._reads[patient.protocol]),
        )
        plan = self._plans.get(key)
        if plan is None:
            zone = self._zones.setdefault(patient.timezone, ZoneInfo(patient.timezone))
            protocol = self.schedules.protocols[patient.protocol]
            plan = self._plans[key] = [
                (
                    r.protocol,
                    r.milestone,
                    r.occurrence,
                    r.channel,
                    r.template,
                    r.due_at,
                    r.expires_at,
                    "expired" if r.expires_at <= self.now else "planned",
                )
                for r in iter_plan(patient, protocol, self.schedules.send_window, zone)
            ]
        return plan


def _apply(
    tx: Transaction,
    schedules: Schedules,
    patients: list[Patient],
    *,
    stored_ids: Any,
    digest_of: dict[str, str],
    now: datetime,
    report: SyncReport,
    progress: ProgressHook | None,
) -> None:
    planner = _Planner(schedules, now)
    new_rows: list[dict[str, Any]] = []
    changed_rows: list[dict[str, Any]] = []
    plans: list[tuple[str, list[PlanSlot]]] = []
    changed: list[Patient] = []
    for patient in patients:
        row = _enrollment_row(patient, digest_of[patient.id], now)
        if patient.id in stored_ids:
            changed_rows.append(row)
            changed.append(patient)
            continue
        new_rows.append(row)
        report.enrolled.append(patient.id)
        if patient.status == "paused":
            report.paused.append(patient.id)
        if patient.status != "withdrawn":
            plans.append((patient.id, planner.slots(patient)))
    tx.upsert_enrollments(new_rows, changed_rows)
    if changed:
        plans.extend(_replan(tx, planner, changed, now=now, report=report))
    uses = Counter(id(slots) for _, slots in plans)
    for slots in {id(slots): slots for _, slots in plans}.values():
        for slot in slots:
            report.reminders[slot[7]] += uses[id(slots)]
    total = sum(len(slots) for _, slots in plans)
    if progress:
        progress("reminders", 0, total)
    tx.insert_plans(plans, now, (lambda n: progress("reminders", n, total)) if progress else None)
    if total >= BULK_ROWS:
        tx.analyze()
    tx.audit(
        {"at": now, "kind": "enrollment.created", "patient_id": pid, "detail": {}}
        for pid in report.enrolled
    )
    tx.audit(
        {"at": now, "kind": f"enrollment.{kind}", "patient_id": pid, "detail": {}}
        for kind, ids in (("updated", report.updated), ("paused", report.paused))
        for pid in ids
    )


def _replan(
    tx: Transaction,
    planner: _Planner,
    patients: list[Patient],
    *,
    now: datetime,
    report: SyncReport,
) -> list[tuple[str, list[PlanSlot]]]:
    """Diff the new plan of changed patients against their stored reminders.

    Sent reminders are history and stay as they are; unsent ones take the new due
    time; reminders no longer in the plan are cancelled; missing ones are returned
    for insertion.
    """
    existing: dict[tuple[str, str, str, int, str], StoredReminder] = {
        r.key: r for r in tx.reminders_of([p.id for p in patients])
    }
    inserts: list[tuple[str, list[PlanSlot]]] = []
    updates: list[dict[str, Any]] = []
    keep: set[tuple[str, str, str, int, str]] = set()
    withdrawn: list[str] = []
    for patient in patients:
        if patient.status == "withdrawn":
            withdrawn.append(patient.id)
            continue
        if patient.status == "paused":
            report.paused.append(patient.id)
        else:
            report.updated.append(patient.id)
        missing: list[PlanSlot] = []
        for slot in planner.slots(patient):
            protocol, milestone, occurrence, channel, template, due, expires, status = slot
            key = (patient.id, protocol, milestone, occurrence, channel)
            keep.add(key)
            old = existing.get(key)
            if old is None:
                missing.append(slot)
                continue
            if old.status not in REPLANNABLE_STATUSES:
                continue  # sent, failed, in flight or suppressed: history, never re-sent
            if (old.due_at, old.expires_at, old.status, old.template) != (
                due,
                expires,
                status,
                template,
            ):
                updates.append(
                    {
                        "id": old.id,
                        "template": template,
                        "due_at": due,
                        "expires_at": expires,
                        "status": status,
                        "updated_at": now,
                    }
                )
                report.reminders["replanned"] += 1
        if missing:
            inserts.append((patient.id, missing))
    tx.replan_reminders(updates)
    live = {p.id for p in patients if p.status != "withdrawn"}
    dropped = [r.id for key, r in existing.items() if key[0] in live and key not in keep]
    report.reminders["cancelled"] += tx.cancel_reminders(dropped, now, "no longer in the plan")
    if withdrawn:
        report.reminders["cancelled"] += tx.cancel_pending_of(withdrawn, now, "patient withdrawn")
        report.withdrawn.extend(withdrawn)
        tx.audit(
            {
                "at": now,
                "kind": "enrollment.withdrawn",
                "patient_id": pid,
                "detail": {"reason": "status in file"},
            }
            for pid in withdrawn
        )
    return inserts
