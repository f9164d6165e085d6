"""Live fan-out: the broker writes each event's frame, encoded once, to every subscriber without
a task per connection, and holds back only a client that stopped reading; pushes are at once
for an isolated change and coalesced under a burst, across workers; and Hypercorn declines
permessage-deflate. Real Redis and a real `platformctl serve web` where a server is needed."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from appliance import events
from appliance.events import LiveEvent
from appliance.services.sites import add_site
from appliance.storage import counter_store as keys
from tests.conftest import free_port, start_process, stop_process, wait_http
from tests.web.conftest import ORIGIN, SITE, ZERO, like
from tests.web.in_process_server import served_by_hypercorn
from web.broker import QUEUE_SIZE, Broker, Subscription, event_frame
from web.live_publisher import LivePublisher
from web.ws_direct import DirectWriter, text_frame

LIVE = f"/api/v1/sites/{SITE}/live"


class Client:
    """What a connection's send does, seen from the broker: take the text, or wait for the
    reader (`stall`) until `resume`."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.gate: asyncio.Future | None = None

    def stall(self) -> None:
        self.gate = asyncio.get_running_loop().create_future()

    def resume(self) -> None:
        gate, self.gate = self.gate, None
        gate.set_result(None)

    async def send(self, text: str) -> None:
        if self.gate is not None:
            await self.gate
        self.received.append(text)


def totals_event(like_total: int, path: str = "/p") -> LiveEvent:
    return LiveEvent("totals", SITE, path, {"totals": {**ZERO, "like": like_total}})


def subscribed(broker: Broker, client: Client, path: str = "/p") -> Subscription:
    subscription = Subscription(SITE, client.send)
    broker.register(subscription)
    broker.subscribe(subscription, path)
    return subscription


# -- the broker ----------------------------------------------------------------------------------

async def test_an_event_is_encoded_once_and_written_to_every_subscriber_without_tasks():
    broker = Broker()
    clients = [Client() for _ in range(600)]  # more than one stretch between two yields
    for client in clients:
        subscribed(broker, client)
    tasks_before = len(asyncio.all_tasks())
    assert await broker.publish(totals_event(3)) == 600
    assert len(asyncio.all_tasks()) == tasks_before  # written inline, no task per connection
    texts = [client.received for client in clients]
    assert all(len(received) == 1 for received in texts)
    assert all(received[0] is texts[0][0] for received in texts)  # the very same string
    assert json.loads(texts[0][0]) == {"type": "totals", "path": "/p",
                                       "totals": {**ZERO, "like": 3}}


async def test_a_client_that_stops_reading_holds_back_only_itself():
    broker = Broker()
    slow, fast = Client(), Client()
    slow_subscription = subscribed(broker, slow)
    subscribed(broker, fast)
    slow.stall()
    for total in range(1, 4):
        await broker.publish(totals_event(total))
    assert [json.loads(text)["totals"]["like"] for text in fast.received] == [1, 2, 3]
    assert slow.received == []
    slow.resume()
    for _ in range(5):
        await asyncio.sleep(0)
    assert [json.loads(text)["totals"]["like"] for text in slow.received] == [1, 2, 3]
    assert slow_subscription.dropped == 0
    await broker.publish(totals_event(4))  # and it is written inline again
    assert json.loads(slow.received[-1])["totals"]["like"] == 4


async def test_a_stalled_client_keeps_only_the_newest_frames():
    broker = Broker()
    slow = Client()
    subscription = subscribed(broker, slow)
    slow.stall()
    total_events = QUEUE_SIZE + 10
    for total in range(1, total_events + 1):
        await broker.publish(totals_event(total))
    # The first write waits on the client; of the rest, the oldest beyond the backlog go.
    assert subscription.dropped == total_events - 1 - QUEUE_SIZE
    slow.resume()
    for _ in range(5):
        await asyncio.sleep(0)
    likes = [json.loads(text)["totals"]["like"] for text in slow.received]
    assert likes == [1, *range(total_events - QUEUE_SIZE + 1, total_events + 1)]


async def test_unregistering_a_stalled_client_cancels_its_writer():
    broker = Broker()
    slow = Client()
    # Other fixtures' tasks may share this loop (the session's browser driver): count ours.
    before = asyncio.all_tasks()
    subscription = subscribed(broker, slow)
    slow.stall()
    await broker.publish(totals_event(1))
    writers = [task for task in asyncio.all_tasks() - before
               if task is not asyncio.current_task()]
    assert len(writers) == 1
    broker.unregister(subscription)
    await asyncio.sleep(0)
    assert writers[0].cancelled()
    assert broker.connections == 0


