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


def reply_notification(comment: StoredComment, parent: StoredComment | None) -> dict | None:
    """The `reply` notification an approved comment owes its parent's author, unless the
    reply is their own; else None. Their open pages are always told (that mails nobody); the
    e-mail goes only to an author who asked for replies (`to` is empty otherwise), and the
    notifier mails only a confirmed address."""
    if (comment.status != "approved" or parent is None or not parent.visitor_hash
            or parent.visitor_hash == comment.visitor_hash):
        return None
    return {"site": comment.site, "path": comment.path, "comment_id": comment.id,
            "author_name": comment.author_name, "status": comment.status,
            "to": parent.author_email if parent.notify_replies else "", "parent_id": parent.id,
            "to_visitor_hash": parent.visitor_hash, "idempotency_key": f"reply:{comment.id}"}


def _notify_approved_replies(client: redis.Redis, database: pw.Database,
                             comments: list[StoredComment]) -> None:
    """Replies a moderator just approved: the listener notified none of them (it tells the
    parent's author only of replies approved on arrival), so their authors learn of them now.
    Approving one twice is harmless: the notifier dedupes by the idempotency key."""
    parent_ids = [comment.parent_id for comment in comments if comment.parent_id]
    if not parent_ids:
        return
    parents = {parent.id: parent for parent in comment_store.get_comments(database, parent_ids)}
    for comment in comments:
        body = reply_notification(comment, parents.get(comment.parent_id or ""))
        if body is not None:
            enqueue_notification(client, "reply", body)


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
    emptied = sorted(comment.id for comment in found if comment.erased)
    if status == "approved" and emptied:
        # Deleted, or hidden and then deleted by its author: its text is gone for good, and
        # approving it would show an empty comment.
        raise InvalidInput(f"Comment {', '.join(emptied)} was deleted: its text is gone, so it "
                           "cannot be approved.", details={"field": "ids"})
    newly_approved = {comment.id for comment in found if comment.status != "approved"}
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
    if status == "approved":
        _notify_approved_replies(client, database,
                                 [comment for comment in changed if comment.id in newly_approved])
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
    if banned:  # committed: every web worker's copy of the site's bans is now outdated
        cache.bans_changed(client, comment.site)
    if remove:
        moderate(client, database, [comment_id], "spam")
    return banned
