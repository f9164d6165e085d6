"""Comments: submission throughput, and latency from submission to another subscriber.

`platformctl up` (one web worker) on core 0. Throughput: wrk on core 1 posts comments (each
from a new visitor, each body different) for a while, next to GET /healthz in the same run;
then the time until the listener has stored every accepted comment gives the stored rate.
Latency: one WebSocket subscriber on the page (a client process on core 1); comments are posted
one at a time over HTTP and each is timed from just before its POST to the arrival of its
`comment` frame at the subscriber.

    .venv/bin/python -m bench.comments [--duration 5] [--samples 50]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import time

from bench import wrk_load
from bench.common import (
    REFERENCE_CEILING,
    fmt_float,
    fmt_int,
    log,
    peer_rate_here,
    require_binary,
    table,
    usable_cores,
)
from bench.live_fanout import percentile
from bench.server import SITE, ServerCpu, http_json, running_up
from bench.ws_clients import start_workers

THROUGHPUT_PATH = "/bench/comment-load/"
LATENCY_PATH = "/bench/comment-live/"

COMMENT_LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
  counter = counter + 1
  local id = math.random(1, 1000000000)
  local body = string.format(
    '{"path":"__PATH__","visitor":"bench-c-%09d-%d","author_name":"Reader %d",' ..
    '"body":"Comment %d-%d: a **short** paragraph with a [link](https://example.com/%d)."}',
    id, counter, counter, id, counter, id)
  return wrk.format(nil, nil, nil, body)
end
"""


def stored_count(db_path, path_prefix: str) -> int:
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(
            "SELECT COUNT(*) FROM comment c JOIN page p ON p.id = c.page_id WHERE p.path = ?",
            (path_prefix.rstrip("/"),)).fetchone()[0]
    finally:
        connection.close()


def run(duration_s: float, samples: int, connections: int) -> str:
    require_binary("wrk", "run ./install.sh --bench, or apt-get install -y wrk")
    server_core, client_core = usable_cores()
    with running_up(server_core) as up:
        comments_url = f"{up.url}/api/v1/sites/{SITE}/comments"
        lua = COMMENT_LUA.replace("__PATH__", THROUGHPUT_PATH)
        cpu = ServerCpu(up.process.pid)
        health, health_cpu = cpu.measure(lambda: wrk_load.run(
            "GET /healthz", up.url + "/healthz", client_core, duration_s, connections),
            lambda load: load.requests)
        log("posting comments with wrk")
        cpu_before = cpu.by_role()
        started = time.monotonic()
        posts = wrk_load.run("POST comments (202 = queued)", comments_url, client_core,
                             duration_s, connections, lua, seed=int(time.time()))
        db_path = up.data_dir / "ovation.db"
        while True:
            stored = stored_count(db_path, THROUGHPUT_PATH)
            if stored >= posts.ok or time.monotonic() - started > duration_s + 120:
                break
            time.sleep(0.1)
        drained_s = time.monotonic() - started
        cpu_after = cpu.by_role()
        log(f"{stored} of {posts.ok} accepted comments stored after {drained_s:.1f} s")
        # Until the last accepted comment is stored: the listener's share is counted too.
        comment_cpu = {role: (cpu_after[role] - cpu_before.get(role, 0.0)) / posts.ok * 1e6
                       for role in cpu_after} if posts.ok else {}

        log(f"latency: {samples} comments to one subscriber")
        http_json("POST", comments_url, {"path": LATENCY_PATH, "visitor": "bench-first",
                                         "body": "first"})
        workers = start_workers("comments", client_core, [(up.ws_url, 1, LATENCY_PATH)])
        sent: dict[str, float] = {}
        try:
            workers.expect("ready", 60)
            for number in range(samples):
                before = time.time()
                status, body = http_json("POST", comments_url, {
                    "path": LATENCY_PATH, "visitor": f"bench-live-{number:05d}",
                    "body": f"Live comment {number}, with *emphasis*."})
                if status != 202:
                    raise RuntimeError(f"comment answered {status}: {body}")
                sent[body["id"]] = before
                time.sleep(0.05)
            time.sleep(1.5)
            workers.send("report")
            arrivals = workers.expect("arrivals", 60)[0]
        finally:
            workers.join()
    latencies = [(arrivals[key] - before) * 1000 for key, before in sent.items()
                 if key in arrivals]
    out = ["## Comments: submission throughput and live delivery", ""]
    out.append(
        f"`platformctl up` (SQLite, owned Redis, 1 web worker; the listener stores comments) "
        f"on core {server_core}; wrk 1 thread, {connections} connections, on core "
        f"{client_core}, {duration_s:.0f} s per run. Each posted comment has its own visitor "
        f"and body (Markdown with a link). The web answers 202 once the comment is queued in "
        f"Redis; *stored/s* counts accepted comments over the time until the listener had "
        f"written the last of them to SQLite.")
    out.append("")
    loads = wrk_load.rows([health, posts], health)
    loads[0].append(fmt_int(health_cpu))
    loads[1].append(fmt_int(sum(comment_cpu.values())))
    out.append(table([*wrk_load.HEADERS, "server CPU µs per request"], loads, "lrrrrrrrr"))
    out.append("")
    out.append("*Server CPU*: user + system of `up` and all its children (from `/proc`) per "
               "request answered, for comments per comment accepted, from the first POST until "
               "the listener had stored the last one: "
               + ", ".join(f"{role} {fmt_int(us)} µs" for role, us in
                           sorted(comment_cpu.items(), key=lambda item: -item[1])) + ".")
    out.append("")
    stored_rate = stored / drained_s if drained_s else 0
    isso = peer_rate_here(160, health.rate)  # Isso's new comments, scaled to this machine
    target = 5 * isso
    out.append(table(["target", "measured", "met?"], [
        ["accept comments at >= 5x Isso's 160/s, scaled to this machine "
         f"(>= {target:,.0f}/s = {target / health.rate:.0%} of /healthz)",
         f"{posts.rate:,.0f}/s accepted = {posts.rate / isso:.1f}x Isso's {isso:,.0f}/s "
         f"(160/s x {health.rate:,.0f}/{REFERENCE_CEILING:,.0f}; {posts.rate / 160:.1f}x its "
         f"published 160/s); {stored_rate:,.0f}/s stored ({stored:,} in {drained_s:.1f} s)",
         "yes" if min(posts.rate, stored_rate) >= target else
         ("accepted yes, stored **no**" if posts.rate >= target else
          f"**no**: {target - posts.rate:,.0f}/s short")],
    ], "lrl"))
    out.append("")
    rows = [["HTTP POST -> `comment` frame at another subscriber",
             f"{len(latencies)} / {len(sent)}",
             fmt_float(statistics.median(latencies)) if latencies else "-",
             fmt_float(percentile(latencies, 0.99)) if latencies else "-",
             fmt_float(max(latencies)) if latencies else "-"]]
    out.append(table(["latency", "delivered", "p50 ms", "p99 ms", "max ms"], rows, "lrrrr"))
    out.append("")
    out.append("A comment travels: web -> Redis stream -> listener (stores it in SQL) -> Redis "
               "pub/sub -> web worker -> WebSocket; the comments are posted one at a time, "
               "50 ms apart.")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds per wrk run [5]")
    parser.add_argument("--samples", type=int, default=50, help="comments timed live [50]")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections [32]")
    args = parser.parse_args(argv)
    print(run(args.duration, args.samples, args.connections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
