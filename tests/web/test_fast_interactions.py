"""The interaction fast path (web/routes/fast_interactions.py) answers exactly as the Quart route
it stands in front of: the same status, JSON and headers for the same requests, on real Redis
and SQL. The route answers instead when the app has a request hook the fast path does not
reproduce, which is how the fast path turns itself off; the tests use that to compare the two.
SQLite only: the fast path reads no SQL of its own.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest
import redis

from appliance.services.sites import add_site
from appliance.storage import counter_store as keys
from tests.web.conftest import API, ORIGIN, SITE
from web.app import create_app
from web.routes.fast_interactions import FastInteractions

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

JSON = {"Content-Type": "application/json"}
FROM_SITE = {**JSON, "Origin": ORIGIN}


def post(body: dict | bytes, headers: dict | None = None, site: str = SITE) -> tuple:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return (f"/api/v1/sites/{site}/interactions", data, FROM_SITE if headers is None else headers)


def interaction(reaction: str, visitor: str, path: str = "/p", **more) -> dict:
    return {"path": path, "reaction": reaction, "visitor": visitor, **more}


# Every kind of answer, in an order that also moves counters, caps applause and runs into the
# network's limit (8 a minute; refused requests and bad input are not charged).
SEQUENCE = [
    post(interaction("like", "visitor-0001")),
    post(interaction("like", "visitor-0001")),  # liked already: applied 0
    post(interaction("view", "visitor-0002"), JSON),  # no Origin: server-side call
    post(interaction("applause", "visitor-0001", amount=40)),
    post(interaction("applause", "visitor-0001", amount=40)),  # capped
    post(interaction("like", "visitor-0001", action="remove")),
    post(interaction("applause", "visitor-0001", amount=51)),  # over the type's maximum
    post(interaction("clap", "visitor-0001")),  # unknown reaction
    post(interaction("view", "visitor-0001", path="/a%00b")),  # invalid path
    post(interaction("view", "visitor-0001"), {**JSON, "Origin": "https://evil.example"}),
    post(interaction("view", "visitor-0001"), site="nosuch"),
    post(interaction("view", "short")),  # the schema refuses it: Quart's route answers
    post(b'{"path": "/p", ', FROM_SITE),  # not JSON
    post(interaction("view", "visitor-0003"), {"Content-Type": "text/plain"}),
    post(interaction("view", "visitor-0004", path="https://blog.example/p/?utm=x")),
    post(interaction("view", "visitor-0005")),
    post(interaction("view", "visitor-0006")),  # the ninth charged: over the limit
    post(interaction("view", "visitor-0007")),
    post(interaction("like", "visitor-0008")),
]


def comparable(status: int, headers, body: bytes) -> tuple:
    """The answer, with the seconds of a Retry-After (a clock reading) left out."""
    text = re.sub(r"try again in \d+ s", "try again in N s", body.decode())
    text = re.sub(r'"retry_after_s":\d+', '"retry_after_s":N', text)
    kept = sorted((name.lower(), "N" if name.lower() == "retry-after" else value)
                  for name, value in headers.items() if name.lower() != "x-answered-by")
    return status, kept, text


def fresh_app(make_settings, database_url, redis_url, per_min: int, route: bool):
    """An app on a flushed Redis allowing `per_min` interactions per network. `route`: an
    after_request hook the fast path does not know, which turns it off, marks Quart's
    answers with `X-Answered-By: quart`."""
    redis.Redis.from_url(redis_url).flushall()
    settings = make_settings(database_url, rate_interactions_per_min=per_min,
                             rate_interactions_per_visitor_per_min=100)
    return app_on(settings, route)


def app_on(settings, route: bool):
    """An app on `settings`. `route`: an after_request hook the fast paths do not know, which
    turns them off, marks Quart's answers with `X-Answered-By: quart`."""
    app = create_app(settings)
    app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = 0.01
    if route:
        @app.after_request
        async def answered_by_quart(response):
            response.headers["X-Answered-By"] = "quart"
            return response
    return app


