"""Reads the time-bucketed statistics the interaction script keeps in Redis (`dash:` keys).

A handful of pipelined reads per refresh, whatever the traffic: the dashboard never scans SQL
for live figures.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import redis

from appliance.dashboard.snapshot import PageCount
from appliance.storage import counter_store as keys

SERIES_BUCKETS = 60  # ten minutes of 10-second buckets, the most a sparkline shows
TOP_NOW_BUCKETS = 30  # "now" is the last five minutes
TOP_PAGES = 10


@dataclass
class LiveStats:
    rates: dict[str, float] = field(default_factory=dict)
    rate_series: dict[str, list[int]] = field(default_factory=dict)
    today: dict[str, int] = field(default_factory=dict)
    unique_visitors_today: int = 0
    top_pages_now: list[PageCount] = field(default_factory=list)
    top_pages_today: list[PageCount] = field(default_factory=list)


def read_live_stats(client: redis.Redis, now: float) -> LiveStats:
    current = keys.stats_bucket(now)
    buckets = list(range(current - SERIES_BUCKETS + 1, current + 1))
    day = keys.stats_day(now)
    pipe = client.pipeline(transaction=False)
    for bucket in buckets:
        pipe.hgetall(keys.stats_rate_key(bucket))
    pipe.hgetall(keys.stats_day_key(day))
    pipe.pfcount(keys.stats_day_visitors_key(day))
    pipe.zrange(keys.stats_day_pages_key(day), 0, TOP_PAGES - 1, desc=True, withscores=True)
    replies = pipe.execute()
    per_bucket, (today, visitors, top_today) = replies[:len(buckets)], replies[len(buckets):]

    types = sorted({name for counts in per_bucket for name in counts} | set(today))
    series = {name: [int(counts.get(name, 0)) for counts in per_bucket] for name in types}
    # The rate now: the current (partial) bucket and the whole one before it, over the time
    # they cover, so the figure neither jumps to zero at a bucket edge nor lags a full bucket.
    elapsed = now - current * keys.STATS_BUCKET_S
    window = keys.STATS_BUCKET_S + max(elapsed, 0.0)
    rates = {name: (values[-1] + values[-2]) / window for name, values in series.items()}
    return LiveStats(
        rates=rates, rate_series=series,
        today={name: int(count) for name, count in today.items()},
        unique_visitors_today=int(visitors),
        top_pages_now=_top_pages_now(client, current),
        top_pages_today=[_page(member, score) for member, score in top_today])


def _top_pages_now(client: redis.Redis, current: int) -> list[PageCount]:
    sources = [keys.stats_pages_key(bucket)
               for bucket in range(current - TOP_NOW_BUCKETS + 1, current + 1)]
    # Summed into a short-lived key of our own (same hash slot as the sources), read, dropped.
    scratch = f"{keys.PREFIX}dash:scratch:{uuid.uuid4().hex}"
    pipe = client.pipeline(transaction=True)
    pipe.zunionstore(scratch, sources)
    pipe.zrange(scratch, 0, TOP_PAGES - 1, desc=True, withscores=True)
    pipe.delete(scratch)
    _, top, _ = pipe.execute()
    return [_page(member, score) for member, score in top]


def _page(member: str, score: float) -> PageCount:
    site, _, path = member.partition(keys.SEPARATOR)
    return PageCount(site, path, int(score))
