"""The scenario's own bookkeeping, checked on its own (fast): a ledger that miscounted would
let a lost vote or a duplicated notification through the fault-injection runs unnoticed.

The receivers get real deliveries from Ovation's own e-mail and webhook channels over loopback,
so their parsing follows what Ovation really sends.
"""

from __future__ import annotations

import datetime as dt
import json

from appliance import events
from appliance.notify import keys
from appliance.notify.email_channel import EmailChannel
from appliance.notify.queue import Delivery, DeliveryQueue, QueuePolicy
from appliance.notify.subscriptions import WebhookRecord
from appliance.notify.webhook_channel import WebhookChannel
from appliance.settings import Settings
from appliance.workers.stream_consumer import publish_event
from tests.reliability.comment_ledger import CommentLedger, Rows
from tests.reliability.notification_fates import LATE, fates
from tests.reliability.receivers import Deliveries, Receivers

A, B = "a" * 32, "b" * 32


def test_the_last_acknowledged_vote_counts_and_unanswered_ones_widen_the_range():
    ledger = CommentLedger()
    ledger.voted("v1", A, "up")
    ledger.voted("v2", A, "up")
    ledger.voted("v2", A, "down")  # changed: one down, not one up and one down
    ledger.voted("v3", A, "up")
    ledger.vote_unknown("v3", A, "none", timed_out=False)  # may have withdrawn it
    assert ledger.vote_ranges()[A] == {"up": (1, 2), "down": (1, 1)}
    ledger.voted("v3", A, "down")  # answered after the unanswered one: that one is settled
    assert ledger.vote_ranges()[A] == {"up": (1, 1), "down": (2, 2)}


def test_a_timed_out_vote_may_land_after_later_acknowledged_ones():
    ledger = CommentLedger()
    ledger.vote_unknown("v1", A, "up", timed_out=True)
    ledger.voted("v1", A, "none")
    assert ledger.vote_ranges()[A] == {"up": (0, 1), "down": (0, 0)}


def test_vote_totals_below_the_range_are_lost_and_above_it_duplicated():
    ledger = CommentLedger()
    ledger.posted(A, "/p", "token", "Comment a")
    ledger.voted("v1", A, "up")
    ledger.voted("v2", A, "up")
    assert ledger.compare({A: Rows("approved", "Comment a", 2, 0)}) == (0, 0, [])
    lost, duplicated, errors = ledger.compare({A: Rows("approved", "Comment a", 1, 1)})
    assert (lost, duplicated) == (1, 1) and len(errors) == 2


def test_edits_and_deletes_against_sql():
    ledger = CommentLedger()
    edited = ledger.posted(A, "/p", "token", "Comment a")
    ledger.edited(edited, "Edited 1")
    edited.body.unknown("Edited 2", timed_out=False)  # may have replaced "Edited 1"
    gone = ledger.posted(B, "/p", "token", "Comment b")
    ledger.deleted(gone)
    stored = {A: Rows("approved", "Edited 2", 0, 0), B: Rows("deleted", "Comment b", 0, 0)}
    assert ledger.compare(stored) == (0, 0, [])
    assert ledger.pending_changes(stored) == 0
    stale = {A: Rows("approved", "Comment a", 0, 0), B: Rows("approved", "Comment b", 0, 0)}
    assert ledger.pending_changes(stale) == 2  # the edit and the delete are missing
    lost, _, errors = ledger.compare(stale)
    assert lost == 2 and "acknowledged delete" in errors[1]


def test_a_deletion_nobody_asked_for_is_reported():
    ledger = CommentLedger()
    ledger.posted(A, "/p", "token", "Comment a")
    _, _, errors = ledger.compare({A: Rows("deleted", "Comment a", 0, 0)})
    assert errors == [f"comment {A} is deleted, but no delete was ever sent"]


def test_repeats_under_one_key_are_redeliveries_and_two_keys_are_a_problem():
    deliveries = Deliveries("webhook", "webhook")
    deliveries.record(f"new_comment:{A}", A, "new_comment")
    deliveries.record(f"new_comment:{A}", A, "new_comment")
    assert (deliveries.receipts(), deliveries.redelivered()) == (2, 1)
    assert (deliveries.received(), deliveries.problems()) == ({A}, [])
    deliveries.record(f"new_comment:{A}-again", A, "new_comment")
    assert "several idempotency keys" in deliveries.problems()[0]
    deliveries.record(f"pending_comment:{B}", B, "pending_comment")
    assert "event 'pending_comment'" in deliveries.problems()[0]


