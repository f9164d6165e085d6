"""Live fan-out: N WebSocket subscribers on one page, an HTTP interaction, time to the last one.

`platformctl up` (one web worker) on core 0; subscribers in several processes (Python
`websockets`, 1,000 connections or fewer each) on core 1. For each size: the web server's RSS
before the connections and once they idle subscribed gives the memory per idle connection; then
a series of `like`s by new visitors, spaced further apart than the push coalescing interval,
each timed from just before its POST to the arrival of the `totals` frame that carries it at
the last of the N subscribers (wall clock, same machine).

    .venv/bin/python -m bench.live_fanout [--sizes 1000,5000] [--samples 30]
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import time

from bench.common import fmt_float, fmt_int, log, table, usable_cores
from bench.server import SITE, http_json, running_up
from bench.ws_clients import split, start_workers

PER_WORKER = 1000


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def measure(up, client_core: int, size: int, compression: bool, samples: int,
            gap_s: float) -> dict:
    path = f"/bench/live-{size}-{'deflate' if compression else 'plain'}/"
    http_json("POST", f"{up.url}/api/v1/sites/{SITE}/interactions",
              {"path": path, "reaction": "view", "visitor": "bench-warm"})
    gc.collect()
    time.sleep(1)
    rss_before = up.web_rss_kb()
    workers_n = max(2, math.ceil(size / PER_WORKER))
    started = time.monotonic()
    workers = start_workers("fanout", client_core,
                            [(up.ws_url, n, path, compression) for n in split(size, workers_n)])
    try:
        ready = workers.expect("ready", 300)
        connected, negotiated = sum(r[0] for r in ready), sum(r[1] for r in ready)
        connect_s = time.monotonic() - started
        time.sleep(2)
        rss_idle = up.web_rss_kb()
        log(f"{connected} subscribers in {connect_s:.1f} s; web RSS {rss_before} -> "
            f"{rss_idle} KB")
        sent: dict[int, float] = {}
        for number in range(samples):
            before = time.time()
            status, body = http_json("POST", f"{up.url}/api/v1/sites/{SITE}/interactions",
                                     {"path": path, "reaction": "like",
                                      "visitor": f"bench-fan-{size}-{number:05d}"})
            if status != 200:
                raise RuntimeError(f"interaction answered {status}: {body}")
            sent[int(body["totals"]["like"])] = before
            time.sleep(gap_s)
        time.sleep(1)
        workers.send("report")
        reports = workers.expect("arrivals", 120)
    finally:
        workers.join()
    latencies, firsts, complete = [], [], 0
    for marker, before in sent.items():
        got = [r[marker] for r in reports if marker in r]
        received = sum(entry[0] for entry in got)
        if received == connected:
            complete += 1
            latencies.append((max(entry[1] for entry in got) - before) * 1000)
            firsts.append((min(entry[2] for entry in got) - before) * 1000)
    return {"size": size, "compression": compression, "connected": connected,
            "negotiated": negotiated,
            "connect_s": connect_s, "rss_before": rss_before, "rss_idle": rss_idle,
            "samples": len(sent), "complete": complete, "latencies": latencies, "firsts": firsts,
            "workers": workers_n}


def render(results: list[dict], coalesce_ms: int, default_results: list[dict],
           server_core: int, client_core: int) -> str:
    out = ["## Live fan-out (WebSocket subscribers on one page)", ""]
    out.append(
        f"`platformctl up` (SQLite, owned Redis, 1 web worker) on core {server_core}; "
        f"subscribers are Python clients (see below) in several processes (at most "
        f"{PER_WORKER:,} connections each) on core {client_core}, all subscribed to one page. "
        f"Each sample is a `like` by a new visitor sent over HTTP; latency runs from just "
        f"before the POST to the arrival of the `totals` frame carrying it at the **last** "
        f"subscriber (all of them must receive it for the sample to count). Samples are spaced "
        f"beyond the coalescing interval so each one is its own push. *deflate*: the clients "
        f"offer permessage-deflate, as browsers do; *plain*: they do not. Memory: RSS of the "
        f"web server process before connecting and once all connections idle, subscribed.")
    out.append("")
    rows = []
    for label, group in ((f"{coalesce_ms} (minimum)", results),
                         ("250 (default)", default_results)):
        for r in group:
            lat = r["latencies"]
            per_conn = (r["rss_idle"] - r["rss_before"]) / r["connected"] if r["connected"] else 0
            rows.append([fmt_int(r["size"]), "deflate" if r["compression"] else "plain",
                         fmt_int(r["negotiated"]), label,
                         f"{fmt_float(r['connect_s'])} s", f"{r['complete']} / {r['samples']}",
                         fmt_float(statistics.median(lat)) if lat else "-",
                         fmt_float(percentile(lat, 0.99)) if lat else "-",
                         fmt_float(max(lat)) if lat else "-",
                         fmt_float(statistics.median(r["firsts"])) if lat else "-",
                         f"{r['rss_before'] / 1024:,.0f} -> {r['rss_idle'] / 1024:,.0f} MB",
                         fmt_float(per_conn / 1, 1)])
    out.append(table(["subscribers", "client offers", "deflate negotiated", "coalesce ms",
                      "connect all", "samples complete", "p50 ms", "p99 ms", "max ms",
                      "first subscriber p50 ms", "web RSS", "KB per idle connection"], rows,
                    "rlrlrrrrrrrr"))
    out.append("")
    out.append("p99 of a few dozen samples is close to their maximum; the latency includes the "
               "HTTP request, the push (a page not pushed within the coalescing interval is "
               "pushed at once: samples are spaced beyond it), Redis pub/sub, the web worker "
               "writing N frames, and the client processes reading N frames on one shared "
               "core. The subscribers open their connections with the `websockets` library's "
               "sans-I/O protocol and, unless compression was negotiated, then read the "
               "server's frames themselves, so that the load generator's own cost per frame "
               "stays small next to the server's. *deflate negotiated*: connections on which "
               "the server accepted the client's permessage-deflate offer.")
    return "\n".join(out)


def run(sizes: list[int], samples: int, plain: bool, default_size: int | None) -> str:
    server_core, client_core = usable_cores()
    coalesce_ms = 10
    results: list[dict] = []
    # each variant on a fresh server: memory freed by closed connections is not given back
    variants = [(size, True) for size in sizes]
    if plain:
        variants.insert(1, (sizes[0], False))
    for size, compression in variants:
        with running_up(server_core, {"OVATION_LIVE_COALESCE_MS": str(coalesce_ms)}) as up:
            log(f"fan-out to {size} subscribers (compression offered: {compression}), "
                f"coalesce {coalesce_ms} ms")
            results.append(measure(up, client_core, size, compression, samples, 0.25))
    default_results: list[dict] = []
    if default_size:
        with running_up(server_core) as up:
            log(f"fan-out to {default_size} subscribers, default coalescing (250 ms)")
            default_results.append(measure(up, client_core, default_size, True,
                                           max(5, samples // 3), 0.6))
    return render(results, coalesce_ms, default_results, server_core, client_core)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,5000", help="subscriber counts [1000,5000]")
    parser.add_argument("--samples", type=int, default=20, help="interactions per size [20]")
    parser.add_argument("--no-plain", action="store_true",
                        help="skip the run without client compression")
    parser.add_argument("--default-size", type=int, default=1000,
                        help="subscribers for the run with default coalescing; 0 skips [1000]")
    args = parser.parse_args(argv)
    sizes = [int(part) for part in args.sizes.split(",") if part]
    print(run(sizes, args.samples, not args.no_plain, args.default_size or None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
