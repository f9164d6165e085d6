"""The scenario's own bookkeeping, checked on its own (fast): a ledger that miscounted would
let a lost vote or a duplicated notification through the fault-injection runs unnoticed.

The receivers get real deliveries from Ovation's own e-mail and webhook channels over loopback,
so their parsing follows what Ovation really sends.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from appliance import events
from appliance.notify import keys
from appliance.notify.email_channel import EmailChannel
from appliance.notify.queue import Delivery, DeliveryQueue, QueuePolicy
from appliance.notify.subscriptions import WebhookRecord
from appliance.notify.webhook_channel import WebhookChannel
from appliance.settings import Settings
from appliance.workers.stream_consumer import publish_event
from tests.conftest import free_port
from tests.reliability.client_processes import ClientProcesses, share_out
from tests.reliability.clients import Ledger
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


def test_the_processes_ledgers_add_up():
    first, second = Ledger(), Ledger()
    first.ack("/p", "view", 1)
    first.unknown({"path": "/p", "reaction": "like", "action": "remove"})
    first.comments.add(A)
    first.statuses["interaction 200"] += 1
    second.ack("/p", "view", 1)
    second.ack("/p", "applause", 7)
    second.unknown({"path": "/p", "reaction": "like", "action": "remove"})
    second.unknown({"path": "/p", "reaction": "applause", "action": "add", "amount": 5})
    second.comments.add(B)
    second.statuses["interaction 200"] += 2
    first.merge(second)
    assert first.acknowledged == {("/p", "view"): 2, ("/p", "applause"): 7}
    assert first.low == {("/p", "like"): -2}  # negative: two likes may have been removed
    assert first.high == {("/p", "applause"): 5}
    assert (first.operations, first.unanswered, first.comments) == (3, 3, {A, B})
    assert first.statuses == {"interaction 200": 3}


def test_comment_ledgers_merge_and_refuse_a_visitor_or_comment_kept_twice():
    first, second = CommentLedger(), CommentLedger()
    mine = first.posted(A, "/p", "token", "Comment a")
    first.edited(mine, "Edited a")
    first.voted("voter-0-1", A, "up")
    theirs = second.posted(B, "/p", "token", "Comment b")
    second.deleted(theirs)
    second.voted("voter-1-1", B, "down")
    second.vote_unknown("voter-1-2", A, "up", timed_out=False)  # voting on another's comment
    first.merge(second)
    assert (first.edits, first.deletes, first.votes_acknowledged) == (1, 1, 2)
    assert first.vote_ranges() == {A: {"up": (1, 2), "down": (0, 0)},
                                   B: {"up": (0, 0), "down": (1, 1)}}
    assert first.compare({A: Rows("approved", "Edited a", 2, 0),
                          B: Rows("deleted", "Comment b", 0, 1)}) == (0, 0, [])
    again = CommentLedger()
    again.voted("voter-1-1", "c" * 32, "up")  # a visitor of another process: no last vote
    with pytest.raises(ValueError, match="voter-1-1"):
        first.merge(again)
    twice = CommentLedger()
    twice.posted(A, "/p", "token", "Comment a")
    with pytest.raises(ValueError, match=A):
        first.merge(twice)


def test_clients_are_shared_out_round_robin_and_voters_go_with_authors():
    specs = share_out(2, ["http://web0"], 11, 7200, http=4, ws=3, authors=2, voters=2)
    assert [(s.http, s.ws, s.authors, s.voters) for s in specs] == [
        ((0, 2), (0, 2), (0,), (0,)), ((1, 3), (1,), (1,), (1,))]
    with pytest.raises(ValueError, match="voters and no author"):
        share_out(3, ["http://web0"], 11, 7200, http=4, ws=3, authors=2, voters=3)


def test_client_processes_send_their_ledgers_and_a_dead_one_is_an_error_not_a_hang():
    """Real processes, against a port nobody listens on: every request is unanswered."""
    nobody = f"http://127.0.0.1:{free_port()}"
    processes = ClientProcesses(share_out(2, [nobody], 11, 7200, http=2, ws=2, authors=2,
                                          voters=2))
    processes.start()
    assert processes.check() and processes.errors == []
    time.sleep(1)
    processes.processes[1].kill()  # a client process crashes during the load
    processes.processes[1].join()
    assert not processes.check()
    assert processes.errors == ["client process 1 died during the load (exit code -9)"]
    started = time.monotonic()
    [share] = processes.finish(timeout_s=30)
    assert time.monotonic() - started < 30  # the dead one is not waited for
    assert share.index == 0 and share.errors == []
    assert share.ledger.operations == 0 and share.ledger.unanswered > 0
    assert share.ledger.statuses["interaction no answer"] > 0
    assert not any(process.is_alive() for process in processes.processes)


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
