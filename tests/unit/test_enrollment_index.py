"""The sync's compact enrollment index: what goes in comes back, whatever its form."""

from __future__ import annotations

from reminders.records import RawRecord
from reminders.store import StoredEnrollment
from reminders.store.known import EnrollmentIndex

DIGEST = RawRecord("row 2", {"id": "P-1"}).digest("salt")


def test_entries_come_back_as_added() -> None:
    """Each enrollment reads back with its digest and status, for every status."""
    index = EnrollmentIndex()
    statuses = ("active", "paused", "withdrawn", "completed")
    for n, status in enumerate(statuses):
        index.add(f"P-{n}", DIGEST, status)
    index.add("P-zero", "0" * 32, "active")
    assert dict(index) == {
        **{f"P-{n}": StoredEnrollment(f"P-{n}", DIGEST, s) for n, s in enumerate(statuses)},
        "P-zero": StoredEnrollment("P-zero", "0" * 32, "active"),
    }
    assert len(index) == 5
    assert "P-1" in index
    assert "P-9" not in index
    assert index.get("P-9") is None


def test_digests_and_statuses_of_other_forms_are_kept_as_they_are() -> None:
    """A digest that is no 32-digit lowercase hex number, or an unknown status, is not packed
    into a number (which would read back different)."""
    index = EnrollmentIndex()
    odd = {
        "short": ("abc", "active"),
        "upper": (DIGEST.upper(), "active"),
        "not hex": ("z" * 32, "active"),
        "signed": ("-" + DIGEST[1:], "active"),
        "status": (DIGEST, "archived"),
        "empty": ("", "paused"),
    }
    for pid, (digest, status) in odd.items():
        index.add(pid, digest, status)
    assert {pid: (e.source_hash, e.status) for pid, e in index.items()} == odd


def test_adding_again_replaces_the_entry() -> None:
    """A second add for a patient replaces the first, whichever form either has."""
    index = EnrollmentIndex()
    index.add("P-1", DIGEST, "active")
    index.add("P-1", "old", "active")
    assert index["P-1"] == StoredEnrollment("P-1", "old", "active")
    index.add("P-1", DIGEST, "paused")
    assert index["P-1"] == StoredEnrollment("P-1", DIGEST, "paused")
    assert list(index) == ["P-1"]
