"""Notification delivery figures for /metrics, from the queue's counters in Redis."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from appliance.notify import keys

CHANNELS = ("email", "webhook", "browser")
_COUNTERS = (
    ("enqueued", "ovation_notifications_enqueued", "Deliveries queued, by channel."),
    ("delivered", "ovation_notifications_delivered", "Deliveries that succeeded, by channel."),
    ("failed", "ovation_notification_attempts_failed",
     "Delivery attempts that failed (retried or dead-lettered), by channel."),
    ("dead", "ovation_notifications_dead", "Deliveries moved to the dead letters, by channel."),
    ("dropped", "ovation_notifications_dropped",
     "Deliveries dropped because the recipient unsubscribed or the webhook was removed."),
)


async def collect_notification_figures(client) -> dict[str, float]:
    """The counters plus the queue and dead-letter lengths (async Redis, for the web)."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.STATS)
    pipe.zcard(keys.DUE)
    pipe.xlen(keys.DEAD_LETTERS)
    stats, due, dead = await pipe.execute()
    return {**{name: float(value) for name, value in stats.items()},
            "queued": float(due), "dead_letters": float(dead)}


def notification_families(figures: dict[str, float]) -> Iterator:
    for prefix, name, help_text in _COUNTERS:
        family = CounterMetricFamily(name, help_text, labels=["channel"])
        for channel in CHANNELS:
            family.add_metric([channel], figures.get(f"{prefix}:{channel}", 0.0))
        yield family
    yield CounterMetricFamily("ovation_notifications_digested",
                              "E-mail notifications collected into digests.",
                              value=figures.get("digested", 0.0))
    yield GaugeMetricFamily("ovation_notifications_queued",
                            "Deliveries waiting (due, retrying or being sent).",
                            value=figures.get("queued", 0.0))
    yield GaugeMetricFamily("ovation_notifications_dead_letters",
                            "Entries in the notification dead-letter stream.",
                            value=figures.get("dead_letters", 0.0))
