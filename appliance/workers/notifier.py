"""The notifier: consumes the notification stream (channels come with the notification issue)."""

from __future__ import annotations

import redis

from appliance import events
from appliance.workers.stream_consumer import StreamConsumer


def build_notifier(client: redis.Redis) -> StreamConsumer:
    # No channel is wired yet: an event of an unknown kind is dead-lettered with its reason,
    # visible in NOTIFICATION_STREAM:dead, rather than silently dropped.
    return StreamConsumer(client, events.NOTIFICATION_STREAM, events.NOTIFIER_GROUP, {})
