"""Event streams trimmed up to the oldest entry a consumer group still needs (issue 11), on the
private real Redis: what every group acknowledged goes; pending, unread and not-yet-grouped
entries stay; and the listener (a real `platformctl serve listener`) and the notifier's loop
trim their own streams."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from appliance import events
from appliance.services import publishing
from appliance.services.sites import add_site
from appliance.storage.database import open_database
from appliance.storage.migrations import migrate
from appliance.storage.models import Page
from appliance.workers.notifier import Notifier
from appliance.workers.stream_consumer import StreamConsumer, publish_event, trim_acknowledged
from tests.conftest import start_process, stop_process

STREAM = "ov:test:trim"


def add(client: redis.Redis, count: int) -> list[str]:
    return [client.xadd(STREAM, {"kind": "k", "body": str(n)}) for n in range(count)]


def read(client: redis.Redis, group: str, count: int, consumer: str = "c1") -> list[str]:
    reply = client.xreadgroup(group, consumer, {STREAM: ">"}, count=count)
    return [message_id for message_id, _ in reply[0][1]] if reply else []


def kept(client: redis.Redis) -> list[str]:
    return [message_id for message_id, _ in client.xrange(STREAM)]


def group_info(client: redis.Redis, group: str) -> dict:
    return next(info for info in client.xinfo_groups(STREAM) if info["name"] == group)


def wait_until(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not true within {timeout_s} s"
        time.sleep(0.1)


# -- the script --------------------------------------------------------------------------------


def test_entries_every_group_acknowledged_are_trimmed_and_lag_stays_known(redis_client):
    ids = add(redis_client, 250)  # several listpack nodes, so whole nodes go and one is cut
    redis_client.xgroup_create(STREAM, "g", id="0")
    assert read(redis_client, "g", 250) == ids
    redis_client.xack(STREAM, "g", *ids)

    assert trim_acknowledged(redis_client, STREAM) == 250
    assert redis_client.xlen(STREAM) == 0
    # The stream and its group stay (XTRIM never deletes the key), and Redis 7 still computes
    # the group's lag: trimming left no tombstone after its last-delivered-id.
    info = group_info(redis_client, "g")
    assert (info["last-delivered-id"], info["entries-read"], info["lag"]) == (ids[-1], 250, 0)
    new = add(redis_client, 3)
    assert group_info(redis_client, "g")["lag"] == 3
    assert read(redis_client, "g", 10) == new
    assert trim_acknowledged(redis_client, STREAM) == 0  # read, not acknowledged: kept
    assert kept(redis_client) == new


def test_a_pending_entry_and_everything_after_it_stay(redis_client):
    ids = add(redis_client, 20)
    redis_client.xgroup_create(STREAM, "g", id="0")
    assert read(redis_client, "g", 20) == ids
    redis_client.xack(STREAM, "g", *ids[:7], *ids[8:])  # ids[7]: delivered, never acknowledged

    assert trim_acknowledged(redis_client, STREAM) == 7
    assert kept(redis_client) == ids[7:]
    # The pending entry is still there for XAUTOCLAIM to hand to another consumer.
    _, claimed, deleted = redis_client.xautoclaim(STREAM, "g", "c2", min_idle_time=0)
    assert [message_id for message_id, _ in claimed] == [ids[7]] and deleted == []


def test_unread_entries_stay(redis_client):
    ids = add(redis_client, 10)
    redis_client.xgroup_create(STREAM, "g", id="0")
    read_ids = read(redis_client, "g", 6)
    redis_client.xack(STREAM, "g", *read_ids)

    assert trim_acknowledged(redis_client, STREAM) == 6
    assert kept(redis_client) == ids[6:]
    assert group_info(redis_client, "g")["lag"] == 4
    assert read(redis_client, "g", 10) == ids[6:]


def test_with_two_groups_only_what_the_slower_one_finished_goes(redis_client):
    ids = add(redis_client, 12)
    for group in ("fast", "slow"):
        redis_client.xgroup_create(STREAM, group, id="0")
    redis_client.xack(STREAM, "fast", *read(redis_client, "fast", 12))
    redis_client.xack(STREAM, "slow", *read(redis_client, "slow", 4))

    assert trim_acknowledged(redis_client, STREAM) == 4
    assert kept(redis_client) == ids[4:]

    # The slower group now holds an entry pending: the bound is that entry, not its position.
    slow = read(redis_client, "slow", 5)
    redis_client.xack(STREAM, "slow", *slow[1:])
    assert trim_acknowledged(redis_client, STREAM) == 0
    assert kept(redis_client) == ids[4:]
    redis_client.xack(STREAM, "slow", slow[0])
    assert trim_acknowledged(redis_client, STREAM) == 5
    assert kept(redis_client) == ids[9:]


def test_a_stream_whose_group_has_read_nothing_keeps_everything(redis_client):
    ids = add(redis_client, 5)
    redis_client.xgroup_create(STREAM, "g", id="0")  # as ensure_group creates ours
    assert trim_acknowledged(redis_client, STREAM) == 0
    assert kept(redis_client) == ids


def test_a_stream_without_a_group_is_kept_for_the_group_created_later(redis_client):
    ids = add(redis_client, 5)  # the web queued comments before any listener ever ran
    assert trim_acknowledged(redis_client, STREAM) == 0
    assert kept(redis_client) == ids
    consumer = StreamConsumer(redis_client, STREAM, "g", {})
    consumer.ensure_group()
    assert read(redis_client, "g", 10) == ids


def test_no_stream_or_another_type_is_left_alone(redis_client):
    assert trim_acknowledged(redis_client, STREAM) == 0
    assert not redis_client.exists(STREAM)
    redis_client.set(STREAM, "not a stream")
    assert trim_acknowledged(redis_client, STREAM) == 0
    assert redis_client.get(STREAM) == "not a stream"


# -- the consumers -----------------------------------------------------------------------------


def test_the_consumer_trims_its_streams_once_per_interval(redis_client):
    handled: list[str] = []
    consumer = StreamConsumer(
        redis_client,
        STREAM,
        "g",
        {"k": lambda message_id, body: handled.append(message_id)},
        trim_interval_s=3600,
    )
    ids = add(redis_client, 4)
    consumer.run_once()
    assert handled == ids and redis_client.xlen(STREAM) == 4

    assert consumer.trim_if_due() == 4  # the first is due at once
    add(redis_client, 2)
    consumer.run_once()
    assert consumer.trim_if_due() == 0  # not again within the interval
    assert redis_client.xlen(STREAM) == 2
    assert consumer.trim_streams() == 2  # the one-shot twin

    never = StreamConsumer(redis_client, STREAM, "g", {}, trim_interval_s=0)
    add(redis_client, 1)
    redis_client.xack(STREAM, "g", *read(redis_client, "g", 1))
    assert never.trim_if_due() == 0 and redis_client.xlen(STREAM) == 1


@pytest.fixture
def blog_sqlite(sqlite_url) -> Iterator:
    database = open_database(sqlite_url)
    migrate(database)
    add_site(database, "blog", ["https://blog.example"])
    yield database
    database.close()


def test_a_running_listener_trims_the_publish_and_submission_streams(
    make_settings, sqlite_url, blog_sqlite, redis_client, tmp_path
):
    settings = make_settings(sqlite_url, stream_trim_interval_s=0.5)
    for n in range(30):  # queued before the listener has a group: nothing may go yet
        publishing.publish(redis_client, blog_sqlite, "blog", f"/posts/{n}", f"Post {n}")
    publish_event(redis_client, events.SUBMISSION_STREAM, "no_such_kind", {})
    assert redis_client.xlen(events.PUBLISH_STREAM) == 30

    listener = start_process(settings, "serve", "listener", log=tmp_path / "listener.log")
    try:
        wait_until(
            lambda: (
                redis_client.xlen(events.PUBLISH_STREAM) == 0
                and redis_client.xlen(events.SUBMISSION_STREAM) == 0
            )
        )
    finally:
        assert stop_process(listener) == 0
    with blog_sqlite.connection_context():
        assert Page.select().count() == 30  # trimmed after they were stored, not before
    dead = StreamConsumer.dead_letter_stream(events.SUBMISSION_STREAM)
    assert redis_client.xlen(dead) == 1  # dead letters are for people: never trimmed
    # The notification stream is the notifier's: the listener leaves it alone.
    assert redis_client.xlen(events.NOTIFICATION_STREAM) == 30


def test_the_notifier_loop_trims_the_notification_stream(
    make_settings, sqlite_url, blog_sqlite, redis_client
):
    settings = make_settings(sqlite_url, stream_trim_interval_s=0.2)
    for n in range(25):
        publish_event(
            redis_client,
            events.NOTIFICATION_STREAM,
            "new_post",
            {
                "site": "blog",
                "path": f"/p/{n}",
                "title": "T",
                "published_at": "2026-01-01",
                "event_id": f"e{n}",
                "idempotency_key": f"new_post:e{n}",
            },
        )
    notifier = Notifier(redis_client, blog_sqlite, settings, channels={})
    loop = threading.Thread(target=notifier.run, daemon=True)
    loop.start()
    try:
        wait_until(lambda: redis_client.xlen(events.NOTIFICATION_STREAM) == 0)
    finally:
        notifier.stop_event.set()
        loop.join(30)
    assert not loop.is_alive()
    [info] = redis_client.xinfo_groups(events.NOTIFICATION_STREAM)
    assert (info["name"], info["pending"], info["entries-read"], info["lag"]) == (
        events.NOTIFIER_GROUP,
        0,
        25,
        0,
    )
