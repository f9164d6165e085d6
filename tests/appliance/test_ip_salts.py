"""Rotating salts of the IP hashes: one salt per rotation slot, shared by every process through
SQL, deleted after the retention; IP bans hold under any retained salt and lapse with it.
Real SQLite and PostgreSQL, real Redis; time is passed in, never slept through."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest

from appliance.errors import Forbidden, ServiceUnavailable
from appliance.services.comments import CommentInput, CommentService
from appliance.services.ip_salts import IpSalts, SaltPolicy, ip_hash, keep_salts, network_of
from appliance.services.moderation import ban_author
from appliance.services.sites import add_site
from appliance.services.sql_runner import SqlRunner
from appliance.storage import comment_store, salt_store
from appliance.storage.models import Ban, IpSalt
from appliance.storage.redis_client import async_redis
from appliance.storage.site_store import get_site
from appliance.workers.listener import build_listener

HOUR, DAY = 3600, 86400
T0 = 1_700_006_400  # a slot boundary for hours and days
KEY = b"test-secret"


def stored_starts(database) -> list[int]:
    with database.connection_context():
        return sorted(row.starts_at_s for row in IpSalt.select())


def test_one_salt_per_slot_then_deleted_after_the_retention(database):
    first = salt_store.salts_in_use(database, T0 + 5, DAY, 3 * DAY)
    assert [s.starts_at_s for s in first] == [T0] and len(first[0].salt) == 64
    assert salt_store.salts_in_use(database, T0 + DAY - 1, DAY, 3 * DAY) == first  # same slot
    second = salt_store.salts_in_use(database, T0 + DAY + 7, DAY, 3 * DAY)
    assert [s.starts_at_s for s in second] == [T0 + DAY, T0]  # current first, old one kept
    assert second[0].salt != first[0].salt
    # Three days after it started, the first salt goes, at the rotation that finds it expired.
    third = salt_store.salts_in_use(database, T0 + 3 * DAY + 1, DAY, 3 * DAY)
    assert [s.starts_at_s for s in third] == [T0 + 3 * DAY, T0 + DAY]
    assert stored_starts(database) == [T0 + DAY, T0 + 3 * DAY]
    # With nobody asking for a salt, the flusher's housekeeping deletes on time.
    assert keep_salts(database, SaltPolicy(DAY, 3 * DAY), now_s=T0 + 4 * DAY + 1) == 1
    assert stored_starts(database) == [T0 + 3 * DAY, T0 + 4 * DAY]


def test_simultaneous_rotations_agree_on_one_salt(database):
    """Eight workers find no current salt at the same instant: one insert wins, all read it."""
    start = threading.Barrier(8)
    seen: list[str] = []

    def worker() -> None:
        start.wait()
        seen.append(salt_store.salts_in_use(database, T0 + 60, HOUR, DAY)[0].salt)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8 and len(set(seen)) == 1
    assert stored_starts(database) == [T0]


def test_hashes_are_keyed_salted_per_site_and_group_ipv6_by_64():
    one = ip_hash(KEY, "a" * 64, "blog", "203.0.113.9")
    assert len(one) == 32 and "203" not in one
    assert one != ip_hash(KEY, "b" * 64, "blog", "203.0.113.9")  # another salt
    assert one != ip_hash(KEY, "a" * 64, "news", "203.0.113.9")  # another site
    assert one != ip_hash(b"other-key", "a" * 64, "blog", "203.0.113.9")  # another instance
    assert ip_hash(KEY, "a" * 64, "blog", None) == ""
    assert network_of("2001:db8:1:2:aaaa::1") == network_of("2001:db8:1:2:ffff::9") \
        == "2001:db8:1:2::/64"
    assert network_of("2001:db8:1:3::1") != network_of("2001:db8:1:2::1")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingRunner:
    """The real SQL runner, counting the queries made through it."""

    def __init__(self) -> None:
        self.runner = SqlRunner()
        self.calls = 0

    async def run(self, fn, *args):
        self.calls += 1
        return await self.runner.run(fn, *args)


async def test_a_process_reads_the_salts_once_per_refresh_and_at_each_rotation(database):
    clock = Clock(T0 + 10)
    sql = CountingRunner()
    salts = IpSalts(database, KEY, SaltPolicy(HOUR, DAY), sql.run, clock)
    hashes = {await salts.current_hash("blog", "203.0.113.9") for _ in range(200)}
    assert len(hashes) == 1 and sql.calls == 1  # no SQL per request
    clock.now = T0 + HOUR + 1  # the next slot: a new salt at once, on every host alike
    rotated = await salts.current_hash("blog", "203.0.113.9")
    assert rotated not in hashes and sql.calls == 2
    both = await salts.all_hashes("blog", "203.0.113.9")
    assert both == [rotated, *hashes]
    clock.now = T0 + DAY + 30  # the first salt is past its retention: never used again
    later = await salts.all_hashes("blog", "203.0.113.9")
    assert len(later) == 2 and later[1] == rotated and not hashes & set(later)
    sql.runner.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_copy_outlives_a_database_outage_and_a_cold_start_falls_back(database,
                                                                            database_url):
    clock = Clock(T0 + 10)
    sql = SqlRunner()
    salts = IpSalts(database, KEY, SaltPolicy(HOUR, DAY), sql.run, clock)
    before = await salts.current_hash("blog", "203.0.113.9")
    database.close()
    os.remove(database_url.removeprefix("sqlite:///"))  # the database is gone
    clock.now = T0 + 600  # a refresh is due: it fails, and the copy is kept
    assert await salts.current_hash("blog", "203.0.113.9") == before
    cold = IpSalts(database, KEY, SaltPolicy(HOUR, DAY), sql.run, clock)
    with pytest.raises(ServiceUnavailable):  # comments need SQL anyway: 503
        await cold.all_hashes("blog", "203.0.113.9")
    # Rate-limit keys fall back to the key alone, so limits hold while SQL is down.
    assert await cold.rate_key("blog", "203.0.113.9") == ip_hash(KEY, "", "blog", "203.0.113.9")
    sql.close()


@pytest.fixture
async def comments(settings, database):
    add_site(database, "blog", ["https://blog.example"])
    client = async_redis(settings)
    sql = SqlRunner()
    clock = Clock(time.time())  # comments get real timestamps: salts start around them
    salts = IpSalts(database, settings.hashing_key(), SaltPolicy(HOUR, DAY), sql.run, clock)
    yield CommentService(client, database, settings, sql.run, ip_salts=salts), clock
    await client.aclose()
    sql.close()


async def test_an_ip_ban_holds_under_an_older_salt_and_lapses_when_it_is_deleted(
        comments, database, redis_client, settings):
    service, clock = comments
    listener = build_listener(redis_client, database, settings.comment_max_depth)
    site = get_site(database, "blog")
    spammer_ip = "198.51.100.66"

    async def post(visitor: str, ip: str, body: str):
        return await service.submit(site, CommentInput(path="/post", body=body, visitor=visitor),
                                    ip)

    spam = await post("visitor-spam-0001", spammer_ip, "Buy now")
    listener.run_once()
    clock.now += 3 * HOUR  # two rotations later the comment's salt is no longer current
    assert ban_author(redis_client, database, spam.id) == ["visitor", "network"]
    with pytest.raises(Forbidden) as refused:
        await post("visitor-spam-0002", spammer_ip, "New id, same network")
    assert refused.value.code == "banned"
    assert (await post("visitor-else-0001", "198.51.100.67", "Hello")).status == "approved"

    clock.now += DAY  # the spam's salt is now older than the retention: deleted at rotation
    accepted = await post("visitor-spam-0003", spammer_ip, "Forgiven")
    assert accepted.status == "approved"
    with database.connection_context():
        assert IpSalt.select().where(IpSalt.starts_at_s <= clock.now - DAY).count() == 0
    # The ban by visitor id is permanent.
    with pytest.raises(Forbidden):
        await post("visitor-spam-0001", "192.0.2.1", "Still me")
    # Banning from a comment whose salt is gone bans the visitor only: a network ban would
    # match nothing.
    assert ban_author(redis_client, database, spam.id, remove=False) == ["visitor"]


def test_expired_ip_bans_are_deleted_with_their_salts(database):
    add_site(database, "blog", [])
    comment_store.add_ban(database, "blog", "ip", "a" * 32, "old")
    comment_store.add_ban(database, "blog", "visitor", "b" * 32, "forever")
    salt_store.delete_expired(database, time.time() + DAY + 5, DAY)
    with database.connection_context():
        assert [(ban.kind, ban.reason) for ban in Ban.select()] == [("visitor", "forever")]


def test_a_debug_log_of_the_queries_never_shows_a_salt(database, caplog):
    with caplog.at_level(logging.DEBUG, logger="peewee"):
        salts = salt_store.salts_in_use(database, T0 + 5, HOUR, DAY)
    assert "ip_salt" in caplog.text  # the queries were logged,
    assert salts[0].salt not in caplog.text  # their salt was not
