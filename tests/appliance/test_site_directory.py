"""The web workers' cached site lookups: when the cached copy expires under load, the requests
in flight share one SQL read instead of each reading the same row. Real SQL (SQLite: the
lookup is one row by name on either database)."""

from __future__ import annotations

import asyncio

import pytest

from appliance.errors import UnknownSite
from appliance.services.sites import SiteDirectory, add_site
from appliance.services.sql_runner import SqlRunner

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def counted_sql():
    """The real SQL runner, counting the reads it runs."""
    runner = SqlRunner()
    reads: list[str] = []

    async def run(fn, *args):
        reads.append(fn.__name__)
        return await runner.run(fn, *args)

    yield run, reads
    runner.close()


async def test_concurrent_lookups_of_an_expired_site_share_one_read(database, counted_sql):
    add_site(database, "blog", ["https://blog.example"], title="A blog")
    run, reads = counted_sql
    directory = SiteDirectory(database, run, ttl_s=0)  # every lookup finds the copy expired
    records = await asyncio.gather(*(directory.get("blog") for _ in range(20)))
    assert reads == ["get_site"]
    assert {record.title for record in records} == {"A blog"}
    await directory.get("blog")  # a later lookup reads again
    assert reads == ["get_site"] * 2


async def test_an_unknown_site_is_one_read_for_all_who_ask(database, counted_sql):
    run, reads = counted_sql
    directory = SiteDirectory(database, run, ttl_s=60)
    results = await asyncio.gather(*(directory.get("nosuch") for _ in range(5)),
                                   return_exceptions=True)
    assert all(isinstance(result, UnknownSite) for result in results)
    assert reads == ["get_site"]


async def test_a_cancelled_lookup_does_not_cancel_the_others(database, counted_sql):
    add_site(database, "blog", [])
    run, reads = counted_sql
    directory = SiteDirectory(database, run, ttl_s=60)
    first = asyncio.ensure_future(directory.get("blog"))
    second = asyncio.ensure_future(directory.get("blog"))
    await asyncio.sleep(0)  # both wait on the one read
    first.cancel()
    assert (await second).name == "blog"
    assert first.cancelled() and reads == ["get_site"]
