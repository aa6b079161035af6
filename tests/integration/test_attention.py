"""What needs a coordinator (``tx.views.attention``), on real SQLite and PostgreSQL.

A dispatcher whose channels fail as chosen leaves reminders in doubt (5xx), retrying
(refused connection), expired after failed tries, and failed (invalid number); the view
classifies each, orders them most urgent first, pages them and counts them all.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from reminders.channels.base import Message
from reminders.channels.memory import MemoryChannel
from reminders.errors import DeliveryError, InDoubtError, PermanentError, TransientError
from reminders.lifecycle import Attention
from reminders.models import Schedules
from reminders.store import Store
from reminders.store.dashboard import PAGE
from reminders.store.schema import OPT_OUTS, REMINDERS
from reminders.templates import Templates
from reminders.testing import make_dispatcher
from tests.integration.test_dispatch import DAY1, enrol

#: Which failure each patient's email meets (their texts go out).
FAILURES: Mapping[str, DeliveryError] = {
    "P-1": InDoubtError("SMTP connection lost while sending", code="connection"),
    "P-2": TransientError("cannot reach SMTP server", code="connection"),
    "P-3": PermanentError("SMTP 550: no such mailbox", code="550"),
}


def _tick(
    store: Store,
    shipped: Schedules,
    templates: Templates,
    at: datetime,
    failures: Mapping[str, DeliveryError] = FAILURES,
) -> None:
    """One tick at ``at``; the email of each patient in ``failures`` fails with its error."""
    by_address = {f"{pid.lower()}@example.com": e for pid, e in failures.items()}

    def fail(message: Message) -> DeliveryError | None:
        return by_address.get(message.to)

    channels = {"sms": MemoryChannel("sms"), "email": MemoryChannel("email", fail=fail)}
    dispatcher = make_dispatcher(
        store, shipped, templates, channels, owner="test", rng=random.Random(1)
    )
    dispatcher.tick(at)


def test_each_kind_of_trouble_is_classified_and_listed_most_urgent_first(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """In doubt, retrying and failed emails are listed in that order with their tries and codes; sent texts are not."""
    enrol(store, shipped, tmp_path, "P-1", "P-2", "P-3", "P-4")
    _tick(store, shipped, templates, DAY1)

    with store.read() as tx:
        page = tx.views.attention()

    assert page.counts == {"in_doubt": 1, "retrying": 1, "expired": 0, "failed": 1}
    assert page.total == 3
    listed = [(i.state, i.reminder.patient_id, i.reminder.channel) for i in page.items]
    assert listed == [
        (Attention.IN_DOUBT, "P-1", "email"),
        (Attention.RETRYING, "P-2", "email"),
        (Attention.FAILED, "P-3", "email"),
    ]
    assert [(i.reminder.attempts, i.reminder.error_code) for i in page.items] == [
        (1, "connection"),
        (1, "connection"),
        (1, "550"),
    ]


def test_past_the_deadline_a_retrying_reminder_is_expired_and_counted_since(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """A day later the retrying email has expired: listed as expired; counted as expired since that tick only."""
    enrol(store, shipped, tmp_path, "P-2")
    _tick(store, shipped, templates, DAY1)
    later = DAY1 + timedelta(days=1, hours=1)
    _tick(store, shipped, templates, later)

    with store.read() as tx:
        page = tx.views.attention()
        since_then = tx.views.attention_counts(expired_since=later)
        after = tx.views.attention_counts(expired_since=later + timedelta(seconds=1))

    expired = [i for i in page.items if i.state is Attention.EXPIRED]
    assert [(i.reminder.milestone, i.reminder.status) for i in expired] == [
        ("crutches-toe-touch", "expired")
    ]
    assert since_then["expired"] == 1
    assert after["expired"] == 0


def test_pages_cover_every_reminder_once(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """25 failing patients paged 10 at a time: 3 pages, 25 distinct reminders, counts of all on each page."""
    pids = [f"P-{n}" for n in range(100, 125)]
    refused = TransientError("cannot reach SMTP server", code="connection")
    enrol(store, shipped, tmp_path, *pids)
    _tick(store, shipped, templates, DAY1, dict.fromkeys(pids, refused))

    with store.read() as tx:
        pages = [tx.views.attention(offset=o, limit=10) for o in (0, 10, 20, 30)]

    assert [len(p.items) for p in pages] == [10, 10, 5, 0]
    ids = [i.reminder.id for p in pages for i in p.items]
    assert len(set(ids)) == 25
    assert {p.total for p in pages} == {25}


def test_the_counts_read_the_partial_index_not_the_table(tmp_path: Path) -> None:
    """On SQLite the counts of `status` and `tick` walk ix_reminders_attention, never the whole table."""
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        statements.append((sql, params))

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        with store.read() as tx:
            tx.views.attention_counts(expired_since=DAY1)
            sa.event.remove(store.engine, "before_cursor_execute", capture)
            [(sql, params)] = [s for s in statements if "GROUP BY" in s[0]]
            plan = tx.conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params).all()
    finally:
        store.close()

    steps = [row[-1] for row in plan]
    assert any("USING INDEX ix_reminders_attention" in s for s in steps), steps
    assert not any(s == "SCAN reminders" for s in steps), steps


def test_the_worklist_counts_and_lists_the_retrying_reminders_of_active_patients(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """The dashboard's retrying section: P-2's and P-4's emails wait to retry; P-4 is paused, so only P-2's is listed and counted."""
    enrol(store, shipped, tmp_path, "P-1", "P-2", "P-3", "P-4")
    refused = TransientError("cannot reach SMTP server", code="connection")
    _tick(store, shipped, templates, DAY1, {"P-2": refused, "P-4": refused})
    with store.write() as tx:
        tx.conn.execute(
            sa.text("UPDATE enrollments SET status = 'paused' WHERE patient_id = 'P-4'")
        )

    with store.read() as tx:
        section = tx.dashboard.retrying()

    assert section.total == 1
    assert [(p.who.patient_id, p.reminder.channel) for p in section.rows] == [("P-2", "email")]


def test_the_worklist_lists_the_failures_of_followed_patients_only(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """The dashboard's failures section: P-3's and P-5's emails fail for good; P-5 is then
    withdrawn, so only P-3's is listed and counted (a completed or paused patient still is)."""
    enrol(store, shipped, tmp_path, "P-3", "P-4", "P-5")
    bounced = PermanentError("SMTP 550: no such mailbox", code="550")
    _tick(store, shipped, templates, DAY1, {"P-3": bounced, "P-4": bounced, "P-5": bounced})
    with store.write() as tx:
        tx.conn.execute(
            sa.text(
                "UPDATE enrollments SET status = CASE patient_id WHEN 'P-4' THEN 'paused' "
                "ELSE 'withdrawn' END WHERE patient_id IN ('P-4', 'P-5')"
            )
        )

    with store.read() as tx:
        section = tx.dashboard.failed(DAY1 + timedelta(hours=1))

    assert section.total == 2
    assert sorted((p.who.patient_id, p.reminder.channel) for p in section.rows) == [
        ("P-3", "email"),
        ("P-4", "email"),
    ]


