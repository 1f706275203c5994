"""Prometheus metrics of one Foresight process, on a registry the composition root builds and passes in.

Nothing is registered on prometheus-client's global registry. Ingest stays free of prometheus: the
batch counters are fed from the ingester's ``on_batch(BatchResult)`` hook, and what the ingester only
knows as running state (messages received, acks, queue depth, write errors) is read from its
``stats`` when Prometheus scrapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from actions import Outcome
from ingest.store import BatchResult
from ingest.subscriber import Ingester

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Seconds; a batch commit on SQLite takes milliseconds to a few seconds under load.
_COMMIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Seconds from a reading's event time to its commit: sub-second when healthy, hours for a backlog.
_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 86400.0)


class Metrics:
    """Foresight's metrics on ``registry``; one instance per process, built by the runtime."""

    def __init__(self, registry: CollectorRegistry, *, process: bool = True) -> None:
        self.registry = registry
        self._ingester: Ingester | None = None
        self.ingested = Counter("foresight_messages_ingested", "Readings accepted and stored.", registry=registry)
        self.duplicates = Counter("foresight_messages_duplicate",
                                  "Readings already stored under their (device_id, seq).", registry=registry)
        self.rejected = Counter("foresight_messages_rejected", "Messages sent to the dead-letter table.",
                                ["reason"], registry=registry)
        self.commit_seconds = Histogram("foresight_batch_commit_seconds",
                                        "Time to store one batch in one transaction.",
                                        buckets=_COMMIT_BUCKETS, registry=registry)
        self.lag_seconds = Histogram("foresight_ingest_lag_seconds",
                                     "Accepted readings: event timestamp to commit.",
                                     buckets=_LAG_BUCKETS, registry=registry)
        self.predictions = Counter("foresight_predictions_scored", "Predictions scored.", registry=registry)
        self.decisions = Counter("foresight_decisions", "Policy decisions on scored predictions, by action.",
                                 ["action"], registry=registry)
        registry.register(_IngesterCollector(lambda: self._ingester))
        if process:
            ProcessCollector(registry=registry)

    def attach_ingester(self, ingester: Ingester | None) -> None:
        """Read received / acked / queue depth / write errors from this ingester (None detaches)."""
        self._ingester = ingester

    def observe_batch(self, result: BatchResult) -> None:
        """The ingester's ``on_batch`` hook: count what one stored batch did."""
        self.ingested.inc(result.accepted)
        self.duplicates.inc(result.duplicates)
        for reason, n in result.rejected_by_reason:
            self.rejected.labels(reason=reason).inc(n)
        self.commit_seconds.observe(result.commit_s)
        for lag in result.lags_s:
            self.lag_seconds.observe(max(lag, 0.0))

    def observe_outcomes(self, n_predictions: int, outcomes: Iterable[Outcome]) -> None:
        """Count one scoring sweep: predictions scored and the action each decision took."""
        self.predictions.inc(n_predictions)
        for o in outcomes:
            if not o.duplicate:
                self.decisions.labels(action=str(o.decision.action)).inc()

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)


class _IngesterCollector(Collector):
    """Reads the ingester's running state at scrape time (zeros while no ingester runs)."""

    def __init__(self, ingester: Callable[[], Ingester | None]) -> None:
        self._ingester = ingester

    def collect(self) -> Iterator[Metric]:
        ing = self._ingester()
        stats = ing.stats if ing is not None else None
        received = CounterMetricFamily("foresight_messages_received", "MQTT messages received by the ingester.")
        received.add_metric([], stats.received if stats else 0)
        errors = CounterMetricFamily("foresight_write_errors", "Failed batch writes (each retried).")
        errors.add_metric([], stats.write_errors if stats else 0)
        outstanding = GaugeMetricFamily("foresight_acks_outstanding",
                                        "Messages received but not yet acknowledged to the broker.")
        outstanding.add_metric([], max(stats.received - stats.acked, 0) if stats else 0)
        depth = GaugeMetricFamily("foresight_ingest_queue_depth", "Messages received, waiting for the writer.")
        depth.add_metric([], ing.queue_depth() if ing is not None else 0)
        connected = GaugeMetricFamily("foresight_mqtt_connected", "1 while the ingester is connected.")
        connected.add_metric([], 1 if stats and stats.connected else 0)
        restarts = CounterMetricFamily("foresight_ingest_writer_restarts",
                                       "Writer processes started again after one died or hung.")
        restarts.add_metric([], stats.writer_restarts if stats else 0)
        yield from (received, errors, outstanding, depth, connected, restarts)

    def describe(self) -> Iterator[Metric]:
        return iter(())
