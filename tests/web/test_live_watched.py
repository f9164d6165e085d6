"""Live pushes only for pages some socket follows (web/watched_pages.py): a change to a page
nobody watches asks for no push; a page followed on one worker is pushed whichever worker its
change reaches; the mark is a lease, renewed while a socket follows the page and lapsing after
its last socket left or its worker died. Real Redis (pub/sub included), real sockets, and a
real `platformctl serve web` for the worker that dies."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis
import websockets

from appliance import events
from appliance.events import LiveEvent
from appliance.services.sites import add_site
from appliance.storage import counter_store as keys
from tests.conftest import free_port, start_process, stop_process, wait_http
from tests.web.conftest import API, ORIGIN, OTHER_VISITOR, SITE, VISITOR, ZERO, like
from web.app import create_app
from web.watched_pages import WatchedPages

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no SQL part

LEASE_S = 2.0  # short, so that a lapse is seen within the test; renewed every 2/3 s
FRAME_TIMEOUT_S = 5.0  # bounds a failure only: pushes come at once (leading edge)
LIVE = f"{API}/live"


@pytest.fixture
def settings(make_settings, database_url):
    return make_settings(database_url, live_watch_ttl_s=LEASE_S)


@pytest.fixture
async def other_worker(app, settings, registry):
    """A second web worker on the same Redis and database (`app` added the site)."""
    quart_app = create_app(settings, registry)
    quart_app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = 0.01
    async with quart_app.test_app() as test_app:
        yield test_app


def live_socket(client):
    return client.websocket(LIVE, headers={"Origin": ORIGIN})


async def next_frame(ws, timeout_s: float = FRAME_TIMEOUT_S) -> dict:
    return json.loads(await asyncio.wait_for(ws.receive(), timeout_s))


async def follow(ws, *paths: str) -> dict:
    assert (await next_frame(ws))["type"] == "hello"
    await ws.send(json.dumps({"type": "subscribe", "paths": list(paths)}))
    subscribed = await next_frame(ws)
    assert subscribed["type"] == "subscribed", subscribed
    return subscribed


def watched(redis_client, path: str = "/p") -> bool:
    return redis_client.exists(keys.watched_key(SITE, path)) == 1


def throttled(redis_client, path: str = "/p") -> bool:
    return redis_client.exists(f"{keys.PREFIX}live:{keys.page_member(SITE, path)}") == 1


async def until(condition: Callable[[], bool], timeout_s: float) -> None:
    """Wait for `condition`; the deadline only bounds a failure on a loaded machine."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def next_published(pubsub, timeout_s: float = FRAME_TIMEOUT_S) -> LiveEvent:
    """The next event on the live channel, as a raw Redis subscriber sees it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = await asyncio.to_thread(pubsub.get_message, timeout=0.1)
        if message is not None:
            return LiveEvent.decode(message["data"])
    raise AssertionError("nothing published on the live channel")


@SQLITE_ONLY
async def test_a_change_to_a_page_nobody_watches_asks_for_no_push(client, redis_client):
    runtime = client.app.extensions["ovation"]
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(events.LIVE_CHANNEL)
    try:
        async with live_socket(client) as ws:
            await follow(ws, "/other")  # a socket open, on another page
            assert (await like(client, "/p")).status_code == 200  # over HTTP
            await ws.send(
                json.dumps(
                    {"type": "interact", "path": "/p", "reaction": "like", "visitor": OTHER_VISITOR}
                )
            )  # over the socket
            result = await next_frame(ws)
            assert (result["applied"], result["totals"]["like"]) == (1, 2)
            # Both changed the page; neither took its throttle nor asked for a push.
            assert runtime.live.scheduled == 0
            assert not throttled(redis_client) and not watched(redis_client)
            assert watched(redis_client, "/other")
        async with live_socket(client) as ws:
            subscribed = await follow(ws, "/p")
            assert subscribed["pages"][0]["totals"] == {**ZERO, "like": 2}
            assert watched(redis_client)
            assert (await like(client, "/p", "visitor-cccc")).status_code == 200
            assert runtime.live.scheduled == 1
            pushed = await next_frame(ws)
            assert pushed == {"type": "totals", "path": "/p", "totals": {**ZERO, "like": 3}}
        # The first event on the channel is that push: the two changes before published none.
        assert (await next_published(pubsub)).data["totals"]["like"] == 3
    finally:
        pubsub.close()


@SQLITE_ONLY
async def test_a_page_watched_on_one_worker_is_pushed_by_the_worker_its_change_reaches(
    client, other_worker, redis_client
):
    worker_a = client.app.extensions["ovation"]
    worker_b = other_worker.app.extensions["ovation"]
    async with live_socket(client) as ws:
        await follow(ws, "/p")  # on worker A only
        assert worker_b.broker.followed_pages() == []
        assert (await like(other_worker.test_client(), "/p")).status_code == 200
        assert (worker_a.live.scheduled, worker_b.live.scheduled) == (0, 1)  # B pushes
        assert await next_frame(ws) == {
            "type": "totals",
            "path": "/p",
            "totals": {**ZERO, "like": 1},
        }


@SQLITE_ONLY
async def test_the_mark_lasts_while_a_socket_follows_and_lapses_after_it_left(client, redis_client):
    runtime = client.app.extensions["ovation"]
    async with live_socket(client) as ws:
        await follow(ws, "/p")
        assert 0 < redis_client.pttl(keys.watched_key(SITE, "/p")) <= LEASE_S * 1000
        await asyncio.sleep(LEASE_S * 1.5)  # longer than a lease: only renewals keep it
        assert watched(redis_client)
        assert (await like(client, "/p")).status_code == 200
        assert runtime.live.scheduled == 1
        assert (await next_frame(ws))["totals"]["like"] == 1
    # Nothing deletes the mark (another worker may follow the page): it lapses.
    await until(lambda: not watched(redis_client), LEASE_S + 10)
    assert (await like(client, "/p", OTHER_VISITOR)).status_code == 200
    assert runtime.live.scheduled == 1


class Followed:
    """The broker, as the leases see it: the pages this worker's sockets follow."""

    def __init__(self, *pages: tuple[str, str]) -> None:
        self.pages = list(pages)

    def followed_pages(self) -> list[tuple[str, str]]:
        return self.pages


