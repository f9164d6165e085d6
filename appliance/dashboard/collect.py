"""Collects a `DashboardSnapshot` from Redis, SQL, the web process and the service manager.

Redis figures are read on every call (a few pipelined round trips); SQL, the web probe, the
process table, the WebSocket gauges and the versions are read every `SLOW_REFRESH_S` at most and
reused in between, so a dashboard left open costs the database and the host almost nothing (the
process table walks /proc, and the gauges are a SCAN that the web workers refresh only every
10 s anyway). A part that cannot be read becomes a line in `errors` and keeps its last value:
the dashboard stays up while a dependency is down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import peewee as pw
import redis

from appliance import __version__, events
from appliance.dashboard import sql_figures
from appliance.dashboard.live_stats import LiveStats, read_live_stats
from appliance.dashboard.snapshot import (
    DashboardSnapshot,
    DeliveryFigures,
    FlushFigures,
    PageCount,
    ServiceStatus,
    StorageFigures,
    StreamFigures,
)
from appliance.metrics import WS_GAUGE_PATTERN
from appliance.operations.services import ServiceState, read_up_state, service_states
from appliance.settings import Settings
from appliance.storage import counter_store as keys

log = logging.getLogger("ovation.dashboard")
SLOW_REFRESH_S = 5.0
WEB_PROBE_TIMEOUT_S = 1.0
# /openapi.json (where the web process states its version) is built on request and can take
# over a second on a busy host: it gets longer, and after a failure a minute's rest.
WEB_VERSION_TIMEOUT_S = 5.0
WEB_VERSION_RETRY_S = 60.0
RETRY_SCAN = 100  # pending messages inspected for redeliveries, per stream
# (stream, consumer group) of each durable hand-off, in the order shown.
STREAMS = ((events.NOTIFICATION_STREAM, events.NOTIFIER_GROUP),
           (events.SUBMISSION_STREAM, events.LISTENER_GROUP),
           (events.PUBLISH_STREAM, events.LISTENER_GROUP))


def dead_letter_stream(stream: str) -> str:
    """Where a consumer moves messages it gave up on (StreamConsumer.dead_letter_stream)."""
    return f"{stream}:dead"


ServiceReader = Callable[[Settings], list[ServiceState]]


@dataclass
class DashboardSources:
    """Everything the collector reads from. Tests build one with their own clients."""

    settings: Settings
    redis: redis.Redis
    database: pw.Database
    services: ServiceReader = service_states
    web_url: str = ""  # probed at /readyz; empty: the running `up`'s, else the public URL

    def __post_init__(self) -> None:
        self.web_url = (self.web_url or _up_web_url(self.settings)
                        or self.settings.effective_public_url).rstrip("/")


@dataclass
class _SlowFigures:
    """What is read every few seconds, kept between reads."""

    read_at: float = float("-inf")
    comments_by_status: dict[str, int] = field(default_factory=dict)
    latest_comments: list = field(default_factory=list)
    titles: dict[tuple[str, str], str] = field(default_factory=dict)
    database_bytes: int | None = None
    database_version: str = ""
    web: ServiceStatus | None = None
    states: list[ServiceState] = field(default_factory=list)
    websockets: int = 0
    errors: list[str] = field(default_factory=list)


class Collector:
    """One per dashboard: holds the sources and the cache of slow figures."""

    def __init__(self, sources: DashboardSources, clock: Callable[[], float] = time.time) -> None:
        self.sources = sources
        self._clock = clock
        self._slow = _SlowFigures()
        self._web_version = ""
        self._web_version_tried_at = float("-inf")

    def collect(self) -> DashboardSnapshot:
        now = self._clock()
        errors: list[str] = []
        live = self._guard(errors, "Redis statistics", lambda: read_live_stats(
            self.sources.redis, now), LiveStats())
        flush = self._guard(errors, "flush figures", self._flush_figures, FlushFigures())
        streams = self._guard(errors, "streams", self._streams, [])
        deliveries = self._guard(errors, "notification queue", self._deliveries, None)
        redis_info = self._guard(errors, "Redis info", self._redis_info, {})
        if now - self._slow.read_at >= SLOW_REFRESH_S:
            self._refresh_slow(now, live)
        errors.extend(self._slow.errors)
        titles = self._slow.titles
        return DashboardSnapshot(
            collected_at=now,
            instance=self.sources.web_url,
            day=keys.stats_day(now),
            bucket_s=keys.STATS_BUCKET_S,
            services=self._services(redis_info),
            rates=live.rates,
            rate_series=live.rate_series,
            today=live.today,
            unique_visitors_today=live.unique_visitors_today,
            websocket_connections=self._slow.websockets,
            top_pages_now=[_titled(page, titles) for page in live.top_pages_now],
            top_pages_today=[_titled(page, titles) for page in live.top_pages_today],
            comments_by_status=self._slow.comments_by_status,
            latest_comments=self._slow.latest_comments,
            flush=flush,
            streams=streams,
            deliveries=deliveries,
            storage=StorageFigures(
                redis_used_memory=int(redis_info.get("used_memory", 0)),
                redis_peak_memory=int(redis_info.get("used_memory_peak", 0)),
                redis_max_memory=int(redis_info.get("maxmemory", 0)),
                redis_keys=int(redis_info.get("keys", 0)),
                database_bytes=self._slow.database_bytes,
                database_kind=self._slow.database_version),
            errors=errors)

    # -- Redis, every frame -------------------------------------------------------------------

    def _flush_figures(self) -> FlushFigures:
        client = self.sources.redis
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(keys.FLUSH_STATS)
        pipe.hlen(keys.PENDING)
        pipe.hlen(keys.INFLIGHT)
        stats, pending, inflight = pipe.execute()
        return FlushFigures(
            last_at=float(stats.get("last_at", 0)), last_rows=int(stats.get("last_rows", 0)),
            last_duration_s=float(stats.get("last_duration_s", 0)),
            batches_total=int(stats.get("batches_total", 0)),
            failures_total=int(stats.get("failures_total", 0)),
            last_error=stats.get("last_error", "") if float(stats.get("last_error_at", 0))
            > float(stats.get("last_at", 0)) else "",
            pending_counters=int(pending) + int(inflight))

    def _streams(self) -> list[StreamFigures]:
        client = self.sources.redis
        figures = []
        for stream, group in STREAMS:
            pipe = client.pipeline(transaction=False)
            pipe.xlen(stream)
            pipe.xlen(dead_letter_stream(stream))
            length, dead = pipe.execute()
            pending = lag = consumers = retries = 0
            try:
                groups = client.xinfo_groups(stream)
            except redis.exceptions.ResponseError:  # the stream does not exist yet
                groups = []
            for info in groups:
                if info.get("name") == group:
                    pending = int(info.get("pending") or 0)
                    lag = int(info.get("lag") or 0)
                    consumers = int(info.get("consumers") or 0)
            if pending:
                entries = client.xpending_range(stream, group, min="-", max="+",
                                                count=RETRY_SCAN)
                retries = sum(1 for entry in entries if int(entry["times_delivered"]) > 1)
            figures.append(StreamFigures(stream, int(length), pending, lag, retries, int(dead),
                                         consumers))
        return figures

    def _deliveries(self) -> DeliveryFigures | None:
        try:  # the delivery queue arrived with notifications; older versions have none
            from appliance.notify import keys as queue_keys
        except ImportError:
            return None
        pipe = self.sources.redis.pipeline(transaction=False)
        pipe.zcard(queue_keys.DUE)
        pipe.hgetall(queue_keys.STATS)
        pipe.xlen(queue_keys.DEAD_LETTERS)
        queued, stats, dead = pipe.execute()

        def total(kind: str) -> int:
            return sum(int(float(value)) for name, value in stats.items()
                       if name.startswith(kind + ":"))

        return DeliveryFigures(int(queued), total("failed"), total("delivered"), int(dead))

    def _websockets(self) -> int:
        client = self.sources.redis
        gauges = list(client.scan_iter(match=WS_GAUGE_PATTERN, count=500))
        return sum(int(value or 0) for value in client.mget(gauges)) if gauges else 0

    def _redis_info(self) -> dict[str, Any]:
        client = self.sources.redis
        pipe = client.pipeline(transaction=False)
        pipe.info("memory")
        pipe.info("server")
        pipe.dbsize()
        memory, server, size = pipe.execute()
        return {**memory, "redis_version": server.get("redis_version", ""), "keys": size}

    def _services(self, redis_info: dict[str, Any]) -> list[ServiceStatus]:
        rows = []
        states = self._slow.states
        # Nothing managed from this host (a remote appliance): the probes below tell it all.
        if any(state.source != "none" for state in states):
            rows.extend(_local_row(state, redis_info.get("redis_version", ""))
                        for state in states)
        rows.append(self._slow.web or ServiceStatus("web (HTTP)", "unknown", "",
                                                    self.sources.web_url))
        rows.append(ServiceStatus("redis (server)", "ok" if redis_info else "down",
                                  redis_info.get("redis_version", ""),
                                  _without_password(self.sources.settings.effective_redis_url)))
        rows.append(ServiceStatus("database", "ok" if self._slow.database_version else "down",
                                  self._slow.database_version,
                                  _without_password(self.sources.settings.effective_database_url)))
        return rows

    # -- every few seconds --------------------------------------------------------------------

    def _refresh_slow(self, now: float, live: LiveStats) -> None:
        slow, errors = self._slow, []
        database = self.sources.database
        slow.read_at = now
        slow.comments_by_status = self._guard(errors, "comment counts", lambda: (
            sql_figures.comment_counts(database)), slow.comments_by_status)
        slow.latest_comments = self._guard(errors, "latest comments", lambda: (
            sql_figures.latest_comments(database)), slow.latest_comments)
        pages = {(page.site, page.path) for page in live.top_pages_now + live.top_pages_today}
        slow.titles = self._guard(errors, "page titles", lambda: (
            sql_figures.page_titles(database, pages)), slow.titles)
        slow.database_bytes = self._guard(errors, "database size", lambda: (
            sql_figures.database_size(database)), slow.database_bytes)
        slow.database_version = self._guard(errors, "database", lambda: (
            sql_figures.database_version(database)), "")
        slow.states = self._guard(errors, "service states", lambda: (
            self.sources.services(self.sources.settings)), [])
        slow.websockets = self._guard(errors, "WebSocket gauge", self._websockets,
                                      slow.websockets)
        slow.web = self._probe_web(now)
        slow.errors = errors
        if not database.is_closed():
            database.close()  # don't hold a connection (a PostgreSQL slot) between reads

    def _probe_web(self, now: float) -> ServiceStatus:
        url = self.sources.web_url
        try:
            response = httpx.get(url + "/readyz", timeout=WEB_PROBE_TIMEOUT_S)
            body = response.json()
        except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout):
            # It took the connection but did not answer in time: up, and too busy.
            return ServiceStatus("web (HTTP)", "degraded", self._web_version,
                                 f"{url}: no answer within {WEB_PROBE_TIMEOUT_S:g} s")
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            return ServiceStatus("web (HTTP)", "down", "", f"{url}: {type(exc).__name__}")
        if not self._web_version and now - self._web_version_tried_at >= WEB_VERSION_RETRY_S:
            self._web_version_tried_at = now
            self._web_version = _web_version(url)
        if response.status_code == 200:
            return ServiceStatus("web (HTTP)", "ok", self._web_version, url)
        checks = body.get("checks", {}) if isinstance(body, dict) else {}
        failing = ", ".join(f"{name} {value}" for name, value in checks.items() if value != "ok")
        return ServiceStatus("web (HTTP)", "degraded", self._web_version,
                             failing or f"{url}: HTTP {response.status_code}")

    @staticmethod
    def _guard(errors: list[str], what: str, read: Callable[[], Any], fallback: Any) -> Any:
        try:
            return read()
        except (redis.exceptions.RedisError, pw.PeeweeException, OSError) as exc:
            errors.append(f"{what}: {exc}")
            return fallback
        except Exception as exc:  # a driver error peewee did not wrap (psycopg2)
            if type(exc).__module__.split(".")[0] not in ("psycopg2", "sqlite3"):
                raise
            errors.append(f"{what}: {exc}")
            return fallback


def _web_version(url: str) -> str:
    """The version the web process states in its OpenAPI document; empty if it does not say.
    Only the label: a slow or odd answer here says nothing about the web's health."""
    try:
        spec = httpx.get(url + "/openapi.json", timeout=WEB_VERSION_TIMEOUT_S).json()
        return str(spec.get("info", {}).get("version", ""))
    except (httpx.HTTPError, ValueError, AttributeError):
        return ""


