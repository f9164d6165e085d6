"""The listener's handlers for the submission stream: new, edited and deleted comments.

Each is idempotent (a redelivered event changes nothing twice) and acknowledged only after
its SQL commit, so a listener killed at any point neither loses nor duplicates a comment.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import peewee as pw
import redis

from appliance.services.moderation import announce, enqueue_notification, refresh_page
from appliance.services.rendering import render_markdown
from appliance.storage import comment_store
from appliance.storage.site_store import get_site

log = logging.getLogger("ovation.listener")


class NotStoredYet(Exception):
    """An edit or delete arrived before its comment (several listeners): retried later."""


def handle_comment(client: redis.Redis, database: pw.Database, max_depth: int,
                   body: dict[str, Any]) -> None:
    fields = {**body, "body_html": render_markdown(body["body_markdown"])}
    inserted = comment_store.insert_comment(database, fields, max_depth)
    comment = comment_store.get_comment(database, body["id"])
    if comment is None:
        raise NotStoredYet(body["id"])
    count = refresh_page(client, database, comment.site, comment.path)
    # On a redelivery (stored before, the listener died before acknowledging) the live event
    # and notifications go out again: at least once; pages and notifiers dedupe by id.
    if comment.status == "approved":
        announce(client, "comment", comment, count)
    _notify(client, database, comment)
    log.info("%s comment %s on %s%s (%s)", "stored" if inserted else "re-announced",
             comment.id, comment.site, comment.path, comment.status)


def _notify(client: redis.Redis, database: pw.Database, comment) -> None:
    site = get_site(database, comment.site)
    base = {"site": comment.site, "path": comment.path, "comment_id": comment.id,
            "author_name": comment.author_name, "status": comment.status}
    if site is not None and site.owner_email:
        kind = "new_comment" if comment.status == "approved" else "pending_comment"
        enqueue_notification(client, kind, {**base, "to": site.owner_email,
                                            "idempotency_key": f"{kind}:{comment.id}"})
    if comment.status == "approved" and comment.parent_id:
        parent = comment_store.get_comment(database, comment.parent_id)
        if (parent is not None and parent.notify_replies and parent.author_email
                and parent.visitor_hash != comment.visitor_hash):
            enqueue_notification(client, "reply", {
                **base, "to": parent.author_email, "parent_id": parent.id,
                "to_visitor_hash": parent.visitor_hash,
                "idempotency_key": f"reply:{comment.id}"})


def handle_edit(client: redis.Redis, database: pw.Database, body: dict[str, Any]) -> None:
    comment = comment_store.get_comment(database, body["id"])
    if comment is None:
        raise NotStoredYet(body["id"])
    edited_at = dt.datetime.fromisoformat(body["edited_at"])
    if comment.edited_at is not None and comment.edited_at >= edited_at:
        return  # a redelivery, or an older edit arriving late
    comment_store.update_body(database, comment.id, body["body_markdown"],
                              render_markdown(body["body_markdown"]), edited_at)
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
    comment_store.set_status(database, [comment.id], "deleted")
    count = refresh_page(client, database, comment.site, comment.path)
    announce(client, "comment_deleted", comment, count)


def comment_handlers(client: redis.Redis, database: pw.Database, max_depth: int) -> dict:
    return {
        "comment": lambda _id, body: handle_comment(client, database, max_depth, body),
        "comment_edit": lambda _id, body: handle_edit(client, database, body),
        "comment_delete": lambda _id, body: handle_delete(client, database, body),
    }