async def answers(make_settings, database_url, redis_url, route: bool) -> list[tuple]:
    """The answers to SEQUENCE from a fresh Redis; `route`: Quart's route answers them."""
    app = fresh_app(make_settings, database_url, redis_url, 8, route)
    out = []
    async with app.test_app() as running:
        assert app.asgi_app.enabled is not route  # an unknown hook turns the fast path off
        client = running.test_client()
        for url, data, headers in SEQUENCE:
            response = await client.post(url, data=data, headers=headers)
            assert (response.headers.get("X-Answered-By") == "quart") is route, url
            out.append(comparable(response.status_code, response.headers,
                                  await response.get_data()))
    return out


async def test_the_fast_path_answers_as_the_route(make_settings, database_url, database,
                                                  redis_url):
    add_site(database, SITE, [ORIGIN])
    fast = await answers(make_settings, database_url, redis_url, route=False)
    routed = await answers(make_settings, database_url, redis_url, route=True)
    for request, one, other in zip(SEQUENCE, fast, routed, strict=True):
        assert one == other, request
    statuses = [status for status, _, _ in fast]
    assert statuses == [200] * 6 + [400, 400, 400, 403, 404, 400, 400, 400] + [200] * 2 + [429] * 3


async def asgi_post(app, body_chunks: list[bytes], disconnect: bool = False,
                    route: str = "interactions") -> tuple:
    """POST an interaction (or to another `route` of the site) straight to the ASGI app, its
    body in several messages."""
    messages = [{"type": "http.request", "body": chunk, "more_body": True}
                for chunk in body_chunks]
    if disconnect:
        messages.append({"type": "http.disconnect"})
    else:
        messages[-1]["more_body"] = False
    sent = []

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # nothing more arrives (Quart's reader waits here)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": f"{API}/{route}",
             "raw_path": f"{API}/{route}".encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"localhost"), (b"content-type", b"application/json"),
                         (b"origin", ORIGIN.encode())],
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80), "extensions": {}}
    await asyncio.wait_for(app(scope, receive, send), 10)
    if not sent:
        return None, None
    body = b"".join(message.get("body", b"") for message in sent[1:])
    return sent[0]["status"], json.loads(body)


async def test_a_body_in_several_messages(app):
    body = json.dumps(interaction("like", "visitor-0001")).encode()
    assert isinstance(app.app.asgi_app, FastInteractions) and app.app.asgi_app.enabled
    status, answer = await asgi_post(app.app, [body[:10], body[10:30], body[30:]])
    assert (status, answer["applied"], answer["totals"]["like"]) == (200, 1, 1)
    # Not JSON, found once all of it is read: handed to Quart, which reads it again.
    status, answer = await asgi_post(app.app, [b'{"path": "/p",', b' "reaction": '])
    assert (status, answer["error"]["code"]) == (400, "invalid_json")


async def test_a_client_gone_before_its_body_records_nothing(app, redis_client):
    body = json.dumps(interaction("like", "visitor-0001")).encode()
    assert await asgi_post(app.app, [body[:20]], disconnect=True) == (None, None)
    assert redis_client.hgetall(keys.STATS) == {}


async def test_the_fast_path_asks_for_a_live_push_only_for_a_watched_page(app):
    runtime = app.app.extensions["ovation"]
    assert app.app.asgi_app.enabled
    body = json.dumps(interaction("like", "visitor-0001")).encode()
    assert (await asgi_post(app.app, [body]))[0] == 200
    assert runtime.live.scheduled == 0  # no socket follows /p: no push, no throttle taken
    async with app.test_client().websocket(f"{API}/live", headers={"Origin": ORIGIN}) as ws:
        assert json.loads(await asyncio.wait_for(ws.receive(), 5))["type"] == "hello"
        await ws.send(json.dumps({"type": "subscribe", "paths": ["/p"]}))
        assert json.loads(await asyncio.wait_for(ws.receive(), 5))["type"] == "subscribed"
        body = json.dumps(interaction("like", "visitor-0002")).encode()
        status, answer = await asgi_post(app.app, [body])
        assert (status, answer["totals"]["like"]) == (200, 2)
        assert runtime.live.scheduled == 1
        pushed = json.loads(await asyncio.wait_for(ws.receive(), 5))
        assert pushed == {"type": "totals", "path": "/p", "totals": answer["totals"]}
