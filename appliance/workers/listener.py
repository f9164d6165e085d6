"""The listener: consumes the publish and submission streams (new pages, new comments)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import peewee as pw
import redis

from appliance import events
from appliance.errors import InvalidPath
from appliance.paths import normalise_path
from appliance.storage import publication_store
from appliance.storage.database import write_transaction
from appliance.storage.models import Page, ProcessedEvent, Site, utcnow
from appliance.workers.comment_handlers import comment_handlers, store_comments
from appliance.workers.stream_consumer import (
    SERVICE_OUTAGES,
    StreamConsumer,
    database_probe,
    publish_event,
)

log = logging.getLogger("ovation.listener")
# A redelivered publish event applied less than this long ago may not have been announced yet.
ANNOUNCE_RETRY_WINDOW = dt.timedelta(minutes=10)
# Under a stream of comments, how long the listener lets a batch gather (`Listener.run_once`).
BUSY_LINGER_S = 0.02


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
    with database.connection_context(), write_transaction(database):
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


class Listener(StreamConsumer):
    """The stream consumer, storing each run of new comments of one read together."""

    def __init__(self, client: redis.Redis, database: pw.Database, comment_max_depth: int,
                 trim_interval_s: float = 60.0, linger_s: float = BUSY_LINGER_S) -> None:
        super().__init__(
            client, [events.PUBLISH_STREAM, events.SUBMISSION_STREAM], events.LISTENER_GROUP, {
                "publish": lambda event_id, body: handle_publish(database, client, event_id,
                                                                 body),
                **comment_handlers(client, database, comment_max_depth),
            }, outage_errors=SERVICE_OUTAGES,  # a database outage never dead-letters a comment
            outage_probe=database_probe(database), trim_interval_s=trim_interval_s)
        self.database = database
        self.comment_max_depth = comment_max_depth
        self._held: pw.ConnectionContext | None = None
        self.linger_s = linger_s  # in `run`'s loop only: see `run_once`
        self._lingering = False
        self._last_handled = 0

    def run(self) -> None:
        self._lingering = True
        try:
            super().run()
        finally:
            self._lingering = False
            self._release_connection()

    def run_once(self, block_ms: int | None = None) -> int:
        """A pass (see StreamConsumer.run_once), on one SQL connection kept from the pass that
        first has messages for as long as passes keep finding some. Every handler opens a
        `connection_context()`, which closed the connection at its end: connecting and closing
        once per batch cost the listener about a quarter of its CPU under a stream of comments
        (on SQLite, the close alone was a fifth of py-spy's samples). The connection is
        closed after a pass that handled nothing (an idle listener holds none, as before) and
        after a pass that failed (a connection a database restart broke is never reused).

        In `run`'s loop, a pass after one that handled messages but not a full batch first
        waits `linger_s`: under a steady stream of comments each read otherwise found the
        one or two that came during the last pass, and the per-pass costs (the stream reads,
        the SQL statements of a batch, the Redis round trips) took the CPU the web workers on
        the same core needed (bench.comments: 0.9-1.3 ms of listener CPU per comment, against
        0.4-0.6 ms with 20 ms). Waiting lets a batch gather (at most `linger_s` more before a
        comment is stored and shown live, and only under such a stream: the first comment
        after a quiet moment is read at once)."""
        if self._lingering and self.linger_s and 0 < self._last_handled < self.batch:
            self.stop_event.wait(self.linger_s)
        self._last_handled = 0
        try:
            handled = super().run_once(block_ms)
            self._last_handled = handled
        except BaseException:
            self._release_connection()
            raise
        if not handled:
            self._release_connection()
        return handled

    def _hold_connection(self) -> None:
        """Keep the connection open across the handlers' contexts (nested in this one)."""
        if self._held is not None:
            return
        held = self.database.connection_context()
        try:
            held.__enter__()
        except Exception:  # the database is down: the handlers meet the outage themselves
            return
        self._held = held

    def _release_connection(self) -> None:
        held, self._held = self._held, None
        if held is None:
            return
        try:
            held.__exit__(None, None, None)  # the outermost context: closes the connection
        except Exception as exc:
            log.warning("closing the SQL connection failed: %s", exc)

    def _handle_many(self, stream: str, messages: list) -> int:
        """Messages in stream order; consecutive new comments go to `_store_run` together
        (an edit or delete between them ends the run, so it never overtakes its comment)."""
        if messages:
            self._hold_connection()
        handled, run = 0, []
        for message_id, fields in messages:
            body = _comment_body(fields)
            if body is not None:
                run.append((message_id, fields, body))
                continue
            handled += self._store_run(stream, run)
            run = []
            handled += self._handle(stream, message_id, fields)
        return handled + self._store_run(stream, run)

    def _store_run(self, stream: str, run: list) -> int:
        if len(run) < 2:  # nothing to share: the usual path, retries and dead letters included
            return sum(self._handle(stream, message_id, fields) for message_id, fields, _ in run)
        try:
            stored = store_comments(self.client, self.database, self.comment_max_depth,
                                    [body for _, _, body in run])
        except Exception as exc:  # the transaction, or Redis after it: one by one, retried
            log.warning("a batch of %d comments failed (%s); handling them one by one",
                        len(run), exc)
            stored = [False] * len(run)
        done = [message_id for (message_id, _, _), ok in zip(run, stored, strict=True) if ok]
        if done:
            self.client.xack(stream, self.group, *done)
            self.stats.handled += len(done)
        return len(done) + sum(self._handle(stream, message_id, fields)
                               for (message_id, fields, _), ok in zip(run, stored, strict=True)
                               if not ok)


def _comment_body(fields: dict[str, str] | None) -> dict[str, Any] | None:
    """The body of a new-comment message fit for a batch, else None (handled on its own)."""
    if not fields or fields.get("kind") != "comment":
        return None
    try:
        body = json.loads(fields.get("body", ""))
    except ValueError:
        return None
    return body if isinstance(body, dict) and isinstance(body.get("id"), str) else None


def build_listener(client: redis.Redis, database: pw.Database, comment_max_depth: int = 4,
                   trim_interval_s: float = 60.0) -> StreamConsumer:
    return Listener(client, database, comment_max_depth, trim_interval_s)
