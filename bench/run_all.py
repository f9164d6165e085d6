"""Run every benchmark and write docs/benchmarks.md (machine, versions, date, tables).

    .venv/bin/python -m bench                 # everything, about 5 minutes
    .venv/bin/python -m bench --quick         # shorter runs, for checking the programs work
    .venv/bin/python -m bench --output -      # print instead of writing docs/benchmarks.md

Each benchmark runs as its own process (`python -m bench.NAME`); its stdout is the Markdown
that goes into the file, its stderr is progress.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from bench.common import REPO, log, pg_bindir, redis_version, table

OUTPUT = REPO / "docs" / "benchmarks.md"
TARGETS = Path(__file__).with_name("targets.md")  # the analysis of the gaps, kept by hand
BENCHMARKS: dict[str, dict[str, list[str]]] = {
    # name: {"full": args, "quick": args}
    "interactions_http": {"full": [], "quick": ["--duration", "3", "--rounds", "1",
                                                "--warmup", "2"]},
    "flush_statements": {"full": [], "quick": ["--big", "10000"]},
    "interactions_ws": {"full": [], "quick": ["--duration", "2", "--rounds", "1"]},
    "reads": {"full": [], "quick": ["--duration", "2", "--rounds", "1"]},
    "live_fanout": {"full": [], "quick": ["--sizes", "200", "--samples", "5", "--no-plain",
                                          "--default-size", "0"]},
    "comments": {"full": [], "quick": ["--duration", "2", "--samples", "10"]},
    "widget_size": {"full": [], "quick": []},
    "widget_tti": {"full": [], "quick": ["--loads", "3", "--warm", "2", "--page-sizes", "50"]},
}
TIMEOUT_S = 600
# Chromium loads take long when other work shares the cores (20 min at a load average of 20)
LONGER_TIMEOUTS_S = {"widget_tti": 1800}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def command_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_state() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}" + (" plus uncommitted changes" if dirty else "")


def machine_table(started: dt.datetime, load_before: tuple[float, ...],
                  load_after: tuple[float, ...], elapsed_s: float) -> str:
    try:
        out = subprocess.run([str(pg_bindir() / "postgres"), "--version"], capture_output=True,
                             text=True, check=True).stdout
        pg_version = out.strip().removeprefix("postgres (PostgreSQL) ")
    except (SystemExit, OSError, subprocess.CalledProcessError):
        pg_version = "not installed"
    rows = [
        ["date", started.strftime("%Y-%m-%d %H:%M UTC")],
        ["machine", f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
                    f"{cpu_model()}, {platform.system()} {platform.release()}"],
        ["load average before / after", f"{load_before[0]:.2f} / {load_after[0]:.2f} "
                                        f"(1-minute; the cores are shared and noisy)"],
        ["Python", f"{platform.python_version()} ({platform.python_implementation()})"],
        ["Redis", redis_version()],
        ["PostgreSQL", pg_version],
        ["SQLite", f"{sqlite3.sqlite_version} (Python sqlite3 module)"],
        ["wrk", command_version(["wrk", "-v"]).split(" [")[0]],
        ["quart / hypercorn / peewee / redis-py / psycopg2",
         " / ".join(package_version(p) for p in
                    ("quart", "hypercorn", "peewee", "redis", "psycopg2-binary"))],
        ["Ovation commit", git_state()],
        ["benchmark wall time", f"{elapsed_s:.0f} s"],
    ]
    return table(["", ""], rows, "ll")


def ensure_wrk() -> None:
    """Install Debian's wrk when it is missing (as root, through apt-get), else say how."""
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit("wrk is not installed: run `apt-get install -y wrk` as root")
    log("wrk is missing: apt-get update && apt-get install -y wrk")
    subprocess.run(["apt-get", "update"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def run_benchmark(name: str, args: list[str]) -> str:
    log(f"running bench.{name} {' '.join(args)}")
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", f"bench.{name}", *args], cwd=REPO,
                         stdout=subprocess.PIPE, text=True,
                         timeout=LONGER_TIMEOUTS_S.get(name, TIMEOUT_S))
    if out.returncode != 0:
        raise SystemExit(f"bench.{name} failed with exit code {out.returncode}")
    log(f"bench.{name} took {time.monotonic() - started:.0f} s")
    return out.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run Ovation's benchmarks.")
    parser.add_argument("--quick", action="store_true", help="short runs (checks, not results)")
    parser.add_argument("--only", choices=list(BENCHMARKS), action="append",
                        help="run only this benchmark (repeatable)")
    parser.add_argument("--output", default=str(OUTPUT),
                        help="file to write, or - for stdout [docs/benchmarks.md]")
    args = parser.parse_args(argv)

    ensure_wrk()
    started = dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    load_before = os.getloadavg()
    sections = [run_benchmark(name, BENCHMARKS[name]["quick" if args.quick else "full"])
                for name in (args.only or list(BENCHMARKS))]
    load_after = os.getloadavg()
    elapsed = time.monotonic() - clock

    quick = (" **Quick mode: short runs to check the programs, not results.**"
             if args.quick else "")
    document = "\n".join([
        "# Benchmarks",
        "",
        "Generated by `.venv/bin/python -m bench` (see `bench/README.md`); rerun it rather "
        "than editing this file. Each table compares against a baseline measured in the same "
        "run, since the machine's cores are shared and noisy. The gateway's rate limits stay on "
        "but are raised above what the one loopback load generator sends (see "
        f"`bench/README.md`).{quick}",
        "",
        machine_table(started, load_before, load_after, elapsed),
        "",
        "\n\n".join(sections),
        "",
        TARGETS.read_text().strip() if not args.only else "",
        "",
    ])
    if args.output == "-":
        print(document)
    else:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(document)
        log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
