"""The sidecar's Prometheus metrics: running totals since the process started.

The status reporter takes (and resets) the gate's own per-report counters; these are kept
apart and never reset, as Prometheus counters must be. Counting is a dict increment under
a lock on the request path; the Prometheus text is built only when /metrics is scraped
(a custom collector, so no prometheus_client object is touched per request).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Outcomes of a decision, as the gate's snapshot names them (throttled = 429, paused = 503).
ADMITTED = "admitted"
THROTTLED = "throttled"
PAUSED = "paused"


class SidecarMetrics:
    """Counters of one sidecar; `render()` gives the Prometheus text format."""

    def __init__(self, gate: Any, leases_in_flight: Callable[[], int], reporter: Any = None) -> None:
        self._gate = gate
        self._leases_in_flight = leases_in_flight
        self.reporter = reporter
        self._lock = threading.Lock()
        self._decisions: dict[tuple[str, str], int] = {}
        self._rejections: dict[tuple[str, str], int] = {}
        self._lease_ends: dict[tuple[str, str], int] = {}
        self._renewals: dict[tuple[str, str], int] = {}
        self._bad_requests: dict[str, int] = {}
        self._started = time.time()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        ProcessCollector(registry=self.registry)  # CPU seconds, memory, open files of the sidecar

    # -- counting (request path) -------------------------------------------------------
    def count_decision(self, client_label: str, outcome: str, limit: str | None) -> None:
        with self._lock:
            key = (client_label, outcome)
            self._decisions[key] = self._decisions.get(key, 0) + 1
            if limit is not None:
                key = (client_label, limit)
                self._rejections[key] = self._rejections.get(key, 0) + 1

    def count_lease_end(self, client_label: str, outcome: str) -> None:
        with self._lock:
            key = (client_label, outcome)
            self._lease_ends[key] = self._lease_ends.get(key, 0) + 1

    def count_renewal(self, client_label: str, renewed: bool) -> None:
        with self._lock:
            key = (client_label, "renewed" if renewed else "expired")
            self._renewals[key] = self._renewals.get(key, 0) + 1

    def count_bad_request(self, what: str) -> None:
        with self._lock:
            self._bad_requests[what] = self._bad_requests.get(what, 0) + 1

    # -- exposition --------------------------------------------------------------------
    def render(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            decisions = dict(self._decisions)
            rejections = dict(self._rejections)
            lease_ends = dict(self._lease_ends)
            renewals = dict(self._renewals)
            bad_requests = dict(self._bad_requests)
        yield _counter(
            "upload_gate_decisions",
            "Admission decisions since the sidecar started, by client and outcome "
            "(throttled = 429, paused = 503; clients without a row of their own are counted as *).",
            ("client_id", "outcome"),
            decisions,
        )
        yield _counter(
            "upload_gate_rejections",
            "Rejected uploads by client and the rule that rejected them.",
            ("client_id", "limit"),
            rejections,
        )
        yield _counter(
            "upload_gate_lease_ends",
            "Uploads ended by client and outcome (timed_out includes leases that expired unreleased).",
            ("client_id", "outcome"),
            lease_ends,
        )
        yield _counter(
            "upload_gate_lease_renewals",
            "Lease renewals by client: renewed, or expired (the lease had already ended).",
            ("client_id", "result"),
            renewals,
        )
        yield _counter(
            "upload_gate_bad_requests",
            "Requests answered 4xx (bad JSON, bad field, unknown path, ...), by kind.",
            ("kind",),
            {(kind,): count for kind, count in bad_requests.items()},
        )
        yield from self._gauges()

    def _gauges(self) -> Iterator[Metric]:
        gate = self._gate
        yield _gauge("upload_gate_leases_in_flight", "Uploads admitted and not yet ended.", self._leases_in_flight())
        yield _gauge(
            "upload_gate_config_version",
            "Version of the limits table in force (0 while on the fallback limits).",
            gate.config_version or 0,
        )
        yield _gauge("upload_gate_table_loaded", "1 once the limits table has been read.", 1 if gate.loaded else 0)
        stale = gate.stale_since
        yield _gauge(
            "upload_gate_stale_seconds",
            "Seconds since the limits table could last be read (0 while it can).",
            0.0 if stale is None else max(0.0, time.time() - stale.timestamp()),
        )
        yield _gauge(
            "upload_gate_live_server_count", "Servers the fleet-wide limits are shared by.", gate.live_server_count
        )
        mode = GaugeMetricFamily("upload_gate_mode", "How the gate counts: share, redis, ...", labels=("mode",))
        mode.add_metric((gate.mode,), 1)
        yield mode
        yield _gauge("upload_gate_start_time_seconds", "When the sidecar started (Unix time).", self._started)
        reporter = self.reporter
        if reporter is not None:
            stats = reporter.stats()
            yield _plain_counter("upload_gate_reports_sent", "Status reports delivered.", stats["sent"])
            yield _plain_counter("upload_gate_reports_dropped", "Status reports dropped.", stats["dropped"])
            yield _gauge("upload_gate_reports_queued", "Status reports waiting to be sent.", stats["queued"])


def _counter(name: str, documentation: str, labels: tuple[str, ...], values: dict[tuple[str, ...], int]) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for label_values, count in sorted(values.items()):
        family.add_metric(label_values, count)
    return family


def _plain_counter(name: str, documentation: str, value: float) -> Metric:
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> Metric:
    return GaugeMetricFamily(name, documentation, value=value)
