"""Interactions per second through `platformctl up`, against GET /healthz as the ceiling.

Starts `platformctl up` (SQLite, owned Redis, one web worker) in a temporary data directory on
core 0, drives it with wrk on core 1, alternating rounds of

  (a) GET /healthz: what Quart/Hypercorn and this machine can answer at all, and
  (b) POST /api/v1/sites/demo/interactions: random page of 1,000, random visitor, a mix of
      view (50 %), like (25 %) and applause (25 %),

then stops `up` with SIGINT and checks that the SQLite file holds exactly what Redis held
(flushed + pending + in flight) before the stop. Prints Markdown to stdout.

    .venv/bin/python -m bench.interactions_http [--duration 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bench.common import (
    REPO,
    clean_environment,
    fmt_float,
    fmt_int,
    free_port,
    log,
    require_binary,
    table,
    usable_cores,
)
from bench.server import descendants, process_cpu_s

SITE = "demo"
REACTION_MIX = ("view", "view", "like", "applause")  # picked uniformly: 50 / 25 / 25 %

# wrk runs this per thread. `request` builds a fresh body per request; `response` sums the
# `applied` field the server answers with; `done` prints one JSON line the driver parses.
WRK_LUA = r"""
local mode = "__MODE__"
local pages = __PAGES__
local visitors = __VISITORS__
local kinds = {__KINDS__}
local threads = {}
applied, ok, other = 0, 0, 0
codes = {}  -- status -> count, for answers other than 200
sample = ""  -- the first such answer's body

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(tonumber(args[1]) or 1)
end

