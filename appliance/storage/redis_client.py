"""Redis clients for the configured URL (the owned socket or an existing server).

hiredis is a dependency although redis-py runs without it: with it, redis-py packs commands
and parses replies in C instead of Python. A web worker recording interactions spent about a
third of its time in redis-py's client code, most of it parsing replies.
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from appliance.errors import ServiceUnavailable
from appliance.settings import Settings


def sync_redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.effective_redis_url, decode_responses=True,
                                socket_connect_timeout=5, health_check_interval=30)


def async_redis(settings: Settings, max_connections: int = 64) -> aioredis.Redis:
    # A blocking pool: under a burst, requests wait a moment for a free connection instead of
    # failing with "Too many connections".
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.effective_redis_url, decode_responses=True, socket_connect_timeout=5,
        health_check_interval=30, max_connections=max_connections, timeout=10)
    return aioredis.Redis(connection_pool=pool)


def check_redis(client: redis.Redis, settings: Settings) -> None:
    """Raise ServiceUnavailable with a hint unless Redis answers PING."""
    try:
        client.ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        hint = (" Is `platformctl up` running with this --data-dir?" if settings.owns_redis
                else "")
        raise ServiceUnavailable(
            f"Redis is not reachable at {settings.effective_redis_url}: "
            f"{str(exc).rstrip('.')}.{hint}") from exc
