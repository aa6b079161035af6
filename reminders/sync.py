"""Applying the patients file to the store: enrol, update, re-plan, withdraw.

A sync is a pure diff followed by an apply step, inside one write transaction:

1. :func:`select_records` streams the file against the stored index: records whose raw
   fields and the schedules are unchanged are counted and dropped at once, so a re-sync of
   100,000 patients neither validates nor keeps them;
2. the rest are validated in parts of :data:`PART_RECORDS`
   (:func:`reminders.validation.validate_parts`), a second process a part ahead;
3. :func:`diff` (pure: ``stored + records + schedules + now -> SyncPlan``) decides every
   change of a part, and :func:`apply` writes it while the next part is validated;
4. the withdraw guard (:func:`reminders.withdraw_guard.guard`), which needs every part,
   then refuses a mass withdrawal, the transaction taking back what the parts wrote; or
   the patients the file no longer lists are withdrawn.

The sync is idempotent: reminders are keyed on (patient, protocol, milestone,
occurrence, channel), so running it twice changes nothing the second time.
"""

from __future__ import annotations

import gc
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from reminders.copies import base_key, chains, follow, planned_again
from reminders.lifecycle import EnrollmentStatus
from reminders.models import Patient, Schedules
from reminders.patients import PatientFile, Problem, iter_records
from reminders.planning import Planner, PlanSlot
from reminders.records import RawRecord
from reminders.store import (
    ReminderKey,
    Store,
    StoredEnrollment,
    StoredReminder,
    Transaction,
)
from reminders.store.enrollments import BULK_ROWS
from reminders.validation import validate_parts
from reminders.withdraw_guard import guard

#: Records validated, diffed and written at a time (see :func:`_sync`).
PART_RECORDS: Final = 10_000


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
    #: Reminder changes by kind: planned, expired (late enrollment), replanned,
    #: planned_again (advice sent before a postponed surgery date), cancelled.
    reminders: Counter[str] = field(default_factory=Counter)

    @property
    def changed(self) -> bool:
        """Whether anything was written."""
        return bool(self.enrolled or self.updated or self.withdrawn or self.paused)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            **{f.name: getattr(self, f.name) for f in fields(self)},
            "problems": [str(p) for p in self.problems],
            "reminders": dict(self.reminders),
        }


ProgressHook = Callable[[str, int, int], None]
"""Called as ``(stage, advance, total)`` during long syncs."""


@dataclass
class Selection:
    """The records of a file that need a look, after dropping the unchanged ones."""

    #: Records to validate (new, changed, without an id, duplicated ids).
    to_check: list[RawRecord] = field(default_factory=list)
    #: Source digest of each record to check, by patient id.
    digests: dict[str, str] = field(default_factory=dict)
    #: Every patient id in the file.
    in_file: Set[str] = field(default_factory=set)
    #: Records left as they were.
    unchanged: int = 0


def select_records(
    records: Iterable[RawRecord], stored: Mapping[str, StoredEnrollment], salt: str
) -> Selection:
    """Stream ``records`` against the stored index (pure).

    A duplicated id rejects every record with it; the copies dropped as unchanged come
    back as bare records so that each is reported.
    """
    selection = Selection()
    first: dict[str, str] = {}  # where each id is; not a list each: a re-sync holds 100,000
    again: dict[str, list[str]] = {}  # every place of an id written more than once
    for record in records:
        pid = record.patient_id
        if pid is None:
            selection.to_check.append(record)
            continue
        if first.setdefault(pid, record.position) != record.position:
            again.setdefault(pid, [first[pid]]).append(record.position)
        digest = record.digest(salt)
        known = stored.get(pid)
        if known is None or known.source_hash != digest or pid in selection.digests:
            selection.to_check.append(record)
            selection.digests[pid] = digest
        else:
            selection.unchanged += 1
    selection.in_file = first.keys()  # no copy: a set of 100,000 ids is 4 MiB more
    for pid, positions in again.items():
        seen = {r.position for r in selection.to_check if r.patient_id == pid}
        selection.to_check.extend(RawRecord(p, {"id": pid}) for p in positions if p not in seen)
        selection.unchanged -= len(positions) - len(seen)
    return selection


@dataclass
class SyncPlan:
    """Every change one sync makes, decided before anything is written."""

    #: The report, counts of cancellations still to be added by :func:`apply`.
    report: SyncReport
    #: Enrollment rows to insert.
    new: list[dict[str, Any]] = field(default_factory=list)
    #: Enrollment rows to overwrite.
    changed: list[dict[str, Any]] = field(default_factory=list)
    #: Reminders to insert: ``(patient_id, slots)``.
    inserts: list[tuple[str, list[PlanSlot]]] = field(default_factory=list)
    #: New patients' milestones expired at enrollment: ``(enrollment row, slots)``.
    late: list[tuple[dict[str, Any], list[PlanSlot]]] = field(default_factory=list)
    #: Unsent reminders with a new schedule (``id`` and new values).
    replans: list[dict[str, Any]] = field(default_factory=list)
    #: Reminders no longer in their patient's plan.
    dropped: list[int] = field(default_factory=list)
    #: Patients set withdrawn in the file: their pending reminders are cancelled.
    withdrawn: list[str] = field(default_factory=list)
    #: Patients removed from the file: withdrawn, pending reminders cancelled.
    removed: list[str] = field(default_factory=list)
    #: Audit events to append.
    audit: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reminder_rows(self) -> int:
        """How many reminder rows the plan inserts."""
        return sum(len(slots) for _, slots in self.inserts)


