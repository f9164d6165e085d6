"""The gateway under attack: rate limits per network and per visitor, spoofed forwarding
headers, floods that move counters only as far as the per-visitor rules allow, and the live
socket's connection and message budgets. Real Redis and SQL; limits set low for the test."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from appliance.errors import RateLimited
from appliance.services.counters import CounterService
from appliance.services.rate_limits import Limit, RateLimiter
from appliance.services.sites import add_site
from appliance.services.sql_runner import SqlRunner
from appliance.storage import site_store
from appliance.storage.redis_client import async_redis
from appliance.storage.site_store import get_site
from tests.web.conftest import API, ORIGIN, SITE, assert_error
from web.app import create_app


@pytest.fixture
async def guarded(make_settings, database_url, database, registry):
    """The app with small limits; the test client's peer (127.0.0.1 or none) is a trusted
    proxy only when a test asks for it."""

    async def start(**limits):
        settings = make_settings(database_url, **{
            "rate_interactions_per_min": 5, "rate_interactions_per_visitor_per_min": 3,
            "rate_reads_per_min": 4, "ws_connections_per_ip": 2, "ws_messages_per_s": 2,
            **limits})
        add_site(database, SITE, [ORIGIN])
        app = create_app(settings, registry)
        app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = 0.01
        return app

    return start


PROXY = {"client": ("192.0.2.10", 44321)}  # the requests come from our reverse proxy


def interaction(visitor: str, reaction: str = "view", path: str = "/p") -> dict:
    return {"path": path, "reaction": reaction, "visitor": visitor}


async def test_interactions_are_limited_per_network_with_retry_after(guarded):
    app = await guarded()
    async with app.test_app() as running:
        client = running.test_client()
        for n in range(5):  # five visitors on one network: the network's budget
            response = await client.post(f"{API}/interactions",
                                         json=interaction(f"visitor-net-{n}"))
            assert response.status_code == 200
        refused = await client.post(f"{API}/interactions", json=interaction("visitor-net-9"))
        await assert_error(refused, 429, "rate_limited")
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        totals = await (await client.post(f"{API}/totals/batch",
                                          json={"paths": ["/p"]})).get_json()
        assert totals["pages"][0]["totals"]["view"] == 5  # the refused one changed nothing


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing(guarded):
    app = await guarded()
    async with app.test_app() as running:
        client = running.test_client()
        statuses = []
        for n in range(8):
            response = await client.post(
                f"{API}/interactions", json=interaction(f"visitor-spoof-{n}"),
                headers={"X-Forwarded-For": f"198.51.100.{n}", "Forwarded": f"for=192.0.2.{n}"})
            statuses.append(response.status_code)
        assert statuses == [200] * 5 + [429] * 3


async def test_behind_a_trusted_proxy_each_client_has_its_own_budget(guarded):
    app = await guarded(trusted_proxies="127.0.0.0/8,::1,192.0.2.0/24")
    async with app.test_app() as running:
        client = running.test_client()
        for n in range(3):
            for m in range(5):
                response = await client.post(
                    f"{API}/interactions", json=interaction(f"visitor-{n}-{m:04d}"),
                    headers={"X-Forwarded-For": f"1.2.3.4, 198.51.100.{n}"}, scope_base=PROXY)
                assert response.status_code == 200, (n, m)
        # A client forging the hop our proxy appends cannot: the last hop is what counts.
        over = await client.post(f"{API}/interactions", json=interaction("visitor-x-0001"),
                                 headers={"X-Forwarded-For": "198.51.100.0, 198.51.100.0"},
                                 scope_base=PROXY)
        await assert_error(over, 429, "rate_limited")


async def test_one_visitor_is_limited_across_networks(guarded):
    app = await guarded(trusted_proxies="127.0.0.0/8,::1,192.0.2.0/24")
    async with app.test_app() as running:
        client = running.test_client()
        statuses = [(await client.post(f"{API}/interactions", json=interaction("visitor-roam"),
                                       headers={"X-Forwarded-For": f"203.0.113.{n}"},
                                       scope_base=PROXY))
                    .status_code for n in range(5)]
        assert statuses == [200, 200, 200, 429, 429]


async def test_reads_are_limited(guarded):
    app = await guarded()
    async with app.test_app() as running:
        client = running.test_client()
        statuses = [(await client.get(f"{API}/totals?path=/p")).status_code for _ in range(6)]
        assert statuses == [200] * 4 + [429] * 2


async def test_comment_edits_and_deletes_are_limited_per_network(guarded, redis_client):
    # Unlimited before: an author holding an edit token could rewrite their comment, and so
    # push a live event to every open copy of the page, as fast as they could send requests.
    app = await guarded()
    async with app.test_app() as running:
        client = running.test_client()
        accepted = await (await client.post(f"{API}/comments", json={
            "path": "/p", "body": "first", "visitor": "visitor-editor-1"})).get_json()
        edit = f"{API}/comments/{accepted['id']}"
        token = accepted["edit_token"]
        statuses = [(await client.patch(edit, json={"edit_token": token, "body": f"v{n}"}))
                    .status_code for n in range(5)]
        assert statuses == [202] * 5
        await assert_error(await client.patch(edit, json={"edit_token": token, "body": "v5"}),
                           429, "rate_limited")
        refused = await client.delete(edit, json={"edit_token": token})
        await assert_error(refused, 429, "rate_limited")
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    kinds = [fields["kind"] for _id, fields in redis_client.xrange("ov:stream:submissions")]
    assert kinds == ["comment"] + ["comment_edit"] * 5  # the refused ones queued nothing


async def test_a_site_of_published_pages_charges_before_asking_the_database(guarded, database):
    """Unknown paths cost a database read each: the limits are charged first, so a flood of
    made-up paths is refused before it reaches SQL."""
    app = await guarded()
    site_store.update_site(database, dataclasses.replace(get_site(database, SITE),
                                                         accept_unpublished_pages=False))
    async with app.test_app() as running:
        client = running.test_client()
        statuses = [(await client.post(f"{API}/interactions",
                                       json=interaction(f"visitor-pub-{n}", path=f"/made-up/{n}"))
                     ).status_code for n in range(7)]
        assert statuses == [404] * 5 + [429] * 2


async def test_an_interaction_and_its_rate_limits_are_one_script_call(
        make_settings, database_url, database, registry, redis_client):
    """The charge runs inside the interaction's own script: one Redis round trip a request,
    and a refused interaction changes nothing."""
    settings = make_settings(database_url)
    add_site(database, SITE, [])
    client = async_redis(settings)
    sql = SqlRunner()
    service = CounterService(client, database, registry, settings, sql.run)
    limiter = RateLimiter(client)
    site = get_site(database, SITE)
    await service.record(site, "/p", "view", "add", 1, "visitor-seed")  # caches /p's SQL totals
    redis_client.config_resetstat()

    def charge():
        return limiter.charge("interactions", [(Limit("net", 2, 60), "network-hash"),
                                               (Limit("visitor", 100, 60), "visitor-hash")])

    for n in range(2):
        outcome = await service.record(site, "/p", "view", "add", 1, f"visitor-one-{n}",
                                       limit=charge())
        assert outcome.applied == 1
    with pytest.raises(RateLimited) as refused:
        await service.record(site, "/p", "view", "add", 1, "visitor-one-9", limit=charge())
    assert 1 <= refused.value.retry_after_s <= 60
    assert redis_client.info("commandstats")["cmdstat_evalsha"]["calls"] == 3
    (page,) = await service.totals(site, ["/p"])
    assert page.totals["view"] == 3  # the seed's and the two allowed; the refused one: nothing
    assert redis_client.exists("ov:rl:interactions:net:network-hash")
    await client.aclose()
    sql.close()


async def test_a_flood_moves_counters_only_as_far_as_the_rules_allow(
        make_settings, database_url, database, registry):
    """10,000 likes, claps and views from one visitor (the limits of the gateway aside)."""
    settings = make_settings(database_url)
    add_site(database, SITE, [])
    client = async_redis(settings)
    sql = SqlRunner()
    service = CounterService(client, database, registry, settings, sql.run)
    site = get_site(database, SITE)
    flood = [("like", 1), ("applause", 50), ("view", 1)] * 3334
    applied = 0
    for start in range(0, len(flood), 500):
        outcomes = await asyncio.gather(*(
            service.record(site, "/p", reaction, "add", amount, "visitor-flood")
            for reaction, amount in flood[start:start + 500]))
        applied += sum(outcome.applied for outcome in outcomes)
    (page,) = await service.totals(site, ["/p"])
    assert page.totals == {"view": 1, "like": 1, "applause": settings.applause_cap}
    assert applied == 2 + settings.applause_cap
    await client.aclose()
    sql.close()


async def test_live_sockets_per_address_and_messages_per_second(guarded):
    app = await guarded()
    async with app.test_app() as running:
        client = running.test_client()
        async with client.websocket(f"{API}/live") as first, \
                client.websocket(f"{API}/live") as second:
            await first.receive()
            await second.receive()
            third = client.websocket(f"{API}/live")
            with pytest.raises(Exception) as refused:  # refused before the handshake
                async with third as socket:
                    await socket.receive()
            assert "429" in repr(refused.value) or "rate_limited" in repr(refused.value)
            for _ in range(30):  # 2 messages/s, burst 10
                await first.send(json.dumps({"type": "ping"}))
            frames = [json.loads(await first.receive()) for _ in range(30)]
            assert {frame["type"] for frame in frames} == {"pong", "error"}
            limited = [frame for frame in frames if frame["type"] == "error"]
            assert limited and all(frame["code"] == "rate_limited" for frame in limited)
            assert sum(frame["type"] == "pong" for frame in frames) <= 11
