"""The listener's handlers for the submission stream: new, edited and deleted comments.

Each is idempotent (a redelivered event changes nothing twice) and acknowledged only after
its SQL commit, so a listener killed at any point neither loses nor duplicates a comment.
New comments read together are stored together (`store_comments`): one transaction, then one
Redis round trip for the caches, live events and notifications of all of them.

The HTML stored is the one the web rendered and sanitised when it accepted the comment or
the edit (its answer carried it to the author). It is not sanitised again here: whoever could
write this stream could as well write the thread cache that readers are served from.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

import peewee as pw
import redis

from appliance.services.moderation import (
    announce,
    enqueue_notification,
    refresh_page,
    reply_notification,
)
from appliance.services.rendering import render_markdown
from appliance.storage import comment_cache as cache
from appliance.storage import comment_store
from appliance.storage.comment_store import StoredComment
from appliance.storage.database import write_transaction
from appliance.storage.site_store import SiteRecord, get_site

log = logging.getLogger("ovation.listener")


class NotStoredYet(Exception):
    """An edit or delete arrived before its comment (several listeners): retried later."""


def body_html(body: dict[str, Any]) -> str:
    """The event's HTML, or the Markdown rendered here for an event queued without one (by a
    version that left rendering to the listener)."""
    html = body.get("body_html")
    return html if isinstance(html, str) else render_markdown(body["body_markdown"])


def handle_comment(client: redis.Redis, database: pw.Database, max_depth: int,
                   body: dict[str, Any]) -> None:
    fields = {**body, "body_html": body_html(body)}
    inserted = comment_store.insert_comment(database, fields, max_depth)
    with database.connection_context():
        comment = comment_store.get_comment(database, body["id"])
        if comment is None:
            raise NotStoredYet(body["id"])
        # On a redelivery (stored before, the listener died before acknowledging) the live
        # event and notifications go out again: at least once; pages and notifiers dedupe by
        # id. One Redis round trip for all of it, as for a batch.
        _refresh_and_announce(client, database, [comment], [body], {comment.id: inserted})


def store_comments(client: redis.Redis, database: pw.Database, max_depth: int,
                   bodies: Sequence[dict[str, Any]]) -> list[bool]:
    """Store new comments in one transaction (one multi-row insert, in the usual case), then
    refresh their pages and announce and notify them in one Redis round trip. Returns, per
    comment, whether it is stored (now or before: a redelivery). If the batch cannot be
    stored together, each comment is tried on its own savepoint: one that fails spoils only
    itself, and the caller handles it on its own, with retries. Raises if SQL is down."""
    rows = [{**body, "body_html": body_html(body)} for body in bodies]
    with database.connection_context():
        try:
            inserted = comment_store.insert_comments(database, rows, max_depth)
        except Exception as exc:  # rolled back: one by one, so that one spoils only itself
            log.warning("a batch of %d comments not stored together (%s); one by one",
                        len(rows), exc)
            inserted = {}
            with write_transaction(database):  # IMMEDIATE on SQLite; savepoints nest in it
                for fields in rows:
                    try:  # insert_comment nests a savepoint in this transaction
                        inserted[fields["id"]] = comment_store.insert_comment(database, fields,
                                                                              max_depth)
                    except Exception as exc:
                        log.warning("comment %s not stored: %s", fields["id"], exc)
        stored = {comment.id: comment for comment in
                  comment_store.get_comments(database, list(inserted))}
        comments = [stored[body["id"]] for body in bodies if body["id"] in stored]
        _refresh_and_announce(client, database, comments, bodies, inserted)
    return [body["id"] in stored for body in bodies]


def _refresh_and_announce(client: redis.Redis, database: pw.Database,
                          comments: list[StoredComment], bodies: Sequence[dict[str, Any]],
                          inserted: dict[str, bool]) -> None:
    """For comments just stored (`inserted`: now, or before), read their pages' counts,
    sites and parents, then in one Redis round trip refresh their pages (as `refresh_page`),
    announce the approved ones and queue their notifications."""
    counts: dict[tuple[str, str], int] = {}
    for site in {comment.site for comment in comments}:
        paths = sorted({comment.path for comment in comments if comment.site == site})
        for path, count in comment_store.approved_counts(database, site, paths).items():
            counts[(site, path)] = count
    sites = {site: get_site(database, site) for site in {c.site for c in comments}}
    submitted = {body["id"]: body for body in bodies}
    notified = [_as_submitted(comment, submitted[comment.id]) for comment in comments]
    parent_ids = [c.parent_id for c in notified if c.status == "approved" and c.parent_id]
    parents = ({parent.id: parent for parent in
                comment_store.get_comments(database, parent_ids)} if parent_ids else {})
    pipe = client.pipeline(transaction=False)
    for site, path in counts:  # as refresh_page: the thread is rebuilt on its next read
        cache.drop_thread(pipe, site, path)
        pipe.set(cache.count_key(site, path), counts[(site, path)], ex=cache.COUNT_TTL_S)
    for comment, as_submitted in zip(comments, notified, strict=True):
        # A redelivery (stored before, the listener died before acknowledging) is announced
        # and notified again: at least once; pages and notifiers dedupe by id.
        if comment.status == "approved":
            announce(pipe, "comment", comment, counts[(comment.site, comment.path)])
        _enqueue_notifications(pipe, as_submitted, sites[comment.site],
                               parents.get(comment.parent_id or ""))
    pipe.execute()
    for comment in comments:
        log.info("%s comment %s on %s%s (%s)", "stored" if inserted[comment.id]
                 else "re-announced", comment.id, comment.site, comment.path, comment.status)


def _as_submitted(comment: StoredComment, body: dict[str, Any]) -> StoredComment:
    """The comment with the status its event was submitted with. A redelivered event is then
    notified under the kind, hence the idempotency key, of its first delivery, even when its
    author deleted it or a moderator changed it in between (else the owner got a second
    notice, `pending_comment:ID`, for the same comment; found by tests/reliability)."""
    status = body.get("status")
    if status in ("approved", "pending") and status != comment.status:
        return dataclasses.replace(comment, status=status)
    return comment


def _enqueue_notifications(client: redis.Redis, comment: StoredComment,
                           site: SiteRecord | None, parent: StoredComment | None) -> None:
    """The site owner's notice of a new comment and the reply notice to the parent's author
    (`parent`: the comment replied to, read only for an approved reply)."""
    base = {"site": comment.site, "path": comment.path, "comment_id": comment.id,
            "author_name": comment.author_name, "status": comment.status}
    if site is not None and site.owner_email:
        kind = "new_comment" if comment.status == "approved" else "pending_comment"
        enqueue_notification(client, kind, {**base, "to": site.owner_email,
                                            "idempotency_key": f"{kind}:{comment.id}"})
    reply = reply_notification(comment, parent)
    if reply is not None:
        enqueue_notification(client, "reply", reply)


def handle_edit(client: redis.Redis, database: pw.Database, body: dict[str, Any]) -> None:
    comment = comment_store.get_comment(database, body["id"])
    if comment is None:
        raise NotStoredYet(body["id"])
    if comment.erased:
        # Deleted (or hidden, then deleted by its author) after the web accepted the edit:
        # applied, it would bring back text its author or a moderator removed.
        log.info("edit of deleted comment %s ignored", comment.id)
        return
    edited_at = dt.datetime.fromisoformat(body["edited_at"])
    if comment.edited_at is not None and comment.edited_at >= edited_at:
        return  # a redelivery, or an older edit arriving late
    if not comment_store.update_body(database, comment.id, body["body_markdown"],
                                     body_html(body), edited_at):
        return  # deleted meanwhile (update_body checks again, in the same statement)
    updated = comment_store.get_comment(database, comment.id)
    count = refresh_page(client, database, comment.site, comment.path)
    if updated.status == "approved":
        announce(client, "comment_edited", updated, count)


def handle_delete(client: redis.Redis, database: pw.Database, body: dict[str, Any]) -> None:
    comment = comment_store.get_comment(database, body["id"])
    if comment is None:
        raise NotStoredYet(body["id"])
    if comment.status == "deleted":
        return
    if comment.status in ("rejected", "spam"):
        # A moderator hid it: the author's words go, the verdict stays. Made "deleted", it
        # came back into the thread as a placeholder and left the moderators' spam list.
        comment_store.erase_body(database, comment.id)
        return
    # A pending one becomes `deleted_while_hidden`: out of the thread, as readers never saw
    # it (a placeholder only above replies they see). Its author's other open pages are told.
    comment_store.set_status(database, [comment.id], "deleted")
    count = refresh_page(client, database, comment.site, comment.path)
    announce(client, "comment_deleted", comment, count)


def comment_handlers(client: redis.Redis, database: pw.Database, max_depth: int) -> dict:
    return {
        "comment": lambda _id, body: handle_comment(client, database, max_depth, body),
        "comment_edit": lambda _id, body: handle_edit(client, database, body),
        "comment_delete": lambda _id, body: handle_delete(client, database, body),
    }
