"""The web app in process (Quart's test client) on the private real Redis and real SQL.

`app` runs before_serving, so each test has its own runtime: a Redis connection, the SQL
database of the `database_url` parametrisation, the live relay and the site `blog`.
"""

from __future__ import annotations

import json

import pytest

from appliance.services.sites import add_site
from appliance.storage import counter_store as keys
from web.app import create_app

SITE = "blog"
ORIGIN = "https://blog.example"
VISITOR = "visitor-aaaa"
OTHER_VISITOR = "visitor-bbbb"
API = f"/api/v1/sites/{SITE}"
ZERO = {"view": 0, "like": 0, "applause": 0}


@pytest.fixture
async def app(settings, database, registry):
    add_site(database, SITE, [ORIGIN], title="A blog")
    quart_app = create_app(settings, registry)
    # The live relay polls Redis once a second; don't wait for that poll at every teardown.
    quart_app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = 0.01
    async with quart_app.test_app() as test_app:
        yield test_app


@pytest.fixture
def client(app):
    return app.test_client()


async def error_of(response, status: int) -> dict:
    """The `{"error": {"code", "message"}}` body of an error response with this status."""
    body = await response.get_data(as_text=True)
    assert response.status_code == status, body
    assert response.mimetype == "application/json", body
    error = json.loads(body)["error"]
    assert isinstance(error["code"], str) and error["code"], body
    assert isinstance(error["message"], str) and error["message"], body
    return error


async def assert_error(response, status: int, code: str) -> dict:
    error = await error_of(response, status)
    assert error["code"] == code, error
    return error


async def like(client, path: str = "/p", visitor: str = VISITOR, **headers):
    return await client.post(f"{API}/interactions", headers=headers,
                             json={"path": path, "reaction": "like", "visitor": visitor})


async def totals_of(client, path: str = "/p") -> dict:
    response = await client.get(f"{API}/totals", query_string={"path": path})
    assert response.status_code == 200, await response.get_data(as_text=True)
    return (await response.get_json())["totals"]


async def assert_nothing_recorded(client, redis_client) -> None:
    """No interaction reached Redis: nothing pending, no visitor state, totals still zero."""
    assert redis_client.hlen(keys.PENDING) == 0
    assert redis_client.hgetall(keys.STATS) == {}
    assert list(redis_client.scan_iter(keys.PREFIX + "vs:*")) == []
    assert await totals_of(client, "/p") == ZERO