def diff(
    stored: Mapping[str, StoredEnrollment],
    selection: Selection,
    checked: PatientFile,
    existing: Mapping[ReminderKey, StoredReminder],
    *,
    schedules: Schedules,
    now: datetime,
    removed: list[str],
    planner: Planner | None = None,
) -> SyncPlan:
    """Decide every change of a sync (pure).

    ``existing`` holds the stored reminders of the patients whose record changed;
    ``removed`` the live patients the file no longer lists (see :func:`guard`); a sync in
    parts passes one ``planner`` to all, so that each distinct plan is computed once.
    """
    plan = SyncPlan(SyncReport(unchanged=selection.unchanged, problems=checked.problems))
    report = plan.report
    planner = planner or Planner(schedules, now)
    changed: list[Patient] = []
    for patient in checked.patients:
        row = _enrollment_row(patient, selection.digests[patient.id], now)
        if patient.id in stored:
            plan.changed.append(row)
            changed.append(patient)
            continue
        plan.new.append(row)
        report.enrolled.append(patient.id)
        if patient.status == EnrollmentStatus.PAUSED:
            report.paused.append(patient.id)
        if patient.status != EnrollmentStatus.WITHDRAWN:
            late, live = planner.split(patient)
            plan.inserts.append((patient.id, live))
            if late:
                plan.late.append((row, late))
    again = _replan(plan, planner, changed, existing, now)
    placed = [*plan.inserts, *plan.late]
    uses = Counter(id(slots) for _, slots in placed)
    for slots in {id(slots): slots for _, slots in placed}.values():
        for slot in slots:
            report.reminders[slot[7]] += uses[id(slots)]
    plan.inserts += again
    plan.audit += [
        {"at": now, "kind": "enrollment.created", "patient_id": pid, "detail": {}}
        for pid in report.enrolled
    ]
    plan.audit += [
        {"at": now, "kind": f"enrollment.{kind}", "patient_id": pid, "detail": {}}
        for kind, ids in (("updated", report.updated), (EnrollmentStatus.PAUSED, report.paused))
        for pid in ids
    ]
    plan.audit += [_withdrawal(now, pid, "status in file") for pid in plan.withdrawn]
    plan.removed = list(removed)
    plan.audit += [_withdrawal(now, pid, "removed from file") for pid in plan.removed]
    report.withdrawn += plan.withdrawn + plan.removed
    return plan


