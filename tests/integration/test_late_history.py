"""Late enrollment's expired milestones: one record per shared plan, shown as reminders.

A patient enrolled mid-recovery has every milestone already past its expiry marked
``expired`` (SPEC 6). These rows were two thirds of a large first sync; they are now
stored once per plan that patients share (``late_plans``) and read back as reminders by
the timeline and the status counts, and written out as rows before anything changes the
patient's reminders.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from reminders.models import Schedules
from reminders.patients import iter_records
from reminders.planning import plan
from reminders.store import Store, TimelineEntry
from reminders.sync import sync_patients
from reminders.testing import patient_record
from reminders.validation import validate_records

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
#: Ten weeks before NOW: the early milestones have expired, the later ones are to come.
LATE = "2026-09-16"

Key = tuple[str, str, int, str]


def patient(pid: str, **fields: Any) -> dict[str, Any]:
    """A valid fictional patient record on SMS and email, operated ten weeks before NOW."""
    extra = {"email": f"{pid.lower()}@example.com", "timezone": "America/New_York"}
    return patient_record(pid, **{"surgery_date": LATE, **extra, **fields})


def sync(
    store: Store, shipped: Schedules, path: Path, *records: dict[str, Any], now: datetime = NOW
) -> Any:
    path.write_text(yaml.safe_dump({"patients": list(records)}, sort_keys=False))
    return sync_patients(store, shipped, path, now)


def timeline(store: Store, pid: str) -> dict[Key, TimelineEntry]:
    with store.read() as tx:
        entries = tx.views.timeline(pid)
    found = {(e.protocol, e.milestone, e.occurrence, e.channel): e for e in entries}
    assert len(found) == len(entries), "a milestone shown twice"
    return found


def content(entries: dict[Key, TimelineEntry]) -> dict[Key, dict[str, Any]]:
    """What each entry says, its row id aside."""
    return {k: e.model_dump(exclude={"id"}) for k, e in entries.items()}


def scalar(store: Store, sql: str) -> Any:
    with store.read() as tx:
        return tx.conn.execute(sa.text(sql)).scalar()


def expired_at_enrollment(shipped: Schedules, path: Path) -> set[Key]:
    """The slots of the first patient's plan in ``path`` already past their expiry at NOW."""
    [p, *_] = validate_records(path, list(iter_records(path, shipped)), shipped).patients
    return {
        (r.protocol, r.milestone, r.occurrence, r.channel)
        for r in plan(p, shipped.protocols[p.protocol], shipped.send_window)
        if r.expires_at <= NOW
    }


def test_expired_milestones_are_stored_once_per_shared_plan_and_shown_as_reminders(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """Three patients on the same plan: one late record, no expired row, and each timeline
    and the status counts show every expired milestone as before."""
    path = tmp_path / "p.yaml"
    report = sync(store, shipped, path, *(patient(f"P-{n}") for n in (1, 2, 3)))
    expired = expired_at_enrollment(shipped, path)
    assert expired
    assert report.reminders["expired"] == 3 * len(expired)
    assert scalar(store, "SELECT count(*) FROM late_plans") == 1
    assert scalar(store, "SELECT count(*) FROM reminders WHERE status = 'expired'") == 0
    for pid in ("P-1", "P-2", "P-3"):
        entries = timeline(store, pid)
        shown = {k for k, e in entries.items() if e.status == "expired"}
        assert shown == expired
        for key in shown:
            e = entries[key]
            assert (e.id, e.patient_id, e.attempts, e.updated_at) == (None, pid, 0, NOW)
            assert e.expires_at <= NOW
        assert all(e.id is not None for k, e in entries.items() if k not in expired)
    with store.read() as tx:
        counts = tx.views.reminder_counts()
        fhir_rows = tx.views.reminders_of(["P-2"])["P-2"]
    assert counts["expired"] == 3 * len(expired)
    assert sum(counts.values()) == sum(report.reminders.values())
    assert [(e.milestone, e.occurrence, e.channel) for e in fhir_rows] == [
        (e.milestone, e.occurrence, e.channel)
        for e in sorted(
            timeline(store, "P-2").values(),
            key=lambda e: (e.due_at, e.milestone, e.occurrence, e.channel),
        )
    ]


def test_a_changed_record_writes_its_late_history_out_as_rows_once(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """A patient whose record changes gets their expired milestones as rows (ids, the same
    content); the other patients keep the shared record; no count changes."""
    path = tmp_path / "p.yaml"
    sync(store, shipped, path, patient("P-1"), patient("P-2"))
    before = {pid: timeline(store, pid) for pid in ("P-1", "P-2")}
    with store.read() as tx:
        counts = tx.views.reminder_counts()

    # A minute later: the rows say when the milestones were marked expired, not when written out.
    later = NOW + timedelta(minutes=1)
    report = sync(store, shipped, path, patient("P-1", first_name="Dan"), patient("P-2"), now=later)
    assert report.updated == ["P-1"]
    assert report.reminders["replanned"] == report.reminders["cancelled"] == 0

    after = {pid: timeline(store, pid) for pid in ("P-1", "P-2")}
    assert content(after["P-1"]) == content(before["P-1"])
    assert all(e.id is not None for e in after["P-1"].values())
    assert after["P-2"] == before["P-2"]
    assert any(e.id is None for e in after["P-2"].values())
    assert scalar(store, "SELECT late_plan_id FROM enrollments WHERE patient_id = 'P-1'") is None
    with store.read() as tx:
        assert tx.views.reminder_counts() == counts
    again = sync(store, shipped, path, patient("P-1", first_name="Dana"), patient("P-2"), now=later)
    assert again.updated == ["P-1"]
    assert not again.reminders
    assert content(timeline(store, "P-1")) == content(before["P-1"])


def test_a_surgery_date_moved_later_plans_again_what_had_expired_at_enrollment(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """A surgery date corrected to last week brings the expired milestones back into the
    plan: each is re-planned once (no copy beside a late record)."""
    path = tmp_path / "p.yaml"
    sync(store, shipped, path, patient("P-1"))
    expired = {k for k, e in timeline(store, "P-1").items() if e.status == "expired"}

    report = sync(store, shipped, path, patient("P-1", surgery_date="2026-11-20"))
    after = timeline(store, "P-1")
    assert report.updated == ["P-1"]
    assert report.reminders["replanned"] > 0
    back = {k for k in expired if after[k].status == "planned"}
    assert back, "nothing of the corrected plan is still to come"
    for key, e in after.items():
        assert e.id is not None
        assert e.status == ("expired" if e.expires_at <= NOW else "planned"), key
    assert scalar(store, "SELECT count(*) FROM reminders WHERE patient_id = 'P-1'") == len(after)
