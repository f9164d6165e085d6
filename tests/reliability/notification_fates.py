"""What became of a notification that no receiver got by the end of a run.

It is late, not lost, while Ovation still holds it: as a delivery waiting in the queue
(queued, retrying, or leased by a notifier), or as a notification event the notifier has not
routed yet (still in its stream, unread or pending). Anything else is lost: a delivery the
queue marked delivered that never arrived, a dead letter, or no trace at all.
"""

from __future__ import annotations

import json

import redis

from appliance import events
from appliance.notify import keys
from appliance.notify.queue import delivery_id

LATE = ("queued", "retrying", "sending", "not routed")


def fates(client: redis.Redis, channel: str, target: str, comment_ids: set[str]
          ) -> dict[str, str]:
    """Per comment, the fate (a delivery status, "not routed" or "no trace") of its
    new_comment notification over `channel` (email | webhook) to `target`.

    Read these before looking at the receiver once more: the notifier may still be sending,
    and a delivery it marks delivered has reached the receiver before."""
    ids = sorted(comment_ids)
    if not ids:
        return {}
    pipe = client.pipeline(transaction=False)
    for comment_id in ids:
        pipe.hget(keys.delivery(delivery_id(f"new_comment:{comment_id}", channel, target)),
                  "status")
    statuses = pipe.execute()
    unrouted = unrouted_comments(client)
    return {comment_id: status or ("not routed" if comment_id in unrouted else "no trace")
            for comment_id, status in zip(ids, statuses, strict=True)}


def unrouted_comments(client: redis.Redis) -> set[str]:
    """Comment ids of the notification events the notifier group has not finished with."""
    stream, group = events.NOTIFICATION_STREAM, events.NOTIFIER_GROUP
    try:
        groups = client.xinfo_groups(stream)
    except redis.exceptions.ResponseError:  # no stream: no event was ever published
        return set()
    info = next((g for g in groups if g["name"] == group), None)
    entries = client.xrange(stream, min="-" if info is None
                            else f"({info['last-delivered-id']}")
    if info is not None:
        for pending in client.xpending_range(stream, group, "-", "+", count=1_000_000):
            entries += client.xrange(stream, pending["message_id"], pending["message_id"])
    found = set()
    for _entry_id, fields in entries:
        try:
            found.add(str(json.loads(fields.get("body", "{}")).get("comment_id", "")))
        except (ValueError, AttributeError):
            continue
    return found
