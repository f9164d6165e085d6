"""Redis side of the write-behind counters: keys and the atomic Lua scripts that touch them.

Every key carries the hash tag `{c}` so that all counter keys live in one slot and the scripts
also run on Redis Cluster. A page's live total for a reaction type is always

    cached SQL total + pending delta + in-flight delta

and every script that changes one of the three keeps that sum unchanged (except by the
interaction it records), so no reader sees a count move backwards at flush time.

Keys (P = `ov:{c}:`; a page is `SITE|PATH`, a counter field is `SITE|FIELD|PATH` where FIELD is
a type, or `TYPE.PART` for a choice option or a score's sum and count):

| key | type | holds |
| --- | --- | --- |
| P pending | hash | counter field -> delta not yet flushed |
| P inflight / P inflight_id | hash / string | the batch being flushed, and its id |
| P flush_gen | integer | counts finished flushes, so a seed can tell that one happened |
| P hll_dirty / P hll_inflight | set | pages whose unique-visitor estimate changed |
| P sql:PAGE | hash | cached SQL totals of a page (type -> total, `_` marks presence) |
| P vs:PAGE | hash | per-visitor state: `TYPE|VISITOR` -> amount given / 1 (toggle) / key / score |
| P seen:TYPE|VISITOR|PAGE | string | windowed dedup (views), expires with the window |
| P hll:PAGE | HyperLogLog | distinct visitors of a page |
| P live:PAGE | string | live-update throttle for a page |
| P live_sent:PAGE | string | the page was pushed within the interval (leading-edge push) |
| P watched:PAGE | string | a lease: some web worker has a live socket following the page |
| P stats | hash | interactions accepted, by type (for /metrics) |
| P plugin_errors / P plugin_last_error | hash | plugin hooks that raised, by type |
| P dash:rate:BUCKET | hash | interactions by type in one 10-second bucket (dashboard) |
| P dash:pages:BUCKET | sorted set | interactions by page (`SITE|PATH`) in one bucket (dashboard) |
| P dash:day:DAY / P dash:daypages:DAY | hash / sorted set | the same for a UTC day |
| P dash:uv:DAY | HyperLogLog | distinct visitors (all sites) of a UTC day |

The `dash:` keys are small statistics for `platformctl dashboard`: written by the interaction
script, they expire on their own (buckets after minutes, days after two days) and the page sets
keep only their top entries, so a flood of distinct paths cannot grow them without bound.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from appliance.storage.gcra_lua import GCRA_LUA

PREFIX = "ov:{c}:"
PENDING = PREFIX + "pending"
INFLIGHT = PREFIX + "inflight"
INFLIGHT_ID = PREFIX + "inflight_id"
FLUSH_GENERATION = PREFIX + "flush_gen"
HLL_DIRTY = PREFIX + "hll_dirty"
HLL_INFLIGHT = PREFIX + "hll_inflight"
STATS = PREFIX + "stats"
FLUSH_STATS = PREFIX + "flush_stats"
SEPARATOR = "|"
# Counter targets that are not pages: a comment's votes are counted under `~c/ID` (page paths
# always start with "/", so the two never meet), with the reactions "up" and "down".
COMMENT_TARGET = "~c/"
VOTE_REACTIONS = ("up", "down")


def comment_target(comment_id: str) -> str:
    return COMMENT_TARGET + comment_id


def page_member(site: str, path: str) -> str:
    return f"{site}{SEPARATOR}{path}"


def counter_field(site: str, reaction: str, path: str) -> str:
    return f"{site}{SEPARATOR}{reaction}{SEPARATOR}{path}"


def split_counter_field(field: str) -> tuple[str, str, str]:
    """Inverse of `counter_field`; site and type never contain the separator, paths may."""
    site, reaction, path = field.split(SEPARATOR, 2)
    return site, reaction, path


# The dashboard's time-bucketed statistics (`dash:` keys, written by INTERACT_SCRIPT).
STATS_BUCKET_S = 10
STATS_BUCKET_TTL_S = 15 * 60  # the dashboard looks back at most ten minutes
STATS_DAY_TTL_S = 2 * 86400  # today and yesterday
STATS_TOP_PAGES = 1000  # pages kept per bucket and per day (the most counted ones)


def stats_bucket(now: float) -> int:
    return int(now) // STATS_BUCKET_S


def stats_day(now: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(now))


def live_stats_args(now: float) -> list:
    """The optional trailing ARGV of INTERACT_SCRIPT that feed the dashboard's statistics."""
    return [stats_bucket(now), _stats_day_of_second(int(now)), STATS_BUCKET_TTL_S,
            STATS_DAY_TTL_S, STATS_TOP_PAGES]


