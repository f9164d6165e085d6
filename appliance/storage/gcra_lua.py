"""The GCRA rate-limit check in Lua, shared by the limiter's own script and the interaction
script (which charges a request's limits in the same round trip as its interaction)."""

from __future__ import annotations

# gcra(now, keys, intervals, bursts): 0 when every key allows the request, and then every key
# is charged; else the milliseconds until it would be allowed, and no key is charged. Each key
# holds its theoretical arrival time (see appliance/services/rate_limits.py).
GCRA_LUA = """
local function gcra(now, limit_keys, intervals, bursts)
  local new_tats = {}
  for i, key in ipairs(limit_keys) do
    local tat = math.max(tonumber(redis.call('GET', key) or now), now)
    local new_tat = tat + intervals[i]
    local allowed_at = new_tat - bursts[i]
    if allowed_at > now then return math.ceil(allowed_at - now) end
    new_tats[i] = new_tat
  end
  for i, key in ipairs(limit_keys) do
    redis.call('SET', key, new_tats[i], 'PX', math.ceil(new_tats[i] - now) + 1)
  end
  return 0
end
"""
