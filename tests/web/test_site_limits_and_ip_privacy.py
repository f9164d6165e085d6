"""Per-site rate-limit overrides through the real app, the admin API's own limit, and no raw
client address anywhere Ovation writes (SQL rows, Redis keys and values). Real Redis and SQL."""

from __future__ import annotations

import dataclasses

import peewee as pw
import pytest
import redis

from appliance.services import tokens
from appliance.services.sites import add_site
from appliance.storage.site_store import get_site, update_site
from appliance.workers.listener import build_listener
from tests.web.conftest import assert_error
from web.app import create_app

NEWS = "news"


def limited(database, site: str, **limits: int) -> None:
    update_site(database, dataclasses.replace(get_site(database, site), rate_limits=limits))


@pytest.fixture
async def two_sites(make_settings, database_url, database, registry):
    """`blog` and `news` on one deployment limited to 5 interactions and 4 reads a minute."""

    async def start(**settings_values):
        settings = make_settings(database_url, **{
            "rate_interactions_per_min": 5, "rate_reads_per_min": 4, **settings_values})
        add_site(database, "blog", [])
        add_site(database, NEWS, [])
        app = create_app(settings, registry)
        app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = 0.01
        return app

    return start


def view(n: int) -> dict:
    return {"path": "/p", "reaction": "view", "visitor": f"visitor-site-{n:04d}"}


async def statuses(client, site: str, count: int, method: str = "interactions") -> list[int]:
    url = f"/api/v1/sites/{site}/{method}"
    if method == "interactions":
        return [(await client.post(url, json=view(n))).status_code for n in range(count)]
    return [(await client.get(url, query_string={"path": "/p"})).status_code
            for _ in range(count)]


async def test_a_site_limited_tighter_is_refused_while_another_is_not(two_sites, database):
    app = await two_sites()
    limited(database, "blog", interactions_per_min=2, reads_per_min=0)
    async with app.test_app() as running:
        client = running.test_client()
        assert await statuses(client, "blog", 4) == [200, 200, 429, 429]
        refused = await client.post("/api/v1/sites/blog/interactions", json=view(99))
        await assert_error(refused, 429, "rate_limited")
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # Same client, same minute: the other site keeps the deployment's limit of 5.
        assert await statuses(client, NEWS, 6) == [200] * 5 + [429]
        # reads_per_min=0: no read limit on blog; news has the deployment's 4.
        assert await statuses(client, "blog", 10, "totals") == [200] * 10
        assert await statuses(client, NEWS, 5, "totals") == [200] * 4 + [429]


async def test_a_site_may_be_looser_than_the_deployment(two_sites, database):
    app = await two_sites(rate_interactions_per_min=2)
    limited(database, NEWS, interactions_per_min=0)
    async with app.test_app() as running:
        client = running.test_client()
        assert await statuses(client, NEWS, 12) == [200] * 12
        assert await statuses(client, "blog", 3) == [200, 200, 429]


async def test_a_site_may_limit_comments_tighter(two_sites, database):
    app = await two_sites()
    limited(database, "blog", comment_rate_limit=1)
    async with app.test_app() as running:
        client = running.test_client()
        codes = []
        for n in range(2):
            for site in ("blog", NEWS):
                response = await client.post(f"/api/v1/sites/{site}/comments", json={
                    "path": "/p", "body": f"Comment {n}", "visitor": f"visitor-c-{n:04d}"})
                codes.append((site, response.status_code))
        assert codes == [("blog", 202), (NEWS, 202), ("blog", 429), (NEWS, 202)]


async def test_the_admin_api_is_rate_limited_before_the_token_is_checked(two_sites, database):
    app = await two_sites(rate_admin_per_min=3)
    token = tokens.create_token(database, "ops", "admin").token
    async with app.test_app() as running:
        client = running.test_client()
        guesses = [(await client.get("/api/v1/admin/sites",
                                     headers={"Authorization": f"Bearer ovt_guess{n}"}))
                   .status_code for n in range(3)]
        assert guesses == [401, 401, 401]
        over = await client.get("/api/v1/admin/sites",
                                headers={"Authorization": f"Bearer {token}"})
        await assert_error(over, 429, "rate_limited")


ADDRESSES = ["198.51.100.77", "2001:db8:77:1234::abcd"]
# What would give an address away: the address itself, its /64 or its first octets.
TELLS = ["198.51.100", "2001:db8:77", "2001:0db8", "20010db8"]


def sql_dump(database: pw.Database) -> str:
    lines = []
    with database.connection_context():
        for table in database.get_tables():
            cursor = database.execute_sql(f'SELECT * FROM "{table}"')
            lines += [f"{table}: {row!r}" for row in cursor.fetchall()]
    return "\n".join(lines)


def redis_dump(url: str) -> str:
    client = redis.Redis.from_url(url)  # bytes: HyperLogLogs are not text
    readers = {"string": client.get, "hash": client.hgetall, "set": client.smembers,
               "list": lambda key: client.lrange(key, 0, -1),
               "zset": lambda key: client.zrange(key, 0, -1, withscores=True),
               "stream": client.xrange}
    lines = [f"{key}: {readers[client.type(key).decode()](key)!r}"
             for key in client.scan_iter(count=1000)]
    client.close()
    return "\n".join(lines)


async def test_no_raw_client_address_is_written_anywhere(two_sites, database, redis_client,
                                                         redis_url, settings):
    app = await two_sites(rate_interactions_per_min=100, rate_reads_per_min=100,
                          rate_interactions_per_visitor_per_min=100, rate_admin_per_min=100,
                          smtp_host="127.0.0.1")  # subscriptions need e-mail
    async with app.test_app() as running:
        client = running.test_client()
        for n, address in enumerate(ADDRESSES):
            peer = {"client": (address, 40000 + n)}
            visitor = f"visitor-addr-{n:04d}"
            for reaction in ("view", "like"):
                response = await client.post("/api/v1/sites/blog/interactions", scope_base=peer,
                                             json={"path": "/p", "reaction": reaction,
                                                   "visitor": visitor})
                assert response.status_code == 200
            assert (await client.get("/api/v1/sites/blog/totals?path=/p",
                                     scope_base=peer)).status_code == 200
            comment = await client.post("/api/v1/sites/blog/comments", scope_base=peer, json={
                "path": "/p", "body": f"Hello from {n}", "visitor": visitor})
            assert comment.status_code == 202
            subscribed = await client.post("/api/v1/sites/blog/subscriptions",
                                           scope_base=peer, json={"email": f"r{n}@example.org"})
            assert subscribed.status_code == 202
            assert (await client.get("/api/v1/admin/sites", scope_base=peer)).status_code == 401
    build_listener(redis_client, database, settings.comment_max_depth).run_once()
    stored, cached = sql_dump(database), redis_dump(redis_url)
    assert "Hello from 1" in stored  # the dump did see the comments
    assert "ov:rl:interactions:net:" in cached  # and the rate-limit keys
    for tell in TELLS:
        assert tell not in stored.lower(), tell
        assert tell not in cached.lower(), tell