def test_undelivered_notifications_still_in_ovation_are_late_not_lost(redis_client):
    queued, unrouted, gone = "1" * 32, "2" * 32, "3" * 32
    DeliveryQueue(redis_client).add(Delivery(f"new_comment:{queued}", "webhook", "7", "blog",
                                             "new_comment"))
    redis_client.xgroup_create(events.NOTIFICATION_STREAM, events.NOTIFIER_GROUP, id="0",
                               mkstream=True)
    publish_event(redis_client, events.NOTIFICATION_STREAM, "new_comment",
                  {"site": "blog", "comment_id": unrouted})
    assert fates(redis_client, "webhook", "7", {queued, unrouted, gone}) == {
        queued: "queued", unrouted: "not routed", gone: "no trace"}
    # Read by a notifier that died before acknowledging it: pending, still not routed.
    redis_client.xreadgroup(events.NOTIFIER_GROUP, "dead-notifier",
                            {events.NOTIFICATION_STREAM: ">"})
    assert fates(redis_client, "webhook", "7", {unrouted}) == {unrouted: "not routed"}


def test_a_digest_counts_for_every_comment_it_carries_and_its_fate_is_the_digests(
        redis_client):
    queue = DeliveryQueue(redis_client, QueuePolicy(digest_window_s=300))
    first, second, third = "4" * 32, "5" * 32, "6" * 32
    mails = {n: Delivery(f"new_comment:{n}", "email", "owner@blog.example", "blog",
                         "new_comment", list_name="owner") for n in (first, second, third)}
    assert [queue.add_email(mail) for mail in mails.values()] == ["queued", "digested",
                                                                  "digested"]
    assert fates(redis_client, "email", "owner@blog.example", {second, third}) == {
        second: "in a digest queued", third: "in a digest queued"}
    assert "in a digest queued" in LATE
    [digest] = [d for d in queue.recent() if d.kind == "digest"]
    queue.complete(queue.get(digest.id))  # "sent", yet no receiver has it: lost
    assert fates(redis_client, "email", "owner@blog.example", {second}) == {
        second: "in a digest delivered"}
    deliveries = Deliveries("e-mail", "email")
    for comment_id in (second, third, second):  # the digest, and one comment again (resent)
        deliveries.record(f"digest:{digest.id}", comment_id, "digest")
    assert (deliveries.received(), deliveries.redelivered()) == ({second, third}, 1)
    assert deliveries.problems() == []
    deliveries.record(f"new_comment:{second}", second, "new_comment")  # and on its own too
    assert "several idempotency keys" in deliveries.problems()[0]


def test_an_event_the_notifier_gave_up_on_is_a_dead_event_not_no_trace(redis_client):
    dead = "7" * 32
    redis_client.xadd(keys.DEAD_LETTERS, {"kind": "new_comment", "body": json.dumps(
        {"site": "blog", "comment_id": dead}), "error": "OperationalError: gone"})
    assert fates(redis_client, "webhook", "7", {dead}) == {dead: "dead event"}
    assert "dead event" not in LATE


def test_the_receivers_read_what_ovation_sends(tmp_path):
    receivers = Receivers(tmp_path)
    receivers.start()
    try:
        payload = {"site": "blog", "site_title": "Blog", "path": "/p", "page_title": "",
                   "page_url": "https://blog.example/p", "comment_id": A,
                   "comment_url": f"https://blog.example/p#comment-{A}", "author_name": "Ann",
                   "status": "approved", "text": "Hello", "parent_id": None}
        key = f"new_comment:{A}"
        webhook = WebhookRecord(1, "blog", receivers.webhook_url, "whsec_x", "json", (),
                                dt.datetime.now(dt.UTC))
        channel = WebhookChannel(lambda _id: webhook, 5.0, allow_private=True)
        try:
            for _ in range(2):  # a redelivery: same key
                channel.send(Delivery(key, "webhook", "1", "blog", "new_comment", payload))
        finally:
            channel.close()
        settings = Settings(smtp_host="127.0.0.1", smtp_port=receivers.smtp_port,
                            smtp_security="none", public_url="https://blog.example",
                            secret_key="x")
        EmailChannel(settings, b"secret", lambda *_: True).send(
            Delivery(key, "email", "owner@blog.example", "blog", "new_comment", payload,
                     list_name="owner"))
        assert receivers.webhook.keys == {A: {key: 2}}
        assert receivers.mail.keys == {A: {key: 1}}
        assert receivers.summary({A}) == "1/1 e-mail, 1/1 webhook; 1 redelivered"
        items = [Delivery(f"new_comment:{n}", "email", "owner@blog.example", "blog",
                          "new_comment", {**payload, "comment_id": n,
                                          "comment_url": f"https://blog.example/p#comment-{n}"},
                          list_name="owner") for n in (B, "c" * 32)]
        digest = Delivery("digest:d1", "email", "owner@blog.example", "blog", "digest",
                          list_name="digest", items=items)
        EmailChannel(settings, b"secret", lambda *_: True).send(digest)
        assert receivers.mail.keys == {A: {key: 1}, B: {"digest:d1": 1},
                                       "c" * 32: {"digest:d1": 1}}
        assert receivers.mail.problems() == []
    finally:
        receivers.stop()
