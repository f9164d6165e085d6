"""Interactions over open WebSockets vs over HTTP, with GET /healthz as the ceiling.

`platformctl up` (one web worker) on core 0. In alternating rounds on core 1: wrk GET /healthz,
wrk POST interactions (the HTTP path, as in bench.interactions_http), and the same number of
WebSocket connections in client processes sending `interact` messages, one in flight per
connection (closed loop, like wrk), each answered with a `result`.

    .venv/bin/python -m bench.interactions_ws [--duration 5] [--rounds 2] [--connections 32]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from bench import wrk_load
from bench.common import fmt_float, fmt_int, log, require_binary, table, usable_cores
from bench.interactions_http import write_script
from bench.live_fanout import percentile
from bench.server import ServerCpu, running_up
from bench.ws_clients import split, start_workers

PAGES = 1000
WORKERS = 2


def ws_round(up, core: int, connections: int, duration_s: float, seed: int) -> dict:
    workers = start_workers("interact", core, [
        (up.ws_url, n, duration_s, PAGES, seed + index)
        for index, n in enumerate(split(connections, WORKERS))])
    try:
        workers.expect("ready", 60)
        workers.send("go")
        reports = workers.expect("done", duration_s + 60)
    finally:
        workers.join()
    latencies = [value * 1000 for r in reports for value in r["latencies"]]
    errors: dict[str, int] = {}
    for report in reports:
        for code, n in report["errors"].items():
            errors[code] = errors.get(code, 0) + n
    if errors:
        log(f"WebSocket interactions answered errors: {errors}")
    elapsed = max(r["elapsed"] for r in reports)
    return {"count": len(latencies), "elapsed": elapsed, "rate": len(latencies) / elapsed,
            "p50": statistics.median(latencies), "p99": percentile(latencies, 0.99),
            "max": max(latencies), "errors": sum(errors.values())}


def run(duration_s: float, rounds: int, connections: int) -> str:
    require_binary("wrk", "run ./install.sh --bench, or apt-get install -y wrk")
    server_core, client_core = usable_cores()
    results = []
    cpu_rows: list[tuple[float, float, float]] = []  # server CPU µs per request, per round
    roles: list[tuple[dict[str, float], dict[str, float]]] = []  # HTTP, WS: µs by process
    with running_up(server_core) as up:
        lua = write_script(Path(up.data_dir), "interactions", PAGES, 100_000_000)
        http_lua = lua.read_text()
        lua.unlink()
        # warm-up: every page's SQL totals cached, as for the HTTP benchmark's rounds
        wrk_load.run("warm-up", up.url, client_core, 3, connections, http_lua)
        cpu = ServerCpu(up.process.pid)
        for number in range(1, rounds + 1):
            log(f"round {number}/{rounds}")
            seed = int(time.time()) + number
            health, health_cpu = cpu.measure(lambda: wrk_load.run(
                "GET /healthz", up.url + "/healthz", client_core, duration_s, connections),
                lambda load: load.requests)
            http, http_roles = cpu.measure_by_role(lambda seed=seed: wrk_load.run(
                "POST interactions (HTTP)", up.url, client_core, duration_s, connections,
                http_lua, seed=seed), lambda load: load.requests)
            ws, ws_roles = cpu.measure_by_role(lambda seed=seed: ws_round(
                up, client_core, connections, duration_s, seed), lambda w: w["count"])
            http_cpu, ws_cpu = sum(http_roles.values()), sum(ws_roles.values())
            roles.append((http_roles, ws_roles))
            results.append((number, health, http, ws))
            cpu_rows.append((health_cpu, http_cpu, ws_cpu))
    out = ["## Interactions over open WebSockets vs HTTP", ""]
    out.append(
        f"`platformctl up` (SQLite, owned Redis, 1 web worker) on core {server_core}; on core "
        f"{client_core}, wrk ({connections} connections) for /healthz and HTTP interactions, and "
        f"{connections} WebSocket connections in {WORKERS} Python processes sending `interact` "
        f"messages with one in flight per connection. The same mix as the HTTP benchmark: a "
        f"random page of {PAGES:,}, a random visitor, 50 % view / 25 % like / 25 % applause. "
        f"{duration_s:.0f} s per run; rounds alternate the three.")
    out.append("")
    rows = []
    for (number, health, http, ws), cpus in zip(results, cpu_rows, strict=True):
        for load, cpu_us in ((health, cpus[0]), (http, cpus[1])):
            rows.append([number, load.label, fmt_int(load.rate), fmt_float(load.p50_ms, 2),
                         fmt_float(load.p99_ms, 2), fmt_int(load.errors),
                         f"{load.rate / health.rate:.2f}", fmt_int(cpu_us)])
        rows.append([number, "interact over WebSocket", fmt_int(ws["rate"]),
                     fmt_float(ws["p50"], 2), fmt_float(ws["p99"], 2), fmt_int(ws["errors"]),
                     f"{ws['rate'] / health.rate:.2f}", fmt_int(cpus[2])])
    out.append(table(["round", "request", "per second", "p50 ms", "p99 ms", "errors",
                      "vs /healthz", "server CPU µs per request"], rows, "rlrrrrrr"))
    out.append("")
    health_rate = statistics.mean(h.rate for _, h, _, _ in results)
    http_rate = statistics.mean(h.rate for _, _, h, _ in results)
    ws_rate = statistics.mean(w["rate"] for _, _, _, w in results)
    out.append(table(["target", "measured", "met?"], [
        ["HTTP interactions >= 85 % of the /healthz ceiling",
         f"{http_rate:,.0f}/s = {http_rate / health_rate:.0%} of {health_rate:,.0f}/s",
         "yes" if http_rate >= 0.85 * health_rate else
         f"**no**: {0.85 * health_rate - http_rate:,.0f}/s short"],
        ["WebSocket interactions >= 2x the HTTP figure",
         f"{ws_rate:,.0f}/s = {ws_rate / http_rate:.2f}x HTTP", "yes" if ws_rate >= 2 * http_rate
         else f"**no**: {2 * http_rate - ws_rate:,.0f}/s short"],
    ], "lrl"))
    out.append("")
    http_cpu = statistics.mean(c[1] for c in cpu_rows)
    ws_cpu = statistics.mean(c[2] for c in cpu_rows)
    out.append("The WebSocket clients are Python: on the shared client core they may limit the "
               "rate before the server does (wrk, in C, does not). *Server CPU* (user + system "
               "of `up` and all its children, from `/proc`, per request answered) shows the "
               "server's own cost: an interaction over a WebSocket cost the server "
               f"{ws_cpu:,.0f} µs against {http_cpu:,.0f} µs over HTTP, so a server with its "
               f"core to itself would take {http_cpu / ws_cpu:.2f}x as many over WebSockets "
               "as over HTTP." if ws_cpu else "")
    out.append("")
    out.append(cpu_split(roles))
    return "\n".join(out)


def cpu_split(roles: list[tuple[dict[str, float], dict[str, float]]]) -> str:
    """Server CPU per interaction by process, HTTP against WebSocket, and what 2x would take:
    the work outside the web worker (Redis running the script, the flusher) is the same on
    both paths, so only the web worker's share of a frame can make the difference."""
    names = sorted({name for pair in roles for side in pair for name in side},
                   key=lambda name: (name != "web", name))

    def mean(side: int, name: str) -> float:
        return statistics.mean(pair[side].get(name, 0.0) for pair in roles)

    rows = [[name, fmt_int(mean(0, name)), fmt_int(mean(1, name))] for name in names
            if max(mean(0, name), mean(1, name)) >= 0.5]
    http_total = sum(mean(0, name) for name in names)
    ws_total = sum(mean(1, name) for name in names)
    rows.append(["**all**", fmt_int(http_total), fmt_int(ws_total)])
    ws_outside = ws_total - mean(1, "web")
    allowed = http_total / 2 - ws_outside
    lines = [table(["process", "HTTP µs per interaction", "WebSocket µs per interaction"],
                   rows, "lrr"), ""]
    lines.append(
        f"For WebSocket interactions to cost half of HTTP's {http_total:,.0f} µs, with "
        f"{ws_outside:,.0f} µs of each spent outside the web worker (the same work on both "
        f"paths), the web worker could spend at most {allowed:,.0f} µs on a frame; it spends "
        f"{mean(1, 'web'):,.0f} µs, of which the interaction's own share (validation, rate "
        f"charge, the script call, totals) is the same as over HTTP.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds per run [5]")
    parser.add_argument("--rounds", type=int, default=2, help="rounds [2]")
    parser.add_argument("--connections", type=int, default=32, help="connections [32]")
    args = parser.parse_args(argv)
    print(run(args.duration, args.rounds, args.connections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