def _replan(
    plan: SyncPlan,
    planner: Planner,
    patients: list[Patient],
    existing: Mapping[ReminderKey, StoredReminder],
    now: datetime,
) -> list[tuple[str, list[PlanSlot]]]:
    """Diff the new plan of changed patients against their stored reminders.

    Sent reminders are history and stay as they are; unsent ones take the new due
    time; reminders no longer in the plan are cancelled; missing ones are inserted.
    Advice a patient received before their (new) surgery date is planned again for the
    new date, as a copy with an occurrence number of its own (:func:`follow`); the
    copies are returned, to be inserted after the report counted the plan's rows.
    """
    report = plan.report
    stored = chains(existing.values())
    keep: set[ReminderKey] = set()
    again: list[tuple[str, list[PlanSlot]]] = []
    for patient in patients:
        if patient.status == EnrollmentStatus.WITHDRAWN:
            plan.withdrawn.append(patient.id)
            continue
        if patient.status == EnrollmentStatus.PAUSED:
            report.paused.append(patient.id)
        else:
            report.updated.append(patient.id)
        zone = planner.zone(patient.timezone)
        missing: list[PlanSlot] = []
        copies: list[PlanSlot] = []
        for slot in planner.slots(patient):
            protocol, milestone, occurrence, channel, template, due, expires, status = slot
            key = (patient.id, protocol, milestone, occurrence, channel)
            keep.add(key)
            step = follow(stored.get(key, []), patient.surgery_date, zone)
            if step.insert:
                missing.append(slot)
            if step.again is not None:
                copies.append(
                    (protocol, milestone, step.again, channel, template, due, expires, status)
                )
                plan.audit.append(planned_again(now, patient.id, slot, step.again))
                report.reminders["planned_again"] += 1
            plan.dropped += step.cancel
            old = step.replan
            if old is not None and (old.due_at, old.expires_at, old.status, old.template) != (
                due,
                expires,
                status,
                template,
            ):
                plan.replans.append(
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
            plan.inserts.append((patient.id, missing))
        if copies:
            again.append((patient.id, copies))
    live = {p.id for p in patients if p.status != EnrollmentStatus.WITHDRAWN}
    plan.dropped += [
        r.id for key, r in existing.items() if key[0] in live and base_key(key) not in keep
    ]
    return again


def apply(
    tx: Transaction,
    plan: SyncPlan,
    now: datetime,
    advance: Callable[[int], None] | None = None,
) -> None:
    """Write a sync plan inside the sync's transaction; adds the cancellations to its report.

    ``advance`` is told how many reminders each step of the insert wrote.
    """
    report = plan.report
    tx.late.mark(plan.late, now)  # before the rows that name them are inserted
    tx.enrollments.upsert(plan.new, plan.changed)
    tx.enrollments.replan(plan.replans)
    cancelled = tx.enrollments.cancel(plan.dropped, now, "no longer in the plan")
    cancelled += tx.enrollments.cancel_pending_of(plan.withdrawn, now, "patient withdrawn")
    tx.enrollments.insert_plans(plan.inserts, now, advance)
    if plan.removed:
        cancelled += tx.enrollments.cancel_pending_of(
            plan.removed, now, "patient removed from the patients file"
        )
        tx.enrollments.set_status(plan.removed, EnrollmentStatus.WITHDRAWN, now)
    if cancelled:
        report.reminders["cancelled"] += cancelled
    tx.audit(plan.audit)


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
    (nothing changes), :class:`~reminders.errors.SyncRefused` when the sync would
    withdraw more than 20% of enrolled patients without ``force``, and StoreError saying
    nothing changed when the database fails it (a full disk): a sync is one transaction.
    """
    # One transaction: whatever fails it (a full disk, the guard) leaves the database as it was.
    with _collector_paused(), store.sync(failure="sync not applied, nothing changed") as tx:
        return _sync(tx, schedules, path, now, force=force, progress=progress)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a sync runs: it creates hundreds of thousands of
    objects that live until it ends (records, patients, plans, rows), and each full
    collection walks all of them again (a fifth of a 100,000-patient sync's time). The
    sync itself makes no garbage cycles to speak of; whatever there is, the collector
    takes after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _sync(
    tx: Transaction,
    schedules: Schedules,
    path: Path,
    now: datetime,
    *,
    force: bool,
    progress: ProgressHook | None,
) -> SyncReport:
    """The sync in parts of :data:`PART_RECORDS` records, in file order: a second process
    validates the next part while this one diffs and writes one (a large sync's CPU is
    mostly validating). The guard needs every part, so it is decided after they are
    written: a refused sync rolls them back with the transaction."""
    stored = tx.enrollments.index()
    selection = select_records(iter_records(path, schedules), stored, schedules.fingerprint)
    report = SyncReport(unchanged=selection.unchanged)
    # The guard needs every part: their patients, and their problems (the report's).
    checked = PatientFile(path=path, problems=report.problems)
    planner = Planner(schedules, now)
    planned = 0

    def advance(rows: int) -> None:
        if progress:
            progress("reminders", rows, planned)

    parts = validate_parts(path, selection.to_check, schedules, PART_RECORDS)
    with tx.enrollments.loading(), closing(parts):
        for part in parts:
            checked.patients.extend(part.patients)
            changed = [p.id for p in part.patients if p.id in stored]
            existing = {r.key: r for r in tx.enrollments.reminders_of(changed)}
            plan = diff(
                stored,
                selection,
                part,
                existing,
                schedules=schedules,
                now=now,
                removed=[],
                planner=planner,
            )
            planned += plan.reminder_rows
            advance(0)
            apply(tx, plan, now, advance)
            _merge(report, plan.report)
        removed = guard(stored, checked, selection.in_file, force=force, path=path)
        last = diff(
            stored,
            selection,
            PatientFile(path=path),
            {},
            schedules=schedules,
            now=now,
            removed=removed,
            planner=planner,
        )
        apply(tx, last, now)
        _merge(report, last.report)
    if planned >= BULK_ROWS:
        tx.analyze()
    if report.changed or report.problems:
        tx.audit([_config_event(now, path, schedules, report)])
    return report


def _merge(report: SyncReport, part: SyncReport) -> None:
    """Add a part's report, written, to the sync's (the unchanged count is the selection's, once)."""
    for f in fields(SyncReport):
        if isinstance(value := getattr(part, f.name), list):
            getattr(report, f.name).extend(value)
    report.reminders += part.reminders


def _config_event(
    now: datetime, path: Path, schedules: Schedules, report: SyncReport
) -> dict[str, Any]:
    return {
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


def _withdrawal(now: datetime, pid: str, reason: str) -> dict[str, Any]:
    return {
        "at": now,
        "kind": "enrollment.withdrawn",
        "patient_id": pid,
        "detail": {"reason": reason},
    }


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
        "late_plan_id": None,
    }
