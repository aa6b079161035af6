"""Metrics: registering the collectors reads nothing; a scrape reads the store once per collector.

``Metrics`` is built at every start of ``run``. With prometheus_client's ``auto_describe``,
a collector without ``describe()`` is *collected* to learn its names when it registers:
two full count queries over millions of reminders before the service could serve.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from reminders.metrics import Metrics

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class CountingStore:
    """A store whose read transactions are counted and answer fixed figures."""

    def __init__(self) -> None:
        self.reads = 0

    @contextmanager
    def read(self) -> Iterator[Any]:
        self.reads += 1
        yield SimpleNamespace(
            views=SimpleNamespace(gauges=lambda now: ({"planned": 7, "sent": 2}, 3, 42.5)),
            checkins=SimpleNamespace(counts=lambda: {"open": 1}),
            alerts=SimpleNamespace(
                counts=lambda: {("urgent", "open"): 1},
                seconds_to_acknowledge=lambda: [("urgent", 120.0)],
            ),
        )


def test_building_the_metrics_reads_nothing_from_the_store() -> None:
    store = CountingStore()
    Metrics(store, lambda: NOW)  # type: ignore[arg-type]  # only read() is used
    assert store.reads == 0


def test_a_scrape_reads_each_collector_once_and_reports_its_figures() -> None:
    store = CountingStore()
    metrics = Metrics(store, lambda: NOW)  # type: ignore[arg-type]
    text = metrics.render().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert store.reads == 2
    assert samples["reminders_reminders", (("status", "planned"),)] == 7
    assert samples["reminders_reminders", (("status", "failed"),)] == 0
    assert samples["reminders_backlog", ()] == 3
    assert samples["reminders_dispatch_lag_seconds", ()] == 42.5
    assert samples["reminders_check_ins", (("status", "open"),)] == 1
    assert samples["reminders_alerts", (("level", "urgent"), ("status", "open"))] == 1
    assert samples["reminders_alert_acknowledge_seconds_count", (("level", "urgent"),)] == 1
