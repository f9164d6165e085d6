"""The delivery queue on real Redis: backoff, leases, dead letters, retry, digests and caps.

The clock is a plain function the test moves forward, so windows of minutes and hours take
no time; everything else (scripts, streams, keys) is the real thing.
"""

from __future__ import annotations

import pytest

from appliance.errors import OvationError
from appliance.notify import keys
from appliance.notify.queue import Delivery, DeliveryQueue, QueuePolicy


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_queue(redis_client, clock, **policy) -> DeliveryQueue:
    defaults = dict(max_attempts=3, retry_base_s=10, retry_max_s=60, digest_window_s=300,
                    email_cap_per_hour=3, lease_s=30)
    return DeliveryQueue(redis_client, QueuePolicy(**{**defaults, **policy}), clock=clock,
                         jitter=lambda: 1.0)


def hook(key: str = "new_comment:c1", target: str = "1") -> Delivery:
    return Delivery(key, "webhook", target, "blog", "new_comment", {"text": "hi"})


def mail(key: str, to: str = "ann@example.org", list_name: str = "replies") -> Delivery:
    return Delivery(key, "email", to, "blog", "reply", {"text": key}, list_name=list_name)


def test_a_delivery_is_created_once_per_key_channel_and_target(redis_client, clock):
    queue = make_queue(redis_client, clock)
    assert queue.add(hook()) is True
    assert queue.add(hook()) is False  # the event came again after a crash
    assert queue.add(hook(target="2")) is True
    assert redis_client.zcard(keys.DUE) == 2


def test_backoff_doubles_up_to_the_cap_with_jitter(redis_client, clock):
    queue = make_queue(redis_client, clock, retry_base_s=10, retry_max_s=60)
    assert [queue.backoff(n) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 60, 60]
    queue.jitter = lambda: 0.0
    assert queue.backoff(2) == 10  # equal jitter: between half and all of the step


def test_failures_are_retried_with_backoff_then_dead_lettered_and_retry_brings_them_back(
        redis_client, clock):
    queue = make_queue(redis_client, clock, max_attempts=3)
    queue.add(hook())
    [first] = queue.claim(10)
    assert first.attempts == 1
    assert queue.fail(first, "HTTP 500") == "retrying"
    assert queue.claim(10) == []  # not due for 10 s
    clock.now += 10
    [second] = queue.claim(10)
    assert queue.fail(second, "HTTP 500") == "retrying"
    clock.now += 19
    assert queue.claim(10) == []
    clock.now += 1
    [third] = queue.claim(10)
    assert third.attempts == 3
    assert queue.fail(third, "HTTP 500") == "dead"
    clock.now += 3600
    assert queue.claim(10) == []
    [letter] = queue.dead_letters()
    assert (letter.delivery, letter.channel, letter.attempts, letter.error) == \
        (third.id, "webhook", "3", "HTTP 500")
    assert queue.get(third.id).status == "dead"

    assert queue.retry(letter.entry_id) == "requeued"
    assert queue.dead_letters() == []
    [again] = queue.claim(10)
    assert (again.id, again.attempts) == (third.id, 1)  # fresh attempts
    queue.complete(again)
    assert queue.get(third.id).status == "delivered"
    assert queue.figures()["delivered:webhook"] == 1


def test_a_permanent_failure_is_dead_at_once_and_retry_by_delivery_id(redis_client, clock):
    queue = make_queue(redis_client, clock)
    queue.add(hook())
    [delivery] = queue.claim(10)
    assert queue.fail(delivery, "refused", permanent=True) == "dead"
    assert queue.retry(delivery.id) == "requeued"
    assert queue.dead_letters() == []
    with pytest.raises(OvationError) as refused:
        queue.retry("0123456789abcdef01234567")
    assert refused.value.code == "unknown_notification"


def test_a_claim_expires_so_a_crashed_delivery_is_made_again(redis_client, clock):
    queue = make_queue(redis_client, clock, lease_s=30)
    queue.add(hook())
    [taken] = queue.claim(10)  # ...and the notifier dies here
    assert queue.claim(10) == []
    clock.now += 31
    [again] = queue.claim(10)
    assert again.id == taken.id and again.attempts == 2


