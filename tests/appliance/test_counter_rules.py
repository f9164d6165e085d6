"""The interaction rules, against real Redis and real SQL (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from appliance.errors import InvalidInput, UnknownPage, UnknownReaction
from appliance.jobs.flush import flush_once
from appliance.services.counters import CounterService
from appliance.services.sites import add_site
from appliance.services.sql_runner import SqlRunner
from appliance.storage.models import Counter, Page, UniqueVisitors
from appliance.storage.redis_client import async_redis, sync_redis
from appliance.storage.site_store import get_site

VISITOR_A = "visitor-aaaa"
VISITOR_B = "visitor-bbbb"


@pytest.fixture
async def service(settings, database, registry):
    add_site(database, "blog", ["https://blog.example"])
    client = async_redis(settings)
    runner = SqlRunner()
    yield CounterService(client, database, registry, settings, runner.run)
    await client.aclose()
    runner.close()


@pytest.fixture
def site(database):
    return get_site(database, "blog")


def sql_total(database, path: str, reaction: str) -> int:
    with database.connection_context():
        row = (Counter.select(Counter.total).join(Page)
               .where((Page.path == path) & (Counter.reaction == reaction)).first())
        return row.total if row else 0


async def test_like_counts_once_per_visitor_and_can_be_withdrawn(service, site):
    first = await service.record(site, "/post", "like", "add", 1, VISITOR_A)
    again = await service.record(site, "/post/", "like", "add", 1, VISITOR_A)
    other = await service.record(site, "/post", "like", "add", 1, VISITOR_B)
    assert (first.applied, again.applied, other.applied) == (1, 0, 1)
    assert other.page.totals["like"] == 2
    assert again.page.visitor["like"] is True
    withdrawn = await service.record(site, "/post", "like", "remove", 1, VISITOR_A)
    assert withdrawn.applied == -1
    assert withdrawn.page.totals["like"] == 1
    assert withdrawn.page.visitor["like"] is False
    twice = await service.record(site, "/post", "like", "remove", 1, VISITOR_A)
    assert twice.applied == 0 and twice.page.totals["like"] == 1


async def test_applause_is_capped_per_visitor_per_page(service, site, settings):
    cap = settings.applause_cap
    first = await service.record(site, "/p", "applause", "add", cap - 10, VISITOR_A)
    over = await service.record(site, "/p", "applause", "add", 30, VISITOR_A)
    capped = await service.record(site, "/p", "applause", "add", 1, VISITOR_A)
    assert (first.applied, over.applied, capped.applied) == (cap - 10, 10, 0)
    assert capped.page.totals["applause"] == cap
    assert capped.page.visitor["applause"] == cap
    elsewhere = await service.record(site, "/other", "applause", "add", 5, VISITOR_A)
    assert elsewhere.applied == 5


async def test_applause_cap_follows_the_site_option(service, database, settings):
    from appliance.storage.site_store import SiteRecord, update_site

    update_site(database, SiteRecord(name="blog", origins=("https://blog.example",),
                                     reaction_options={"applause": {"per_visitor_cap": 3}}))
    record = get_site(database, "blog")
    outcome = await service.record(record, "/p", "applause", "add", 10, VISITOR_A)
    assert outcome.applied == 3


async def test_views_are_deduplicated_within_the_window(service, site):
    first = await service.record(site, "/p", "view", "add", 1, VISITOR_A)
    again = await service.record(site, "/p", "view", "add", 1, VISITOR_A)
    other = await service.record(site, "/p", "view", "add", 1, VISITOR_B)
    assert (first.applied, again.applied, other.applied) == (1, 0, 1)
    assert other.page.totals["view"] == 2


async def test_view_window_expires(make_settings, database_url, registry, redis_client):
    import asyncio

    from appliance.storage.database import open_database
    from appliance.storage.migrations import migrate

    settings = make_settings(database_url, view_window_s=1)
    database = open_database(settings.effective_database_url)
    migrate(database)
    add_site(database, "blog", [])
    from appliance.plugin_registry import ReactionRegistry
    from tests.conftest import BUILTIN_FACTORIES

    registry = ReactionRegistry.from_factories(BUILTIN_FACTORIES, settings)
    client = async_redis(settings)
    runner = SqlRunner()
    service = CounterService(client, database, registry, settings, runner.run)
    site = get_site(database, "blog")
    assert (await service.record(site, "/p", "view", "add", 1, VISITOR_A)).applied == 1
    assert (await service.record(site, "/p", "view", "add", 1, VISITOR_A)).applied == 0
    await asyncio.sleep(1.2)
    assert (await service.record(site, "/p", "view", "add", 1, VISITOR_A)).applied == 1
    await client.aclose()
    runner.close()


async def test_paths_that_mean_one_page_share_one_counter(service, site):
    for raw in ["https://blog.example/a/b/?utm_source=x#top", "/a/b", "/a/b/index.html",
                "/a/%62/", "a/b"]:
        await service.record(site, raw, "applause", "add", 1, f"visitor-{len(raw):04d}x")
    (page,) = await service.totals(site, ["/a/b/"])
    assert page.path == "/a/b"
    assert page.totals["applause"] == 5


async def test_totals_include_pending_in_flight_and_sql(service, site, settings, database):
    client = sync_redis(settings)
    await service.record(site, "/p", "applause", "add", 5, VISITOR_A)
    flush_once(client, database)
    assert sql_total(database, "/p", "applause") == 5
    await service.record(site, "/p", "applause", "add", 7, VISITOR_B)
    (page,) = await service.totals(site, ["/p"])
    assert page.totals["applause"] == 12
    # A batch in flight (flusher between steps) still counts exactly once.
    from appliance.storage import counter_store as keys
    from appliance.storage.counter_store import CounterScripts

    scripts = CounterScripts.register(client)
    scripts.begin_flush(keys=[], args=[keys.PREFIX, "batch-x"])
    (page,) = await service.totals(site, ["/p"])
    assert page.totals["applause"] == 12
    flush_once(client, database)
    (page,) = await service.totals(site, ["/p"])
    assert page.totals["applause"] == 12
    assert sql_total(database, "/p", "applause") == 12
    client.close()


async def test_cold_cache_is_seeded_from_sql(service, site, settings, database):
    client = sync_redis(settings)
    await service.record(site, "/p", "like", "add", 1, VISITOR_A)
    flush_once(client, database)
    for key in client.scan_iter("ov:{c}:sql:*"):
        client.delete(key)  # e.g. Redis restarted, or the cache expired
    (page,) = await service.totals(site, ["/p"])
    assert page.totals["like"] == 1
    client.close()


async def test_unique_visitors_are_estimated_and_flushed(service, site, settings, database):
    for n in range(20):
        await service.record(site, "/p", "view", "add", 1, f"visitor-{n:04d}")
    client = sync_redis(settings)
    flush_once(client, database)
    with database.connection_context():
        estimate = UniqueVisitors.select().join(Page).where(Page.path == "/p").get().estimate
    assert estimate == 20  # HyperLogLog is exact at this size
    client.close()


async def test_published_only_site_refuses_unknown_pages(service, database):
    add_site(database, "strict", [], accept_unpublished_pages=False)
    strict = get_site(database, "strict")
    with pytest.raises(UnknownPage):
        await service.record(strict, "/not-published", "view", "add", 1, VISITOR_A)


@pytest.mark.parametrize(("reaction", "action", "amount", "error"), [
    ("clap", "add", 1, UnknownReaction),
    ("view", "remove", 1, UnknownReaction),
    ("applause", "remove", 1, UnknownReaction),
    ("applause", "add", 0, InvalidInput),
    ("applause", "add", -3, InvalidInput),
    ("applause", "add", 51, InvalidInput),
    ("view", "add", 2, InvalidInput),
    ("like", "add", 2, InvalidInput),
    ("like", "toggle", 1, InvalidInput),
])
async def test_bad_interactions_are_refused_and_change_nothing(service, site, reaction, action,
                                                               amount, error):
    with pytest.raises(error):
        await service.record(site, "/p", reaction, action, amount, VISITOR_A)
    (page,) = await service.totals(site, ["/p"], VISITOR_A)
    assert page.totals == {"view": 0, "like": 0, "applause": 0}


async def test_bad_visitor_ids_are_refused(service, site):
    for visitor in ["short", "x" * 65, "has space!", "émoji-visitor"]:
        with pytest.raises(InvalidInput):
            await service.record(site, "/p", "like", "add", 1, visitor)


async def test_a_whole_flush_between_sql_read_and_seed_forces_a_reread(service, site, settings,
                                                                      database):
    """The ABA case: no batch in flight at the read, none at the seed, but one ran between."""
    from appliance.storage import counter_store as keys
    from appliance.storage.counter_sql import read_page_totals
    from appliance.storage.counter_store import CounterScripts

    client = sync_redis(settings)
    await service.record(site, "/p", "like", "add", 1, VISITOR_A)
    flush_once(client, database)
    client.delete(keys.sql_cache_key(keys.page_member("blog", "/p")))
    generation, inflight = client.mget(keys.FLUSH_GENERATION, keys.INFLIGHT_ID)
    stale, applied = read_page_totals(database, "blog", ["/p"], inflight or "")
    await service.record(site, "/p", "like", "add", 1, VISITOR_B)
    flush_once(client, database)  # SQL now has 2; the reader above saw 1
    scripts = CounterScripts.register(client)
    seeded = scripts.seed(keys=[], args=[keys.PREFIX, "blog|/p", "blog", "/p", inflight or "",
                                         "1" if applied else "0", 60, generation or "0",
                                         "like", stale["/p"]["like"]])
    assert seeded == 0  # refused: the caller must read SQL again
    (page,) = await service.totals(site, ["/p"])
    assert page.totals["like"] == 2
    client.close()


async def test_unique_visitor_estimate_never_shrinks(service, site, settings, database):
    client = sync_redis(settings)
    for n in range(5):
        await service.record(site, "/p", "view", "add", 1, f"visitor-{n:04d}")
    flush_once(client, database)
    client.delete(*client.keys("ov:{c}:hll:*"))  # Redis lost its HyperLogLog
    await service.record(site, "/p", "view", "add", 1, "visitor-late")
    flush_once(client, database)
    with database.connection_context():
        estimate = UniqueVisitors.select().join(Page).where(Page.path == "/p").get().estimate
    assert estimate == 5
    client.close()


def test_flush_waits_for_the_append_only_file_when_fsync_is_every_second(redis_client):
    from appliance.jobs.flush import AOF_EVERYSEC_WAIT_S, durability_wait

    assert durability_wait(redis_client) == AOF_EVERYSEC_WAIT_S  # the tests' Redis: everysec
    redis_client.config_set("appendfsync", "always")
    try:
        assert durability_wait(redis_client) == 0.0
    finally:
        redis_client.config_set("appendfsync", "everysec")


async def test_flush_durations_leave_out_the_durability_wait(service, site, settings, database):
    """The wait for the append-only file is idle time: it is counted apart, so the duration
    figures (/metrics, the dashboard, the log) show what flushing costs."""
    import time

    from appliance.storage import counter_store as keys

    client = sync_redis(settings)
    await service.record(site, "/p", "like", "add", 1, VISITOR_A)
    wait_s = 0.3
    started = time.perf_counter()
    report = flush_once(client, database, durability_wait_s=wait_s)
    elapsed_s = time.perf_counter() - started
    assert report.batch_id and report.waited_s >= wait_s * 0.999
    # Work and wait both fit in the call only if the duration leaves the wait out.
    assert report.duration_s + report.waited_s <= elapsed_s
    stats = client.hgetall(keys.FLUSH_STATS)
    assert float(stats["last_duration_s"]) == round(report.duration_s, 6)
    assert float(stats["duration_seconds_total"]) == pytest.approx(report.duration_s)
    assert float(stats["durability_wait_seconds_total"]) == pytest.approx(report.waited_s)
    client.close()
