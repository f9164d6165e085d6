"""The appliance's health as `platformctl status` (and the dashboard) show it.

Each probe is independent and bounded by short timeouts: one that fails records why and the
others still answer, so a status page is most useful exactly when something is down.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from appliance import __version__, events
from appliance.settings import Settings

STREAMS = {
    "publish": (events.PUBLISH_STREAM, events.LISTENER_GROUP),
    "submissions": (events.SUBMISSION_STREAM, events.LISTENER_GROUP),
    "notifications": (events.NOTIFICATION_STREAM, events.NOTIFIER_GROUP),
}


@dataclass
class Health:
    version: str = __version__
    redis_ok: bool = False
    redis_error: str = ""
    database_ok: bool = False
    database_error: str = ""
    pending_migrations: int | None = None
    last_flush_age_s: float | None = None  # None: no flush recorded yet
    last_flush_error: str = ""
    pending_counters: int | None = None
    stream_lengths: dict[str, int] = field(default_factory=dict)
    stream_unacknowledged: dict[str, int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)
    # Notification deliveries (e-mail, webhook, browser) due, retrying or in flight: the
    # notifier's own queue, which lives beside the streams.
    deliveries_queued: int | None = None

    @property
    def problems(self) -> list[str]:
        """What is down, one short phrase each (empty when all is well)."""
        found = []
        if not self.redis_ok:
            found.append(f"Redis is not reachable ({self.redis_error})")
        if not self.database_ok:
            found.append(f"the database is not reachable ({self.database_error})")
        elif self.pending_migrations:
            found.append(f"the database needs {self.pending_migrations} migration(s): "
                         "run `platformctl migrate`")
        return found

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "problems": self.problems}


def appliance_health(settings: Settings) -> Health:
    health = Health()
    _probe_redis(settings, health)
    _probe_database(settings, health)
    return health


def _probe_redis(settings: Settings, health: Health) -> None:
    import redis

    from appliance.jobs.flush import pending_counters
    from appliance.notify import keys as notify_keys
    from appliance.storage import counter_store as keys
    from appliance.workers.stream_consumer import StreamConsumer

    client = redis.Redis.from_url(settings.effective_redis_url, decode_responses=True,
                                  socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
        health.redis_ok = True
        health.pending_counters = pending_counters(client)
        flush = client.hgetall(keys.FLUSH_STATS)
        if flush.get("last_at"):
            health.last_flush_age_s = max(0.0, time.time() - float(flush["last_at"]))
        if flush.get("last_error_at") and float(flush["last_error_at"]) > float(
                flush.get("last_at") or 0):
            health.last_flush_error = flush.get("last_error", "")
        for name, (stream, group) in STREAMS.items():
            health.stream_lengths[name] = client.xlen(stream)
            health.dead_letters[name] = client.xlen(StreamConsumer.dead_letter_stream(stream))
            health.stream_unacknowledged[name] = _unacknowledged(client, stream, group)
        health.deliveries_queued = client.zcard(notify_keys.DUE)
    except (redis.exceptions.RedisError, OSError, ValueError) as exc:
        health.redis_ok = health.redis_ok and isinstance(exc, ValueError)
        health.redis_error = str(exc).strip().rstrip(".") or type(exc).__name__
    finally:
        client.close()


def _unacknowledged(client, stream: str, group: str) -> int:
    import redis

    try:
        return int(client.xpending(stream, group)["pending"])
    except redis.exceptions.ResponseError:  # no group yet: nothing consumed so far
        return 0


def _probe_database(settings: Settings, health: Health) -> None:
    from appliance.errors import OvationError
    from appliance.storage.database import check_database, open_database
    from appliance.storage.migrations import pending_migrations

    url = settings.effective_database_url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        # Probing must not create an empty database file as a side effect.
        health.database_error = f"no database file at {url[len('sqlite:///'):]}"
        return
    try:
        database = open_database(url)
        check_database(database)
        health.database_ok = True
        health.pending_migrations = len(pending_migrations(database))
        database.close()
    except OvationError as exc:
        health.database_error = exc.message.removeprefix("The database is not reachable: ")
    except Exception as exc:  # a driver error while reading the schema version
        health.database_error = str(exc).strip() or type(exc).__name__
