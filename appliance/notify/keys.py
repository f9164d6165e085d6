"""Redis keys of the notification queue. One hash tag, so every key lives in one cluster slot
(the queue's Lua scripts touch several of them at once)."""

from __future__ import annotations

import hashlib

from appliance import events
from appliance.workers.stream_consumer import StreamConsumer

PREFIX = "ov:{n}:"
DUE = PREFIX + "due"  # zset: delivery id -> unix time it is due (or its lease ends)
ALL = PREFIX + "all"  # zset: delivery id -> unix time it was created (for listing)
STATS = PREFIX + "stats"  # hash: counters for /metrics
DEAD_LETTERS = StreamConsumer.dead_letter_stream(events.NOTIFICATION_STREAM)


def delivery(delivery_id: str) -> str:
    return f"{PREFIX}d:{delivery_id}"


def items(digest_id: str) -> str:
    """List of the delivery ids a digest carries."""
    return f"{PREFIX}items:{digest_id}"


def address_hash(site: str, address: str) -> str:
    return hashlib.sha256(f"{site}\0{address.lower()}".encode()).hexdigest()[:24]


def recipient(site: str, address: str) -> str:
    """Hash: when this address was last e-mailed for this site and its open digest."""
    return f"{PREFIX}rcpt:{address_hash(site, address)}"


def held(site: str, address: str, list_name: str) -> str:
    """Set of deliveries waiting for this address to confirm the list (double opt-in)."""
    return f"{PREFIX}held:{address_hash(site, address)}:{list_name}"
