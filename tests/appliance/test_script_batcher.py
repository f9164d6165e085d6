"""Concurrent script calls share one pipeline, and each caller gets its own answer or error.
Real Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from appliance.storage.script_batcher import ScriptBatcher

INCR_OR_FAIL = """
if ARGV[1] == 'fail' then return redis.error_reply('refused ' .. KEYS[1]) end
return redis.call('INCRBY', KEYS[1], ARGV[1])
"""


@pytest.fixture
async def client(redis_url):
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def test_concurrent_calls_share_a_pipeline_and_get_their_own_results(client):
    script = client.register_script(INCR_OR_FAIL)
    assert await script(keys=["warm"], args=[1]) == 1  # Redis knows the script
    await client.config_resetstat()
    batcher = ScriptBatcher(client)
    exchanges = []
    pool = client.connection_pool
    original = pool.get_connection

    async def counting_get_connection(*args, **kwargs):
        exchanges.append(1)
        return await original(*args, **kwargs)

    pool.get_connection = counting_get_connection
    results = await asyncio.gather(*(batcher.call(script, [f"k{n % 3}"], [1])
                                     for n in range(30)), return_exceptions=True)
    assert len(exchanges) == 1  # one write and one read of the replies for the burst
    assert (await client.info("commandstats"))["cmdstat_evalsha"]["calls"] == 30
    assert sorted(results) == sorted(list(range(1, 11)) * 3)
    assert [await client.get(f"k{n}") for n in range(3)] == ["10", "10", "10"]


async def test_an_error_reaches_only_its_own_caller(client):
    script = client.register_script(INCR_OR_FAIL)
    batcher = ScriptBatcher(client)
    ok, failed, also_ok = await asyncio.gather(
        batcher.call(script, ["a"], [2]), batcher.call(script, ["b"], ["fail"]),
        batcher.call(script, ["a"], [3]), return_exceptions=True)
    assert (ok, also_ok) == (2, 5)
    assert isinstance(failed, redis_errors.ResponseError) and "refused b" in str(failed)


async def test_a_lone_call_and_a_script_unknown_to_redis(client):
    script = client.register_script(INCR_OR_FAIL)
    await client.script_flush()  # Redis forgot it: the batcher's pipeline loads it again
    batcher = ScriptBatcher(client)
    assert await batcher.call(script, ["solo"], [4]) == 4
    await client.script_flush()
    assert await asyncio.gather(batcher.call(script, ["x"], [1]),
                                batcher.call(script, ["x"], [1])) == [1, 2]


async def test_a_dead_connection_fails_every_waiting_caller():
    client = Redis(unix_socket_path="/nonexistent/redis.sock", socket_connect_timeout=0.5)
    script = client.register_script(INCR_OR_FAIL)
    batcher = ScriptBatcher(client)
    results = await asyncio.gather(*(batcher.call(script, ["k"], [1]) for _ in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(result, (redis_errors.ConnectionError, OSError))
               for result in results)
    await client.aclose()


async def test_an_argument_redis_cannot_take_fails_only_its_caller(client):
    script = client.register_script(INCR_OR_FAIL)
    batcher = ScriptBatcher(client)
    ok, bad = await asyncio.gather(batcher.call(script, ["fine"], [1]),
                                   batcher.call(script, ["fine"], [None]),
                                   return_exceptions=True)
    assert ok == 1
    assert isinstance(bad, redis_errors.DataError)
    assert await client.get("fine") == "1"


async def test_floats_and_ints_reach_redis_as_redis_py_sends_them(client):
    echo = client.register_script("return ARGV")
    batcher = ScriptBatcher(client)
    assert await batcher.call(echo, [], [1733580000123.456, 2.5, 7, "x", b"y"]) == [
        "1733580000123.456", "2.5", "7", "x", "y"]


async def test_a_burst_sends_no_script_check(client):
    """redis-py asks SCRIPT EXISTS before a pipeline holding Script objects: a second round
    trip per burst that the batcher does not pay (a script Redis forgot is run again alone,
    as test_a_lone_call_and_a_script_unknown_to_redis shows)."""
    script = client.register_script(INCR_OR_FAIL)
    assert await script(keys=["warm"], args=[1]) == 1  # Redis knows the script
    await client.config_resetstat()
    batcher = ScriptBatcher(client)
    results = await asyncio.gather(*(batcher.call(script, [f"b{n % 2}"], [2])
                                     for n in range(6)))
    assert sorted(results) == [2, 2, 4, 4, 6, 6]
    stats = await client.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 6
    assert not [name for name in stats if name.startswith("cmdstat_script")]
