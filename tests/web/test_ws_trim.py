"""Trimming accepted live connections (web/ws_trim.py): every step applies with the Quart and
Hypercorn this project pins, the connection behaves as before, and what is not as expected is
left alone. The asyncio containers it swaps in are checked on their own."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import pytest
import websockets

from appliance.services.sites import add_site
from tests.web.conftest import ORIGIN, SITE, ZERO
from tests.web.in_process_server import served_by_hypercorn
from tests.web.test_live_fanout import totals_event
from web import ws_trim
from web.routes import live as live_route
from web.ws_trim import ALL_STEPS, ShortDeque, trim_accepted

LIVE = f"/api/v1/sites/{SITE}/live"
BROWSER_HEADERS = {  # what a browser sends besides the handshake's own headers
    "Pragma": "no-cache", "Cache-Control": "no-cache",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/131.0.0.0 Safari/537.36",
    "Accept-Language": "en-US,en;q=0.9",
}


@pytest.fixture
def settings(make_settings, database_url):
    # A burst of messages beyond the default budget (100) must reach the handler.
    return make_settings(database_url, ws_messages_per_s=10_000)


@dataclass
class Served:
    app: object
    url: str  # the live socket's
    applied: list[frozenset[str]]  # what each connection's trim applied
    stop: asyncio.Event  # set: Hypercorn stops


@pytest.fixture
async def hypercorn_app(settings, database, registry, monkeypatch):
    """The app served by Hypercorn in this process, as `platformctl serve web` serves it."""
    from hypercorn.protocol import ws_stream

    from web.app import create_app
    from web.ws_compression import DeclinedPerMessageDeflate

    applied: list[frozenset[str]] = []

    def recording_trim(ws) -> frozenset[str]:
        applied.append(trim_accepted(ws))
        return applied[-1]

    monkeypatch.setattr(live_route, "trim_accepted", recording_trim)
    monkeypatch.setattr(ws_stream, "PerMessageDeflate", DeclinedPerMessageDeflate)  # web/asgi.py
    add_site(database, SITE, [ORIGIN])
    app = create_app(settings, registry)
    async with served_by_hypercorn(app) as server:
        yield Served(app, f"ws://127.0.0.1:{server.port}{LIVE}", applied, server.stop)


async def connect(url: str):
    ws = await websockets.connect(url, origin=ORIGIN, compression="deflate",
                                  additional_headers=BROWSER_HEADERS)
    assert json.loads(await ws.recv())["type"] == "hello"  # sent after the trim
    return ws


async def until(condition, timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_every_step_applies_with_the_pinned_hypercorn_and_quart(hypercorn_app):
    """Fails when a Quart, Hypercorn, wsproto or Python upgrade makes a step stop applying:
    see web/ws_trim.py for what each one expects."""
    app, url, applied = hypercorn_app.app, hypercorn_app.url, hypercorn_app.applied
    async with await connect(url) as ws:
        assert applied == [ALL_STEPS]
        await ws.send(json.dumps({"type": "subscribe", "paths": ["/p"]}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
        [subscription] = app.extensions["ovation"].broker.targets(totals_event(0))
        stream = subscription._direct._stream  # Hypercorn's WSStream
        assert stream.scope["headers"] == ()
        assert stream.handshake.accepted and stream.handshake.key is None
        assert type(stream.connection._events) is ShortDeque


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_trimmed_connection_serves_as_before(hypercorn_app):
    url, applied = hypercorn_app.url, hypercorn_app.applied
    runtime = hypercorn_app.app.extensions["ovation"]
    async with await connect(url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "paths": ["/p"]}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
        await runtime.broker.publish(totals_event(7))
        assert json.loads(await asyncio.wait_for(ws.recv(), 2)) == {
            "type": "totals", "path": "/p", "totals": {**ZERO, "like": 7}}
        # A burst, many messages to a read: through both queues (Hypercorn's now on lists),
        # every one answered, in order.
        for number in range(200):
            await ws.send(json.dumps({"type": "interact", "id": f"m{number}", "path": "/q",
                                      "reaction": "view", "visitor": f"visitor-{number:04d}"}))
        answers = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(200)]
        assert [answer.get("id") for answer in answers] == [f"m{n}" for n in range(200)]
        assert answers[-1]["totals"]["view"] == 200
        await ws.send("not json")
        assert json.loads(await ws.recv())["code"] == "invalid_input"
    await until(lambda: runtime.broker.connections == 0 and not runtime.ws_connections)
    # A client that vanishes without a closing handshake is cleaned up the same way.
    dropped = await connect(url)
    await until(lambda: runtime.broker.connections == 1)
    dropped.transport.abort()
    await until(lambda: runtime.broker.connections == 0 and not runtime.ws_connections)
    assert applied == [ALL_STEPS, ALL_STEPS]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_server_still_closes_trimmed_connections_when_it_stops(hypercorn_app):
    ws = await connect(hypercorn_app.url)
    hypercorn_app.stop.set()  # Hypercorn closes it once its graceful timeout (3 s) is over
    await asyncio.wait_for(ws.wait_closed(), 10)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_through_quart_alone_only_quarts_steps_apply(client, monkeypatch):
    applied: list[frozenset[str]] = []
    monkeypatch.setattr(live_route, "trim_accepted",
                        lambda ws: applied.append(trim_accepted(ws)) or applied[-1])
    async with client.websocket(LIVE, headers={"Origin": ORIGIN}) as ws:
        assert json.loads(await ws.receive())["type"] == "hello"
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.receive()) == {"type": "pong"}
    assert applied == [frozenset({ws_trim.REQUEST_HEADERS, ws_trim.SCOPE_HEADERS,
                                  ws_trim.QUART_QUEUE, ws_trim.EVENTS})]


def test_anything_unexpected_is_left_alone():
    class NotQuart:
        headers = {"Origin": ORIGIN}

        async def _send(self, text: str) -> None:
            pass

    odd = NotQuart()
    assert trim_accepted(odd) == frozenset()
    assert odd.headers == {"Origin": ORIGIN}
    assert trim_accepted(object()) == frozenset()


async def test_short_deques_serve_asyncio_queues_as_deques_do():
    queue: asyncio.Queue = asyncio.Queue(maxsize=2)
    assert ws_trim._shorten_queue(queue, items=True)
    assert all(type(getattr(queue, name)) is ShortDeque
               for name in ("_getters", "_putters", "_queue"))
    assert not ws_trim._shorten_queue(asyncio.Queue(), items=True)  # unbounded: left as is
    got: list[int] = []

    async def consume(count: int) -> None:
        for _ in range(count):
            got.append(await queue.get())

    consumer = asyncio.create_task(consume(6))
    await asyncio.sleep(0)  # waits on an empty queue: a getter
    for number in range(6):  # more than it holds: putters wait
        await queue.put(number)
    await asyncio.wait_for(consumer, 2)
    assert got == list(range(6))
    cancelled = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    assert not queue._getters  # a cancelled getter removes itself
    queue.put_nowait(1)
    queue.put_nowait(2)
    blocked = asyncio.create_task(queue.put(3))
    await asyncio.sleep(0)
    assert len(queue._putters) == 1
    assert [queue.get_nowait(), queue.get_nowait()] == [1, 2]
    await asyncio.wait_for(blocked, 2)
    assert queue.get_nowait() == 3 and queue.empty()


async def test_events_wake_every_waiter_with_a_list_of_waiters():
    event = asyncio.Event()
    assert ws_trim._shorten(event, "_waiters", list)
    waiters = [asyncio.create_task(event.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert len(event._waiters) == 3
    event.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 2) == [True, True, True]
    assert event._waiters == []
    event.clear()
    late = asyncio.create_task(event.wait())
    await asyncio.sleep(0)
    late.cancel()
    await asyncio.sleep(0)
    assert event._waiters == []