@functools.lru_cache(maxsize=4)
def _stats_day_of_second(second: int) -> str:
    # Every interaction asks; formatting a date each time cost more than the rest of the args.
    return stats_day(second)


def stats_rate_key(bucket: int) -> str:
    return f"{PREFIX}dash:rate:{bucket}"


def stats_pages_key(bucket: int) -> str:
    return f"{PREFIX}dash:pages:{bucket}"


def stats_day_key(day: str) -> str:
    return f"{PREFIX}dash:day:{day}"


def stats_day_pages_key(day: str) -> str:
    return f"{PREFIX}dash:daypages:{day}"


def stats_day_visitors_key(day: str) -> str:
    return f"{PREFIX}dash:uv:{day}"


def watched_key(site: str, path: str) -> str:
    """`ov:{c}:watched:SITE|PATH`: a web worker has a live socket following the page (a lease
    each such worker renews, see web/watched_pages.py). INTERACT_SCRIPT reads it, so it lives
    in the counters' hash slot."""
    return f"{PREFIX}watched:{page_member(site, path)}"


def hll_key(member: str) -> str:
    return f"{PREFIX}hll:{member}"


def sql_cache_key(member: str) -> str:
    return f"{PREFIX}sql:{member}"


# Shared Lua: the live totals and a visitor's state for one page. `fields` are totals keys
# (a type, or TYPE.PART for choices and scores); `types` the types whose visitor state is read.
_TOTALS_LUA = """
local P, CACHE_TTL = ARGV[1], ARGV[2]
local function page_totals(site, path, fields, types, visitor, out)
  local member = site .. '|' .. path
  local cache = P .. 'sql:' .. member
  local cached = redis.call('EXPIRE', cache, CACHE_TTL)  -- 1 if present; kept while in use
  out[#out + 1] = cached
  -- One HMGET per hash, not one HGET per field: this runs for every interaction and push.
  if #fields > 0 then
    local counter_fields = {}
    for i, f in ipairs(fields) do counter_fields[i] = site .. '|' .. f .. '|' .. path end
    local sql = redis.call('HMGET', cache, unpack(fields))
    local pending = redis.call('HMGET', P .. 'pending', unpack(counter_fields))
    local inflight = redis.call('HMGET', P .. 'inflight', unpack(counter_fields))
    for i = 1, #fields do
      out[#out + 1] = tonumber(sql[i] or '0') + tonumber(pending[i] or '0')
        + tonumber(inflight[i] or '0')
    end
  end
  if visitor ~= '' and #types > 0 then
    local state_fields = {}
    for i, t in ipairs(types) do state_fields[i] = t .. '|' .. visitor end
    for _, state in ipairs(redis.call('HMGET', P .. 'vs:' .. member, unpack(state_fields))) do
      out[#out + 1] = state or ''
    end
  end
  return cached
end
local function split(text)
  local items = {}
  for item in string.gmatch(text, '[^,]+') do items[#items + 1] = item end
  return items
end
"""

# ARGV: prefix, cache_ttl_s, site, fields(csv), types(csv), visitor, path1, path2, ...
TOTALS_SCRIPT = _TOTALS_LUA + """
local out = {}
local fields, types = split(ARGV[4]), split(ARGV[5])
for i = 7, #ARGV do
  page_totals(ARGV[3], ARGV[i], fields, types, ARGV[6], out)
end
return out
"""

