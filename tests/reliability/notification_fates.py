"""What became of a notification that no receiver got by the end of a run.

It is late, not lost, while Ovation still holds it: as a delivery waiting in the queue
(queued, retrying, or leased by a notifier), as an e-mail collected into a digest that is
itself still waiting, or as a notification event the notifier has not routed yet (still in
its stream, unread or pending). Anything else is lost: a delivery the queue marked delivered
that never arrived, a dead letter (a delivery's, or the event's), or no trace at all.

The notifier keeps working while this looks, so the order of the reads matters (see `fates`).
"""

from __future__ import annotations

import json

import redis

from appliance import events
from appliance.notify import keys
from appliance.notify.queue import delivery_id

WAITING = ("queued", "retrying", "sending")
LATE = (*WAITING, "not routed", *(f"in a digest {status}" for status in WAITING))


def fates(client: redis.Redis, channel: str, target: str, comment_ids: set[str]
          ) -> dict[str, str]:
    """Per comment, the fate (a delivery status, "in a digest STATUS", "not routed",
    "dead event" or "no trace") of its new_comment notification over `channel`
    (email | webhook) to `target`.

    Read these before looking at the receiver once more: the notifier may still be sending,
    and a delivery it marks delivered has reached the receiver before."""
    ids = sorted(comment_ids)
    if not ids:
        return {}
    # The events first, the deliveries after. The notifier creates an event's deliveries and
    # only then acknowledges the event, so an event that is no longer unrouted when this
    # looks has its deliveries by the time they are read. The other way round, an event the
    # notifier routed between the two reads had neither: it showed as "no trace", a loss
    # that was none (3 in a 30-minute soak, whose notifier was busy routing to the end).
    unrouted = unrouted_comments(client)
    dead = dead_event_comments(client)
    pipe = client.pipeline(transaction=False)
    for comment_id in ids:
        pipe.hmget(keys.delivery(delivery_id(f"new_comment:{comment_id}", channel, target)),
                   "status", "digest")
    records = pipe.execute()
    pipe = client.pipeline(transaction=False)
    for _status, digest in records:
        pipe.hget(keys.delivery(digest or "-"), "status")
    digest_statuses = pipe.execute()
    found = {}
    for comment_id, (status, _digest), digest_status in zip(ids, records, digest_statuses,
                                                            strict=True):
        if status == "digested":
            found[comment_id] = f"in a digest {digest_status or 'that is gone'}"
        elif status:
            found[comment_id] = status
        elif comment_id in unrouted:
            found[comment_id] = "not routed"
        else:
            found[comment_id] = "dead event" if comment_id in dead else "no trace"
    return found


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
    return _comment_ids(entries)


def dead_event_comments(client: redis.Redis) -> set[str]:
    """Comment ids of the notification events the notifier gave up on (dead letters)."""
    return _comment_ids(client.xrange(keys.DEAD_LETTERS))


def _comment_ids(entries: list) -> set[str]:
    found = set()
    for _entry_id, fields in entries:
        try:
            comment_id = json.loads(fields.get("body", "{}")).get("comment_id")
        except (ValueError, AttributeError):
            continue
        if comment_id:
            found.add(str(comment_id))
    return found
