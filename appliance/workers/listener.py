"""The listener: consumes the publish (and, with the comments issue, submission) streams."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import peewee as pw
import redis

from appliance import events
from appliance.paths import normalise_path
from appliance.storage.models import Page, ProcessedEvent, Site
from appliance.workers.stream_consumer import StreamConsumer

log = logging.getLogger("ovation.listener")


def handle_publish(database: pw.Database, client: redis.Redis, event_id: str,
                   body: dict[str, Any]) -> None:
    """Create or update a published page, once per event id, then announce it live."""
    site_name = str(body["site"])
    path = normalise_path(str(body["path"]))
    title = str(body.get("title", ""))[:500]
    published_at = body.get("published_at")
    when = dt.datetime.fromisoformat(published_at) if published_at else dt.datetime.utcnow()
    with database.connection_context(), database.atomic():
        event_key = str(body.get("event_id") or event_id)
        if ProcessedEvent.get_or_none(ProcessedEvent.event_id == event_key):
            return
        site = Site.get_or_none(Site.name == site_name)
        if site is None:
            raise ValueError(f"unknown site {site_name!r}")
        (Page.insert(site=site, path=path, title=title, published_at=when)
         .on_conflict(conflict_target=[Page.site, Page.path],
                      update={Page.title: title, Page.published_at: when})
         .execute())
        ProcessedEvent.create(event_id=event_key)
    client.publish(events.LIVE_CHANNEL, events.LiveEvent(
        "new_post", site_name, None, {"path": path, "title": title}).encode())
    log.info("published %s%s", site_name, path)


def build_listener(client: redis.Redis, database: pw.Database) -> StreamConsumer:
    return StreamConsumer(client, events.PUBLISH_STREAM, events.LISTENER_GROUP, {
        "publish": lambda event_id, body: handle_publish(database, client, event_id, body),
    })
