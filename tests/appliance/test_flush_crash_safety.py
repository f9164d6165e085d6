"""The write-behind flush neither loses nor double-counts, whatever kills it and wherever."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from appliance.jobs.flush import FLUSH_STEPS, flush_once
from appliance.jobs.flusher import FlushLoop
from appliance.services.counters import CounterService
from appliance.services.sites import add_site
from appliance.services.sql_runner import SqlRunner
from appliance.storage import counter_store as keys
from appliance.storage.models import Counter, FlushBatch, Page
from appliance.storage.redis_client import async_redis, sync_redis
from appliance.storage.site_store import get_site
from tests.conftest import REPO, ovation_env

CRASHING_FLUSH = """
import os, signal
from appliance.settings import load_settings
from appliance.storage.database import open_database
from appliance.storage.redis_client import sync_redis
from appliance.jobs.flush import flush_once
settings = load_settings().settings
def crash(step):
    if step == os.environ["CRASH_AT"]:
        os.kill(os.getpid(), signal.SIGKILL)
flush_once(sync_redis(settings), open_database(settings.effective_database_url), on_step=crash)
"""


@pytest.fixture
async def service(settings, database, registry):
    add_site(database, "blog", [])
    client = async_redis(settings)
    runner = SqlRunner()
    yield CounterService(client, database, registry, settings, runner.run)
    await client.aclose()
    runner.close()


def sql_totals(database) -> dict[tuple[str, str], int]:
    with database.connection_context():
        query = Counter.select(Page.path, Counter.reaction, Counter.total).join(Page).tuples()
        return {(path, reaction): total for path, reaction, total in query}


async def record_some(service, site, round_number: int) -> dict[tuple[str, str], int]:
    """Record a known mix; return what was acknowledged per (path, reaction)."""
    acknowledged: dict[tuple[str, str], int] = {}
    for n in range(30):
        path = f"/post-{n % 7}"
        visitor = f"visitor-{round_number}-{n:03d}"
        for reaction, amount in (("view", 1), ("like", 1), ("applause", 1 + n % 9)):
            outcome = await service.record(site, path, reaction, "add", amount, visitor)
            key = (path, reaction)
            acknowledged[key] = acknowledged.get(key, 0) + outcome.applied
    return acknowledged


def merge(total: dict, more: dict) -> dict:
    merged = dict(total)
    for key, value in more.items():
        merged[key] = merged.get(key, 0) + value
    return merged


@pytest.mark.parametrize("crash_at", FLUSH_STEPS)
async def test_flusher_killed_at_each_step_loses_and_doubles_nothing(
        service, settings, database, crash_at):
    site = get_site(database, "blog")
    expected = await record_some(service, site, 1)
    crashed = subprocess.run([sys.executable, "-c", CRASHING_FLUSH], cwd=REPO,
                             env={**ovation_env(settings), "CRASH_AT": crash_at}, timeout=60)
    assert crashed.returncode == -signal.SIGKILL
    # Interactions keep arriving while the batch is stranded in flight.
    expected = merge(expected, await record_some(service, site, 2))
    (page,) = await service.totals(site, ["/post-1"])
    assert page.totals["applause"] == expected[("/post-1", "applause")]

    client = sync_redis(settings)
    report = flush_once(client, database)  # the restarted flusher
    assert report.resumed == (crash_at != "finished")
    assert report.already_applied == (crash_at == "applied")
    assert sql_totals(database) == {key: value for key, value in expected.items() if value}
    assert client.hlen(keys.PENDING) == 0 and not client.exists(keys.INFLIGHT_ID)
    (page,) = await service.totals(site, ["/post-1"])
    assert page.totals["applause"] == expected[("/post-1", "applause")]
    client.close()


async def test_replaying_a_committed_batch_changes_nothing(service, settings, database):
    site = get_site(database, "blog")
    expected = await record_some(service, site, 1)
    client = sync_redis(settings)
    flush_once(client, database)
    with database.connection_context():
        batches = FlushBatch.select().count()
    assert batches == 1
    assert flush_once(client, database).batch_id is None  # nothing pending: no empty batches
    assert sql_totals(database) == {key: value for key, value in expected.items() if value}
    client.close()


async def test_flusher_process_sigterm_flushes_before_exit(service, settings, database):
    from tests.conftest import start_process, stop_process

    site = get_site(database, "blog")
    slow = settings.model_copy(update={"flush_interval_s": 3600.0})
    log = settings.data_dir / "flusher.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    process = start_process(slow, "serve", "flusher", log=log)
    deadline = time.monotonic() + 60  # a loaded machine may take a while to start Python
    while "flusher started" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "flusher started" in log.read_text(), log.read_text()
    expected = await record_some(service, site, 1)
    assert stop_process(process) == 0
    assert sql_totals(database) == {key: value for key, value in expected.items() if value}


async def test_a_flusher_stopped_during_its_first_flush_stops_and_loses_nothing(
        service, settings, database):
    """SIGTERM before the scheduler runs: with counts pending, the first flush waits 2 s for
    the append-only file, and the signal lands in that wait. The flusher used to take it for
    a failed flush and then run on, deaf to the signal, until killed."""
    from tests.conftest import start_process, stop_process

    site = get_site(database, "blog")
    expected = await record_some(service, site, 1)
    log = settings.data_dir / "flusher.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    process = start_process(settings, "serve", "flusher", log=log)
    deadline = time.monotonic() + 60  # a loaded machine may take a while to start Python
    while "flusher started" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    try:  # one signal only: a second one (stop_process sends its own) means "exit now"
        assert process.wait(60) == 0, log.read_text()
    finally:
        stop_process(process)  # only if it is still running
    assert "flush failed" not in log.read_text()
    assert sql_totals(database) == {key: value for key, value in expected.items() if value}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_database_outage_keeps_accepting_and_flushes_exactly_after(
        service, settings, database, postgres_server):
    site = get_site(database, "blog")
    expected = await record_some(service, site, 1)
    client = sync_redis(settings)
    loop = FlushLoop(client, database, interval_s=0.2, retry_max_s=1.0)
    loop.tick()
    postgres_server.stop()
    try:
        # Readers keep interacting: the web only needs Redis (and its cached site).
        expected = merge(expected, await record_some(service, site, 2))
        loop.tick()
        assert loop.failures == 1 and loop.next_attempt > time.monotonic()
        loop.tick()  # within the backoff: skipped, not hammering the database
        assert loop.failures == 1
        deadline = time.monotonic() + 5
        while loop.failures < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
            loop.tick()
        assert loop.failures == 2  # retried after the backoff, failed again
        assert client.exists(keys.INFLIGHT_ID)  # the batch waits in Redis, nothing lost
    finally:
        postgres_server.start()
    deadline = time.monotonic() + 10
    while loop.failures and time.monotonic() < deadline:
        time.sleep(0.1)
        loop.tick()
    assert loop.failures == 0
    loop.tick()
    assert sql_totals(database) == {key: value for key, value in expected.items() if value}
    assert int(client.hget(keys.FLUSH_STATS, "failures_total")) == 2
    client.close()
