"""Operational figures, kept in Redis by every process and rendered for Prometheus.

Because the numbers live in Redis, /metrics from any web worker on any host reports the whole
deployment, not one process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from appliance.notify.metrics import collect_notification_figures, notification_families
from appliance.storage import counter_store as keys

WS_GAUGE_PATTERN = keys.PREFIX + "ws:*"


@dataclass
class MetricsSnapshot:
    interactions: dict[str, int] = field(default_factory=dict)
    flush: dict[str, str] = field(default_factory=dict)
    pending_counters: int = 0
    websocket_connections: int = 0
    notifications: dict[str, float] = field(default_factory=dict)
    plugin_errors: dict[str, int] = field(default_factory=dict)


async def collect_snapshot(client) -> MetricsSnapshot:
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.STATS)
    pipe.hgetall(keys.FLUSH_STATS)
    pipe.hlen(keys.PENDING)
    pipe.hlen(keys.INFLIGHT)
    pipe.hgetall(keys.PLUGIN_ERRORS)
    stats, flush, pending, inflight, plugin_errors = await pipe.execute()
    sockets = 0
    async for key in client.scan_iter(match=WS_GAUGE_PATTERN, count=500):
        value = await client.get(key)
        sockets += int(value or 0)
    return MetricsSnapshot({name: int(count) for name, count in stats.items()}, flush,
                           int(pending) + int(inflight), sockets,
                           await collect_notification_figures(client),
                           {name: int(count) for name, count in plugin_errors.items()})


class _SnapshotCollector:
    def __init__(self, snapshot: MetricsSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self):
        snap = self.snapshot
        interactions = CounterMetricFamily("ovation_interactions", "Interactions accepted, "
                                           "by reaction type.", labels=["reaction"])
        for reaction, count in sorted(snap.interactions.items()):
            interactions.add_metric([reaction], count)
        yield interactions
        plugin_errors = CounterMetricFamily("ovation_plugin_errors", "Reaction plugin hooks "
                                            "that raised, by reaction type.", labels=["reaction"])
        for reaction, count in sorted(snap.plugin_errors.items()):
            plugin_errors.add_metric([reaction], count)
        yield plugin_errors
        flush = snap.flush
        yield CounterMetricFamily("ovation_flush_batches", "Flush batches committed to SQL.",
                                  value=int(flush.get("batches_total", 0)))
        yield CounterMetricFamily("ovation_flush_rows", "Counter rows written by flushes.",
                                  value=int(flush.get("rows_total", 0)))
        yield CounterMetricFamily("ovation_flush_failures", "Flushes that failed and will retry.",
                                  value=int(flush.get("failures_total", 0)))
        yield CounterMetricFamily("ovation_flush_duration_seconds",
                                  "Time spent flushing, summed.",
                                  value=float(flush.get("duration_seconds_total", 0)))
        yield GaugeMetricFamily("ovation_flush_last_duration_seconds",
                                "Duration of the last flush.",
                                value=float(flush.get("last_duration_s", 0)))
        yield GaugeMetricFamily("ovation_flush_last_timestamp_seconds",
                                "Unix time of the last successful flush.",
                                value=float(flush.get("last_at", 0)))
        yield GaugeMetricFamily("ovation_pending_counters",
                                "Counters waiting in Redis to be flushed.",
                                value=snap.pending_counters)
        yield from notification_families(snap.notifications)
        yield GaugeMetricFamily("ovation_websocket_connections",
                                "Open live WebSocket connections, all workers.",
                                value=snap.websocket_connections)


def render_metrics(snapshot: MetricsSnapshot) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry), CONTENT_TYPE_LATEST
