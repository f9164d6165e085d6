"""wrk as a library: one closed-loop run with a request of our choosing, parsed into numbers.

The Lua script's `done` prints one JSON line (requests, latency percentiles, errors, status
codes other than the expected ones) that `run` parses; `request_lua` may define `request`
(and set wrk.method / wrk.body / wrk.headers) for anything but a plain GET.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import log

DONE_LUA = r"""
local threads = {}
ok, other = 0, 0
codes = {}
function setup(thread) table.insert(threads, thread) end
function init(args) math.randomseed(tonumber(args[1]) or 1) end
function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 else
    other = other + 1
    codes[tostring(status)] = (codes[tostring(status)] or 0) + 1
  end
end
function done(summary, latency, requests)
  local o, x, c = 0, 0, {}
  for _, thread in ipairs(threads) do
    o = o + (thread:get("ok") or 0)
    x = x + (thread:get("other") or 0)
    for code, n in pairs(thread:get("codes") or {}) do c[code] = (c[code] or 0) + n end
  end
  local parts = {}
  for code, n in pairs(c) do table.insert(parts, string.format('"%s":%d', code, n)) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"socket_errors":%d,"timeouts":%d,"ok":%d,"other":%d,"codes":{%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect + e.read + e.write, e.timeout, o, x, table.concat(parts, ",")))
end
"""


@dataclass
class Load:
    label: str
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    ok: int
    errors: int
    codes: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def run(label: str, url: str, core: int, duration_s: float, connections: int = 32,
        request_lua: str = "", seed: int = 1) -> Load:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(request_lua + "\n" + DONE_LUA)
    try:
        argv = ["taskset", "-c", str(core), "wrk", "-t1", f"-c{connections}",
                f"-d{max(1, round(duration_s))}s", "--timeout", "5s", "-s", script.name, url,
                "--", str(seed)]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60)
    finally:
        Path(script.name).unlink(missing_ok=True)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    if data["codes"]:
        log(f"{label}: answers other than 2xx: {data['codes']}")
    return Load(label, data["requests"], data["duration_us"] / 1e6, data["p50_us"] / 1000,
                data["p99_us"] / 1000, data["max_us"] / 1000, data["ok"],
                data["other"] + data["socket_errors"] + data["timeouts"], data["codes"])


def post_json_lua(body: str) -> str:
    """A fixed JSON POST body (a Lua long string, so quotes need no escaping)."""
    return ('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = [==[{body}]==]\n")


def rows(loads: list[Load], baseline: Load | None = None) -> list[list[str]]:
    from bench.common import fmt_float, fmt_int

    result = []
    for load in loads:
        ratio = f"{load.rate / baseline.rate:.2f}" if baseline and baseline.rate else ""
        result.append([load.label, fmt_int(load.requests), fmt_int(load.rate),
                       fmt_float(load.p50_ms, 2), fmt_float(load.p99_ms, 2),
                       fmt_float(load.max_ms, 1), fmt_int(load.errors), ratio])
    return result


HEADERS = ["request", "requests", "requests/s", "p50 ms", "p99 ms", "max ms", "errors",
           "vs /healthz"]