def _up_web_url(settings: Settings) -> str:
    """Where a `platformctl up` running in this data directory serves (it may have been
    started with --port or --host, which the settings here do not know)."""
    state = read_up_state(settings.data_dir) or {}
    url = state.get("web_url")
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else ""


def _local_row(state: ServiceState, redis_version: str) -> ServiceStatus:
    details = [f"pid {state.pid}" if state.pid else "",
               f"up {_duration(state.uptime_s)}" if state.uptime_s is not None else "",
               f"{state.memory_bytes / 2**20:.0f} MiB" if state.memory_bytes else "",
               f"{state.restarts} restarts" if state.restarts else ""]
    # Ovation's processes run the code installed here (`up` and systemd both start it from
    # this environment); the owned Redis is redis-server, whose version Redis itself reports.
    version = (redis_version if state.name == "redis" else __version__) if state.running else ""
    return ServiceStatus(state.name, "running" if state.running else state.state, version,
                         " · ".join(item for item in details if item))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"


def _titled(page: PageCount, titles: dict[tuple[str, str], str]) -> PageCount:
    title = titles.get((page.site, page.path), "")
    return replace(page, title=title) if title else page


def collect_snapshot(settings: Settings, sources: DashboardSources | None = None
                     ) -> DashboardSnapshot:
    """One snapshot (for `--once`, `--json` and tests); opens Redis and SQL when not given."""
    if sources is None:
        from appliance.connections import open_redis
        from appliance.storage.database import open_database

        sources = DashboardSources(settings, open_redis(settings),
                                   open_database(settings.effective_database_url))
    return Collector(sources).collect()
