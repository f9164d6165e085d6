"""The live WebSocket through Quart's test client, on real Redis (pub/sub included) and SQL."""

from __future__ import annotations

import asyncio
import json

import pytest
from quart.testing.connections import WebsocketResponseError

from appliance.services.sites import add_site
from appliance.storage import counter_store as keys
from tests.web.conftest import (
    API,
    ORIGIN,
    OTHER_VISITOR,
    SITE,
    VISITOR,
    ZERO,
    like,
    totals_of,
)
from web.app import create_app

LIVE = f"{API}/live"
PUSH_TIMEOUT_S = 1.5  # pushes are coalesced over live_coalesce_ms (250 ms by default)


async def frame(ws, timeout: float = 2.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.receive(), timeout))


async def request(ws, message: dict | str | bytes) -> dict:
    await ws.send(message if isinstance(message, (str, bytes)) else json.dumps(message))
    return await frame(ws)


async def no_frame_within(ws, seconds: float) -> None:
    with pytest.raises(TimeoutError):
        extra = await asyncio.wait_for(ws.receive(), seconds)
        pytest.fail(f"unexpected frame {extra}")


def socket(client, origin: str | None = ORIGIN):
    return client.websocket(LIVE, headers={"Origin": origin} if origin else {})


async def test_hello_names_the_site_and_its_reactions(client):
    async with socket(client) as ws:
        assert await frame(ws) == {"type": "hello", "site": "blog",
                                   "reactions": ["view", "like", "applause"]}


async def test_subscribe_returns_the_initial_totals(client):
    await like(client, "/a")
    async with socket(client) as ws:
        await frame(ws)
        subscribed = await request(ws, {"type": "subscribe", "paths": ["/a/", "/b"],
                                        "visitor": VISITOR})
    assert subscribed == {"type": "subscribed", "pages": [
        {"path": "/a", "totals": {**ZERO, "like": 1}, "visitor": {"like": True, "applause": 0}},
        {"path": "/b", "totals": ZERO, "visitor": {"like": False, "applause": 0}},
    ]}


async def test_interact_returns_a_result_and_counts(client):
    async with socket(client) as ws:
        await frame(ws)
        result = await request(ws, {"type": "interact", "id": "m1", "path": "/p",
                                    "reaction": "applause", "amount": 7, "visitor": VISITOR})
        assert result == {"type": "result", "id": "m1", "path": "/p", "applied": 7,
                          "totals": {**ZERO, "applause": 7},
                          "visitor": {"like": False, "applause": 7}}
        again = await request(ws, {"type": "interact", "path": "/p", "reaction": "like",
                                   "visitor": VISITOR})
        assert again["id"] is None and again["applied"] == 1
    assert await totals_of(client) == {**ZERO, "applause": 7, "like": 1}


