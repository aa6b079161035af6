"""Prometheus metrics. Labels are channels, outcomes, statuses and provider codes: never patients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from reminders.lifecycle import AlertLevel, AlertStatus, CheckInStatus, ReminderStatus
from reminders.store import Store

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


class _OutboxCollector(Collector):
    """Reads the outbox at scrape time: counts by status, backlog and dispatch lag."""

    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The metric names, without reading the store (registering must not count 6 M rows)."""
        return iter(self._families(None))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.store.read() as tx:
            return iter(self._families(tx.views.gauges(self.clock())))

    @staticmethod
    def _families(
        read: tuple[dict[str, int], int, float] | None,
    ) -> list[GaugeMetricFamily]:
        statuses = GaugeMetricFamily(
            "reminders_reminders", "Reminders in the outbox by status", labels=["status"]
        )
        backlog = GaugeMetricFamily("reminders_backlog", "Reminders due now and not yet sent")
        lag = GaugeMetricFamily(
            "reminders_dispatch_lag_seconds", "Age of the oldest due, unsent reminder"
        )
        if read is not None:
            by_status, due, oldest = read
            for status in ReminderStatus:
                statuses.add_metric([status], by_status.get(status, 0))
            backlog.add_metric([], due)
            lag.add_metric([], oldest)
        return [statuses, backlog, lag]


#: Upper bounds (seconds) of the time-to-acknowledge histogram: 1 minute to 1 day.
ACK_BUCKETS: Final = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0)


class _CheckInCollector(Collector):
    """Reads check-ins and alerts at scrape time: counts by status and time to acknowledge."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def describe(self) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
        """The metric names, without reading the store."""
        return iter(self._families(None))

    def collect(self) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
        with self.store.read() as tx:
            read = (tx.checkins.counts(), tx.alerts.counts(), tx.alerts.seconds_to_acknowledge())
        return iter(self._families(read))

    @staticmethod
    def _families(
        read: tuple[dict[str, int], dict[tuple[str, str], int], list[tuple[str, float]]] | None,
    ) -> list[GaugeMetricFamily | HistogramMetricFamily]:
        by_status = GaugeMetricFamily(
            "reminders_check_ins", "Check-ins by status", labels=["status"]
        )
        by_level = GaugeMetricFamily(
            "reminders_alerts", "Alerts by level and status", labels=["level", "status"]
        )
        histogram = HistogramMetricFamily(
            "reminders_alert_acknowledge_seconds",
            "Seconds from an alert being raised to its acknowledgement",
            labels=["level"],
        )
        if read is not None:
            check_ins, alerts, waits = read
            for status in CheckInStatus:
                by_status.add_metric([status], check_ins.get(status, 0))
            for level in AlertLevel:
                for state in AlertStatus:
                    by_level.add_metric([level, state], alerts.get((level, state), 0))
            for level in AlertLevel:
                seconds = [s for lv, s in waits if lv == level]
                buckets = [(str(b), float(sum(1 for s in seconds if s <= b))) for b in ACK_BUCKETS]
                buckets.append(("+Inf", float(len(seconds))))
                histogram.add_metric([level], buckets, sum_value=sum(seconds))
        return [by_status, by_level, histogram]


class Metrics:
    """The process's metrics; also the dispatcher's observer."""

    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.sends = Counter(
            "reminders_sends",
            "Delivery outcomes by channel",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.provider_errors = Counter(
            "reminders_provider_errors",
            "Provider error codes by channel",
            ["channel", "code"],
            registry=self.registry,
        )
        self.lateness = Histogram(
            "reminders_send_lateness_seconds",
            "Seconds between a reminder's due time and its send",
            ["channel"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
            registry=self.registry,
        )
        self.registry.register(_OutboxCollector(store, clock))
        self.registry.register(_CheckInCollector(store))

    def outcome(self, channel: str, outcome: str, lateness: float | None) -> None:
        """Count one delivery outcome (and how late a send was)."""
        self.sends.labels(channel, outcome).inc()
        if lateness is not None:
            self.lateness.labels(channel).observe(max(lateness, 0.0))

    def provider_error(self, channel: str, code: str) -> None:
        """Count one provider error code."""
        self.provider_errors.labels(channel, code).inc()

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)
