"""Bans reach every web worker at once, although workers check comments against their own copy
of a site's bans (appliance/services/ban_list.py) instead of asking SQL per comment.

Two app instances share the real Redis and the real SQL database, as two web workers (or two
hosts) do: a ban or an unban made through one holds for the very next comment on the other,
which already held a copy of the bans from before; a Redis that lost the ban version (FLUSHALL)
lifts nothing; lapsed IP bans are dropped; and after the first comment, no comment costs a SQL
read of the bans.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from appliance import events
from appliance.services import bans as ban_service
from appliance.services import tokens
from appliance.services.ban_list import MAX_AGE_S, BanCache
from appliance.services.ip_salts import SaltPolicy, keep_salts
from appliance.services.moderation import ban_author
from appliance.services.sites import add_site
from appliance.services.visitors import visitor_hash
from appliance.storage import comment_cache, comment_store
from appliance.workers.listener import build_listener
from tests.web.conftest import API, SITE, assert_error
from web.app import create_app

COMMENTS = f"{API}/comments"
ADMIN = f"/api/v1/admin/sites/{SITE}"
SPAMMER = "visitor-spammer-01"
SPAMMER_IP = "198.51.100.66"
DAY = 86400


@pytest.fixture
async def apps(settings, database, registry) -> AsyncIterator[tuple]:
    """Two web workers of one deployment: their own runtimes, the same Redis and SQL."""
    add_site(database, SITE, ["https://blog.example"])
    first, second = create_app(settings, registry), create_app(settings, registry)
    for app in (first, second):
        app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = 0.01
    async with first.test_app() as one, second.test_app() as other:
        yield one, other


@pytest.fixture
def moderator(apps, database) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.create_token(database, 'mod', 'moderate').token}"}


async def post(app, body: str, visitor: str = SPAMMER, ip: str = SPAMMER_IP):
    return await app.test_client().post(
        COMMENTS,
        scope_base={"client": (ip, 40000)},
        json={"path": "/post", "body": body, "visitor": visitor},
    )


async def accepted(app, body: str, visitor: str = SPAMMER, ip: str = SPAMMER_IP) -> str:
    response = await post(app, body, visitor, ip)
    assert response.status_code == 202, await response.get_data(as_text=True)
    return (await response.get_json())["id"]


def stored(redis_client, database) -> None:
    build_listener(redis_client, database).run_once()


async def test_a_ban_on_one_worker_refuses_the_next_comment_on_another(
    apps, moderator, redis_client, database, settings
):
    one, other = apps
    spam = await accepted(one, "Buy now")
    await accepted(other, "Still buying")  # the other worker now holds a copy: no ban in it
    stored(redis_client, database)
    queued_before = redis_client.xlen(events.SUBMISSION_STREAM)
    response = await one.test_client().post(
        f"{ADMIN}/bans", headers=moderator, json={"comment_id": spam, "remove": False}
    )
    assert (await response.get_json())["banned"] == ["visitor", "network"]

    # At once, on the worker that did not make the ban: by visitor, and by network.
    await assert_error(await post(other, "Me again"), 403, "banned")
    await assert_error(await post(other, "New id", visitor="visitor-spammer-02"), 403, "banned")
    assert redis_client.xlen(events.SUBMISSION_STREAM) == queued_before  # nothing queued
    # Refused before the rate limit: a banned comment charges nothing.
    visitor = visitor_hash(settings.hashing_key(), SITE, SPAMMER)
    assert redis_client.get(comment_cache.rate_key(SITE, "visitor", visitor)) == "2"
    # Others still comment, on both workers.
    await accepted(other, "Hello", visitor="visitor-reader-01", ip="192.0.2.10")
    await accepted(one, "Hello too", visitor="visitor-reader-02", ip="192.0.2.11")


async def test_lifting_a_ban_on_one_worker_lets_the_author_comment_on_another_at_once(
    apps, moderator, redis_client, database
):
    one, other = apps
    spam = await accepted(one, "Buy now")
    stored(redis_client, database)
    await one.test_client().post(f"{ADMIN}/bans", headers=moderator, json={"comment_id": spam})
    await assert_error(await post(other, "Me again"), 403, "banned")  # its copy has the ban

    listed = await one.test_client().get(f"{ADMIN}/bans", headers=moderator)
    for ban in (await listed.get_json())["bans"]:
        response = await one.test_client().delete(f"{ADMIN}/bans/{ban['id']}", headers=moderator)
        assert response.status_code == 200
    await accepted(other, "Sorry, forgiven?")


async def test_a_flushed_redis_lifts_no_ban(apps, moderator, redis_client, database):
    one, other = apps
    spam = await accepted(one, "Buy now")
    await accepted(other, "Again")  # the other worker's copy: no ban yet
    stored(redis_client, database)
    await one.test_client().post(f"{ADMIN}/bans", headers=moderator, json={"comment_id": spam})
    await assert_error(await post(one, "Me again"), 403, "banned")  # one's copy has the ban

    redis_client.flushall()  # the ban versions are gone, the bans are in SQL
    await assert_error(await post(other, "After the flush"), 403, "banned")
    await assert_error(await post(one, "After the flush, here"), 403, "banned")
    assert redis_client.get(comment_cache.bans_version_key(SITE))  # a new version was set
    assert redis_client.xlen(events.SUBMISSION_STREAM) == 0
    await accepted(other, "Hello", visitor="visitor-reader-01", ip="192.0.2.10")


async def test_a_missing_version_key_alone_lifts_no_ban(apps, redis_client, database, settings):
    one, other = apps
    await accepted(other, "First")  # a copy of the bans, and its version
    # A ban written while the version key is missing (Redis replaced by an empty one): the
    # worker's copy predates it, and no version is left to compare but "none".
    comment_store.add_ban(
        database, SITE, "visitor", visitor_hash(settings.hashing_key(), SITE, SPAMMER), "spam"
    )
    redis_client.delete(comment_cache.bans_version_key(SITE))
    await assert_error(await post(other, "Second"), 403, "banned")


async def test_an_unban_by_cli_service_reaches_a_worker_that_refused_before(
    apps, redis_client, database
):
    one, other = apps
    spam = await accepted(one, "Buy now")
    stored(redis_client, database)
    ban_author(redis_client, database, spam, network=False, remove=False)  # as the CLI does
    await assert_error(await post(other, "Me again"), 403, "banned")
    ban_service.lift_author_bans(redis_client, database, spam)  # `platformctl comments unban`
    await accepted(other, "Forgiven")
    assert ban_author(redis_client, database, spam, remove=False) == ["visitor", "network"]
    await assert_error(await post(other, "Once more", visitor="visitor-spammer-02"), 403, "banned")
    for ban in comment_store.list_bans(database, SITE):
        ban_service.lift_ban(redis_client, database, ban.id)  # `unban --ban-id`
    await accepted(other, "Forgiven again", visitor="visitor-spammer-02")


async def test_lapsed_ip_bans_replace_the_version_of_their_sites(
    apps, redis_client, database, settings
):
    one, _other = apps
    spam = await accepted(one, "Buy now")
    stored(redis_client, database)
    ban_author(redis_client, database, spam, remove=False)
    before = redis_client.get(comment_cache.bans_version_key(SITE))
    add_site(database, "quiet", [])
    redis_client.set(comment_cache.bans_version_key("quiet"), "untouched")

    policy = SaltPolicy.from_settings(settings)
    keep_salts(database, policy, now_s=time.time() + policy.retention_s + DAY, client=redis_client)
    assert [ban.kind for ban in comment_store.list_bans(database, SITE)] == ["visitor"]
    assert redis_client.get(comment_cache.bans_version_key(SITE)) not in (None, before)
    assert redis_client.get(comment_cache.bans_version_key("quiet")) == "untouched"


async def test_after_the_first_comment_no_comment_reads_the_bans_from_sql(
    apps, redis_client, database
):
    one, _other = apps
    service = one.app.extensions["ovation"].comments
    calls: list[str] = []
    inner = service.bans._run_sql

    async def counting_run_sql(fn, *args):
        calls.append(fn.__name__)
        return await inner(fn, *args)

    service.bans._run_sql = counting_run_sql
    for n in range(20):
        await accepted(
            one, f"Comment {n}", visitor=f"visitor-reader-{n:02d}", ip=f"192.0.2.{n + 1}"
        )
    assert calls == ["site_bans"]


async def test_a_copy_older_than_its_maximum_age_is_read_again(
    apps, redis_client, database, settings
):
    # With AOF fsync every second, a Redis crash can lose the version a ban wrote in its last
    # second and come back with the version workers hold: the maximum age bounds that.
    one, _other = apps
    service = one.app.extensions["ovation"].comments
    now = [1000.0]
    service.bans = BanCache(service._redis, database, service._run_sql, clock=lambda: now[0])
    spam = await accepted(one, "Buy now")
    stored(redis_client, database)
    version = redis_client.get(comment_cache.bans_version_key(SITE))
    ban_author(redis_client, database, spam, remove=False)
    redis_client.set(comment_cache.bans_version_key(SITE), version)  # the lost write
    await accepted(one, "Slipped through", visitor="visitor-spammer-02")  # the bounded window
    now[0] += MAX_AGE_S
    await assert_error(await post(one, "Not any more"), 403, "banned")
