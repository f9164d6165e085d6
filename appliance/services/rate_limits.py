"""Server-side rate limits kept in Redis with GCRA (the generic cell rate algorithm).

Each limit is "N requests per period" for one key (a network hash, a visitor hash). GCRA keeps
one timestamp per key (the theoretical arrival time), so a limit costs one small string in
Redis whatever N is, spreads requests evenly, and allows a burst of N after a quiet period.
Several keys (per network and per visitor) are checked and charged in one atomic script: a
request is charged to none of them unless all of them allow it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from redis import exceptions as redis_errors

from appliance.errors import InvalidInput, RateLimited
from appliance.settings import Settings
from appliance.storage.site_store import SiteRecord

log = logging.getLogger("ovation.gateway")

# What a site may override (`platformctl site set S --rate-limit NAME=N`): the deployment's
# setting of each name, and the largest value accepted. 0 means no limit for that site.
SITE_LIMITS: dict[str, tuple[str, int]] = {
    "interactions_per_min": ("rate_interactions_per_min", 1_000_000),
    "interactions_per_visitor_per_min": ("rate_interactions_per_visitor_per_min", 1_000_000),
    "reads_per_min": ("rate_reads_per_min", 1_000_000),
    "admin_per_min": ("rate_admin_per_min", 1_000_000),
    "comment_rate_limit": ("comment_rate_limit", 10_000),
}

# ARGV: now_ms, then pairs (interval_ms, burst_ms) matching KEYS.
# Returns 0 when allowed (and charged), else the milliseconds until the request would be.
GCRA_SCRIPT = """
local now = tonumber(ARGV[1])
local new_tats = {}
for i, key in ipairs(KEYS) do
  local interval, burst = tonumber(ARGV[i * 2]), tonumber(ARGV[i * 2 + 1])
  local tat = math.max(tonumber(redis.call('GET', key) or now), now)
  local new_tat = tat + interval
  local allowed_at = new_tat - burst
  if allowed_at > now then return math.ceil(allowed_at - now) end
  new_tats[i] = new_tat
end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, new_tats[i], 'PX', math.ceil(new_tats[i] - now) + 1)
end
return 0
"""


def site_limit(settings: Settings, site: SiteRecord | None, name: str) -> int:
    """The limit `name` for this site: its override, else the deployment's setting."""
    overrides = site.rate_limits if site is not None else {}
    if name in overrides:
        return int(overrides[name])
    return int(getattr(settings, SITE_LIMITS[name][0]))


def change_site_limits(current: dict[str, int], changes: list[str]) -> dict[str, int]:
    """Apply `NAME=N` (override) and `NAME=default` (back to the setting) to a site's
    overrides; every mistake is an InvalidInput naming the valid choices."""
    limits = dict(current)
    for change in changes:
        name, sep, value = (part.strip() for part in change.partition("="))
        if not sep or not value:
            raise InvalidInput(f"Rate limit {change!r} must look like NAME=N or NAME=default.",
                               details={"field": "rate_limits"})
        if name not in SITE_LIMITS:
            raise InvalidInput(f"Unknown rate limit {name!r}; one of: "
                               f"{', '.join(SITE_LIMITS)}.", details={"field": "rate_limits"})
        if value == "default":
            limits.pop(name, None)
            continue
        largest = SITE_LIMITS[name][1]
        if not value.isascii() or not value.isdigit() or int(value) > largest:
            raise InvalidInput(f"Rate limit {name} must be a whole number from 0 (no limit) "
                               f"to {largest:,}, or 'default'; got {value!r}.",
                               details={"field": "rate_limits"})
        limits[name] = int(value)
    return limits


@dataclass(frozen=True)
class Limit:
    """`count` requests per `period_s` for keys of one kind (e.g. per network)."""

    kind: str
    count: int
    period_s: float

    @property
    def interval_ms(self) -> float:
        return self.period_s * 1000 / self.count

    @property
    def burst_ms(self) -> float:
        return self.period_s * 1000


class RateLimiter:
    """Checks and charges limits for a route class; raises RateLimited with a Retry-After."""

    def __init__(self, redis, batcher=None) -> None:
        self._redis = redis
        self._script = redis.register_script(GCRA_SCRIPT)
        self._batcher = batcher  # a ScriptBatcher: concurrent requests share a pipeline

    async def check(self, route_class: str, charges: list[tuple[Limit, str]],
                    now_ms: float | None = None) -> None:
        charges = [(limit, value) for limit, value in charges if value and limit.count > 0]
        if not charges:
            return
        import time

        now = time.time() * 1000 if now_ms is None else now_ms
        keys = [f"ov:rl:{route_class}:{limit.kind}:{value}" for limit, value in charges]
        args: list[float] = [now]
        for limit, _ in charges:
            args += [limit.interval_ms, limit.burst_ms]
        try:
            if self._batcher is not None:
                wait_ms = await self._batcher.call(self._script, keys, args)
            else:
                wait_ms = await self._script(keys=keys, args=args)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            # Fail open: whatever needs Redis fails on its own with 503; what does not (site
            # configuration from SQL) should not go down with the limiter.
            log.warning("rate limits not checked, Redis unreachable: %s", exc)
            return
        if wait_ms:
            retry_after = max(1, math.ceil(int(wait_ms) / 1000))
            raise RateLimited(f"Too many requests ({route_class}); try again in "
                              f"{retry_after} s.", retry_after)
