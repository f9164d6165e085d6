"""The comment fast path (web/routes/fast_comments.py) answers exactly as the Quart route it stands
in front of: the same status, JSON and headers for the same requests, and the same comments
queued, on real Redis and SQL. The route answers instead when the app has a request hook the
fast path does not reproduce, which is how the fast path turns itself off; the tests use that
to compare the two (as tests/web/test_fast_interactions.py does for interactions). SQLite only:
the fast path reads no SQL of its own.
"""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import redis

from appliance import events
from appliance.services.sites import add_site
from appliance.services.visitors import visitor_hash
from appliance.settings import Settings
from appliance.storage import comment_store
from appliance.storage.site_store import get_site, update_site
from tests.web.conftest import ORIGIN, SITE
from tests.web.test_fast_interactions import app_on, asgi_post
from web.routes.fast_comments import FastComments

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

JSON = {"Content-Type": "application/json"}
FROM_SITE = {**JSON, "Origin": ORIGIN}
HELD = "held"  # a site holding comments with links for moderation
STRICT = "strict"  # a site taking comments on published pages only
BANNED = "visitor-banned"
MAX_LENGTH = 200
RATE_LIMIT = 12  # comments a window on a site from one network (the test client's)
FIRST = "{first}"  # in a parent_id: the id of the first comment accepted in this run


def post(body: dict | bytes, headers: dict | None = None, site: str = SITE) -> tuple:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return (f"/api/v1/sites/{site}/comments", data, FROM_SITE if headers is None else headers)


def comment(visitor: str, text: str = "Hello **world**", path: str = "/p", **more) -> dict:
    return {"path": path, "body": text, "visitor": visitor, **more}


# Every kind of answer, in an order that also runs into the network's limit on the site
# (RATE_LIMIT comments a window; a comment refused before it is queued is not charged, a
# duplicate is). `handed`: Quart's route answers it even when the
# fast path is on (not a well-formed JSON comment).
SEQUENCE = [
    (post(comment("visitor-0001")), 202, False),
    (post(comment("visitor-0001")), 409, False),  # the same comment twice
    (post(comment("visitor-0001", path="/p/")), 409, False),  # the same page
    (post(comment("visitor-0002", "a reply", parent_id=FIRST)), 202, False),
    (post(comment("visitor-0002", "to nothing", parent_id="0" * 32)), 400, False),
    (post(comment("visitor-0002", "elsewhere", path="/q", parent_id=FIRST)), 400, False),
    (post(comment("visitor-0003", "From the server"), JSON), 202, False),  # no Origin
    (post(comment("visitor-0003", "From elsewhere"), {**JSON, "Origin": "https://evil.example"}),
     403, False),
    (post(comment("visitor-0003", "Nobody"), site="nosuch"), 404, False),
    (post(comment("visitor-0003", "x" * (MAX_LENGTH + 1))), 400, False),  # too long
    (post(comment("visitor-0003", " \n\t ")), 400, False),  # empty once stripped
    (post(comment("visitor-0003", "[](https://x.example)")), 400, False),  # nothing visible
    (post(comment("visitor-0003", "bad e-mail", author_email="not-an-address")), 400, False),
    (post(comment("visitor-0003", "bad site", author_website="ftp://x.example")), 400, False),
    (post(comment("visitor-0004", "All of it", author_name="<b>Ann</b>\x07",
                  author_email="ann@example.org", author_website="https://ann.example",
                  notify_replies=True)), 202, False),
    (post(comment("visitor-0005", "before\x00after \x1b[31m")), 202, False),
    (post(comment("visitor-0006", "Buy pills", hp="https://spam.example")), 202, False),
    (post(comment(BANNED, "Let me in")), 403, False),  # banned
    (post(comment("visitor-0007", "see https://x.example"), site=HELD), 202, False),  # pending
    (post(comment("visitor-0007", "no link"), site=HELD), 202, False),
    (post(comment("visitor-0008", "a draft", path="/draft"), site=STRICT), 404, False),
    (post(comment("short", "bad visitor")), 400, True),  # the schema refuses it
    (post(comment("visitor-0009", "extra", colour="red")), 400, True),
    (post(b'{"path": "/p", ', FROM_SITE), 400, True),  # not JSON
    (post(b'["a list"]', FROM_SITE), 400, True),
    (post(b'{"path": "/p", "body": "caf\xe9", "visitor": "visitor-0009"}'), 400, True),
    (post(comment("visitor-0009", "plain"), {"Content-Type": "text/plain", "Origin": ORIGIN}),
     400, True),
    (post(comment("visitor-0009", "no type"), {"Origin": ORIGIN}), 400, True),
    (post(comment("visitor-0009", "x" * 70_000)), 413, True),  # over MAX_CONTENT_LENGTH
    (post(comment("visitor-0010", "typed +json"),
          {"Content-Type": "application/vnd.x+json", "Origin": ORIGIN}), 202, True),
    (post(b'{"path": "/p", "body": "once", "body": "twice", "visitor": "visitor-0011"}'),
     202, False),  # the last key wins, as in json.loads
    (post(comment("visitor-0012", "Ünïcödé ✓ <script>x</script>")), 202, False),
    (post(comment("visitor-0013", "one more")), 202, False),
    (post(comment("visitor-0014", "and another")), 202, False),
    (post(comment("visitor-0015", "over the limit")), 429, False),  # the network's limit
    (post(comment("visitor-0016", "still over")), 429, False),
]
RANDOM_FIELDS = re.compile(r'"(id|edit_token|created_at|editable_until|parent_id)":"[^"]*"')