# One interaction under its kind's rules (see appliance/plugin_api.py):
#   counter: add `value` (an amount), within the per-visitor cap and dedup window;
#   toggle:  add or remove the visitor's one;
#   choice:  make `value` (an option key) the visitor's one choice, or remove it;
#   score:   make `value` (a number) the visitor's score (TYPE.sum and TYPE.count), or remove it.
# ARGV: prefix, cache_ttl_s, site, fields(csv), types(csv), visitor, path, reaction, kind,
#       action, value, cap, window_s, coalesce_ms[, stats_bucket, stats_day, bucket_ttl_s,
#       day_ttl_s, top_pages_cap[, now_ms, then key, interval_ms, burst_ms per rate limit]]
#       (the statistics are optional: the dashboard's, see `live_stats_args`; the rate limits
#       too: the request's charge, see `rate_limits.Charge`, checked first so that a refused
#       interaction changes nothing, and charged in the same round trip as the interaction)
# Returns: {delta, changed, publish_due, cached, totals..., states...}; `delta` is the change of
# the type's one total (amount, toggles, choices made, scores given), `changed` whether anything
# moved (changing a choice or a score moves parts without moving that total), `publish_due`
# that it did, some live socket watches the page and this call took its live throttle (the
# caller pushes the page). A refused rate limit returns {'rate_limited', milliseconds until
# the request would be allowed}.
INTERACT_SCRIPT = _TOTALS_LUA + GCRA_LUA + """
if ARGV[20] then
  local limit_keys, intervals, bursts = {}, {}, {}
  for i = 21, #ARGV, 3 do
    limit_keys[#limit_keys + 1] = ARGV[i]
    intervals[#intervals + 1] = tonumber(ARGV[i + 1])
    bursts[#bursts + 1] = tonumber(ARGV[i + 2])
  end
  local wait = gcra(tonumber(ARGV[20]), limit_keys, intervals, bursts)
  if wait > 0 then return {'rate_limited', wait} end
end
local site, visitor, path = ARGV[3], ARGV[6], ARGV[7]
local reaction, kind, action, value = ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local cap, window = tonumber(ARGV[12]), tonumber(ARGV[13])
local member = site .. '|' .. path
local vs = P .. 'vs:' .. member
local state_field = reaction .. '|' .. visitor
local delta, changed = 0, 0
local function bump(part, by)
  if by ~= 0 then
    redis.call('HINCRBY', P .. 'pending', site .. '|' .. part .. '|' .. path, by)
    changed = 1
  end
end
if kind == 'counter' then
  delta = tonumber(value)
  if window > 0 then
    local seen = P .. 'seen:' .. reaction .. '|' .. visitor .. '|' .. member
    if not redis.call('SET', seen, '1', 'NX', 'EX', window) then delta = 0 end
  end
  if cap > 0 and delta > 0 then
    local given = tonumber(redis.call('HGET', vs, state_field) or '0')
    delta = math.max(math.min(delta, cap - given), 0)
  end
  if cap > 0 and delta > 0 then redis.call('HINCRBY', vs, state_field, delta) end
  bump(reaction, delta)
elseif kind == 'toggle' then
  local current = redis.call('HGET', vs, state_field)
  if action == 'add' and not current then
    redis.call('HSET', vs, state_field, '1')
    delta = 1
  elseif action == 'remove' and current then
    redis.call('HDEL', vs, state_field)
    delta = -1
  end
  bump(reaction, delta)
elseif kind == 'choice' then
  local current = redis.call('HGET', vs, state_field)
  if action == 'add' and current ~= value then
    if current then bump(reaction .. '.' .. current, -1) else delta = 1 end
    bump(reaction .. '.' .. value, 1)
    redis.call('HSET', vs, state_field, value)
  elseif action == 'remove' and current then
    bump(reaction .. '.' .. current, -1)
    redis.call('HDEL', vs, state_field)
    delta = -1
  end
elseif kind == 'score' then
  local current = tonumber(redis.call('HGET', vs, state_field) or '')
  if action == 'add' and current ~= tonumber(value) then
    bump(reaction .. '.sum', tonumber(value) - (current or 0))
    if not current then delta = 1 end
    bump(reaction .. '.count', delta)
    changed = 1
    redis.call('HSET', vs, state_field, value)
  elseif action == 'remove' and current then
    bump(reaction .. '.sum', -current)
    bump(reaction .. '.count', -1)
    redis.call('HDEL', vs, state_field)
    delta = -1
  end
else
  return redis.error_reply('unknown kind ' .. kind)
end
redis.call('HINCRBY', P .. 'stats', reaction, 1)
if ARGV[15] then
  -- Each key gets its TTL when it is created (its first count), not at every count: the keys
  -- of a bucket or a day are written only during it, so they still outlive it by their TTL
  -- less that span, and an interaction saves eight commands.
  local bucket_ttl, day_ttl, top = ARGV[17], ARGV[18], tonumber(ARGV[19])
  local function count_page(key, ttl)
    if tonumber(redis.call('ZINCRBY', key, 1, member)) == 1 then  -- a page new to the set
      local size = redis.call('ZCARD', key)  -- (only a new page makes the set grow)
      if size > top then redis.call('ZREMRANGEBYRANK', key, 0, -top - 1) end
      if size == 1 then redis.call('EXPIRE', key, ttl) end
    end
  end
  local function count_type(key, ttl)
    if redis.call('HINCRBY', key, reaction, 1) == 1 then redis.call('EXPIRE', key, ttl) end
  end
  count_type(P .. 'dash:rate:' .. ARGV[15], bucket_ttl)
  count_type(P .. 'dash:day:' .. ARGV[16], day_ttl)
  count_page(P .. 'dash:pages:' .. ARGV[15], bucket_ttl)
  count_page(P .. 'dash:daypages:' .. ARGV[16], day_ttl)
  local visitors = P .. 'dash:uv:' .. ARGV[16]
  if redis.call('PFADD', visitors, visitor) == 1 and redis.call('TTL', visitors) < 0 then
    redis.call('EXPIRE', visitors, day_ttl)
  end
end
if redis.call('PFADD', P .. 'hll:' .. member, visitor) == 1 then
  redis.call('SADD', P .. 'hll_dirty', member)
end
-- A live push only for a page some socket follows (`watched:`, leased by the web workers
-- whose sockets follow it): a push nobody receives costs a script, a read and a PUBLISH.
-- A socket marks its pages before it reads the totals it starts from, so an interaction
-- either finds the mark or is included in that read (web/watched_pages.py).
local publish_due = 0
if changed == 1 and redis.call('EXISTS', P .. 'watched:' .. member) == 1
    and redis.call('SET', P .. 'live:' .. member, '1', 'NX', 'PX', ARGV[14]) then
  publish_due = 1
end
local out = {delta, changed, publish_due}
page_totals(site, path, split(ARGV[4]), split(ARGV[5]), visitor, out)
return out
"""