@pytest.mark.parametrize("status", ["sent", "delivered"])
def test_a_failure_leaves_the_worklist_once_a_later_message_reached_the_patient(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path, status: str
) -> None:
    """P-3's email fails for good; once another email of theirs is accepted by the provider
    after it (``status``: sent or delivered), the address works and the failure is not listed."""
    enrol(store, shipped, tmp_path, "P-3")
    bounced = PermanentError("SMTP 550: no such mailbox", code="550")
    _tick(store, shipped, templates, DAY1, {"P-3": bounced})
    r = REMINDERS.c
    with store.read() as tx:
        assert [p.who.patient_id for p in tx.dashboard.failed(DAY1).rows] == ["P-3"]
        later = tx.conn.execute(
            sa.select(sa.func.max(r.id)).where(
                r.patient_id == "P-3", r.channel == "email", r.status == "planned"
            )
        ).scalar_one()
    with store.write() as tx:
        tx.conn.execute(
            sa.update(REMINDERS)
            .where(r.id == later)
            .values(status=status, sent_at=DAY1 + timedelta(minutes=30))
        )

    with store.read() as tx:
        section = tx.dashboard.failed(DAY1 + timedelta(hours=1))

    assert (section.total, section.rows) == (0, [])


def test_the_worklist_counts_every_opt_out_of_followed_patients_beyond_its_page(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """56 patients unsubscribed their email, a minute apart; P-56 is then withdrawn: the section shows a page of 50, newest first, and counts 55."""
    pids = [f"P-{n}" for n in range(1, 57)]
    enrol(store, shipped, tmp_path, *pids)
    with store.write() as tx:
        tx.conn.execute(
            OPT_OUTS.insert(),
            [
                {
                    "channel": "email",
                    "address": f"{pid.lower()}@example.com",
                    "opted_out": True,
                    "source": "unsubscribe link",
                    "changed_at": DAY1 - timedelta(minutes=n),
                }
                for n, pid in enumerate(pids)
            ],
        )
        tx.conn.execute(
            sa.text("UPDATE enrollments SET status = 'withdrawn' WHERE patient_id = 'P-56'")
        )

    with store.read() as tx:
        section = tx.dashboard.opted_out(DAY1)

    assert section.total == 55
    assert [row.who.patient_id for row in section.rows] == pids[:PAGE]