def comparable(status: int, headers, body: bytes) -> tuple:
    """The answer, with what differs from run to run (ids, tokens, clock readings) left out."""
    text = RANDOM_FIELDS.sub(r'"\1":"N"', body.decode())
    text = re.sub(r"try again in \d+ s", "try again in N s", text)
    text = re.sub(r'"retry_after_s":\d+', '"retry_after_s":N', text)
    kept = sorted((name.lower(), "N" if name.lower() == "retry-after" else value)
                  for name, value in headers.items() if name.lower() != "x-answered-by")
    return status, kept, text


def queued_events(redis_url: str) -> list[tuple]:
    """The comments on the submission stream, without their ids, token hashes and times."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        out = []
        for _, fields in client.xrange(events.SUBMISSION_STREAM):
            event = json.loads(fields["body"])
            for name in ("id", "edit_token_hash", "created_at", "parent_id"):
                event[name] = bool(event.get(name))
            out.append((fields["kind"], event))
        return out
    finally:
        client.close()


async def answers(make_settings, database_url, redis_url, route: bool) -> tuple[list, list, int]:
    """The answers to SEQUENCE from a fresh Redis, the comments queued, and how many the fast
    path handed to Quart; `route`: Quart's route answers them all."""
    redis.Redis.from_url(redis_url).flushall()
    settings = make_settings(database_url, comment_max_length=MAX_LENGTH,
                             comment_rate_limit=RATE_LIMIT, comment_rate_window_s=60)
    app = app_on(settings, route)
    fast = app.asgi_app._inner
    assert isinstance(fast, FastComments)
    handed = []
    quart_app = fast._inner

    async def spy(scope, receive, send):
        handed.append(scope.get("method"))  # lifespan and HTTP scopes alike
        await quart_app(scope, receive, send)

    fast._inner = spy
    out = []
    first = None
    async with app.test_app() as running:
        assert fast.enabled is not route  # an unknown hook turns the fast path off
        client = running.test_client()
        for (url, data, headers), _status, by_quart in SEQUENCE:
            if first is not None:
                data = data.replace(FIRST.encode(), first.encode())
            before = handed.count("POST")
            response = await client.post(url, data=data, headers=headers)
            assert (response.headers.get("X-Answered-By") == "quart") is route, url
            assert handed.count("POST") - before == (1 if route or by_quart else 0), data
            body = await response.get_data()
            if first is None and response.status_code == 202:
                first = json.loads(body)["id"]
            out.append(comparable(response.status_code, response.headers, body))
    return out, queued_events(redis_url), handed.count("POST")