# A visitor's vote on a comment: up, down or none (withdrawn), one at a time, changeable.
# ARGV: prefix, cache_ttl_s, site, visitor, target, choice
# Returns: {cached, up, down, previous_choice}
VOTE_SCRIPT = _TOTALS_LUA + """
local site, visitor, target, choice = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local vs = P .. 'vs:' .. site .. '|' .. target
local state_field = 'vote|' .. visitor
local previous = redis.call('HGET', vs, state_field) or 'none'
if previous ~= choice then
  if previous ~= 'none' then
    redis.call('HINCRBY', P .. 'pending', site .. '|' .. previous .. '|' .. target, -1)
  end
  if choice ~= 'none' then
    redis.call('HINCRBY', P .. 'pending', site .. '|' .. choice .. '|' .. target, 1)
    redis.call('HSET', vs, state_field, choice)
  else
    redis.call('HDEL', vs, state_field)
  end
  redis.call('HINCRBY', P .. 'stats', 'vote', 1)
end
local out = {}
page_totals(site, target, {'up', 'down'}, {}, '', out)
out[#out + 1] = previous
return out
"""

# Seed a page's cached SQL totals read by the caller, unless a flush moved on meanwhile: the
# caller read `flush_gen` and `inflight_id` before its SQL read, and both must be unchanged
# (the generation catches a whole flush, begin to finish, happening between read and seed).
# ARGV: prefix, member, site, path, expected_inflight_id, batch_applied(0/1), ttl_s,
#       expected_generation, type1, total1, type2, total2, ...
# Returns 1 when the cache is in place, 0 when the caller must read SQL again.
SEED_SCRIPT = """
local P, member, site, path = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local current = redis.call('GET', P .. 'inflight_id') or ''
if current ~= ARGV[5] then return 0 end
if (redis.call('GET', P .. 'flush_gen') or '0') ~= ARGV[8] then return 0 end
local cache = P .. 'sql:' .. member
if redis.call('EXISTS', cache) == 1 then return 1 end
redis.call('HSET', cache, '_', '1')
for i = 9, #ARGV, 2 do
  local reaction, total = ARGV[i], tonumber(ARGV[i + 1])
  if ARGV[6] == '1' then
    -- SQL already holds the in-flight batch, which readers still add from Redis.
    local field = site .. '|' .. reaction .. '|' .. path
    total = total - tonumber(redis.call('HGET', P .. 'inflight', field) or '0')
  end
  redis.call('HSET', cache, reaction, total)
end
redis.call('EXPIRE', cache, ARGV[7])
return 1
"""