if mode == "interactions" then
  wrk.headers["Content-Type"] = "application/json"
  request = function()
    local body = string.format(
      '{"path":"/bench/post-%04d/","reaction":"%s","action":"add","amount":1,' ..
      '"visitor":"bench-%09d"}',
      math.random(1, pages), kinds[math.random(1, #kinds)], math.random(1, visitors))
    return wrk.format("POST", "/api/v1/sites/__SITE__/interactions", nil, body)
  end

  response = function(status, headers, body)
    if status == 200 then
      ok = ok + 1
      local value = string.match(body, '"applied":(%-?%d+)')
      if value then applied = applied + tonumber(value) end
    else
      other = other + 1
      codes[tostring(status)] = (codes[tostring(status)] or 0) + 1
      if sample == "" then sample = string.sub(body or "", 1, 300) end
    end
  end
end

function done(summary, latency, requests)
  local a, o, x, c, first = 0, 0, 0, {}, ""
  for _, thread in ipairs(threads) do
    a = a + (thread:get("applied") or 0)
    o = o + (thread:get("ok") or 0)
    x = x + (thread:get("other") or 0)
    for code, n in pairs(thread:get("codes") or {}) do c[code] = (c[code] or 0) + n end
    if first == "" then first = thread:get("sample") or "" end
  end
  local parts = {}
  for code, n in pairs(c) do table.insert(parts, string.format('"%s":%d', code, n)) end
  io.write('BENCH_CODES {' .. table.concat(parts, ",") .. '}\n')
  io.write('BENCH_SAMPLE ' .. string.gsub(first, "\n", " ") .. '\n')
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"applied":%d,"ok":%d,"other":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status,
    e.timeout, a, o, x))
end
"""


@dataclass
class WrkResult:
    label: str
    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # socket errors + non-2xx/3xx answers
    timeouts: int
    applied: int
    raw: dict = field(default_factory=dict)
    server_cpu_s: float = 0.0  # CPU the whole server (`up` and its children) used meanwhile

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def cpu_us_per_request(self) -> float:
        return self.server_cpu_s / self.requests * 1e6 if self.requests else 0.0


def write_script(directory: Path, mode: str, pages: int, visitors: int) -> Path:
    text = (WRK_LUA.replace("__MODE__", mode).replace("__PAGES__", str(pages))
            .replace("__VISITORS__", str(visitors)).replace("__SITE__", SITE)
            .replace("__KINDS__", ", ".join(f'"{kind}"' for kind in REACTION_MIX)))
    path = directory / f"{mode}.lua"
    path.write_text(text)
    return path


def server_cpu_s(pids: list[int]) -> float:
    return sum(process_cpu_s(pid) for pid in pids)


def run_wrk(label: str, url: str, script: Path, duration_s: float, connections: int,
            core: int, seed: int, server_pids: list[int] | None = None) -> WrkResult:
    """One wrk run. With `server_pids`, also the server's CPU seconds during it: unlike
    requests per second, CPU per request hardly moves when other work shares the core."""
    cpu_before = server_cpu_s(server_pids or [])
    argv = ["taskset", "-c", str(core), "wrk", "-t1", f"-c{connections}",
            f"-d{max(1, round(duration_s))}s", "--timeout", "5s", "-s", str(script), url,
            "--", str(seed)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60)
    cpu_used = server_cpu_s(server_pids or []) - cpu_before
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    for extra in out.stdout.splitlines():
        if extra.startswith("BENCH_CODES "):
            data["codes"] = json.loads(extra.removeprefix("BENCH_CODES "))
        elif extra.startswith("BENCH_SAMPLE "):
            data["sample"] = extra.removeprefix("BENCH_SAMPLE ").strip()
    if data.get("codes"):
        log(f"{label}: answers other than 200: {data['codes']}; first: {data.get('sample')}")
    return WrkResult(
        label=label, requests=data["requests"], duration_s=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000, p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000, max_ms=data["max_us"] / 1000,
        errors=data["connect"] + data["read"] + data["write"] + data["status"],
        timeouts=data["timeout"], applied=data["applied"], raw=data, server_cpu_s=cpu_used)


# -- the `up` process --------------------------------------------------------------------------

def start_up(data_dir: Path, port: int, core: int, log_path: Path) -> subprocess.Popen:
    from bench.server import BENCH_LIMITS  # rate limits raised above one client's load

    env = {**clean_environment(), "PYTHONUNBUFFERED": "1", **BENCH_LIMITS}
    argv = ["taskset", "-c", str(core), sys.executable, "-m", "cli", "up",
            "--data-dir", str(data_dir), "--port", str(port), "--workers", "1"]
    output = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    try:
        # Own session: a Ctrl-C on the benchmark's terminal reaches only us, and we forward it.
        return subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        output.close()


def wait_ready(url: str, process: subprocess.Popen, log_path: Path, timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"`platformctl up` exited with {process.returncode}:\n"
                               f"{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"`platformctl up` not ready within {timeout_s} s:\n"
                       f"{log_path.read_text()[-3000:]}")


def stop_up(process: subprocess.Popen, timeout_s: float = 120.0) -> tuple[int, float]:
    started = time.monotonic()
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log("`up` did not stop after SIGINT; sending SIGKILL to its process group")
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode, time.monotonic() - started


def seed_page_caches(url: str, pages: int) -> None:
    """Read the totals of every page (100 per request), which caches their SQL totals."""
    paths = [f"/bench/post-{index:04d}/" for index in range(1, pages + 1)]
    for start in range(0, len(paths), 100):
        body = json.dumps({"paths": paths[start:start + 100]}).encode()
        request = urllib.request.Request(
            f"{url}/api/v1/sites/{SITE}/totals/batch", data=body, method="POST",
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()


def count_cached_pages(client: redis.Redis) -> int:
    from appliance.storage import counter_store as keys

    pattern = keys.sql_cache_key(f"{SITE}{keys.SEPARATOR}/bench/post-*")
    return sum(1 for _ in client.scan_iter(match=pattern, count=1000))


# -- what was applied --------------------------------------------------------------------------

@dataclass
class Snapshot:
    sql_total: int  # SUM(counter.total) of the site
    pending: int  # sum of pending deltas in Redis
    inflight: int  # sum of in-flight deltas not yet in SQL
    accepted: dict[str, int]  # interactions accepted by the Lua script, by type

    @property
    def expected(self) -> int:
        return self.sql_total + self.pending + self.inflight


def sql_totals(db_path: Path, batch_id: str | None = None) -> tuple[dict[str, int], bool]:
    """SUM(total) per reaction of the demo site, and whether `batch_id` is committed."""
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        connection.execute("BEGIN")  # one read transaction: both answers describe one moment
        rows = connection.execute(
            "SELECT c.reaction, SUM(c.total) FROM counter c JOIN page p ON p.id = c.page_id "
            "JOIN site s ON s.id = p.site_id WHERE s.name = ? GROUP BY c.reaction",
            (SITE,)).fetchall()
        applied = bool(batch_id) and connection.execute(
            "SELECT 1 FROM flush_batch WHERE batch_id = ?", (batch_id,)).fetchone() is not None
        connection.execute("COMMIT")
        return {reaction: int(total) for reaction, total in rows}, applied
    finally:
        connection.close()


def redis_state(client: redis.Redis) -> tuple[int, int, str | None, dict[str, int]]:
    from appliance.storage import counter_store as keys

    pipe = client.pipeline(transaction=True)  # MULTI/EXEC: one consistent view
    pipe.hvals(keys.PENDING)
    pipe.hvals(keys.INFLIGHT)
    pipe.get(keys.INFLIGHT_ID)
    pipe.hgetall(keys.STATS)
    pending, inflight, inflight_id, stats = pipe.execute()
    return (sum(int(v) for v in pending), sum(int(v) for v in inflight), inflight_id,
            {name: int(value) for name, value in stats.items()})


def wait_quiet(client: redis.Redis, quiet_s: float = 1.0, timeout_s: float = 15.0) -> float:
    """Wait until the server has finished the requests wrk left behind (stats stop moving)."""
    from appliance.storage import counter_store as keys

    started = time.monotonic()
    last, since = None, time.monotonic()
    while time.monotonic() - started < timeout_s:
        current = client.hgetall(keys.STATS)
        if current != last:
            last, since = current, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
        time.sleep(0.1)
    return time.monotonic() - started


def snapshot_before_stop(client: redis.Redis, db_path: Path) -> Snapshot:
    """SQL + pending + in flight, read so that a concurrent flush cannot count twice."""
    for _ in range(50):
        before = redis_state(client)
        totals, batch_applied = sql_totals(db_path, before[2])
        after = redis_state(client)
        if before[:3] == after[:3]:
            pending, inflight, inflight_id, stats = before
            if inflight_id and batch_applied:
                inflight = 0  # committed to SQL already, still in Redis until `finish`
            return Snapshot(sum(totals.values()), pending, inflight, stats)
        time.sleep(0.05)
    raise RuntimeError("Redis kept changing while the load was stopped")


# -- main --------------------------------------------------------------------------------------

def run(duration_s: float, rounds: int, warmup_s: float, connections: int, pages: int,
        visitors: int, keep: bool) -> str:
    require_binary("wrk", "run ./install.sh --bench, or apt-get install -y wrk")
    require_binary("redis-server", "run ./install.sh (or apt-get install redis-server)")
    server_core, client_core = usable_cores()
    work = Path(tempfile.mkdtemp(prefix="ovation-bench-http-"))
    data_dir = work / "data"
    log_path = work / "up.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    health_lua = write_script(work, "healthz", pages, visitors)
    post_lua = write_script(work, "interactions", pages, visitors)
    seed = int(time.time())
    results: list[tuple[int, WrkResult, WrkResult]] = []
    warmups: list[WrkResult] = []
    process = start_up(data_dir, port, server_core, log_path)
    log(f"started `platformctl up` (pid {process.pid}) on core {server_core}, data in {work}")
    try:
        ready_s = wait_ready(url, process, log_path, 60)
        log(f"ready after {ready_s:.1f} s; warming up {warmup_s:.0f} s per endpoint")
        warmups.append(run_wrk("GET /healthz", url + "/healthz", health_lua, warmup_s,
                               connections, client_core, seed))
        warmups.append(run_wrk("POST interactions (page caches cold at start)", url, post_lua,
                               warmup_s, connections, client_core, seed + 1))
        client = redis.Redis(unix_socket_path=str(data_dir / "redis" / "redis.sock"),
                             decode_responses=True)
        cached_before = count_cached_pages(client)
        seed_page_caches(url, pages)
        cached = count_cached_pages(client)
        log(f"pages with cached SQL totals: {cached_before} after warm-up, {cached} after "
            f"reading the totals of all {pages}")
        pids = [process.pid, *descendants(process.pid)]  # up, its web, Redis and workers
        for number in range(1, rounds + 1):
            log(f"round {number}/{rounds}: GET /healthz for {duration_s:.0f} s")
            health = run_wrk("GET /healthz", url + "/healthz", health_lua, duration_s,
                             connections, client_core, seed + 10 * number, pids)
            log(f"round {number}/{rounds}: POST interactions for {duration_s:.0f} s")
            posts = run_wrk("POST interactions", url, post_lua, duration_s, connections,
                            client_core, seed + 10 * number + 1, pids)
            results.append((number, health, posts))
        wait_quiet(client)
        before = snapshot_before_stop(client, data_dir / "ovation.db")
        client.close()
    finally:
        log("stopping `up` with SIGINT")
        code, stop_s = stop_up(process)
    after_totals, _ = sql_totals(data_dir / "ovation.db")
    report = render(results, warmups, before, after_totals, code, stop_s, ready_s,
                    connections, pages, duration_s, warmup_s, server_core, client_core,
                    (cached_before, cached))
    if keep:
        log(f"kept {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return report


def render(results, warmups, before: Snapshot, after_totals: dict[str, int], code: int,
           stop_s: float, ready_s: float, connections: int, pages: int, duration_s: float,
           warmup_s: float, server_core: int, client_core: int,
           cached: tuple[int, int]) -> str:
    out = ["## Interactions through `platformctl up` (HTTP)", ""]
    out.append(
        f"`platformctl up` with SQLite, its owned Redis and 1 web worker, all on core "
        f"{server_core}; wrk 1 thread, {connections} connections (closed loop), on core "
        f"{client_core}; {duration_s:.0f} s per run, rounds alternate the two endpoints so "
        f"each ratio compares runs taken seconds apart. Interactions: a random page of "
        f"{pages:,}, a random visitor id, 50 % view / 25 % like / 25 % applause (amount 1). "
        f"A {warmup_s:.0f} s warm-up per endpoint came first (rows *warm-up*): it started "
        f"with no page known, so its interactions also paid for reading each new page's SQL "
        f"totals into Redis ({cached[0]:,} of {pages:,} pages cached by its end). Then one "
        f"batch-totals read cached the rest ({cached[1]:,} of {pages:,}), so the measured "
        f"rounds show the steady state of pages readers have seen before.")
    out.append("")
    rows = []
    for result in warmups:
        rows.append(["warm-up", result.label, fmt_int(result.requests), fmt_int(result.rate),
                     fmt_float(result.p50_ms, 2), fmt_float(result.p99_ms, 2),
                     fmt_float(result.max_ms, 1), f"{result.errors} / {result.timeouts}"])
    for number, health, posts in results:
        for result in (health, posts):
            rows.append([number, result.label, fmt_int(result.requests),
                         fmt_int(result.rate), fmt_float(result.p50_ms, 2),
                         fmt_float(result.p99_ms, 2), fmt_float(result.max_ms, 1),
                         f"{result.errors} / {result.timeouts}"])
    out.append(table(["round", "request", "requests", "requests/s", "p50 ms", "p99 ms",
                      "max ms", "errors / timeouts"], rows, "rlrrrrrr"))
    out.append("")
    out.append("*errors*: answers other than 2xx/3xx plus socket errors; *requests/s* counts "
               "every answer, errors included.")
    failures = [(label, r) for label, r in
                [("warm-up", w) for w in warmups] + [(str(n), p) for n, _, p in results]
                if r.raw.get("codes")]
    if failures:
        out.append("")
    for label, r in failures:
        codes = ", ".join(f"{n:,} x {code}" for code, n in sorted(r.raw["codes"].items()))
        out.append(f"- round {label}, {r.label}: {codes}; the first said "
                   f"`{r.raw.get('sample', '')[:200]}`.")
    out.append("")
    ratio_rows = []
    for number, health, posts in results:
        ratio_rows.append([number, fmt_int(posts.rate), fmt_int(health.rate),
                           f"{posts.rate / health.rate:.2f}" if health.rate else "-",
                           f"{posts.p50_ms / health.p50_ms:.1f}x" if health.p50_ms else "-",
                           fmt_int(posts.cpu_us_per_request), fmt_int(health.cpu_us_per_request),
                           cpu_ratio(health.server_cpu_s, health.requests,
                                     posts.server_cpu_s, posts.requests)])
    total_posts = sum(p.requests for _, _, p in results)
    total_health = sum(h.requests for _, h, _ in results)
    time_posts = sum(p.duration_s for _, _, p in results)
    time_health = sum(h.duration_s for _, h, _ in results)
    if time_posts and time_health:
        rate_p, rate_h = total_posts / time_posts, total_health / time_health
        cpu_p = sum(p.server_cpu_s for _, _, p in results)
        cpu_h = sum(h.server_cpu_s for _, h, _ in results)
        ratio_rows.append(["all", fmt_int(rate_p), fmt_int(rate_h), f"{rate_p / rate_h:.2f}",
                           "", fmt_int(cpu_p / total_posts * 1e6) if total_posts else "-",
                           fmt_int(cpu_h / total_health * 1e6) if total_health else "-",
                           cpu_ratio(cpu_h, total_health, cpu_p, total_posts)])
    out.append(table(["round", "interactions/s (b)", "/healthz req/s (a)", "ratio (b)/(a)",
                      "p50 (b) vs (a)", "server CPU µs per interaction",
                      "server CPU µs per /healthz", "CPU ratio (a)/(b)"], ratio_rows,
                     "rrrrrrrr"))
    out.append("")
    out.append("*Server CPU*: user + system CPU of `up` and all its children (web worker, "
               "Redis, flusher, listener, notifier) during the run, from `/proc`, divided by "
               "the requests answered. The *CPU ratio* is the ratio of requests per second "
               "the server would reach if it had its core to itself: on a shared machine "
               "requests per second swing with the neighbours' load, CPU per request much "
               "less.")
    out.append("")

    all_runs = [r for _, _, r in results] + [w for w in warmups if w.raw.get("ok", 0)]
    answered = sum(r.raw.get("ok", 0) for r in all_runs)
    client_applied = sum(r.applied for r in all_runs)
    sql_after = sum(after_totals.values())
    accepted = sum(before.accepted.values())
    matches = sql_after == before.expected
    out.append("**Nothing lost on stop.** After the last run, once Redis' interaction "
               "counts had stood still for 1 s (the server finishes requests wrk abandoned), "
               "Redis and SQLite were read in one consistent snapshot; then `up` got SIGINT "
               "and, once it had exited, the SQLite file was read again.")
    out.append("")
    check_rows = [
        ["POST interactions answered 200 (all runs, incl. warm-up)", fmt_int(answered)],
        ["sum of `applied` in those answers (what clients saw counted)", fmt_int(client_applied)],
        ["interactions the Lua script accepted (Redis `stats`, incl. requests whose "
         "answer wrk never read)", fmt_int(accepted) + " (" + ", ".join(
             f"{k} {v:,}" for k, v in sorted(before.accepted.items())) + ")"],
        ["before stop: SQL totals + pending + in flight",
         f"{fmt_int(before.expected)} = {before.sql_total:,} + {before.pending:,} + "
         f"{before.inflight:,}"],
        ["after stop: SUM(counter.total) in SQLite", fmt_int(sql_after) + " (" + ", ".join(
            f"{k} {v:,}" for k, v in sorted(after_totals.items())) + ")"],
        ["SQLite after stop equals Redis + SQL before stop", "yes" if matches else
         f"**NO** (difference {sql_after - before.expected:+,})"],
        ["`up` exit code / time from SIGINT to exit", f"{code} / {stop_s:.1f} s"],
        ["time from start to /readyz 200", f"{ready_s:.1f} s"],
    ]
    out.append(table(["check", "value"], check_rows, "lr"))
    out.append("")
    gap = sql_after - client_applied
    out.append(f"SQL holds {gap:+,} relative to the `applied` sum clients read: requests still "
               f"in flight when each wrk run ended were applied but their answers were not "
               f"read (at most {connections} per run).")
    return "\n".join(out)


def cpu_ratio(health_cpu_s: float, health_requests: int, posts_cpu_s: float,
              posts_requests: int) -> str:
    if not (health_cpu_s and health_requests and posts_cpu_s and posts_requests):
        return "-"
    return f"{(health_cpu_s / health_requests) / (posts_cpu_s / posts_requests):.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per run [10]")
    parser.add_argument("--rounds", type=int, default=2, help="healthz/interactions pairs [2]")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds per endpoint")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections [32]")
    parser.add_argument("--pages", type=int, default=1000, help="distinct pages [1000]")
    parser.add_argument("--visitors", type=int, default=100_000_000,
                        help="visitor ids are drawn from this many [1e8]")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and up.log")
    args = parser.parse_args(argv)
    print(run(args.duration, args.rounds, args.warmup, args.connections, args.pages,
              args.visitors, args.keep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
