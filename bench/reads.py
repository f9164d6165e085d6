"""Reads: one page's thread of 200 comments, and batch totals for 20 paths, vs GET /healthz.

`platformctl up` (one web worker) on core 0, wrk on core 1. 200 comments are posted through
the API (the listener stores them) on one page, 20 pages get an interaction each; then rounds
alternate GET /healthz, GET the thread (`limit=200`: all 200 in one answer) anonymously, as a
reader who neither commented nor voted (the widget always names its reader), and as one who
wrote one of the comments and voted on ten (the answer is then made for them), and POST
totals/batch with the 20 paths.

    .venv/bin/python -m bench.reads [--duration 5] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request

from bench import wrk_load
from bench.common import (
    REFERENCE_CEILING,
    fmt_int,
    log,
    peer_rate_here,
    require_binary,
    table,
    usable_cores,
)
from bench.server import SITE, http_json, running_up

THREAD_PATH = "/bench/thread/"
COMMENTS = 200
BATCH = 20
VOTES = 10  # votes cast by the author whose reads are measured
AUTHOR_PREFIX = "bench-reader"


def post_comments(url: str, path: str, count: int, prefix: str) -> float:
    """Post `count` comments one after another; seconds taken."""
    started = time.monotonic()
    for number in range(count):
        status, body = http_json("POST", f"{url}/api/v1/sites/{SITE}/comments", {
            "path": path, "visitor": f"{prefix}-{number:06d}", "author_name": f"Reader {number}",
            "body": f"Comment number {number}: a **short** paragraph, with a [link]"
                    f"(https://example.com/{number}) and some words to render."})
        if status != 202:
            raise RuntimeError(f"comment answered {status}: {body}")
    return time.monotonic() - started


def wait_thread(url: str, path: str, count: int, timeout_s: float = 60) -> float:
    started = time.monotonic()
    query = urllib.parse.urlencode({"path": path, "limit": 1})
    while time.monotonic() - started < timeout_s:
        status, body = http_json("GET", f"{url}/api/v1/sites/{SITE}/comments?{query}")
        if status == 200 and body.get("total", 0) >= count:
            return time.monotonic() - started
        time.sleep(0.05)
    raise RuntimeError(f"the thread at {path} did not reach {count} comments")


def run(duration_s: float, rounds: int, connections: int) -> str:
    require_binary("wrk", "run ./install.sh --bench, or apt-get install -y wrk")
    server_core, client_core = usable_cores()
    with running_up(server_core) as up:
        post_comments(up.url, THREAD_PATH, COMMENTS, AUTHOR_PREFIX)
        wait_thread(up.url, THREAD_PATH, COMMENTS)
        paths = [f"/bench/batch-{n:02d}/" for n in range(BATCH)]
        for path in paths:
            http_json("POST", f"{up.url}/api/v1/sites/{SITE}/interactions",
                      {"path": path, "reaction": "like", "visitor": "bench-batch"})
        thread_url = (f"{up.url}/api/v1/sites/{SITE}/comments?"
                      + urllib.parse.urlencode({"path": THREAD_PATH, "limit": COMMENTS}))
        with urllib.request.urlopen(thread_url) as response:
            raw = response.read()
        thread, thread_bytes = json.loads(raw), len(raw)
        author = f"{AUTHOR_PREFIX}-000007"  # wrote one of the 200
        for comment in thread["comments"][:VOTES]:
            status, body = http_json(
                "POST", f"{up.url}/api/v1/sites/{SITE}/comments/{comment['id']}/vote",
                {"vote": "up", "visitor": author})
            if status != 200:
                raise RuntimeError(f"vote answered {status}: {body}")
        reader_url = thread_url + "&visitor=bench-quiet-reader"
        author_url = thread_url + "&" + urllib.parse.urlencode({"visitor": author})
        batch_lua = wrk_load.post_json_lua(json.dumps({"paths": paths}))
        batch_url = f"{up.url}/api/v1/sites/{SITE}/totals/batch"
        loads: list[tuple[int, list[wrk_load.Load]]] = []
        wrk_load.run("warm-up", thread_url, client_core, 2, connections)
        for number in range(1, rounds + 1):
            log(f"round {number}/{rounds}")
            health = wrk_load.run("GET /healthz", up.url + "/healthz", client_core,
                                  duration_s, connections)
            thread = wrk_load.run(f"GET thread of {COMMENTS} comments", thread_url,
                                  client_core, duration_s, connections)
            reader = wrk_load.run("... as a reader", reader_url, client_core, duration_s,
                                  connections)
            author = wrk_load.run(f"... as an author who voted {VOTES} times", author_url,
                                  client_core, duration_s, connections)
            batch = wrk_load.run(f"POST totals/batch, {BATCH} paths", batch_url, client_core,
                                 duration_s, connections, batch_lua)
            loads.append((number, [health, thread, reader, author, batch]))
    out = ["## Reads: a 200-comment thread, batch totals for 20 paths", ""]
    out.append(
        f"`platformctl up` (SQLite, owned Redis, 1 web worker) on core {server_core}; wrk 1 "
        f"thread, {connections} connections, on core {client_core}; {duration_s:.0f} s per "
        f"run, rounds alternate the requests. The thread: {COMMENTS} approved top-level "
        f"comments posted through the API (Markdown with a link, rendered once at submission) "
        f"and read in one answer with `limit={COMMENTS}` ({thread_bytes:,} bytes of JSON): "
        f"anonymously; as a reader (`visitor` given, as the widget always does) who has no "
        f"comment and no vote there, so the answer is the shared one after a check of their "
        f"votes; and as the author of one of the comments who voted on {VOTES}, whose answer "
        f"is spliced for them (`mine`, `my_vote`). The batch: POST `/totals/batch` with "
        f"{BATCH} paths that each have totals.")
    out.append("")
    table_rows = []
    for number, group in loads:
        for row in wrk_load.rows(group, group[0]):
            table_rows.append([number, *row])
    out.append(table(["round", *wrk_load.HEADERS], table_rows, "rlrrrrrrr"))
    out.append("")
    health_rate = sum(g[0].requests for _, g in loads) / sum(g[0].duration_s for _, g in loads)
    thread_rate = sum(g[1].requests for _, g in loads) / sum(g[1].duration_s for _, g in loads)
    reader_rate = sum(g[2].requests for _, g in loads) / sum(g[2].duration_s for _, g in loads)
    author_rate = sum(g[3].requests for _, g in loads) / sum(g[3].duration_s for _, g in loads)
    batch_rate = sum(g[4].requests for _, g in loads) / sum(g[4].duration_s for _, g in loads)
    share = thread_rate / health_rate
    isso_here = peer_rate_here(60, health_rate)  # Isso's thread of comments on this machine
    out.append(table(["target", "measured", "met?"], [
        ["thread of 200 at >= 50 % of the /healthz ceiling",
         f"{thread_rate:,.0f}/s = {share:.0%} of {health_rate:,.0f}/s",
         "yes" if share >= 0.5 else f"**no**: {0.5 * health_rate - thread_rate:,.0f}/s short"],
        ["thread of 200 at >= 15x Isso's 60/s and Waline's 55/s, scaled to this machine",
         f"{thread_rate:,.0f}/s = {thread_rate / isso_here:.1f}x Isso's {isso_here:,.0f}/s "
         f"(60/s x {health_rate:,.0f}/{REFERENCE_CEILING:,.0f}); {thread_rate / 60:.1f}x its "
         f"published 60/s", "yes" if thread_rate >= 15 * isso_here else
         f"**no**: {15 * isso_here - thread_rate:,.0f}/s short"],
        ["the same, as a reader (visitor given; no target)", f"{fmt_int(reader_rate)}/s = "
         f"{reader_rate / health_rate:.0%} of the ceiling", ""],
        [f"the same, as an author who voted {VOTES} times (no target)",
         f"{fmt_int(author_rate)}/s = {author_rate / health_rate:.0%} of the ceiling", ""],
        [f"batch totals, {BATCH} paths (no target)", f"{fmt_int(batch_rate)}/s = "
         f"{batch_rate / health_rate:.0%} of the ceiling", ""],
    ], "lrl"))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds per run [5]")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three [2]")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections [32]")
    args = parser.parse_args(argv)
    print(run(args.duration, args.rounds, args.connections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
