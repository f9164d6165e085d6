"""Collecting a snapshot against real Redis and real SQL (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from appliance.dashboard import collect
from appliance.dashboard.collect import Collector, DashboardSources, dead_letter_stream
from appliance.events import NOTIFICATION_STREAM, NOTIFIER_GROUP
from appliance.jobs.flush import flush_once
from appliance.notify.queue import Delivery, DeliveryQueue, QueuePolicy
from appliance.services.counters import CounterService
from appliance.services.sites import add_site
from appliance.services.sql_runner import SqlRunner
from appliance.storage import counter_store as keys
from appliance.storage.counter_store import CounterScripts
from appliance.storage.database import open_database
from appliance.storage.redis_client import async_redis
from appliance.storage.site_store import get_site
from tests.dashboard.conftest import HOSTILE_TEXT, add_comment

NO_WEB = "http://127.0.0.1:9"  # nothing listens on the discard port


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def sources(settings, redis_client, database, web_url: str = NO_WEB) -> DashboardSources:
    return DashboardSources(settings, redis_client, database, services=lambda _settings: [],
                            web_url=web_url)


@pytest.fixture
async def counters(settings, database, registry):
    add_site(database, "blog", ["https://blog.example"])
    client = async_redis(settings)
    runner = SqlRunner()
    yield CounterService(client, database, registry, settings, runner.run)
    await client.aclose()
    runner.close()


async def test_interactions_feed_the_bucketed_statistics(counters, database, settings,
                                                         redis_client):
    site = get_site(database, "blog")
    for visitor in ("visitor-one", "visitor-two", "visitor-three"):
        await counters.record(site, "/popular", "view", "add", 1, visitor)
    await counters.record(site, "/popular", "view", "add", 1, "visitor-one")  # deduplicated
    await counters.record(site, "/quiet", "like", "add", 1, "visitor-one")
    await counters.record(site, "/quiet", "applause", "add", 7, "visitor-two")

    snapshot = Collector(sources(settings, redis_client, database)).collect()

    # Every interaction is activity (the deduplicated view too); visitors are distinct.
    assert snapshot.today == {"view": 4, "like": 1, "applause": 1}
    assert snapshot.unique_visitors_today == 3
    assert [(page.path, page.count) for page in snapshot.top_pages_now] == [
        ("/popular", 4), ("/quiet", 2)]
    assert [(page.path, page.count) for page in snapshot.top_pages_today] == [
        ("/popular", 4), ("/quiet", 2)]
    assert snapshot.top_pages_now[0].site == "blog"
    assert sum(snapshot.rate_series["view"]) == 4 and len(snapshot.rate_series["view"]) == 60
    assert snapshot.rates["view"] > 0
    # The statistics expire on their own, and the dashboard left no scratch key behind. (Every
    # key of each kind: on a slow host the interactions may straddle a bucket's edge.)
    for kind in ("rate", "pages", "day", "daypages", "uv"):
        found = list(redis_client.scan_iter(match=f"{keys.PREFIX}dash:{kind}:*"))
        assert found, kind
        for key in found:
            assert 0 < redis_client.ttl(key) <= keys.STATS_DAY_TTL_S, key
    assert not list(redis_client.scan_iter(match=keys.PREFIX + "dash:scratch:*"))


def test_the_page_sets_keep_only_their_top_entries(redis_client):
    interact = CounterScripts.register(redis_client).interact
    now = time.time()
    stats = keys.live_stats_args(now)
    stats[-1] = 3  # keep three pages
    for index, hits in enumerate([5, 1, 4, 2, 3]):
        for hit in range(hits):
            interact(keys=[], args=[keys.PREFIX, 60, "blog", "view", "view", f"visitor-{hit}",
                                    f"/p{index}", "view", "counter", "add", 1, 0, 0, 250,
                                    *stats])
    day_pages = redis_client.zrange(keys.stats_day_pages_key(keys.stats_day(now)), 0, -1,
                                    desc=True)
    assert len(day_pages) == 3 and day_pages[0] == "blog|/p0"
    assert redis_client.zcard(keys.stats_pages_key(keys.stats_bucket(now))) == 3


def test_the_interaction_script_still_accepts_the_arguments_of_old_callers(redis_client):
    interact = CounterScripts.register(redis_client).interact
    result = interact(keys=[], args=[keys.PREFIX, 60, "blog", "view", "view", "visitor-1", "/p",
                                     "view", "counter", "add", 1, 0, 0, 250])
    assert int(result[0]) == 1
    assert not list(redis_client.scan_iter(match=keys.PREFIX + "dash:*"))


def test_comments_flush_queues_sockets_and_storage(settings, database, redis_client):
    add_site(database, "blog", ["https://blog.example"])
    add_comment(database, "a" * 32, body="First!", age_s=120)
    add_comment(database, "b" * 32, body=HOSTILE_TEXT, status="pending", age_s=60)
    add_comment(database, "c" * 32, body="Buy now", status="pending", age_s=1)
    redis_client.hincrby(keys.PENDING, "blog|view|/x", 3)
    flush_once(redis_client, database)
    redis_client.hincrby(keys.PENDING, "blog|like|/y", 1)
    redis_client.set(keys.PREFIX + "ws:worker-a", 4, ex=30)
    redis_client.set(keys.PREFIX + "ws:worker-b", 2, ex=30)
    # A notification delivered twice and not acknowledged, one waiting, one dead letter.
    redis_client.xgroup_create(NOTIFICATION_STREAM, NOTIFIER_GROUP, id="0", mkstream=True)
    first = redis_client.xadd(NOTIFICATION_STREAM, {"kind": "comment", "body": "{}"})
    redis_client.xreadgroup(NOTIFIER_GROUP, "worker", {NOTIFICATION_STREAM: ">"}, count=1)
    redis_client.xclaim(NOTIFICATION_STREAM, NOTIFIER_GROUP, "worker", 0, [first])
    redis_client.xadd(NOTIFICATION_STREAM, {"kind": "comment", "body": "{}"})
    redis_client.xadd(dead_letter_stream(NOTIFICATION_STREAM), {"kind": "comment"})

    snapshot = Collector(sources(settings, redis_client, database)).collect()

    assert snapshot.comments_by_status == {"approved": 1, "pending": 2}
    assert snapshot.awaiting_moderation == 2
    assert [comment.id[0] for comment in snapshot.latest_comments] == ["c", "b", "a"]
    assert snapshot.latest_comments[1].text == HOSTILE_TEXT  # stored as is; render escapes
    assert snapshot.flush.batches_total == 1 and snapshot.flush.last_rows == 1
    assert time.time() - snapshot.flush.last_at < 60
    assert snapshot.flush.pending_counters == 1
    assert snapshot.websocket_connections == 6
    notifications = snapshot.streams[0]
    assert notifications.name == NOTIFICATION_STREAM
    assert (notifications.length, notifications.pending, notifications.lag,
            notifications.retries, notifications.dead) == (2, 1, 1, 1, 1)
    assert snapshot.storage.redis_used_memory > 0 and snapshot.storage.redis_keys > 0
    assert snapshot.storage.database_bytes and snapshot.storage.database_bytes > 0
    states = {status.name: status for status in snapshot.services}
    assert states["database"].state == "ok"
    assert states["database"].version.startswith(("SQLite", "PostgreSQL"))
    assert states["redis (server)"].state == "ok" and states["redis (server)"].version
    assert states["web (HTTP)"].state == "down"
    assert snapshot.errors == []
    body = json.loads(snapshot.to_json())
    assert body["awaiting_moderation"] == 2
    assert "\x1b" not in snapshot.to_json()  # JSON carries control characters as \u escapes
    assert HOSTILE_TEXT in [comment["text"] for comment in body["latest_comments"]]


def test_sql_is_read_every_few_seconds_only(settings, database, redis_client):
    add_site(database, "blog", ["https://blog.example"])
    add_comment(database, "a" * 32, status="pending")
    clock = Clock()
    collector = Collector(sources(settings, redis_client, database), clock=clock)
    assert collector.collect().awaiting_moderation == 1
    add_comment(database, "b" * 32, status="pending")
    clock.now += 1
    assert collector.collect().awaiting_moderation == 1  # cached
    clock.now += 5
    assert collector.collect().awaiting_moderation == 2


def test_a_database_outage_is_shown_not_raised(settings, redis_client, database):
    unreachable = open_database("postgresql://nobody@127.0.0.1:9/ovation")
    try:
        snapshot = Collector(sources(settings, redis_client, unreachable)).collect()
    finally:
        open_database(settings.effective_database_url)  # rebind the models for teardown
    states = {status.name: status.state for status in snapshot.services}
    assert states["database"] == "down"
    assert any(error.startswith("comment counts:") for error in snapshot.errors)
    assert snapshot.storage.redis_used_memory > 0  # Redis figures still come


def test_service_states_come_from_the_service_manager(settings, database, redis_client):
    from appliance.operations.services import ServiceState

    def running(_settings):
        return [ServiceState("web", "active", 1234, 90.0, 50 * 2**20, 2, "up"),
                ServiceState("notifier", "failed", None, None, None, 5, "up")]

    snapshot = Collector(DashboardSources(settings, redis_client, database, services=running,
                                          web_url=NO_WEB)).collect()
    web, notifier = snapshot.services[:2]
    assert (web.name, web.state, web.detail) == ("web", "running",
                                                  "pid 1234 · up 90s · 50 MiB · 2 restarts")
    assert web.version
    assert (notifier.state, notifier.version) == ("failed", "")


def test_the_process_table_and_the_websocket_gauges_are_read_every_few_seconds_only(
        settings, database, redis_client):
    # Walking /proc for every process tree and SCANning for the gauges each second cost more
    # than everything else together; the gauges only change every 10 s anyway.
    calls = []

    def services(_settings):
        calls.append(1)
        return []

    clock = Clock()
    redis_client.set(keys.PREFIX + "ws:worker-a", 4, ex=30)
    collector = Collector(DashboardSources(settings, redis_client, database, services=services,
                                           web_url=NO_WEB), clock=clock)
    assert collector.collect().websocket_connections == 4
    redis_client.set(keys.PREFIX + "ws:worker-a", 9, ex=30)
    clock.now += 1
    assert collector.collect().websocket_connections == 4 and len(calls) == 1
    clock.now += collect.SLOW_REFRESH_S
    assert collector.collect().websocket_connections == 9 and len(calls) == 2


def test_the_notification_delivery_queue_is_counted(settings, database, redis_client):
    queue = DeliveryQueue(redis_client, QueuePolicy(max_attempts=2, retry_base_s=10),
                          jitter=lambda: 1.0)
    for target in ("1", "2", "3"):
        queue.add(Delivery(f"new_comment:c{target}", "webhook", target, "blog", "new_comment",
                           {"text": "hi"}))
    first, second, third = sorted(queue.claim(10), key=lambda delivery: delivery.target)
    queue.complete(first)
    assert queue.fail(second, "HTTP 500") == "retrying"
    queue.dead_letter(third, "HTTP 410")

    deliveries = Collector(sources(settings, redis_client, database)).collect().deliveries

    assert deliveries is not None
    # The retrying one waits for its next attempt; the delivered and the dead one are gone.
    assert (deliveries.queued, deliveries.failed_attempts, deliveries.delivered,
            deliveries.dead) == (1, 1, 1, 1)


class SlowWeb:
    """A web process on loopback whose answers can be held back until the test ends."""

    def __init__(self, hold: set[str]) -> None:
        released = self.released = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                if self.path in hold:
                    released.wait(30)
                body = (b'{"status": "ok", "checks": {}}' if self.path == "/readyz"
                        else b'{"info": {"version": "9.9.9"}}')
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow_web(request, monkeypatch) -> Iterator[SlowWeb]:
    # Short waits, so that the held answers time out quickly; nothing here measures speed.
    monkeypatch.setattr(collect, "WEB_PROBE_TIMEOUT_S", 0.3)
    monkeypatch.setattr(collect, "WEB_VERSION_TIMEOUT_S", 0.3)
    web = SlowWeb(request.param)
    yield web
    web.close()


@pytest.mark.parametrize("slow_web", [{"/openapi.json"}], indirect=True)
def test_a_version_that_does_not_come_does_not_make_the_web_down(settings, database,
                                                                 redis_client, slow_web):
    snapshot = Collector(sources(settings, redis_client, database, slow_web.url)).collect()
    web = {status.name: status for status in snapshot.services}["web (HTTP)"]
    assert (web.state, web.version, web.detail) == ("ok", "", slow_web.url)


@pytest.mark.parametrize("slow_web", [set()], indirect=True)
def test_the_web_probe_reads_the_version(settings, database, redis_client, slow_web):
    snapshot = Collector(sources(settings, redis_client, database, slow_web.url)).collect()
    web = {status.name: status for status in snapshot.services}["web (HTTP)"]
    assert (web.state, web.version) == ("ok", "9.9.9")


@pytest.mark.parametrize("slow_web", [{"/readyz"}], indirect=True)
def test_a_web_that_takes_the_connection_and_does_not_answer_is_degraded_not_down(
        settings, database, redis_client, slow_web):
    snapshot = Collector(sources(settings, redis_client, database, slow_web.url)).collect()
    web = {status.name: status for status in snapshot.services}["web (HTTP)"]
    assert web.state == "degraded" and "no answer within" in web.detail


def test_the_web_is_probed_where_the_running_up_listens(settings, database, redis_client):
    # `platformctl up --port N` records its address; without it the settings say port 8700.
    state = {"supervisor_pid": os.getpid(), "web_url": "http://127.0.0.1:18123",
             "processes": {}, "restarts": {}}
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "up.json").write_text(json.dumps(state))
    assert DashboardSources(settings, redis_client, database).web_url == \
        "http://127.0.0.1:18123"
    assert DashboardSources(settings, redis_client, database,
                            web_url="http://127.0.0.1:9/").web_url == "http://127.0.0.1:9"
    (settings.data_dir / "up.json").write_text(json.dumps({**state, "supervisor_pid": 0}))
    assert DashboardSources(settings, redis_client, database).web_url == \
        settings.effective_public_url