async def test_ping_answers_pong(client):
    async with socket(client) as ws:
        await frame(ws)
        assert await request(ws, {"type": "ping"}) == {"type": "pong"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # SQL plays no part
@pytest.mark.parametrize(("message", "code"), [
    ("not json", "invalid_input"),
    ('{"type": "subscribe", "paths": ["/p"]', "invalid_input"),
    (b"\xff\xfe\xfd", "invalid_input"),
    ("[" * 5000 + "]" * 5000, "invalid_input"),
    ("[]", "invalid_input"),
    ("{}", "invalid_input"),
    ({"type": "shout"}, "invalid_input"),
    ({"type": "subscribe"}, "invalid_input"),
    ({"type": "subscribe", "paths": []}, "invalid_input"),
    ({"type": "subscribe", "paths": [f"/{n}" for n in range(101)]}, "invalid_input"),
    ({"type": "subscribe", "paths": ["/p"], "visitor": "x"}, "invalid_input"),
    ({"type": "subscribe", "paths": ["/p"], "extra": 1}, "invalid_input"),
    ({"type": "subscribe", "paths": ["/%ff"]}, "invalid_path"),
    ({"type": "unsubscribe", "paths": ["/a\x00"]}, "invalid_path"),
    ({"type": "interact", "path": "/p", "reaction": "clap", "visitor": VISITOR},
     "unknown_reaction"),
    ({"type": "interact", "path": "/p", "reaction": "applause", "amount": False,
      "visitor": VISITOR}, "invalid_input"),
    ({"type": "interact", "path": "/p", "reaction": "applause", "amount": 0,
      "visitor": VISITOR}, "invalid_input"),
    ({"type": "interact", "path": "/p", "reaction": "like", "action": "toggle",
      "visitor": VISITOR}, "invalid_input"),
    ({"type": "interact", "path": "/p", "reaction": "like", "visitor": "short"},
     "invalid_input"),
    ({"type": "interact", "path": "/" + "é" * 400, "reaction": "like", "visitor": VISITOR},
     "invalid_path"),
    ({"type": "interact", "path": "/p", "reaction": "like", "visitor": VISITOR,
      "id": "x" * 65}, "invalid_input"),
    ('{"type": "interact", "path": "/\\ud800", "reaction": "like", "visitor": "visitor-aaaa"}',
     "invalid_input"),
])
async def test_a_bad_message_gets_an_error_frame_and_the_socket_keeps_working(
        client, redis_client, message, code):
    async with socket(client) as ws:
        await frame(ws)
        error = await request(ws, message)
        assert error["type"] == "error" and error["code"] == code, error
        assert isinstance(error["message"], str) and error["message"]
        assert await request(ws, {"type": "ping"}) == {"type": "pong"}
        result = await request(ws, {"type": "interact", "id": "ok", "path": "/p",
                                    "reaction": "like", "visitor": VISITOR})
        assert result["type"] == "result" and result["applied"] == 1
    assert redis_client.hgetall(keys.STATS) == {"like": "1"}  # only the good interaction


async def test_an_error_frame_echoes_the_message_id(client):
    async with socket(client) as ws:
        await frame(ws)
        error = await request(ws, {"type": "interact", "id": "m7", "path": "/p",
                                   "reaction": "clap", "visitor": VISITOR})
    assert error["id"] == "m7" and error["code"] == "unknown_reaction"


async def test_too_many_subscriptions_are_refused(client):
    async with socket(client) as ws:
        await frame(ws)
        for batch in range(2):
            paths = [f"/{batch}/{n}" for n in range(100)]
            assert (await request(ws, {"type": "subscribe", "paths": paths}))["type"] == \
                "subscribed"
        error = await request(ws, {"type": "subscribe", "paths": ["/one-more"]})
        assert error["type"] == "error" and error["code"] == "too_many_subscriptions"
        assert await request(ws, {"type": "ping"}) == {"type": "pong"}


async def test_a_foreign_origin_is_refused_before_the_handshake(client):
    with pytest.raises(WebsocketResponseError) as refused:
        async with socket(client, "https://evil.example") as ws:
            await frame(ws)
    assert refused.value.response.status_code == 403
    body = await refused.value.response.get_json()
    assert body["error"]["code"] == "origin_not_allowed"


async def test_an_unknown_site_is_refused_before_the_handshake(client):
    with pytest.raises(WebsocketResponseError) as refused:
        async with client.websocket("/api/v1/sites/nope/live") as ws:
            await frame(ws)
    assert refused.value.response.status_code == 404
    assert (await refused.value.response.get_json())["error"]["code"] == "unknown_site"


async def test_a_socket_without_origin_is_allowed(client):
    async with socket(client, None) as ws:
        assert (await frame(ws))["type"] == "hello"


async def test_totals_are_pushed_live_after_an_interaction(client):
    async with socket(client) as ws:
        await frame(ws)
        await request(ws, {"type": "subscribe", "paths": ["/p"]})
        response = await like(client)  # over HTTP: the push comes back through Redis pub/sub
        assert response.status_code == 200
        pushed = await frame(ws, PUSH_TIMEOUT_S)  # the leading edge: no coalescing wait
        assert pushed == {"type": "totals", "path": "/p", "totals": {**ZERO, "like": 1}}


COALESCE_MS_FOR_BURSTS = 4000


@pytest.fixture
async def patient_client(settings, database, registry):
    """A coalescing window far wider than a burst takes, however loaded the machine: the test
    counts pushes, and must not depend on how fast five requests go through."""
    add_site(database, SITE, [ORIGIN], title="A blog")
    quart_app = create_app(settings.model_copy(update={
        "live_coalesce_ms": COALESCE_MS_FOR_BURSTS}), registry)
    quart_app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = 0.01
    async with quart_app.test_app() as test_app:
        yield test_app.test_client()


async def test_a_burst_of_interactions_is_coalesced(patient_client):
    client = patient_client
    async with socket(client) as watcher, socket(client) as actor:
        await frame(watcher)
        await frame(actor)
        await request(watcher, {"type": "subscribe", "paths": ["/p"]})
        for n in range(5):
            result = await request(actor, {"type": "interact", "path": "/p",
                                           "reaction": "applause", "amount": 2,
                                           "visitor": f"visitor-{n:04d}"})
            assert result["applied"] == 2
        # The first change is pushed at once (leading edge), the rest of the burst, inside
        # the coalescing interval, rides on one more push that carries the final totals.
        pushed = [await frame(watcher, PUSH_TIMEOUT_S)]
        while pushed[-1]["totals"]["applause"] < 10:
            pushed.append(await frame(watcher, COALESCE_MS_FOR_BURSTS / 1000 + PUSH_TIMEOUT_S))
        assert pushed[-1] == {"type": "totals", "path": "/p", "totals": {**ZERO, "applause": 10}}
        assert len(pushed) <= 2
        await no_frame_within(watcher, 0.5)  # the burst gave at most two pushes, not five
        await no_frame_within(actor, 0.05)  # the actor did not subscribe to /p


async def test_pushes_reach_only_subscribers_of_the_page(client):
    async with socket(client) as ws:
        await frame(ws)
        await request(ws, {"type": "subscribe", "paths": ["/a"]})
        await like(client, "/b")
        await no_frame_within(ws, 0.5)
        await like(client, "/a", OTHER_VISITOR)
        assert (await frame(ws, PUSH_TIMEOUT_S))["path"] == "/a"


async def test_unsubscribe_stops_the_pushes(client):
    async with socket(client) as ws:
        await frame(ws)
        await request(ws, {"type": "subscribe", "paths": ["/p"]})
        assert await request(ws, {"type": "unsubscribe", "paths": ["/p/"]}) == {
            "type": "unsubscribed", "paths": ["/p/"]}
        await like(client)
        await no_frame_within(ws, 0.5)


async def test_the_broker_tracks_open_sockets(client):
    async with socket(client) as ws:
        await frame(ws)
        await asyncio.sleep(0)
        runtime = client.app.extensions["ovation"]
        assert runtime.broker.connections == 1
    assert runtime.broker.connections == 0


async def test_a_change_pushed_while_subscribing_reaches_the_new_subscriber(app, client):
    """Found by tests/reliability: `subscribe` followed the pages only after reading their
    totals, so a change pushed during that read never reached the subscriber, which kept the
    older totals until the page changed again."""
    counters = app.app.extensions["ovation"].counters
    read = counters.totals

    async def read_then_change(*args, **kwargs):
        pages = await read(*args, **kwargs)
        assert (await like(client, "/p")).status_code == 200  # a change after the read ...
        await asyncio.sleep(PUSH_TIMEOUT_S)  # ... pushed before the subscribe goes on
        return pages

    counters.totals = read_then_change
    try:
        async with socket(client) as ws:
            await frame(ws)
            subscribed = await request(ws, {"type": "subscribe", "paths": ["/p"]})
            assert subscribed["pages"][0]["totals"] == ZERO  # read before the change
            assert await frame(ws, 3) == {"type": "totals", "path": "/p",
                                          "totals": {**ZERO, "like": 1}}
    finally:
        del counters.totals
