"""The long soak: `python -m tests.reliability.soak --minutes 30 [--backend postgresql]`.

The same scenario as the CI test (tests/reliability/scenario.py), run for as long as asked,
faults injected one after another all the while. Prints the result table and the resident
memory (RSS) of every process at the start and at the end of the load.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from tests.reliability.rig import Rig
from tests.reliability.scenario import TABLE_HEAD, Scenario


async def soak(rig: Rig, minutes: float, seed: int) -> tuple[str, dict, dict, list[str]]:
    scenario = Scenario(rig, seed)
    await asyncio.sleep(0)
    start_rss = rig.rss_mb()
    task = asyncio.create_task(scenario.run(f"{rig.backend} soak, {minutes:g} min, seed {seed}",
                                            minutes * 60))
    end_rss: dict[str, float] = {}
    while not scenario.stop.is_set():  # the last reading before the load stops
        end_rss = rig.rss_mb()
        await asyncio.sleep(2)
    report = await task
    return report.row(), start_rss, end_rss, report.errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.soak",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="How long to run the load.")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--seed", type=int, default=1, help="Seeds the clients and faults.")
    parser.add_argument("--dir", type=Path, default=None,
                        help="Where processes keep their data and logs (default: a temp dir).")
    args = parser.parse_args(argv)
    directory = args.dir or Path(tempfile.mkdtemp(prefix="ovation-soak-"))
    rig = Rig(directory, args.backend)
    try:
        rig.start()
        row, start_rss, end_rss, errors = asyncio.run(soak(rig, args.minutes, args.seed))
    finally:
        rig.stop()
    print(f"{TABLE_HEAD}\n{row}\n")
    print("| process | RSS at start (MiB) | RSS at end (MiB) |\n| --- | --- | --- |")
    for name in start_rss:
        print(f"| {name} | {start_rss[name]:.1f} | {end_rss.get(name, float('nan')):.1f} |")
    print(f"\nlogs: {directory}")
    for error in errors:
        print(f"ERROR: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
