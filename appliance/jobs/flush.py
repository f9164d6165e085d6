"""Moves pending counter deltas from Redis to SQL, crash-safe.

The protocol, whose steps a crash may interrupt anywhere:

1. begin: one Lua script renames `pending` to `inflight` and names the batch (or finds the
   batch a crashed flusher left in flight and resumes it);
2. read: the in-flight deltas and the unique-visitor estimates of the pages they touched;
3. apply: one SQL transaction adds the deltas with bulk upserts and records the batch id; a
   batch id already recorded means a previous run committed it, so nothing is added twice;
4. finish: one Lua script folds the batch into the cached SQL totals and drops it.

A crash before 3 commits leaves the batch in flight and SQL untouched: the next run applies it.
A crash after 3 commits leaves it in flight and recorded: the next run skips 3 and finishes.

If Redis itself dies (host crash), it comes back from its append-only file, which with
`appendfsync everysec` may lack the last second. Should it lack step 1 of a batch that SQL
has committed, the deltas would come back as pending and be applied twice. So with that
setting the flusher waits `durability_wait_s` after step 1, until the AOF has surely been
fsynced, before it commits to SQL: a Redis crash can then lose up to a second of acknowledged
interactions (documented), but never count a batch twice.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import peewee as pw
import redis

from appliance.storage import counter_store as keys
from appliance.storage.counter_sql import BatchResult, apply_batch
from appliance.storage.counter_store import CounterScripts

log = logging.getLogger("ovation.flush")
FLUSH_STEPS = ("begun", "read", "applied", "finished")
AOF_EVERYSEC_WAIT_S = 2.0  # Redis fsyncs every second, or at worst 2 s when the disk lags


@dataclass(frozen=True)
class FlushReport:
    batch_id: str | None  # None: nothing was pending
    resumed: bool = False
    already_applied: bool = False
    counters: int = 0
    interactions: int = 0
    pages: int = 0
    duration_s: float = 0.0  # the work, without `waited_s`
    waited_s: float = 0.0  # the durability wait: idle, so kept out of the duration figures


def durability_wait(client: redis.Redis) -> float:
    """How long step 1 of a flush takes to be durable in this Redis's append-only file."""
    try:
        config = client.config_get("append*")
    except redis.exceptions.ResponseError:  # CONFIG disabled (managed Redis): assume the worst
        return AOF_EVERYSEC_WAIT_S
    if config.get("appendonly") == "yes" and config.get("appendfsync") == "everysec":
        return AOF_EVERYSEC_WAIT_S
    return 0.0  # fsync on every write, or nothing on disk to protect in the first place


def flush_once(client: redis.Redis, database: pw.Database,
               on_step: Callable[[str], None] | None = None,
               durability_wait_s: float = 0.0) -> FlushReport:
    """Run one flush to completion (finishing a crashed one first, if any)."""
    scripts = CounterScripts.register(client)
    started = time.perf_counter()
    report = _flush_batch(client, database, scripts, on_step, durability_wait_s)
    if report.resumed:
        # The batch we finished was a crashed run's; the current pending deltas still wait.
        follow_up = _flush_batch(client, database, scripts, on_step, durability_wait_s)
        if follow_up.batch_id:
            report = FlushReport(
                follow_up.batch_id, resumed=True, already_applied=report.already_applied,
                counters=report.counters + follow_up.counters,
                interactions=report.interactions + follow_up.interactions,
                pages=report.pages + follow_up.pages,
                waited_s=report.waited_s + follow_up.waited_s)
    # The duration is the work: with the owned Redis the 2 s wait would otherwise be nearly
    # all of every flush's figure, and hide what SQL costs.
    elapsed = time.perf_counter() - started
    report = dataclasses.replace(report, duration_s=max(elapsed - report.waited_s, 0.0))
    if report.batch_id:
        _record_stats(client, report)
    return report


def _flush_batch(client: redis.Redis, database: pw.Database, scripts: CounterScripts,
                 on_step: Callable[[str], None] | None, durability_wait_s: float) -> FlushReport:
    step = on_step or (lambda _name: None)
    began = scripts.begin_flush(keys=[], args=[keys.PREFIX, uuid.uuid4().hex])
    if not began:
        return FlushReport(None)
    batch_id, mode = began[0], began[1]
    waited_s = 0.0
    if mode == "new" and durability_wait_s:
        wait_started = time.perf_counter()
        time.sleep(durability_wait_s)
        waited_s = time.perf_counter() - wait_started
    step("begun")

    raw = client.hgetall(keys.INFLIGHT)
    deltas = {keys.split_counter_field(field): int(value) for field, value in raw.items()}
    members = sorted(client.smembers(keys.HLL_INFLIGHT))
    estimates: dict[tuple[str, str], int] = {}
    if members:
        pipe = client.pipeline(transaction=False)
        for member in members:
            pipe.pfcount(keys.hll_key(member))
        for member, estimate in zip(members, pipe.execute(), strict=False):
            site, path = member.split(keys.SEPARATOR, 1)
            estimates[(site, path)] = int(estimate)
    step("read")

    result: BatchResult = apply_batch(database, batch_id, deltas, estimates)
    step("applied")

    scripts.finish_flush(keys=[], args=[keys.PREFIX, batch_id])
    step("finished")
    if result.already_applied:
        log.info("batch %s was committed by an earlier run; dropped it from Redis", batch_id)
    return FlushReport(batch_id, mode == "resumed", result.already_applied, result.counters,
                       result.interactions, result.pages, waited_s=waited_s)


def _record_stats(client: redis.Redis, report: FlushReport) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(keys.FLUSH_STATS, "batches_total", 1)
    pipe.hincrby(keys.FLUSH_STATS, "rows_total", report.counters)
    pipe.hincrby(keys.FLUSH_STATS, "interactions_total", report.interactions)
    pipe.hincrbyfloat(keys.FLUSH_STATS, "duration_seconds_total", report.duration_s)
    pipe.hincrbyfloat(keys.FLUSH_STATS, "durability_wait_seconds_total", report.waited_s)
    pipe.hset(keys.FLUSH_STATS, mapping={
        "last_at": time.time(), "last_rows": report.counters,
        "last_duration_s": round(report.duration_s, 6), "last_batch": report.batch_id or "",
    })
    pipe.execute()


def record_failure(client: redis.Redis, error: str) -> None:
    """Count a failed flush (best effort: Redis itself may be what failed)."""
    try:
        client.hincrby(keys.FLUSH_STATS, "failures_total", 1)
        client.hset(keys.FLUSH_STATS, mapping={"last_error": error[:500],
                                               "last_error_at": time.time()})
    except redis.exceptions.RedisError:
        pass


def pending_counters(client: redis.Redis) -> int:
    """Counters waiting to be flushed (pending plus in flight)."""
    pipe = client.pipeline(transaction=False)
    pipe.hlen(keys.PENDING)
    pipe.hlen(keys.INFLIGHT)
    return sum(pipe.execute())