def set_calls(redis_client) -> int:
    return redis_client.info("commandstats").get("cmdstat_set", {}).get("calls", 0)


async def test_a_subscribe_waits_for_the_mark_another_is_writing(redis_url, redis_client):
    """Two sockets of one worker follow a page at once: the second must not read its totals
    before the first's mark is in Redis, even if the first socket closes meanwhile."""
    client = aioredis.Redis.from_url(redis_url)
    leases = WatchedPages(client, Followed((SITE, "/p")), ttl_s=30)
    try:
        before = set_calls(redis_client)
        first = asyncio.ensure_future(leases.watch(SITE, ["/p"]))
        await asyncio.sleep(0)  # the first subscribe starts writing the mark ...
        first.cancel()  # ... and its socket closes
        await leases.watch(SITE, ["/p"])
        assert watched(redis_client)
        assert set_calls(redis_client) - before == 1  # one write, shared
        await leases.watch(SITE, ["/p"])  # marked lately: trusted, nothing written
        assert set_calls(redis_client) - before == 1
        await leases.renew()  # the period's one pipeline, for every followed page
        assert set_calls(redis_client) - before == 2
        with pytest.raises(asyncio.CancelledError):
            await first
    finally:
        await client.aclose()


@SQLITE_ONLY
async def test_the_marks_of_a_worker_that_died_lapse(settings, database, redis_client, tmp_path):
    add_site(database, SITE, [ORIGIN])
    port = free_port()
    process = start_process(
        settings.model_copy(update={"bind": f"127.0.0.1:{port}"}),
        "serve",
        "web",
        log=tmp_path / "web.log",
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz")
        async with websockets.connect(
            f"ws://127.0.0.1:{port}{LIVE}", origin=ORIGIN, close_timeout=0.5
        ) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
            await ws.send(json.dumps({"type": "subscribe", "paths": ["/p"], "visitor": VISITOR}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            await asyncio.sleep(LEASE_S * 1.5)
            assert watched(redis_client)  # renewed by that worker
            os.killpg(process.pid, signal.SIGKILL)  # no shutdown hook runs
            process.wait(10)
            await until(lambda: not watched(redis_client), LEASE_S + 10)
    finally:
        stop_process(process)
