"""What a broker runtime counts, in Prometheus form (``/metrics`` on its health port).

One registry per runtime, so that several runtimes in one process do not mix their figures.
Counters and histograms are updated where things happen; the gauges (deliveries in flight,
partitions owned, publishes waiting for their confirm) are read when scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Seconds: from a cached answer to an LLM call of two minutes.
HANDLER_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 600.0)
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0)


class _Gauges(Collector):
    def __init__(self, read: Callable[[], Mapping[str, object]]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        values = self._read()
        in_flight = GaugeMetricFamily(
            "agnext_deliveries_in_flight", "Deliveries received and not yet settled"
        )
        in_flight.add_metric([], float(values.get("in_flight", 0)))  # type: ignore[arg-type]
        yield in_flight
        publishes = GaugeMetricFamily(
            "agnext_publishes_in_flight", "Messages published and not yet confirmed"
        )
        publishes.add_metric([], float(values.get("publishes", 0)))  # type: ignore[arg-type]
        yield publishes
        owned = GaugeMetricFamily(
            "agnext_owned_partitions", "Partitions this worker consumes", labels=["agent_type"]
        )
        partitions = values.get("owned", {})
        assert isinstance(partitions, Mapping)
        for agent_type, count in sorted(partitions.items()):
            owned.add_metric([agent_type], float(count))
        yield owned


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.handled = Counter(
            "agnext_messages_handled",
            "Messages handled, by agent type and outcome (ok, error: an RPC handler raised, "
            "duplicate: applied before, requeued, dead_lettered, cancelled)",
            ["agent_type", "outcome"],
            registry=registry,
        )
        self.handler_seconds = Histogram(
            "agnext_handler_duration_seconds",
            "Time in message handlers, by agent type",
            ["agent_type"],
            buckets=HANDLER_BUCKETS,
            registry=registry,
        )
        self.dead_letters = Counter(
            "agnext_dead_letters",
            "Messages dead-lettered, by reason",
            ["reason"],
            registry=registry,
        )
        self.state_writes = Counter(
            "agnext_state_writes",
            "Agent records written, by outcome (saved, conflict: another writer was first)",
            ["outcome"],
            registry=registry,
        )
        self.reconnects = Counter(
            "agnext_reconnects",
            "Connections lost and made again, by server (rabbitmq, redis)",
            ["server"],
            registry=registry,
        )
        self.rpc_seconds = Histogram(
            "agnext_rpc_duration_seconds",
            "RPCs of this process from send to answer, by outcome (ok, error, timeout, cancelled)",
            ["outcome"],
            buckets=RPC_BUCKETS,
            registry=registry,
        )

    def gauges(self, read: Callable[[], Mapping[str, object]]) -> None:
        """Read ``in_flight``, ``publishes`` and ``owned`` (by type) from ``read()`` at scrape."""
        self.registry.register(_Gauges(read))

    def text(self) -> bytes:
        return generate_latest(self.registry)
