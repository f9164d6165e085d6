"""The long soak: `python -m tests.reliability.soak --minutes 30 [--backend postgresql]`.

The same scenario as the CI test (tests/reliability/scenario.py), run for as long as asked,
faults injected one after another all the while (or, with `--no-faults`, a steady load only,
so that every process lives through the whole run and its memory says something). Prints the
result table, the resident memory (RSS) of every process at the start, after the warm-up, at
the end of the load and at its peak, and what Redis holds at the end. `rss.csv` in the run's
directory has every reading (one every 10 s). `--short-retention` keeps what Redis holds for a
time (delivery records, edit tokens, view dedup) a few minutes, so that a 30-minute soak shows
whether Redis's memory levels off.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from collections import Counter as Tally
from pathlib import Path

import redis

from tests.reliability.rig import Rig
from tests.reliability.scenario import CLIENT_PROCESSES, TABLE_HEAD, Report, Scenario

SAMPLE_S = 10
# The settings that bound how long Redis keeps something, a few minutes each (the rig's
# defaults keep it longer than any soak). The edit window bounds the edit tokens; the clients
# then edit and delete only comments younger than it (comment_clients.EDIT_MARGIN_S).
SHORT_RETENTION: dict[str, object] = {
    "notify_keep_s": 120,  # delivery records, kept for `platformctl notifications list`
    "comment_edit_window_s": 180,  # edit tokens (ov:ctok:ID)
    "view_window_s": 120,  # a visitor's view of a page counts once per window (P seen:...)
    "totals_cache_ttl_s": 120,  # SQL totals of pages and comments, after their last use
}


class Memory:
    """RSS readings of every process (MiB), and how often each was started again; also what
    Redis says its data takes (`used_memory`, as "redis data"): its RSS keeps the pages that
    expired keys freed, so only this one shows a plateau, or a fall."""

    def __init__(self, rig: Rig, warm_up_s: float) -> None:
        self.rig = rig
        self.warm_up_s = warm_up_s
        self.began = time.monotonic()
        self.start = self.readings()
        self.warm: dict[str, float] = {}
        self.end: dict[str, float] = {}
        self.peak = dict(self.start)
        self.pids: dict[str, int] = {}  # filled by each sample
        self.restarts: Tally = Tally()
        self.csv = (rig.directory / "rss.csv").open("w")
        self.csv.write("seconds,process,pid,rss_mib\n")

    def sample(self) -> None:
        elapsed = time.monotonic() - self.began
        self.end = self.readings()
        current = {name: process.pid for name, process in self.rig.processes.items()}
        if self.rig.redis_process is not None:
            current["redis"] = self.rig.redis_process.pid
        for name, pid in current.items():
            if self.pids.get(name, pid) != pid:
                self.restarts[name] += 1  # seen by this sample: two in 10 s count once
            self.pids[name] = pid
        for name, rss in self.end.items():
            self.peak[name] = max(self.peak.get(name, 0.0), rss)
            self.csv.write(f"{elapsed:.0f},{name},{self.pids.get(name, 0)},{rss:.1f}\n")
        self.csv.flush()
        if not self.warm and elapsed >= self.warm_up_s:
            self.warm = dict(self.end)

    def readings(self) -> dict[str, float]:
        readings = self.rig.rss_mb()
        client = self.rig.redis_client()
        try:
            readings["redis data"] = client.info("memory")["used_memory"] / 2**20
        except redis.exceptions.RedisError:
            pass  # restarting (a fault): no reading this time
        finally:
            client.close()
        return readings

    def table(self) -> str:
        lines = ["| process | RSS at start (MiB) | after warm-up | at end | peak | "
                 "restarts seen |", "| --- | --- | --- | --- | --- | --- |"]
        for name in self.start:
            lines.append(f"| {name} | {self.start[name]:.1f} | "
                         f"{self.warm.get(name, float('nan')):.1f} | "
                         f"{self.end.get(name, float('nan')):.1f} | {self.peak[name]:.1f} | "
                         f"{self.restarts[name]} |")
        return "\n".join(lines)


async def soak(rig: Rig, minutes: float, seed: int, faults: bool,
               processes: int = CLIENT_PROCESSES) -> tuple[Report, Memory]:
    scenario = Scenario(rig, seed, faults=faults, processes=processes)
    memory = Memory(rig, warm_up_s=min(300.0, minutes * 60 / 6))
    name = (f"{rig.backend} soak{'' if faults else ' without faults'}"
            f"{', short retention' if rig.overrides else ''}, {minutes:g} min, seed {seed}")
    task = asyncio.create_task(scenario.run(name, minutes * 60))
    next_sample = time.monotonic()
    while not scenario.stop.is_set():
        if time.monotonic() >= next_sample:
            memory.sample()
            next_sample += SAMPLE_S
        await asyncio.sleep(0.5)
    memory.sample()  # the end: the load has just stopped, every process still runs
    report = await task
    memory.csv.close()
    return report, memory


def redis_contents(rig: Rig) -> str:
    """Redis's memory, and its keys by kind (the name up to its id) with the memory they take
    (MEMORY USAGE of up to 200 keys of each kind, scaled up to all of them)."""
    client = rig.redis_client()
    try:
        kinds: dict[str, list[str]] = {}
        for key in client.scan_iter(count=1000):
            parts = key.split(":")  # ov:{c}:sql:..., ov:dup:..., ov:stream:submissions
            width = 3 if len(parts) > 2 and (parts[1].startswith("{") or
                                             parts[1] == "stream") else 2
            kinds.setdefault(":".join(parts[:width]), []).append(key)
        sizes = {}
        for kind, names in kinds.items():
            sample = names[:200]
            used = sum(client.memory_usage(name, samples=0) or 0 for name in sample)
            sizes[kind] = used * len(names) / len(sample) / 2**20
        used = client.info("memory")["used_memory"] / 2**20
        top = ", ".join(f"{kind}: {len(kinds[kind])} keys, {mib:.1f} MiB" for kind, mib in
                        sorted(sizes.items(), key=lambda item: -item[1])[:12])
        return (f"Redis at the end: {used:.1f} MiB used, "
                f"{sum(len(names) for names in kinds.values())} keys. By kind: {top}")
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.soak",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="How long to run the load.")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--seed", type=int, default=1, help="Seeds the clients and faults.")
    parser.add_argument("--no-faults", dest="faults", action="store_false",
                        help="A steady load only: no process is killed, for memory figures.")
    parser.add_argument("--short-retention", action="store_true",
                        help="Keep delivery records, edit tokens, view dedup keys and cached "
                        "totals a few minutes (" + ", ".join(f"{name}={value}" for name, value in
                                                SHORT_RETENTION.items()) + "), so that "
                        "Redis's memory can level off within the soak.")
    parser.add_argument("--client-processes", type=int, default=CLIENT_PROCESSES,
                        help="Processes the load's clients are shared out among.")
    parser.add_argument("--dir", type=Path, default=None,
                        help="Where processes keep their data and logs (default: a temp dir).")
    args = parser.parse_args(argv)
    directory = args.dir or Path(tempfile.mkdtemp(prefix="ovation-soak-"))
    rig = Rig(directory, args.backend, SHORT_RETENTION if args.short_retention else None)
    # SIGTERM stops the soak as Ctrl-C does: through `rig.stop()`, leaving no process behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        rig.start()
        report, memory = asyncio.run(soak(rig, args.minutes, args.seed, args.faults,
                                          args.client_processes))
        contents = redis_contents(rig)
    finally:
        rig.stop()
    print(f"{TABLE_HEAD}\n{report.row()}\n\nanswers: {report.answers}\n")
    print(f"{memory.table()}\n\n{contents}\n\nlogs and rss.csv: {directory}")
    for error in report.errors:
        print(f"ERROR: {error}", file=sys.stderr)
    return 1 if report.errors or report.lost or report.duplicated else 0


if __name__ == "__main__":
    sys.exit(main())
