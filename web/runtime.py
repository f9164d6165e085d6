"""What a web worker opens when it starts serving and closes when it stops.

`create_app` does no I/O; `WebRuntime.open` runs in `before_serving`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
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
from appliance.storage.database import open_database
from appliance.storage.redis_client import async_redis, sync_redis
from web.broker import Broker

log = logging.getLogger("ovation.web")
WS_GAUGE_PREFIX = PREFIX + "ws:"
WS_GAUGE_TTL_S = 30


class LivePublisher:
    """Coalesced live pushes: at most one per page per `live_coalesce_ms`, from any worker.

    Interactions only mark a page as due (the Lua script took the page's throttle in Redis);
    one loop per worker pushes every due page each interval, in one pipelined round trip, so
    a burst over thousands of pages costs this worker one Redis connection, not thousands.
    """

    def __init__(self, runtime: WebRuntime, interval_s: float) -> None:
        self._runtime = runtime
        self._interval_s = interval_s
        self._due: set[tuple[str, str]] = set()
        self._wakeup = asyncio.Event()

    def schedule(self, site: str, path: str) -> None:
        self._due.add((site, path))
        self._wakeup.set()

    async def run(self, shutdown: asyncio.Event) -> None:
        while not shutdown.is_set():
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=1.0)
            except TimeoutError:
                continue
            await asyncio.sleep(self._interval_s)
            self._wakeup.clear()
            due, self._due = self._due, set()
            try:
                await self.push(due)
            except Exception as exc:  # a missed push is superseded by the next; never crash
                log.warning("live push of %d pages failed: %s", len(due), exc)

    async def push(self, due: set[tuple[str, str]]) -> None:
        counters = self._runtime.counters
        for chunk in _chunks(sorted(due), 500):
            totals = await counters.publish_totals_many(chunk)
            pipe = self._runtime.redis.pipeline(transaction=False)
            for (site, path), page_totals in zip(chunk, totals, strict=True):
                event = LiveEvent("totals", site, path, {"totals": page_totals})
                pipe.publish(events.LIVE_CHANNEL, event.encode())
            await pipe.execute()


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


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

    async def open(self) -> None:
        self.redis = async_redis(self.settings)
        self.database = open_database(self.settings.effective_database_url)
        self.sql = SqlRunner()
        self.sites = SiteDirectory(self.database, self.sql.run, self.settings.site_cache_s)
        self.live = LivePublisher(self, self.settings.live_coalesce_ms / 1000)
        self.counters = CounterService(self.redis, self.database, self.registry, self.settings,
                                       self.sql.run, self.live)
        self.comments = CommentService(self.redis, self.database, self.settings, self.sql.run,
                                       votes=self.counters)
        self.limiter = RateLimiter(self.redis)
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
        if not self.database.is_closed():
            self.database.close()

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
                            self.broker.publish(LiveEvent.decode(message["data"]))
                        except (ValueError, KeyError) as exc:
                            log.warning("ignored a malformed live event: %s", exc)
            except (redis_errors.ConnectionError, OSError) as exc:
                log.warning("live relay lost Redis (%s); reconnecting", exc)
                await asyncio.sleep(1.0)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass

    async def report_connections(self, shutdown: asyncio.Event) -> None:
        """Keep this worker's WebSocket count in Redis so /metrics is right across workers."""
        key = WS_GAUGE_PREFIX + self.worker_id
        while not shutdown.is_set():
            try:
                await self.redis.set(key, self.broker.connections, ex=WS_GAUGE_TTL_S)
            except (redis_errors.RedisError, OSError):
                pass
            try:
                await asyncio.wait_for(shutdown.wait(), timeout=WS_GAUGE_TTL_S / 3)
            except TimeoutError:
                pass
