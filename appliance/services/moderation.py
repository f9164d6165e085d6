"""After any change to a page's comments: refresh its caches, tell open pages, notify people.

Used by the listener (new, edited, deleted comments) and by moderation (CLI and admin API), so
every writer of comments leaves Redis and the live pages in the same state.
"""

from __future__ import annotations

import json
import logging

import peewee as pw
import redis

from appliance import events
from appliance.errors import InvalidInput, UnknownComment
from appliance.events import LiveEvent
from appliance.services.comments import public_entry
from appliance.storage import comment_cache as cache
from appliance.storage import comment_store, salt_store
from appliance.storage.comment_store import StoredComment

log = logging.getLogger("ovation.comments")
MODERATOR_STATUSES = ("approved", "rejected", "spam", "deleted", "pending")


def refresh_page(client: redis.Redis, database: pw.Database, site: str, path: str) -> int:
    """Drop the cached thread (rebuilt on the next read) and recount approved comments."""
    count = comment_store.approved_counts(database, site, [path])[path]
    pipe = client.pipeline(transaction=True)
    cache.drop_thread(pipe, site, path)
    pipe.set(cache.count_key(site, path), count, ex=cache.COUNT_TTL_S)
    pipe.execute()
    return count


def announce(client: redis.Redis, kind: str, comment: StoredComment, count: int) -> None:
    """Push a live event to every open page of the comment's page, through every web worker."""
    data = {"comment": public_entry(comment.as_cache_entry()), "count": count}
    if kind != "comment":
        data = {"id": comment.id, "count": count,
                **({"html": comment.body_html, "edited_at": data["comment"]["edited_at"]}
                   if kind == "comment_edited" else {})}
    client.publish(events.LIVE_CHANNEL, LiveEvent(kind, comment.site, comment.path,
                                                  data).encode())


def enqueue_notification(client: redis.Redis, kind: str, body: dict) -> None:
    client.xadd(events.NOTIFICATION_STREAM, {"kind": kind, "body": json.dumps(body)},
                maxlen=1_000_000, approximate=True)


def moderate(client: redis.Redis, database: pw.Database, comment_ids: list[str],
             status: str) -> list[StoredComment]:
    """Set the status of comments (approve, reject, spam, delete) and update everything."""
    if status not in MODERATOR_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(MODERATOR_STATUSES)}.",
                           details={"field": "status"})
    found = comment_store.get_comments(database, comment_ids)
    missing = set(comment_ids) - {comment.id for comment in found}
    if missing:
        raise UnknownComment(f"No comment with id {', '.join(sorted(missing))}.")
    comment_store.set_status(database, comment_ids, status)
    changed = comment_store.get_comments(database, comment_ids)
    for page in {(comment.site, comment.path) for comment in changed}:
        count = refresh_page(client, database, *page)
        for comment in changed:
            if (comment.site, comment.path) != page:
                continue
            if status == "approved":
                announce(client, "comment", comment, count)
            else:
                announce(client, "comment_removed", comment, count)
    return changed



def ban_author(client: redis.Redis, database: pw.Database, comment_id: str, network: bool = True,
               reason: str = "", remove: bool = True) -> list[str]:
    """Ban a comment's author from its site, by visitor hash and (optionally) network hash.

    A visitor ban is permanent; a network ban lasts as long as the salt of the comment's IP
    hash is kept (OVATION_IP_SALT_RETENTION_DAYS), then matches nothing."""
    comment = comment_store.get_comment(database, comment_id)
    if comment is None:
        raise UnknownComment(f"No comment with id {comment_id}.")
    banned = []
    if comment.visitor_hash:
        comment_store.add_ban(database, comment.site, "visitor", comment.visitor_hash, reason)
        banned.append("visitor")
    # The comment's network hash can match new comments only while the salt it was made
    # with is kept: past that, a network ban would match nothing, so none is recorded.
    if network and comment.ip_hash and salt_store.salt_kept_since(database, comment.created_at):
        comment_store.add_ban(database, comment.site, "ip", comment.ip_hash, reason)
        banned.append("network")
    if remove:
        moderate(client, database, [comment_id], "spam")
    return banned
