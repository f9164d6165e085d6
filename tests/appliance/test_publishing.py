"""Content publication on real Redis and real SQL (SQLite and PostgreSQL): a publish event
becomes a page, a live `new_post` event and a `new_post` notification, once per event id."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from appliance import events
from appliance.errors import InvalidInput, InvalidPath, UnknownSite
from appliance.services import publishing
from appliance.services.sites import add_site
from appliance.storage import publication_store
from appliance.storage.models import Page, ProcessedEvent, Site
from appliance.workers.listener import build_listener, handle_publish


@pytest.fixture
def blog(database):
    add_site(database, "blog", ["https://blog.example"])
    return database


@pytest.fixture
def live(redis_client):
    """A pub/sub subscription to the live channel, opened before anything is published."""
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(events.LIVE_CHANNEL)
    pubsub.get_message(timeout=1.0)  # the subscribe confirmation
    yield pubsub
    pubsub.close()


def live_events(pubsub, wait_s: float = 1.0) -> list[events.LiveEvent]:
    received = []
    while (message := pubsub.get_message(timeout=wait_s)) is not None:
        received.append(events.LiveEvent.decode(message["data"]))
        wait_s = 0.2
    return received


def notifications(redis_client) -> list[tuple[str, dict]]:
    return [(fields["kind"], json.loads(fields["body"]))
            for _id, fields in redis_client.xrange(events.NOTIFICATION_STREAM)]


def pages(database) -> dict[str, tuple[str, dt.datetime | None]]:
    with database.connection_context():
        query = Page.select(Page.path, Page.title, Page.published_at).join(Site).where(
            Site.name == "blog")
        return {page.path: (page.title, page.published_at) for page in query}


def test_publish_then_listener_stores_announces_and_notifies(blog, redis_client, live):
    publication = publishing.publish(redis_client, blog, "blog", "https://blog.example/2026/"
                                     "hello/?utm=x", "Hello, world",
                                     "2026-11-25T10:30:00+01:00")
    assert publication.path == "/2026/hello"
    assert publication.published_at == dt.datetime(2026, 11, 25, 9, 30)
    [(_id, fields)] = redis_client.xrange(events.PUBLISH_STREAM)
    assert fields["kind"] == "publish"
    assert json.loads(fields["body"])["event_id"] == publication.event_id

    assert build_listener(redis_client, blog).run_once() == 1

    assert pages(blog) == {"/2026/hello": ("Hello, world", dt.datetime(2026, 11, 25, 9, 30))}
    [event] = live_events(live)
    assert (event.kind, event.site, event.path) == ("new_post", "blog", None)
    assert event.data["path"] == "/2026/hello" and event.data["title"] == "Hello, world"
    [(kind, body)] = notifications(redis_client)
    assert kind == "new_post"
    assert body == {"site": "blog", "path": "/2026/hello", "title": "Hello, world",
                    "event_id": publication.event_id, "published_at": "2026-11-25T09:30:00+00:00",
                    "idempotency_key": f"new_post:{publication.event_id}"}


def test_the_same_event_twice_is_stored_and_announced_once(blog, redis_client, live):
    publication = publishing.prepare("blog", "/p", "Once", "2026-01-02")
    publishing.enqueue(redis_client, publication)
    publishing.enqueue(redis_client, publication)
    listener = build_listener(redis_client, blog)
    assert listener.run_once() == 2  # both acknowledged...
    with blog.connection_context():
        assert Page.select().count() == 1  # ...one page
        assert ProcessedEvent.select().where(
            ProcessedEvent.event_id == publication.event_id).count() == 1
    assert len(live_events(live)) == 1
    assert len(notifications(redis_client)) == 1
    assert redis_client.xpending(events.PUBLISH_STREAM, events.LISTENER_GROUP)["pending"] == 0


def test_publishing_again_updates_the_page(blog, redis_client, live):
    listener = build_listener(redis_client, blog)
    publishing.publish(redis_client, blog, "blog", "/p", "First title", "2026-01-01")
    listener.run_once()
    publishing.publish(redis_client, blog, "blog", "/p/", "Second title", "2026-01-03T08:00")
    listener.run_once()
    assert pages(blog) == {"/p": ("Second title", dt.datetime(2026, 1, 3, 8, 0))}
    assert [e.data["title"] for e in live_events(live)] == ["First title", "Second title"]
    assert len(notifications(redis_client)) == 2


def test_a_redelivery_after_a_crash_announces_what_was_not_announced(blog, redis_client, live):
    body = publishing.prepare("blog", "/p", "T").body()
    # The listener committed, then died before announcing: the event is processed, unannounced.
    with blog.connection_context():
        ProcessedEvent.create(event_id=body["event_id"])
    handle_publish(blog, redis_client, "1-0", body)
    assert len(live_events(live)) == 1 and len(notifications(redis_client)) == 1
    assert publication_store.was_announced(redis_client, body["event_id"])
    handle_publish(blog, redis_client, "1-0", body)  # announced now: not again
    assert live_events(live, 0.3) == [] and len(notifications(redis_client)) == 1


def test_an_old_event_sent_again_announces_nothing(blog, redis_client, live):
    body = publishing.prepare("blog", "/p", "T").body()
    with blog.connection_context():
        ProcessedEvent.create(event_id=body["event_id"],
                              processed_at=dt.datetime(2020, 1, 1))
    handle_publish(blog, redis_client, "1-0", body)
    assert live_events(live, 0.3) == [] and notifications(redis_client) == []
    assert pages(blog) == {}


def test_an_event_for_an_unknown_site_is_dead_lettered(blog, redis_client):
    publishing.enqueue(redis_client, publishing.prepare("gone", "/p", "T"))
    listener = build_listener(redis_client, blog)
    assert listener.run_once() == 0
    [(_id, fields)] = redis_client.xrange(events.PUBLISH_STREAM + ":dead")
    assert "unknown site 'gone'" in fields["error"]
    assert redis_client.xlen(events.NOTIFICATION_STREAM) == 0


def test_publishing_to_an_unknown_site_queues_nothing(blog, redis_client):
    with pytest.raises(UnknownSite):
        publishing.publish(redis_client, blog, "nosuchsite", "/p", "T")
    assert redis_client.exists(events.PUBLISH_STREAM) == 0


@pytest.mark.parametrize(("arguments", "error", "field"), [
    (("Bad Site", "/p", "T", None), InvalidInput, "site"),
    (("blog", "", "T", None), InvalidPath, None),
    (("blog", "/%ff", "T", None), InvalidPath, None),
    (("blog", "/" + "a" * 2000, "T", None), InvalidPath, None),
    (("blog", "/p", "", None), InvalidInput, "title"),
    (("blog", "/p", "   ", None), InvalidInput, "title"),
    (("blog", "/p", "x" * 501, None), InvalidInput, "title"),
    (("blog", "/p", "tab\tinside", None), InvalidInput, "title"),
    (("blog", "/p", "T", "yesterday"), InvalidInput, "published_at"),
    (("blog", "/p", "T", "2026-13-01"), InvalidInput, "published_at"),
    (("blog", "/p", "T", "2026-11-25T25:00"), InvalidInput, "published_at"),
    (("blog", "/p", "T", "0001-01-01T00:00+01:00"), InvalidInput, "published_at"),
])
def test_bad_publications_are_refused_before_anything_is_queued(blog, redis_client, arguments,
                                                                  error, field):
    with pytest.raises(error) as refused:
        publishing.publish(redis_client, blog, *arguments)
    if field:
        assert refused.value.details == {"field": field}
    assert refused.value.status == 400
    assert redis_client.exists(events.PUBLISH_STREAM) == 0


@pytest.mark.parametrize(("given", "stored"), [
    ("2026-11-25", dt.datetime(2026, 11, 25)),
    ("2026-11-25T09:30", dt.datetime(2026, 11, 25, 9, 30)),
    ("2026-11-25T09:30:00Z", dt.datetime(2026, 11, 25, 9, 30)),
    ("2026-11-25T09:30:00-05:00", dt.datetime(2026, 11, 25, 14, 30)),
    (" 2026-11-25 09:30:00+00:00 ", dt.datetime(2026, 11, 25, 9, 30)),
])
def test_dates_are_iso_8601_and_stored_as_utc(given, stored):
    assert publishing.parse_published_at(given) == stored


def test_no_date_means_now():
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    when = publishing.parse_published_at(None)
    assert before <= when <= dt.datetime.now(dt.UTC).replace(tzinfo=None)


def test_feed_event_ids_are_stable_and_change_with_the_entry():
    first = publishing.feed_event_id("blog", "/p", "2026-01-01T00:00:00", "T")
    assert first == publishing.feed_event_id("blog", "/p", "2026-01-01T00:00:00", "T")
    assert len(first) <= 64
    assert first != publishing.feed_event_id("blog", "/p", "2026-01-02T00:00:00", "T")
    assert first != publishing.feed_event_id("blog", "/p", "2026-01-01T00:00:00", "T2")
    assert first != publishing.feed_event_id("blog", "/q", "2026-01-01T00:00:00", "T")
    assert first != publishing.feed_event_id("press", "/p", "2026-01-01T00:00:00", "T")
