"""What a web worker opens when it starts serving and closes when it stops.

`create_app` does no I/O; `WebRuntime.open` runs in `before_serving`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid

import peewee as pw
import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from appliance import events
from appliance.events import LiveEvent
from appliance.plugin_registry import ReactionRegistry
from appliance.services.comments import CommentService
from appliance.services.counters import CounterService
from appliance.services.rate_limits import RateLimiter
from appliance.services.sites import SiteDirectory
from appliance.services.sql_runner import SqlRunner
from appliance.settings import Settings
from appliance.storage.counter_store import PREFIX
from appliance.storage.database import close_database, open_database
from appliance.storage.redis_client import async_redis, sync_redis
from appliance.storage.script_batcher import ScriptBatcher
from web.broker import Broker
from web.live_publisher import LivePublisher
from web.watched_pages import WatchedPages

log = logging.getLogger("ovation.web")
WS_GAUGE_PREFIX = PREFIX + "ws:"
WS_GAUGE_TTL_S = 30  # a worker killed outright stops counting in /metrics after this
WS_GAUGE_REFRESH_S = WS_GAUGE_TTL_S / 3  # rewritten this often even when unchanged
WS_GAUGE_CHECK_S = 1.0  # a socket opened or closed shows in /metrics within about this


class WebRuntime:
    def __init__(self, settings: Settings, registry: ReactionRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.broker = Broker()
        self.ws_connections: dict[str, int] = {}  # open live sockets per client address
        self.redis: aioredis.Redis
        self.database: pw.Database
        self.sql: SqlRunner
        self.sites: SiteDirectory
        self.counters: CounterService
        self.comments: CommentService
        self.live: LivePublisher
        self.watched: WatchedPages

    async def open(self) -> None:
        self.redis = async_redis(self.settings)
        self.database = open_database(self.settings.effective_database_url, pooled=True)
        self.sql = SqlRunner()
        self.sites = SiteDirectory(self.database, self.sql.run, self.settings.site_cache_s)
        self.live = LivePublisher(self, self.settings.live_coalesce_ms / 1000)
        self.watched = WatchedPages(self.redis, self.broker, self.settings.live_watch_ttl_s)
        # Concurrent requests' scripts (interactions, totals, rate limits) share pipelines.
        self.scripts = ScriptBatcher(self.redis)
        self.counters = CounterService(self.redis, self.database, self.registry, self.settings,
                                       self.sql.run, self.live, sites=self.sites,
                                       batcher=self.scripts)
        self.comments = CommentService(self.redis, self.database, self.settings, self.sql.run,
                                       votes=self.counters, batcher=self.scripts)
        self.limiter = RateLimiter(self.redis, self.scripts)
        self.hash_key = self.settings.hashing_key()
        # Moderation shares its code with the CLI, which is blocking: it runs in the SQL pool.
        self.sync_redis = sync_redis(self.settings)

    async def close(self) -> None:
        try:
            await self.redis.delete(WS_GAUGE_PREFIX + self.worker_id)
        except (redis_errors.RedisError, OSError):
            pass
        await self.redis.aclose()
        self.sync_redis.close()
        self.sql.close()
        close_database(self.database)

    async def relay_live_events(self, shutdown: asyncio.Event) -> None:
        """Bring every live event from Redis pub/sub to this worker's broker, reconnecting."""
        while not shutdown.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(events.LIVE_CHANNEL)
                while not shutdown.is_set():
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        try:
                            event = LiveEvent.decode(message["data"])
                        except (ValueError, KeyError) as exc:
                            log.warning("ignored a malformed live event: %s", exc)
                        else:
                            await self.broker.publish(event)
            except (redis_errors.ConnectionError, OSError) as exc:
                log.warning("live relay lost Redis (%s); reconnecting", exc)
                await asyncio.sleep(1.0)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass

    async def report_connections(self, shutdown: asyncio.Event) -> None:
        """Keep this worker's WebSocket count in Redis so /metrics is right across workers.

        The local count is looked at every second but written only when it changed or the
        key needs its TTL renewed: a Redis write per second per worker would be waste, and a
        write only every TTL/3 left /metrics up to ten seconds behind.
        """
        key = WS_GAUGE_PREFIX + self.worker_id
        reported: int | None = None
        reported_at = 0.0
        while not shutdown.is_set():
            count = self.broker.connections
            now = time.monotonic()
            if count != reported or now - reported_at >= WS_GAUGE_REFRESH_S:
                try:
                    await self.redis.set(key, count, ex=WS_GAUGE_TTL_S)
                    reported, reported_at = count, now
                except (redis_errors.RedisError, OSError):
                    reported = None  # written again at the next check Redis answers
            try:
                await asyncio.wait_for(shutdown.wait(), timeout=WS_GAUGE_CHECK_S)
            except TimeoutError:
                pass
