"""The widget's interactions go as `text/plain` "simple" requests, so that a browser sends them
without a CORS preflight first. The interactions route, and only it, reads such a body as JSON,
and only when the request names its Origin: the Origin check then refuses a foreign page as it
would have refused its preflight, and the rate limits charge it like any other interaction.
Both the ASGI fast path and Quart's route (the fast path turned off by an unknown hook) must
answer these requests alike. SQLite only: the SQL database plays no part in it.
"""

from __future__ import annotations

import json
import re

import pytest

from appliance.services.sites import add_site
from appliance.storage import counter_store as keys
from tests.web.conftest import API, ORIGIN, SITE, VISITOR, assert_error
from tests.web.test_fast_interactions import fresh_app

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PLAIN = "text/plain;charset=UTF-8"  # what fetch() sends for a string body with no type
FOREIGN = "https://evil.example"


def view(visitor: str, path: str = "/p") -> bytes:
    return json.dumps({"path": path, "reaction": "view", "visitor": visitor}).encode()


# (body, headers, expected status): text/plain from the site's page is counted; from a foreign
# page refused before anything is recorded or charged; without an Origin refused as before;
# not JSON or not valid refused with the JSON route's own codes; then the network's limit (4
# a minute) refuses the fifth charged request.
SEQUENCE = [
    (view("visitor-0001"), {"Content-Type": PLAIN, "Origin": ORIGIN}, 200),
    (view("visitor-0002"), {"Content-Type": "text/plain", "Origin": ORIGIN}, 200),
    (view("visitor-0003"), {"Content-Type": PLAIN, "Origin": FOREIGN}, 403),
    (view("visitor-0004"), {"Content-Type": PLAIN, "Origin": "null"}, 403),
    (view("visitor-0005"), {"Content-Type": PLAIN}, 400),
    (b'{"path": "/p", ', {"Content-Type": PLAIN, "Origin": ORIGIN}, 400),
    (view("short"), {"Content-Type": PLAIN, "Origin": ORIGIN}, 400),
    (view("visitor-0006"), {"Content-Type": "text/html", "Origin": ORIGIN}, 400),
    (view("visitor-0007"), {"Content-Type": PLAIN, "Origin": ORIGIN}, 200),
    (view("visitor-0008"), {"Content-Type": PLAIN, "Origin": ORIGIN}, 200),
    (view("visitor-0009"), {"Content-Type": PLAIN, "Origin": ORIGIN}, 429),
]
CODES = [
    None,
    None,
    "origin_not_allowed",
    "origin_not_allowed",
    "invalid_input",
    "invalid_json",
    "invalid_input",
    "invalid_input",
    None,
    None,
    "rate_limited",
]


def comparable(status: int, headers, body: bytes) -> tuple:
    """The answer, with a Retry-After's seconds (a clock reading) left out."""
    text = re.sub(r"try again in \d+ s", "try again in N s", body.decode())
    text = re.sub(r'"retry_after_s":\d+', '"retry_after_s":N', text)
    kept = sorted(
        (name.lower(), "N" if name.lower() == "retry-after" else value)
        for name, value in headers.items()
        if name.lower() != "x-answered-by"
    )
    return status, kept, text


async def answers(make_settings, database_url, redis_url, route: bool) -> tuple[list, dict, int]:
    """The answers to SEQUENCE from a fresh Redis, the page's totals after them, and how many
    of them the fast path handed to Quart; `route`: Quart's route answers them all (an
    after_request hook the fast path does not know turns the fast path off)."""
    app = fresh_app(make_settings, database_url, redis_url, 4, route)
    handed = []
    quart_app = app.asgi_app._inner

    async def spy(scope, receive, send):
        handed.append(scope.get("method"))  # lifespan and HTTP scopes alike
        await quart_app(scope, receive, send)

    app.asgi_app._inner = spy
    out = []
    async with app.test_app() as running:
        assert app.asgi_app.enabled is not route
        client = running.test_client()
        for body, headers, _status in SEQUENCE:
            response = await client.post(f"{API}/interactions", data=body, headers=headers)
            assert (response.headers.get("X-Answered-By") == "quart") is route
            out.append(
                comparable(response.status_code, response.headers, await response.get_data())
            )
        totals = await (await client.get(f"{API}/totals", query_string={"path": "/p"})).get_json()
    return out, totals["totals"], handed.count("POST")


async def test_plain_text_from_the_sites_page_is_an_interaction(
    make_settings, database_url, database, redis_url
):
    add_site(database, SITE, [ORIGIN])
    fast, fast_totals, handed = await answers(make_settings, database_url, redis_url, False)
    routed, routed_totals, _ = await answers(make_settings, database_url, redis_url, True)
    # The fast path answered the plain-text interactions itself; Quart only the four bad ones
    # (no Origin, not JSON, not valid, not text/plain).
    assert handed == 4
    for (body, headers, _), one, other in zip(SEQUENCE, fast, routed, strict=True):
        assert one == other, (body, headers)
    assert [status for status, _, _ in fast] == [status for _, _, status in SEQUENCE]
    for (_, sent, _), (_, headers, text), code in zip(SEQUENCE, fast, CODES, strict=True):
        found = re.search(r'"error":\{"code":"(\w+)"', text)
        assert (found[1] if found else None) == code, text
        # CORS is granted to the site's own page only: a foreign page cannot read the answer.
        granted = dict(headers).get("access-control-allow-origin")
        assert granted == (ORIGIN if sent.get("Origin") == ORIGIN else None), (sent, headers)
    assert json.loads(fast[0][2])["applied"] == 1
    # Four views counted (the refused ones recorded nothing), on either path.
    assert fast_totals["view"] == routed_totals["view"] == 4


async def test_only_the_interactions_route_reads_plain_text(client, redis_client):
    headers = {"Content-Type": PLAIN, "Origin": ORIGIN}
    comment = json.dumps({"path": "/p", "body": "Hello", "visitor": VISITOR})
    await assert_error(
        await client.post(f"{API}/comments", data=comment, headers=headers), 400, "invalid_input"
    )
    batch = json.dumps({"paths": ["/p"]})
    await assert_error(
        await client.post(f"{API}/totals/batch", data=batch, headers=headers), 400, "invalid_input"
    )
    assert redis_client.hgetall(keys.STATS) == {}
