"""Content publication: the rules shared by `platformctl publish`, the admin API and feed polling.

Each of them validates a publication here and puts one `publish` event on the publish stream;
the listener writes the page to SQL and announces it. Every event carries an `event_id`, and the
listener applies an id once, so sending the same event twice stores it once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import peewee as pw
import redis
import redis.asyncio as aioredis

from appliance import events
from appliance.errors import InvalidInput, ServiceUnavailable, UnknownSite
from appliance.paths import normalise_path
from appliance.services.sites import validate_site_name
from appliance.storage import site_store
from appliance.storage.models import utcnow
from appliance.workers.stream_consumer import publish_event

PUBLISH_KIND = "publish"
MAX_TITLE_LENGTH = 500  # Page.title
SOURCES = ("cli", "api", "feed")
STREAM_MAXLEN = 1_000_000  # as publish_event's default


@dataclass(frozen=True)
class Publication:
    """One validated publish event. `published_at` is naive UTC, like every SQL timestamp."""

    event_id: str
    site: str
    path: str
    title: str
    published_at: dt.datetime
    source: str = "cli"

    def body(self) -> dict[str, Any]:
        """The event as it travels on the stream (the listener's `handle_publish` reads it)."""
        return {"event_id": self.event_id, "site": self.site, "path": self.path,
                "title": self.title, "source": self.source,
                "published_at": self.published_at.replace(tzinfo=dt.UTC).isoformat()}


def new_event_id() -> str:
    return uuid.uuid4().hex


def feed_event_id(site: str, path: str, stamp: str, title: str) -> str:
    """A stable id for a feed entry: the same entry polled again is the same event.

    `stamp` is the entry's updated (or else published) date, so an edited entry gets a new id
    and is published again; an unchanged one never is.
    """
    digest = hashlib.sha256("\0".join((site, path, stamp, title)).encode("utf-8")).hexdigest()
    return f"feed-{digest[:40]}"


def validate_title(title: str) -> str:
    text = title.strip() if isinstance(title, str) else ""
    if not text:
        raise InvalidInput("The title is empty.", details={"field": "title"})
    if len(text) > MAX_TITLE_LENGTH:
        raise InvalidInput(f"The title is longer than {MAX_TITLE_LENGTH} characters.",
                           details={"field": "title"})
    if not text.isprintable():
        raise InvalidInput("The title contains control characters.", details={"field": "title"})
    return text


def parse_published_at(value: str | dt.datetime | None) -> dt.datetime:
    """ISO 8601 (a date, or a date and time, with or without an offset) -> naive UTC.

    A time without an offset is taken as UTC; None means now.
    """
    if value is None:
        return utcnow().replace(microsecond=0)
    if isinstance(value, dt.datetime):
        when = value
    else:
        try:
            when = dt.datetime.fromisoformat(value.strip())
        except (ValueError, AttributeError):
            raise InvalidInput(f"Date {value!r} is not ISO 8601, e.g. 2026-11-25 or "
                               "2026-11-25T09:30:00+01:00.",
                               details={"field": "published_at"}) from None
    if when.tzinfo is not None:
        try:
            when = when.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError:
            raise InvalidInput(f"Date {value!r} is out of range.",
                               details={"field": "published_at"}) from None
    return when


def prepare(site: str, path: str, title: str, published_at: str | dt.datetime | None = None,
            *, max_path_length: int = 1024, source: str = "cli",
            event_id: str | None = None) -> Publication:
    """Validate a publication (the site's name, not its existence) without any I/O."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    return Publication(event_id=event_id or new_event_id(), site=validate_site_name(site),
                       path=normalise_path(path, max_path_length), title=validate_title(title),
                       published_at=parse_published_at(published_at), source=source)


def enqueue(client: redis.Redis, publication: Publication) -> str:
    """Put the publication on the publish stream; returns the stream message id."""
    try:
        return publish_event(client, events.PUBLISH_STREAM, PUBLISH_KIND, publication.body(),
                             maxlen=STREAM_MAXLEN)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        raise ServiceUnavailable(f"Redis is not reachable: {exc}") from exc


async def enqueue_async(client: aioredis.Redis, publication: Publication) -> str:
    """`enqueue` for the web's asyncio Redis client: the same event, the same encoding."""
    try:
        return await client.xadd(events.PUBLISH_STREAM,
                                 {"kind": PUBLISH_KIND, "body": json.dumps(publication.body())},
                                 maxlen=STREAM_MAXLEN, approximate=True)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        raise ServiceUnavailable(f"Redis is not reachable: {exc}") from exc


def publish(client: redis.Redis, database: pw.Database, site: str, path: str, title: str,
            published_at: str | dt.datetime | None = None, *, max_path_length: int = 1024,
            source: str = "cli") -> Publication:
    """Validate, check that the site exists, and enqueue; returns what was enqueued."""
    publication = prepare(site, path, title, published_at, max_path_length=max_path_length,
                          source=source)
    if site_store.get_site(database, publication.site) is None:
        raise UnknownSite(f"No site is named {site!r} (see `platformctl site list`).")
    enqueue(client, publication)
    return publication