# Move pending deltas to in flight under a new batch id, or resume the batch already in flight.
# ARGV: prefix, new_batch_id. Returns {batch_id, 'new'|'resumed'} or {} when there is nothing.
BEGIN_FLUSH_SCRIPT = """
local P = ARGV[1]
local current = redis.call('GET', P .. 'inflight_id')
if current then return {current, 'resumed'} end
local has_pending = redis.call('EXISTS', P .. 'pending') == 1
local has_hll = redis.call('EXISTS', P .. 'hll_dirty') == 1
if not has_pending and not has_hll then return {} end
if has_pending then redis.call('RENAME', P .. 'pending', P .. 'inflight') end
if has_hll then redis.call('RENAME', P .. 'hll_dirty', P .. 'hll_inflight') end
redis.call('SET', P .. 'inflight_id', ARGV[2])
return {ARGV[2], 'new'}
"""

# After SQL committed the batch: fold it into the cached SQL totals and drop it, atomically.
# ARGV: prefix, batch_id. Returns the number of counters folded, or -1 if the batch is not current.
FINISH_FLUSH_SCRIPT = """
local P = ARGV[1]
if redis.call('GET', P .. 'inflight_id') ~= ARGV[2] then return -1 end
local entries = redis.call('HGETALL', P .. 'inflight')
for i = 1, #entries, 2 do
  local site, reaction, path = string.match(entries[i], '^([^|]*)|([^|]*)|(.*)$')
  local cache = P .. 'sql:' .. site .. '|' .. path
  if redis.call('EXISTS', cache) == 1 then
    redis.call('HINCRBY', cache, reaction, entries[i + 1])
  end
end
redis.call('DEL', P .. 'inflight', P .. 'hll_inflight', P .. 'inflight_id')
redis.call('INCR', P .. 'flush_gen')
return #entries / 2
"""

# Drop the live throttle and read the totals to publish, in one step, so that any interaction
# after this read takes the throttle again and causes its own publish.
# ARGV: prefix, cache_ttl_s, then per page: site, path, fields(csv)
PUBLISH_TOTALS_SCRIPT = _TOTALS_LUA + """
local out = {}
for i = 3, #ARGV, 3 do
  redis.call('DEL', P .. 'live:' .. ARGV[i] .. '|' .. ARGV[i + 1])
  page_totals(ARGV[i], ARGV[i + 1], split(ARGV[i + 2]), {}, '', out)
end
return out
"""

# Plugin hooks that raised, by reaction type (for /metrics and `platformctl plugins list`).
PLUGIN_ERRORS = PREFIX + "plugin_errors"
PLUGIN_LAST_ERROR = PREFIX + "plugin_last_error"


@dataclass
class CounterScripts:
    """The scripts registered on one Redis client (sync or asyncio: same API, awaitable or not)."""

    totals: object
    interact: object
    seed: object
    begin_flush: object
    finish_flush: object
    publish_totals: object
    vote: object

    @classmethod
    def register(cls, client) -> CounterScripts:
        return cls(
            totals=client.register_script(TOTALS_SCRIPT),
            interact=client.register_script(INTERACT_SCRIPT),
            seed=client.register_script(SEED_SCRIPT),
            begin_flush=client.register_script(BEGIN_FLUSH_SCRIPT),
            finish_flush=client.register_script(FINISH_FLUSH_SCRIPT),
            publish_totals=client.register_script(PUBLISH_TOTALS_SCRIPT),
            vote=client.register_script(VOTE_SCRIPT),
        )
