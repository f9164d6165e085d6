"""Origins: a site's own origins may call its API (with CORS headers), others get 403 and write
nothing, and server-side calls (no Origin header) are allowed. SQLite only: origins are site
configuration, read once and cached, and the public API tests cover both databases.
"""

from __future__ import annotations

import pytest

from appliance.services.sites import add_site
from tests.web.conftest import (
    API,
    ORIGIN,
    VISITOR,
    ZERO,
    assert_error,
    assert_nothing_recorded,
    like,
    totals_of,
)

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

EVIL = "https://evil.example"
REQUESTS = {
    "interactions": ("POST", f"{API}/interactions",
                     {"json": {"path": "/p", "reaction": "like", "visitor": VISITOR}}),
    "totals": ("GET", f"{API}/totals?path=/p", {}),
    "batch": ("POST", f"{API}/totals/batch", {"json": {"paths": ["/p"]}}),
    "config": ("GET", f"{API}/config", {}),
}


async def send(client, route: str, origin: str | None = None):
    method, url, kwargs = REQUESTS[route]
    headers = {"Origin": origin} if origin is not None else {}
    return await client.open(url, method=method, headers=headers, **kwargs)


@pytest.mark.parametrize("route", list(REQUESTS))
async def test_an_allowed_origin_gets_cors_headers(client, route):
    response = await send(client, route, ORIGIN)
    assert response.status_code == 200, await response.get_data(as_text=True)
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in response.headers["Vary"]


async def test_an_allowed_origin_writes(client):
    response = await like(client, Origin=ORIGIN)
    assert (await response.get_json())["applied"] == 1
    assert await totals_of(client) == {**ZERO, "like": 1}


@pytest.mark.parametrize("origin", [
    EVIL,
    "https://blog.example.evil.example",
    "http://blog.example",  # another scheme is another origin
    "https://blog.example:8443",
    "null",  # sandboxed iframes, file:// pages
    "https://blog.example:99999",  # not even a valid port
    "not a url",
    "https://blog.example/path",
])
async def test_a_foreign_origin_is_refused_and_writes_nothing(client, redis_client, origin):
    response = await like(client, Origin=origin)
    await assert_error(response, 403, "origin_not_allowed")
    assert "Access-Control-Allow-Origin" not in response.headers
    await assert_nothing_recorded(client, redis_client)


@pytest.mark.parametrize("route", list(REQUESTS))
async def test_every_public_route_refuses_a_foreign_origin(client, route):
    response = await send(client, route, EVIL)
    await assert_error(response, 403, "origin_not_allowed")
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_another_sites_origin_is_foreign(client, database, redis_client):
    add_site(database, "other", ["https://other.example"])
    response = await like(client, Origin="https://other.example")
    await assert_error(response, 403, "origin_not_allowed")
    await assert_nothing_recorded(client, redis_client)


async def test_origins_match_in_their_normal_form(client):
    response = await like(client, Origin="HTTPS://Blog.Example:443")
    assert response.status_code == 200, await response.get_data(as_text=True)


@pytest.mark.parametrize("route", list(REQUESTS))
async def test_a_server_side_call_without_origin_is_allowed(client, route):
    response = await send(client, route)
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_the_appliances_own_origin_is_allowed(client):
    """The demo page and /docs call the API from Ovation's own origin."""
    response = await like(client, Origin="http://localhost")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost"


@pytest.mark.parametrize("route", list(REQUESTS))
async def test_preflight_from_an_allowed_origin(client, route):
    _, url, _ = REQUESTS[route]
    response = await client.options(url, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert response.status_code in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST"} <= methods
    assert "content-type" in response.headers["Access-Control-Allow-Headers"].lower()
    assert int(response.headers["Access-Control-Max-Age"]) > 0


async def test_preflight_from_a_foreign_origin_gets_no_cors_headers(client, redis_client):
    response = await client.options(f"{API}/interactions", headers={
        "Origin": EVIL, "Access-Control-Request-Method": "POST"})
    assert response.status_code < 500
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Methods" not in response.headers
    await assert_nothing_recorded(client, redis_client)


async def test_errors_to_an_allowed_origin_carry_cors_headers(client):
    """So the widget can read the error code instead of a browser CORS failure."""
    response = await client.post(f"{API}/interactions", headers={"Origin": ORIGIN},
                                 json={"path": "/p", "reaction": "clap", "visitor": VISITOR})
    await assert_error(response, 400, "unknown_reaction")
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
