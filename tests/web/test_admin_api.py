"""The admin API on real Redis and real SQL: bearer tokens by scope and site, publishing through
the publish stream to the listener, listing sites, bad input, and the OpenAPI contract."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from appliance import events
from appliance.services import tokens
from appliance.services.sites import add_site
from appliance.storage.models import Page
from appliance.storage.site_store import get_site, update_site
from appliance.workers.listener import build_listener
from tests.web.conftest import SITE, assert_error

ADMIN = "/api/v1/admin"
PAGES = f"{ADMIN}/sites/{SITE}/pages"
POST = {"path": "https://blog.example/2026/11/hello/", "title": "Hello",
        "published_at": "2026-11-25T10:00:00+01:00"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin_token(app, database) -> str:
    return tokens.create_token(database, "deploy", "admin").token


def queued(redis_client) -> list[dict]:
    if not redis_client.exists(events.PUBLISH_STREAM):
        return []
    return [json.loads(fields["body"]) for _id, fields in
            redis_client.xrange(events.PUBLISH_STREAM)]


async def test_publish_with_an_admin_token_reaches_the_listener(client, admin_token,
                                                                database, redis_client):
    response = await client.post(PAGES, json=POST, headers=bearer(admin_token))
    assert response.status_code == 202, await response.get_data(as_text=True)
    answer = await response.get_json()
    assert answer["site"] == SITE and answer["path"] == "/2026/11/hello"
    assert answer["title"] == "Hello" and answer["published_at"] == "2026-11-25T09:00:00+00:00"
    assert response.headers["Cache-Control"] == "no-store"
    [event] = queued(redis_client)
    assert event["event_id"] == answer["event_id"] and event["source"] == "api"

    assert build_listener(redis_client, database).run_once() == 1
    with database.connection_context():
        page = Page.get(Page.path == "/2026/11/hello")
    assert (page.title, page.published_at) == ("Hello", dt.datetime(2026, 11, 25, 9, 0))
    assert redis_client.xlen(events.NOTIFICATION_STREAM) == 1


async def test_publish_without_a_date_means_now(client, admin_token):
    response = await client.post(PAGES, json={"path": "/p", "title": "Now"},
                                 headers=bearer(admin_token))
    assert response.status_code == 202
    published = dt.datetime.fromisoformat((await response.get_json())["published_at"])
    assert abs(dt.datetime.now(dt.UTC) - published) < dt.timedelta(minutes=1)


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Bearer   "},
    {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer ovt_wrong"},
    {"Authorization": "Bearer not-even-a-token"}, {"Authorization": "Bearer " + "x" * 5000},
], ids=["none", "empty", "no token", "blank token", "basic", "wrong", "malformed", "huge"])
async def test_publish_without_a_valid_token_is_401(client, admin_token, redis_client, headers):
    response = await client.post(PAGES, json=POST, headers=headers)
    await assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert queued(redis_client) == []


async def test_a_bad_body_without_a_token_is_still_401(client, redis_client):
    # Authentication comes first: an anonymous caller learns nothing of the schema.
    response = await client.post(PAGES, json={"nonsense": True})
    await assert_error(response, 401, "unauthorized")


async def test_a_revoked_token_is_401(client, database, redis_client):
    created = tokens.create_token(database, "old", "admin")
    tokens.revoke_token(database, created.record.id)
    response = await client.post(PAGES, json=POST, headers=bearer(created.token))
    await assert_error(response, 401, "unauthorized")
    assert queued(redis_client) == []


@pytest.mark.parametrize("scope", ["read", "moderate"])
async def test_publishing_needs_the_admin_scope(client, database, redis_client, scope):
    token = tokens.create_token(database, scope, scope).token
    error = await assert_error(await client.post(PAGES, json=POST, headers=bearer(token)), 403,
                               "forbidden")
    assert "'admin'" in error["message"]
    assert queued(redis_client) == []


async def test_a_token_bound_to_another_site_is_403(client, database, redis_client):
    add_site(database, "press", [])
    token = tokens.create_token(database, "press-bot", "admin", site="press").token
    await assert_error(await client.post(PAGES, json=POST, headers=bearer(token)), 403,
                       "forbidden")
    ok = await client.post(f"{ADMIN}/sites/press/pages", json=POST, headers=bearer(token))
    assert ok.status_code == 202
    assert [event["site"] for event in queued(redis_client)] == ["press"]


async def test_publishing_to_an_unknown_site_is_404(client, admin_token, redis_client):
    for site in ("nosuchsite", "Bad_Name"):
        response = await client.post(f"{ADMIN}/sites/{site}/pages", json=POST,
                                     headers=bearer(admin_token))
        await assert_error(response, 404, "unknown_site")
    assert queued(redis_client) == []


JSON = {"Content-Type": "application/json"}


# Refusing input involves no SQL: SQLite only, for speed (as tests/web/test_bad_input.py).
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("kwargs", "status", "code"), [
    ({}, 400, "invalid_input"),
    ({"data": "{", "headers": JSON}, 400, "invalid_json"),
    ({"data": b"\xff\xfe", "headers": JSON}, 400, "invalid_json"),
    ({"json": []}, 400, "invalid_input"),
    ({"json": {}}, 400, "invalid_input"),
    ({"json": {**POST, "extra": 1}}, 400, "invalid_input"),
    ({"json": {"title": "T"}}, 400, "invalid_input"),
    ({"json": {"path": "/p"}}, 400, "invalid_input"),
    ({"json": {**POST, "path": 12}}, 400, "invalid_input"),
    ({"json": {**POST, "path": "   "}}, 400, "invalid_path"),
    ({"json": {**POST, "path": "/%ff"}}, 400, "invalid_path"),
    ({"json": {**POST, "path": "/" + "é" * 600}}, 400, "invalid_path"),
    ({"json": {**POST, "title": ""}}, 400, "invalid_input"),
    ({"json": {**POST, "title": "   "}}, 400, "invalid_input"),
    ({"json": {**POST, "title": "x" * 501}}, 400, "invalid_input"),
    ({"json": {**POST, "title": "a\x00b"}}, 400, "invalid_input"),
    ({"json": {**POST, "title": 5}}, 400, "invalid_input"),
    ({"json": {**POST, "published_at": "yesterday"}}, 400, "invalid_input"),
    ({"json": {**POST, "published_at": "2026-02-30"}}, 400, "invalid_input"),
    ({"json": {**POST, "published_at": 1764061200}}, 400, "invalid_input"),
    ({"json": {**POST, "published_at": ""}}, 400, "invalid_input"),
    ({"data": json.dumps({**POST, "title": "x" * 70_000}), "headers": JSON}, 413,
     "payload_too_large"),
])
async def test_bad_publish_input_is_a_4xx_with_a_stable_code(client, admin_token, redis_client,
                                                             kwargs, status, code):
    kwargs = dict(kwargs)  # parametrised values are shared between runs: never mutate them
    headers = {**kwargs.pop("headers", {}), **bearer(admin_token)}
    response = await client.post(PAGES, headers=headers, **kwargs)
    await assert_error(response, status, code)
    assert queued(redis_client) == []


async def test_other_methods_and_routes(client, admin_token):
    await assert_error(await client.get(PAGES, headers=bearer(admin_token)), 405,
                       "method_not_allowed")
    await assert_error(await client.get(f"{ADMIN}/nothing", headers=bearer(admin_token)), 404,
                       "not_found")


async def test_list_sites_needs_a_read_token(client, database):
    await assert_error(await client.get(f"{ADMIN}/sites"), 401, "unauthorized")
    update_site(database, dataclasses.replace(get_site(database, SITE),
                                              feed_url="https://blog.example/feed.xml"))
    add_site(database, "press", [], title="Press")
    token = tokens.create_token(database, "reader", "read").token
    response = await client.get(f"{ADMIN}/sites", headers=bearer(token))
    assert response.status_code == 200
    sites = {site["name"]: site for site in (await response.get_json())["sites"]}
    assert set(sites) == {SITE, "press"}
    assert sites[SITE] == {"name": SITE, "title": "A blog", "origins": ["https://blog.example"],
                           "accept_unpublished_pages": True, "pages": 0,
                           "feed_url": "https://blog.example/feed.xml",
                           "reactions": ["view", "like", "applause"]}
    assert sites["press"]["feed_url"] is None


async def test_a_site_bound_token_lists_only_its_site(client, database):
    add_site(database, "press", [])
    token = tokens.create_token(database, "press-reader", "read", site="press").token
    response = await client.get(f"{ADMIN}/sites", headers=bearer(token))
    assert [site["name"] for site in (await response.get_json())["sites"]] == ["press"]


async def test_openapi_declares_the_admin_routes_with_bearer_security(client):
    spec = await (await client.get("/openapi.json")).get_json()
    assert spec["components"]["securitySchemes"]["bearer"]["type"] == "http"
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "admin" in {tag["name"] for tag in spec["tags"]}
    for route, method, ok in [("/api/v1/admin/sites/{site}/pages", "post", "202"),
                              ("/api/v1/admin/sites", "get", "200")]:
        operation = spec["paths"][route][method]
        assert operation["tags"] == ["admin"]
        assert operation["security"] == [{"bearer": []}]
        assert {ok, "401", "403"} <= set(operation["responses"])
    publish = spec["paths"]["/api/v1/admin/sites/{site}/pages"]["post"]
    assert publish["requestBody"]["content"]["application/json"]["schema"]
