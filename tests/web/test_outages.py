"""Redis or SQL unreachable: the API answers 503 service_unavailable (readiness says which),
never a 500. Real outages: a Redis socket nobody listens on; a dropped PostgreSQL database or a
deleted SQLite file under a running app.
"""

from __future__ import annotations

import os

import peewee as pw
import pytest
from quart.testing.connections import WebsocketResponseError

from appliance.services.sites import add_site
from appliance.settings import Settings
from tests.web.conftest import API, ORIGIN, SITE, VISITOR, assert_error
from web.app import create_app

LIKE = {"path": "/p", "reaction": "like", "visitor": VISITOR}
COUNTER_REQUESTS = [
    ("POST", f"{API}/interactions", {"json": LIKE}),
    ("POST", f"{API}/interactions", {"json": LIKE, "headers": {"Origin": ORIGIN}}),
    ("GET", f"{API}/totals?path=/p", {}),
    ("POST", f"{API}/totals/batch", {"json": {"paths": ["/p"]}, "headers": {"Origin": ORIGIN}}),
]


def started(settings, registry):
    app = create_app(settings, registry)
    app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = 0.01
    return app.test_app()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_redis_unreachable(database_url, database, registry, tmp_path):
    add_site(database, SITE, [ORIGIN])
    settings = Settings(database_url=database_url, data_dir=tmp_path / "data",
                        secret_key="test-secret", redis_url=f"unix://{tmp_path}/no-redis.sock")
    async with started(settings, registry) as test_app:
        client = test_app.test_client()
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        checks = (await ready.get_json())["checks"]
        assert checks["database"] == "ok" and checks["redis"].startswith("unavailable")
        await assert_error(await client.get("/metrics"), 503, "service_unavailable")
        for method, url, kwargs in COUNTER_REQUESTS:
            response = await client.open(url, method=method, **kwargs)
            await assert_error(response, 503, "service_unavailable")
        assert (await client.get(f"{API}/config")).status_code == 200  # SQL only
        async with client.websocket(f"{API}/live") as ws:
            assert '"hello"' in await ws.receive()
            await ws.send('{"type": "subscribe", "paths": ["/p"]}')
            assert '"service_unavailable"' in await ws.receive()


async def test_sql_unreachable(request, settings, database, registry, database_url):
    add_site(database, SITE, [ORIGIN])
    database.close()
    async with started(settings, registry) as test_app:
        client = test_app.test_client()
        if database_url.startswith("sqlite:///"):
            os.remove(database_url.removeprefix("sqlite:///"))
        else:
            server = request.getfixturevalue("postgres_server")
            admin = pw.PostgresqlDatabase("postgres", user="postgres", host="127.0.0.1",
                                          port=server.port)
            with admin.connection_context():
                admin.execute_sql(f'DROP DATABASE "{database_url.rsplit("/", 1)[1]}" '
                                  "WITH (FORCE)")
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert (await ready.get_json())["checks"]["database"].startswith("unavailable")
        for method, url, kwargs in [*COUNTER_REQUESTS, ("GET", f"{API}/config",
                                                        {"headers": {"Origin": ORIGIN}})]:
            response = await client.open(url, method=method, **kwargs)
            await assert_error(response, 503, "service_unavailable")
        with pytest.raises(WebsocketResponseError) as refused:
            async with client.websocket(f"{API}/live") as ws:
                await ws.receive()
        assert refused.value.response.status_code == 503


async def test_an_interaction_during_a_database_outage_is_recorded_not_refused(
        make_settings, postgres_server, registry):
    """A page whose totals are not cached yet, while PostgreSQL is down: the interaction is
    counted and acknowledged (with stale totals), never refused after being counted."""
    from appliance.services.sites import add_site
    from appliance.storage.database import open_database
    from appliance.storage.migrations import migrate
    from web.app import create_app

    settings = make_settings(postgres_server.create_database())
    database = open_database(settings.effective_database_url)
    migrate(database)
    add_site(database, "blog", [])
    database.close()
    app = create_app(settings, registry)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        warm = await client.get("/api/v1/sites/blog/totals?path=/warm")
        assert warm.status_code == 200  # the site is cached now
        postgres_server.stop()
        try:
            response = await client.post("/api/v1/sites/blog/interactions", json={
                "path": "/cold", "reaction": "like", "visitor": "visitor-outage"})
        finally:
            postgres_server.start()
        assert response.status_code == 200
        body = await response.get_json()
        assert body["applied"] == 1 and body["stale"] is True and body["totals"]["like"] == 1
        again = await client.get("/api/v1/sites/blog/totals?path=/cold")
        assert (await again.get_json())["totals"]["like"] == 1
