"""The listener: consumes the publish (and, with the comments issue, submission) streams."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import peewee as pw
import redis

from appliance import events
from appliance.errors import InvalidPath
from appliance.paths import normalise_path
from appliance.storage import publication_store
from appliance.storage.models import Page, ProcessedEvent, Site, utcnow
from appliance.workers.comment_handlers import comment_handlers
from appliance.workers.stream_consumer import StreamConsumer, publish_event

log = logging.getLogger("ovation.listener")
# A redelivered publish event applied less than this long ago may not have been announced yet.
ANNOUNCE_RETRY_WINDOW = dt.timedelta(minutes=10)


def handle_publish(database: pw.Database, client: redis.Redis, event_id: str,
                   body: dict[str, Any]) -> None:
    """Create or update a published page, once per event id, then announce it.

    The announcement is a live `new_post` event and a `new_post` notification, sent after the
    SQL commit. A redelivery of an event applied moments ago (the listener died before
    acknowledging) announces again unless the first announcement got through: at least once,
    and notifiers dedupe by `idempotency_key`. An event applied long ago and sent again (a feed
    re-polled after Redis lost its state) changes nothing and announces nothing.
    """
    event_key = str(body.get("event_id") or event_id)
    if len(event_key) > 64:
        raise ValueError(f"event id {event_key[:70]!r}... is longer than 64 characters")
    site_name = str(body["site"])
    try:
        path = normalise_path(str(body["path"]))
    except InvalidPath as exc:
        raise ValueError(f"bad path in publish event: {exc.message}") from None
    title = str(body.get("title", ""))[:500]
    when = _published_at(body.get("published_at"))
    with database.connection_context(), database.atomic():
        done = ProcessedEvent.get_or_none(ProcessedEvent.event_id == event_key)
        if done is None:
            site = Site.get_or_none(Site.name == site_name)
            if site is None:
                raise ValueError(f"unknown site {site_name!r}")
            (Page.insert(site=site, path=path, title=title, published_at=when)
             .on_conflict(conflict_target=[Page.site, Page.path],
                          update={Page.title: title, Page.published_at: when})
             .execute())
            ProcessedEvent.create(event_id=event_key)
    if done is not None and (utcnow() - done.processed_at > ANNOUNCE_RETRY_WINDOW
                             or publication_store.was_announced(client, event_key)):
        return
    stamp = when.replace(tzinfo=dt.UTC).isoformat()
    client.publish(events.LIVE_CHANNEL, events.LiveEvent(
        "new_post", site_name, None, {"path": path, "title": title, "published_at": stamp},
    ).encode())
    publish_event(client, events.NOTIFICATION_STREAM, "new_post", {
        "site": site_name, "path": path, "title": title, "published_at": stamp,
        "event_id": event_key, "idempotency_key": f"new_post:{event_key}"})
    publication_store.mark_announced(client, event_key)
    log.info("%s %s%s", "published" if done is None else "re-announced", site_name, path)


def _published_at(value: Any) -> dt.datetime:
    """The event's ISO 8601 date as naive UTC (SQL's convention); now when absent."""
    if not value:
        return utcnow()
    when = dt.datetime.fromisoformat(str(value))  # ValueError: dead-lettered, not retried
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return when


def build_listener(client: redis.Redis, database: pw.Database,
                   comment_max_depth: int = 4) -> StreamConsumer:
    return StreamConsumer(
        client, [events.PUBLISH_STREAM, events.SUBMISSION_STREAM], events.LISTENER_GROUP, {
            "publish": lambda event_id, body: handle_publish(database, client, event_id, body),
            **comment_handlers(client, database, comment_max_depth),
        })