def test_dead_letters_of_events_go_back_on_the_stream(redis_client, clock):
    from appliance import events

    queue = make_queue(redis_client, clock)
    entry = redis_client.xadd(keys.DEAD_LETTERS, {"kind": "new_post", "body": '{"site": "b"}',
                                                   "original_id": "1-0", "error": "x"})
    assert queue.dead_letters()[0].site == "b"
    assert queue.retry(entry) == "event requeued"
    [(_, fields)] = redis_client.xrange(events.NOTIFICATION_STREAM)
    assert fields == {"kind": "new_post", "body": '{"site": "b"}'}


def test_a_second_email_within_the_window_waits_for_a_digest(redis_client, clock):
    queue = make_queue(redis_client, clock, digest_window_s=300)
    assert queue.add_email(mail("reply:1")) == "queued"
    assert queue.add_email(mail("reply:2")) == "digested"
    assert queue.add_email(mail("reply:3")) == "digested"
    assert queue.add_email(mail("reply:1")) == "exists"
    assert queue.add_email(mail("reply:4", to="bob@example.org")) == "queued"
    due = queue.claim(10)
    assert sorted(d.target for d in due) == ["ann@example.org", "bob@example.org"]
    for delivery in due:
        queue.complete(delivery)
    clock.now += 299
    assert queue.claim(10) == []
    clock.now += 1
    [digest] = queue.claim(10)
    assert digest.kind == "digest" and digest.target == "ann@example.org"
    assert [item.key for item in digest.items] == ["reply:2", "reply:3"]
    # Being sent, the digest is closed: the next e-mail waits for the next window.
    assert queue.add_email(mail("reply:5")) == "digested"
    assert queue.get(digest.id).items == digest.items


def test_the_hourly_cap_turns_the_rest_of_the_hour_into_one_digest(redis_client, clock):
    clock.now = 1_800_000_000 - 1_800_000_000 % 3600  # the top of an hour
    queue = make_queue(redis_client, clock, digest_window_s=0, email_cap_per_hour=3)
    assert [queue.add_email(mail(f"reply:{n}")) for n in range(6)] == \
        ["queued", "queued", "queued", "digested", "digested", "digested"]
    for delivery in queue.claim(10):
        queue.complete(delivery)
    clock.now += 3599
    assert queue.claim(10) == []
    clock.now += 1
    [digest] = queue.claim(10)
    assert len(digest.items) == 3


def test_held_deliveries_wait_for_release_or_drop(redis_client, clock):
    queue = make_queue(redis_client, clock)
    held = keys.held("blog", "ann@example.org", "replies")
    assert queue.add(mail("reply:1"), hold_key=held)
    assert queue.claim(10) == []
    assert queue.release_held(held) == 1
    [delivery] = queue.claim(10)
    assert delivery.key == "reply:1"
    queue.add(mail("reply:2"), hold_key=held)
    assert queue.drop_held(held) == 1
    assert queue.release_held(held) == 0 and queue.claim(10) == []


def test_purge_forgets_finished_deliveries_and_keeps_waiting_ones(redis_client, clock):
    queue = make_queue(redis_client, clock)
    queue.add(hook("k1"))
    queue.add(hook("k2"))
    queue.add(hook("k3"))
    one, two, three = queue.claim(3)
    queue.complete(one)
    queue.fail(two, "boom", permanent=True)
    queue.fail(three, "boom")
    assert queue.purge() == 1
    assert {d.status for d in queue.recent()} == {"dead", "retrying"}
    assert queue.purge(dead=True) == 1
    assert [d.status for d in queue.recent()] == ["retrying"]
    assert queue.dead_letters() == []


def test_purge_keeps_what_a_waiting_digest_carries(redis_client, clock):
    """`platformctl notifications purge` forgot the notifications collected into a digest
    that had not gone out yet: the digest then went out without their comments."""
    queue = make_queue(redis_client, clock, digest_window_s=300)
    assert [queue.add_email(mail(f"reply:{n}")) for n in range(1, 4)] == [
        "queued", "digested", "digested"]
    [first] = queue.claim(10)
    queue.complete(first)
    assert queue.purge() == 1  # the e-mail that went out, not the two the digest waits with
    clock.now += 300
    [digest] = queue.claim(10)
    assert [item.key for item in digest.items] == ["reply:2", "reply:3"]
    queue.complete(digest)
    assert queue.purge() == 3  # sent: the digest and what it carried go together
    assert queue.recent() == []