class Transport:
    """What a direct writer sees of a connection: open or closing, taking frames or lagging."""

    def __init__(self, state: bool | None = True) -> None:
        self.state = state  # True: takes frames; False: lags; None: closing
        self.frames: list[bytes] = []

    def write(self, frame: bytes) -> bool | None:
        if self.state:
            self.frames.append(frame)
        return self.state


async def test_frames_go_straight_to_the_socket_and_the_usual_way_only_when_it_lags():
    broker = Broker()
    client, transport = Client(), Transport()
    subscription = Subscription(SITE, client.send, transport)
    broker.register(subscription)
    broker.subscribe(subscription, "/p")
    await broker.publish(totals_event(1))
    assert transport.frames == [text_frame(event_frame(totals_event(1)))]
    assert client.received == []  # not through the ASGI send
    transport.state = False  # the client stopped reading: the usual way, in order
    client.stall()
    await broker.publish(totals_event(2))
    transport.state = True
    await broker.publish(totals_event(3))  # behind the waiting one, not around it
    assert len(transport.frames) == 1
    client.resume()
    for _ in range(5):
        await asyncio.sleep(0)
    assert [json.loads(text)["totals"]["like"] for text in client.received] == [2, 3]
    await broker.publish(totals_event(4))  # caught up: straight to the socket again
    assert len(transport.frames) == 2
    transport.state = None  # closing: nothing is written, nothing waits
    await broker.publish(totals_event(5))
    assert len(transport.frames) == 2 and len(client.received) == 2


async def test_own_frames_go_straight_to_the_socket_and_wait_behind_a_lagging_backlog():
    """A connection's own answers (`result`, `error`...) take the direct way too, never
    overtake pushes already waiting on a lagging client, and are never dropped or held."""
    broker = Broker()
    client, transport = Client(), Transport()
    subscription = Subscription(SITE, client.send, transport)
    broker.register(subscription)
    broker.subscribe(subscription, "/p")
    await subscription.write('{"type":"result","id":"1"}')
    assert transport.frames == [text_frame('{"type":"result","id":"1"}')]
    transport.state = False  # lagging: a push waits the usual way
    client.stall()
    await broker.publish(totals_event(2))
    transport.state = True
    answer = asyncio.create_task(subscription.write('{"type":"result","id":"2"}'))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not answer.done() and len(transport.frames) == 1  # behind the waiting push
    client.resume()
    await asyncio.wait_for(answer, 2)
    assert [json.loads(text).get("id") for text in client.received] == [None, "2"]
    subscription.hold()  # while `subscribe` reads totals: pushes wait, answers do not
    await subscription.write('{"type":"subscribed"}')
    assert transport.frames[-1] == text_frame('{"type":"subscribed"}')
    subscription.release()


def test_a_text_frame_is_what_rfc_6455_says():
    assert text_frame("hi") == b"\x81\x02hi"
    assert text_frame("é" * 100)[:4] == b"\x81\x7e\x00\xc8"  # 200 bytes: 16-bit length
    assert text_frame("x" * 70000)[:10] == b"\x81\x7f" + (70000).to_bytes(8, "big")


async def test_a_failing_connection_does_not_stop_the_others():
    broker = Broker()

    async def closed(text: str) -> None:
        raise RuntimeError("the connection is closing")

    after = Client()
    broken = Subscription(SITE, closed)
    broker.register(broken)
    broker.subscribe(broken, "/p")
    subscribed(broker, after)
    assert await broker.publish(totals_event(1)) == 2
    assert len(after.received) == 1


async def test_site_wide_and_personal_events_reach_whom_they_should():
    broker = Broker()
    reader, other_page, visitor_page = Client(), Client(), Client()
    subscribed(broker, reader, "/a")
    subscribed(broker, other_page, "/b")
    personal = subscribed(broker, visitor_page, "/b")
    personal.visitor = "hash-of-ann"
    await broker.publish(LiveEvent("new_post", SITE, None, {"path": "/c", "title": "C"}))
    assert [len(c.received) for c in (reader, other_page, visitor_page)] == [1, 1, 1]
    await broker.publish(LiveEvent("notification", SITE, None, {"kind": "reply"},
                                   visitor="hash-of-ann"))
    assert [len(c.received) for c in (reader, other_page, visitor_page)] == [1, 1, 2]
    await broker.publish(totals_event(1, "/a"))
    assert [len(c.received) for c in (reader, other_page, visitor_page)] == [2, 1, 2]


