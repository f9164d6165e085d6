"""What the dashboard shows, as plain data: built by `collect`, drawn by `render`, or JSON."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ServiceStatus:
    """One process or dependency: `state` is ok, running, down, stopped or unknown."""

    name: str
    state: str
    version: str = ""
    detail: str = ""  # pid, address, consumer idle time, error message...


@dataclass(frozen=True)
class PageCount:
    site: str
    path: str
    count: int
    title: str = ""  # from SQL, when the page was published with one


@dataclass(frozen=True)
class CommentLine:
    id: str
    site: str
    path: str
    author: str
    text: str  # the Markdown the author wrote, untrusted
    status: str
    created_at: float  # Unix time


@dataclass(frozen=True)
class StreamFigures:
    """A durable stream: its length, what its consumer group has yet to finish, dead letters."""

    name: str
    length: int = 0
    pending: int = 0  # delivered to a consumer, not acknowledged yet
    lag: int = 0  # not delivered yet
    retries: int = 0  # pending messages delivered more than once
    dead: int = 0
    consumers: int = 0


@dataclass(frozen=True)
class DeliveryFigures:
    """The notification delivery queue (appliance/notify), when this version has one."""

    queued: int = 0  # due now or later, retries with backoff included
    failed_attempts: int = 0  # attempts that failed and were retried or dead-lettered, ever
    delivered: int = 0
    dead: int = 0


@dataclass(frozen=True)
class FlushFigures:
    last_at: float = 0.0  # Unix time of the last successful flush; 0: none yet
    last_rows: int = 0
    last_duration_s: float = 0.0
    batches_total: int = 0
    failures_total: int = 0
    last_error: str = ""
    pending_counters: int = 0


@dataclass(frozen=True)
class StorageFigures:
    redis_used_memory: int = 0
    redis_peak_memory: int = 0
    redis_max_memory: int = 0
    redis_keys: int = 0
    database_bytes: int | None = None  # None: not read (yet)
    database_kind: str = ""


@dataclass(frozen=True)
class DashboardSnapshot:
    collected_at: float
    instance: str  # where the figures came from (the public URL)
    day: str  # the UTC day of "today"
    bucket_s: int  # seconds per point of the rate series
    services: list[ServiceStatus] = field(default_factory=list)
    rates: dict[str, float] = field(default_factory=dict)  # interactions/s by type, now
    rate_series: dict[str, list[int]] = field(default_factory=dict)  # per bucket, oldest first
    today: dict[str, int] = field(default_factory=dict)
    unique_visitors_today: int = 0
    websocket_connections: int = 0
    top_pages_now: list[PageCount] = field(default_factory=list)
    top_pages_today: list[PageCount] = field(default_factory=list)
    comments_by_status: dict[str, int] = field(default_factory=dict)
    latest_comments: list[CommentLine] = field(default_factory=list)
    flush: FlushFigures = field(default_factory=FlushFigures)
    streams: list[StreamFigures] = field(default_factory=list)
    deliveries: DeliveryFigures | None = None
    storage: StorageFigures = field(default_factory=StorageFigures)
    errors: list[str] = field(default_factory=list)  # what could not be read this time

    @property
    def awaiting_moderation(self) -> int:
        return self.comments_by_status.get("pending", 0)

    def as_dict(self) -> dict[str, Any]:
        body = dataclasses.asdict(self)
        body["awaiting_moderation"] = self.awaiting_moderation
        return body

    def to_json(self) -> str:
        # ensure_ascii: every control character a comment may hold leaves as a \\u escape.
        return json.dumps(self.as_dict(), indent=2, ensure_ascii=True)
