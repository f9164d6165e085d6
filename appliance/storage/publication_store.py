"""Redis state of content publication: which events were announced, and each feed's poll state.

Keys (documented in docs/architecture.md):

- `ov:pub:announced:EVENT_ID` (string, expires): the event's live event and notification went
  out, so a redelivery does not send them again.
- `ov:pub:feed:SITE` (hash): the feed URL last fetched and its validators (`etag`,
  `last_modified`) for a conditional GET.
- `ov:pub:feed:SITE:seen` (hash): normalised path -> event id of the entry last enqueued for it,
  so a re-poll of an unchanged feed enqueues nothing.
"""

from __future__ import annotations

import redis

PREFIX = "ov:pub:"
ANNOUNCED_TTL_S = 86400


def announced_key(event_id: str) -> str:
    return f"{PREFIX}announced:{event_id}"


def feed_state_key(site: str) -> str:
    return f"{PREFIX}feed:{site}"


def feed_seen_key(site: str) -> str:
    return f"{PREFIX}feed:{site}:seen"


def was_announced(client: redis.Redis, event_id: str) -> bool:
    return bool(client.exists(announced_key(event_id)))


def mark_announced(client: redis.Redis, event_id: str) -> None:
    client.set(announced_key(event_id), "1", ex=ANNOUNCED_TTL_S)


def feed_validators(client: redis.Redis, site: str, url: str) -> dict[str, str]:
    """The ETag and Last-Modified of the last fetch of `url` (none if the URL changed since)."""
    state = client.hgetall(feed_state_key(site))
    if state.get("url") != url:
        return {}
    return {name: state[name] for name in ("etag", "last_modified") if state.get(name)}


def save_feed_validators(client: redis.Redis, site: str, url: str, etag: str | None,
                         last_modified: str | None) -> None:
    key = feed_state_key(site)
    pipe = client.pipeline(transaction=True)
    pipe.delete(key)
    pipe.hset(key, mapping={"url": url, "etag": etag or "", "last_modified": last_modified or ""})
    pipe.execute()


def seen_entries(client: redis.Redis, site: str) -> dict[str, str]:
    """Path -> event id of the feed entries already enqueued for `site`."""
    return client.hgetall(feed_seen_key(site))


def mark_seen(client: redis.Redis, site: str, path: str, event_id: str) -> None:
    client.hset(feed_seen_key(site), path, event_id)