# -- the publisher: leading edge, coalescing, across workers ----------------------------------

@pytest.fixture
def settings(make_settings, database_url):
    # An interval far longer than a push takes: what waits for it is plain to see.
    return make_settings(database_url, live_coalesce_ms=2000)


def live_socket(client):
    return client.websocket(LIVE, headers={"Origin": ORIGIN})


async def next_frame(ws, timeout_s: float) -> dict:
    return json.loads(await asyncio.wait_for(ws.receive(), timeout_s))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # SQL plays no part
async def test_an_isolated_change_is_pushed_without_waiting_for_the_interval(client):
    async with live_socket(client) as ws:
        await next_frame(ws, 2)
        ws_subscribe = {"type": "subscribe", "paths": ["/p"]}
        await ws.send(json.dumps(ws_subscribe))
        await next_frame(ws, 2)
        assert (await like(client)).status_code == 200
        pushed = await next_frame(ws, 1.0)  # well inside the 2 s interval
        assert pushed == {"type": "totals", "path": "/p", "totals": {**ZERO, "like": 1}}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_change_inside_the_interval_waits_for_its_end_and_is_pushed(client):
    async with live_socket(client) as ws:
        await next_frame(ws, 2)
        await ws.send(json.dumps({"type": "subscribe", "paths": ["/p"]}))
        await next_frame(ws, 2)
        await like(client, visitor="visitor-one")
        assert (await next_frame(ws, 1.0))["totals"]["like"] == 1
        await like(client, visitor="visitor-two")
        with pytest.raises(TimeoutError):  # coalesced: not before the interval is over...
            await next_frame(ws, 0.8)
        assert (await next_frame(ws, 3.0))["totals"]["like"] == 2  # ...but then, surely


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_page_pushed_by_one_worker_waits_its_interval_on_another(client, redis_client):
    runtime = client.app.extensions["ovation"]
    other_worker = LivePublisher(runtime, 2.0)  # a second worker on the same Redis
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(events.LIVE_CHANNEL)
    # A socket somewhere follows the page (changes to pages nobody follows are not pushed).
    redis_client.set(keys.watched_key(SITE, "/p"), "1", px=60_000)
    await like(client)  # takes the throttle; this worker pushes the page at once
    first = await published(pubsub, 2.0)
    assert LiveEvent.decode(first).data["totals"]["like"] == 1
    await other_worker.push({(SITE, "/p")})
    assert await published(pubsub, 0.5) is None  # deferred to the end of the interval
    assert (SITE, "/p") in other_worker._later
    pubsub.close()


async def published(pubsub, timeout_s: float) -> str | None:
    """The next message on the live channel within `timeout_s`, or None."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        message = await asyncio.to_thread(pubsub.get_message, timeout=0.1)
        if message is not None:
            return message["data"]
    return None


# -- the handshake, through Hypercorn ------------------------------------------------------------

@pytest.fixture
def web_server(settings, database, tmp_path):
    add_site(database, SITE, [ORIGIN])
    port = free_port()
    process = start_process(settings.model_copy(update={"bind": f"127.0.0.1:{port}"}),
                            "serve", "web", log=tmp_path / "web.log")
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/readyz")
    yield url
    stop_process(process)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_permessage_deflate_is_declined_when_a_client_offers_it(web_server):
    url = web_server.replace("http", "ws") + LIVE
    async with websockets.connect(url, origin=ORIGIN, compression="deflate") as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        assert "permessage-deflate" in ws.request.headers["Sec-WebSocket-Extensions"]
        assert json.loads(await ws.recv())["type"] == "hello"  # uncompressed frames flow
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_hypercorn_connections_are_written_to_directly(settings, database, registry):
    from web.app import create_app

    add_site(database, SITE, [ORIGIN])
    app = create_app(settings, registry)
    async with served_by_hypercorn(app) as server:
        url = f"ws://127.0.0.1:{server.port}{LIVE}"
        async with websockets.connect(url, origin=ORIGIN, compression=None) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
            await ws.send(json.dumps({"type": "subscribe", "paths": ["/p"]}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            broker = app.extensions["ovation"].broker
            [subscription] = broker.targets(totals_event(0))
            assert isinstance(subscription._direct, DirectWriter)
            await broker.publish(totals_event(7))
            assert json.loads(await asyncio.wait_for(ws.recv(), 2)) == {
                "type": "totals", "path": "/p", "totals": {**ZERO, "like": 7}}
