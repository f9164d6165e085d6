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
import time
from dataclasses import dataclass

from redis import exceptions as redis_errors

from appliance.errors import InvalidInput, RateLimited
from appliance.settings import Settings
from appliance.storage.gcra_lua import GCRA_LUA
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
GCRA_SCRIPT = GCRA_LUA + """
local intervals, bursts = {}, {}
for i = 1, #KEYS do
  intervals[i], bursts[i] = tonumber(ARGV[i * 2]), tonumber(ARGV[i * 2 + 1])
end
return gcra(tonumber(ARGV[1]), KEYS, intervals, bursts)
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


@dataclass(frozen=True)
class Charge:
    """A request's charge to its limits, ready to run alone (`RateLimiter.run`) or inside
    another script (the interaction script takes `script_args`), so that a request costs one
    Redis round trip instead of two."""

    route_class: str
    keys: list[str]
    args: list[float]  # now_ms, then interval_ms and burst_ms per key
    limiter: RateLimiter

    async def run(self) -> None:
        """Charge now, on its own; raise RateLimited when refused."""
        await self.limiter.run(self)

    def script_args(self) -> list:
        """now_ms, then key, interval_ms, burst_ms per key (the interaction script's tail)."""
        out: list = [self.args[0]]
        for index, key in enumerate(self.keys):
            out += [key, self.args[1 + 2 * index], self.args[2 + 2 * index]]
        return out

    def refused(self, wait_ms: float) -> RateLimited:
        retry_after = max(1, math.ceil(int(wait_ms) / 1000))
        return RateLimited(f"Too many requests ({self.route_class}); try again in "
                           f"{retry_after} s.", retry_after)


class RateLimiter:
    """Checks and charges limits for a route class; raises RateLimited with a Retry-After."""

    def __init__(self, redis, batcher=None) -> None:
        self._redis = redis
        self._script = redis.register_script(GCRA_SCRIPT)
        self._batcher = batcher  # a ScriptBatcher: concurrent requests share a pipeline

    def charge(self, route_class: str, charges: list[tuple[Limit, str]],
               now_ms: float | None = None) -> Charge | None:
        """The charge of `charges` (None when no limit applies), not yet run."""
        charges = [(limit, value) for limit, value in charges if value and limit.count > 0]
        if not charges:
            return None
        now = time.time() * 1000 if now_ms is None else now_ms
        keys = [f"ov:rl:{route_class}:{limit.kind}:{value}" for limit, value in charges]
        args: list[float] = [now]
        for limit, _ in charges:
            args += [limit.interval_ms, limit.burst_ms]
        return Charge(route_class, keys, args, self)

    async def check(self, route_class: str, charges: list[tuple[Limit, str]],
                    now_ms: float | None = None) -> None:
        charge = self.charge(route_class, charges, now_ms)
        if charge is not None:
            await self.run(charge)

    async def run(self, charge: Charge) -> None:
        """Run `charge` on its own; raise RateLimited when refused."""
        try:
            if self._batcher is not None:
                wait_ms = await self._batcher.call(self._script, charge.keys, charge.args)
            else:
                wait_ms = await self._script(keys=charge.keys, args=charge.args)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            # Fail open: whatever needs Redis fails on its own with 503; what does not (site
            # configuration from SQL) should not go down with the limiter.
            log.warning("rate limits not checked, Redis unreachable: %s", exc)
            return
        if wait_ms:
            raise charge.refused(wait_ms)