def prepare_sites(database, settings: Settings) -> None:
    add_site(database, SITE, [ORIGIN])
    add_site(database, HELD, [ORIGIN])
    update_site(database, dataclasses.replace(get_site(database, HELD), moderation="links"))
    add_site(database, STRICT, [ORIGIN], accept_unpublished_pages=False)
    comment_store.add_ban(database, SITE, "visitor",
                          visitor_hash(settings.hashing_key(), SITE, BANNED), "spam")


async def test_the_fast_path_answers_as_the_route(make_settings, database_url, database,
                                                  redis_url, settings):
    prepare_sites(database, settings)
    fast, fast_queued, fast_handed = await answers(make_settings, database_url, redis_url,
                                                   route=False)
    routed, routed_queued, _ = await answers(make_settings, database_url, redis_url, route=True)
    for (request, _, _), one, other in zip(SEQUENCE, fast, routed, strict=True):
        assert one == other, request
    assert [status for status, _, _ in fast] == [status for _, status, _ in SEQUENCE]
    assert fast_handed == sum(handed for _, _, handed in SEQUENCE)
    # The same comments queued, with the same fields (hashes of the same visitor and
    # network, the same HTML, status and author fields).
    assert fast_queued == routed_queued
    assert len(fast_queued) == 12  # the 202s but the honeypot's
    headers = dict(fast[0][1])  # CORS for the site's page, and the app's security headers
    assert headers["access-control-allow-origin"] == ORIGIN and headers["vary"] == "Origin"
    assert headers["x-content-type-options"] == "nosniff"
    assert "retry-after" in dict(fast[-1][1])


async def test_a_body_in_several_messages(app):
    fast = app.app.asgi_app._inner
    assert isinstance(fast, FastComments) and fast.enabled
    body = json.dumps(comment("visitor-0001")).encode()
    status, answer = await comment_post(app.app, [body[:10], body[10:30], body[30:]])
    assert (status, answer["status"], answer["html"]) == (202, "approved",
                                                         "<p>Hello <strong>world</strong></p>")
    # Not JSON, found once all of it is read: handed to Quart, which reads it again.
    status, answer = await comment_post(app.app, [b'{"path": "/p",', b' "body": '])
    assert (status, answer["error"]["code"]) == (400, "invalid_json")


async def test_a_client_gone_before_its_body_queues_nothing(app, redis_client):
    body = json.dumps(comment("visitor-0001")).encode()
    assert await comment_post(app.app, [body[:20]], disconnect=True) == (None, None)
    assert redis_client.xlen(events.SUBMISSION_STREAM) == 0


async def comment_post(app, body_chunks: list[bytes], disconnect: bool = False) -> tuple:
    """POST a comment straight to the ASGI app, its body in several messages."""
    return await asgi_post(app, body_chunks, disconnect, route="comments")


async def test_redis_unreachable_is_answered_as_the_route(database_url, database, registry,
                                                          tmp_path):
    add_site(database, SITE, [ORIGIN])
    settings = Settings(database_url=database_url, data_dir=tmp_path / "data",
                        secret_key="test-secret", redis_url=f"unix://{tmp_path}/no-redis.sock")
    out = []
    for route in (False, True):
        app = app_on(settings, route)
        async with app.test_app() as running:
            assert app.asgi_app._inner.enabled is not route
            client = running.test_client()
            url, data, headers = post(comment("visitor-0001"))
            response = await client.post(url, data=data, headers=headers)
            out.append(comparable(response.status_code, response.headers,
                                  await response.get_data()))
    assert out[0] == out[1]
    assert out[0][0] == 503 and '"service_unavailable"' in out[0][2]
