"""The listener's passes under a stream of comments (appliance/workers/listener.py): one SQL
connection kept while comments keep coming, let go when the listener is idle or a pass failed;
and, in its process loop only, a short wait after a partial batch so that batches gather.
Real Redis, real SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from appliance.storage.site_store import get_site
from appliance.workers.listener import build_listener
from appliance.workers.stream_consumer import StreamConsumer
from tests.appliance.test_comments import BOB, post, service  # noqa: F401 (a fixture)


async def test_the_connection_is_kept_while_comments_keep_coming(service, database,  # noqa: F811
                                                                 settings, redis_client):
    site = get_site(database, "blog")
    listener = build_listener(redis_client, database, settings.comment_max_depth)
    await post(service, site, body="first")
    assert listener.run_once() == 1
    assert not database.is_closed()  # kept for the next pass
    connection = database.connection()
    await post(service, site, body="second", visitor=BOB)
    assert listener.run_once() == 1
    assert database.connection() is connection  # the same one, not a new one per batch
    assert listener.run_once() == 0
    assert database.is_closed()  # idle: the listener holds none


async def test_a_failed_pass_lets_the_connection_go(service, database, settings,  # noqa: F811
                                                    redis_client, monkeypatch):
    site = get_site(database, "blog")
    listener = build_listener(redis_client, database, settings.comment_max_depth)
    await post(service, site, body="first")
    assert listener.run_once() == 1 and not database.is_closed()

    def unreachable() -> None:
        raise redis.exceptions.ConnectionError("Redis went away")

    monkeypatch.setattr(listener, "ensure_group", unreachable)
    with pytest.raises(redis.exceptions.ConnectionError):
        listener.run_once()
    assert database.is_closed()  # a connection a restart may have broken is not kept


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_in_its_loop_the_listener_lets_a_batch_gather(database, redis_client, monkeypatch):
    listener = build_listener(redis_client, database)
    listener.linger_s = 0.2
    listener.trim_interval_s = 0
    # What each pass handles: a partial batch, nothing, a full batch, a partial one again.
    script = [3, 0, listener.batch, 2, 0]
    started: list[float] = []

    def scripted_pass(self, block_ms=None) -> int:
        started.append(time.monotonic())
        if len(started) == len(script):
            self.stop_event.set()
        return script[len(started) - 1]

    monkeypatch.setattr(StreamConsumer, "run_once", scripted_pass)
    thread = threading.Thread(target=listener.run)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    gaps = [later - earlier for earlier, later in zip(started, started[1:], strict=False)]
    assert gaps[0] >= 0.2  # after a partial batch: waited for more
    assert gaps[1] < 0.15 and gaps[2] < 0.15  # after an idle pass or a full batch: at once
    assert gaps[3] >= 0.2
    # Called on its own (tests, tools), a pass never waits.
    script[:] = [3, 3]
    started.clear()
    listener.stop_event.clear()
    listener.run_once()
    listener.run_once()
    assert started[1] - started[0] < 0.15
