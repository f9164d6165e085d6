"""Helpers shared by the benchmark programs: Markdown tables, core pinning, private servers.

Nothing here is imported by Ovation itself; the benchmarks import Ovation, not the other way.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SERVER_CORE = 0  # servers under test (Ovation, Redis, PostgreSQL)
CLIENT_CORE = 1  # load generator / benchmark driver


# The peers' figures quoted in issue #10 (Isso, Waline) were measured on a reference machine
# whose Hypercorn hello-world ceiling ran about 1,900 requests/s on one core. A peer would run
# faster or slower on another machine much as that ceiling does, so a comparison with a peer
# scales its published rate by this run's /healthz ceiling over the reference one: on a machine
# twice as fast, "5x Isso" means 5x twice Isso's published rate.
REFERENCE_CEILING = 1900.0


def peer_rate_here(published_rate: float, ceiling_here: float) -> float:
    """A peer's published rate scaled to this machine (see REFERENCE_CEILING)."""
    return published_rate * ceiling_here / REFERENCE_CEILING


def log(message: str) -> None:
    """Progress goes to stderr, so stdout stays the Markdown report."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]],
          align: str | None = None) -> str:
    """A GitHub Markdown table; `align` is one letter per column (l or r, default r)."""
    align = align or "l" + "r" * (len(headers) - 1)
    marks = [":---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_int(value: float) -> str:
    return f"{int(round(value)):,}"


def fmt_float(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def usable_cores() -> tuple[int, int]:
    """The (server, client) cores; refuse to run unpinned on a machine with one core."""
    cores = sorted(os.sched_getaffinity(0))
    if SERVER_CORE in cores and CLIENT_CORE in cores:
        return SERVER_CORE, CLIENT_CORE
    if len(cores) < 2:
        raise SystemExit("the benchmarks need two CPU cores (one for the server, one for the "
                         "load generator)")
    return cores[0], cores[1]


def pin_self(core: int) -> None:
    os.sched_setaffinity(0, {core})


def require_binary(name: str, hint: str) -> str:
    path = shutil.which(name)
    if not path:
        raise SystemExit(f"{name} is not installed: {hint}")
    return path


def clean_environment() -> dict[str, str]:
    """This process's environment without OVATION_* settings (the benchmark sets its own)."""
    return {key: value for key, value in os.environ.items() if not key.startswith("OVATION_")}


# -- PostgreSQL --------------------------------------------------------------------------------

def pg_bindir() -> Path:
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                             check=True).stdout.strip()
        if (Path(out) / "initdb").exists():
            return Path(out)
    except (OSError, subprocess.CalledProcessError):
        pass
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise SystemExit("PostgreSQL server binaries are missing: run ./install.sh --test")
    return Path(found[-1]).parent


class PostgresServer:
    """A private PostgreSQL cluster in a temporary directory, run as the postgres user.

    Unlike the test suite's (fsync off), this one keeps PostgreSQL's durable defaults
    (fsync, synchronous_commit, full_page_writes on): commit cost is part of what is measured.
    pg_stat_statements is preloaded so the server itself counts the statements it executes.
    """

    def __init__(self, directory: Path, core: int | None = None) -> None:
        self.bindir = pg_bindir()
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.pin = ["taskset", "-c", str(core)] if core is not None else []

    def _run(self, *argv: str) -> None:
        subprocess.run([*self.pin, *self.as_user, *argv], check=True, capture_output=True,
                       cwd="/")

    def start(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        if self.as_user:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust",
                  "-U", "postgres", "--no-sync", "-E", "UTF8")
        options = (f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
                   "-c shared_preload_libraries=pg_stat_statements "
                   "-c pg_stat_statements.track=top -c pg_stat_statements.track_utility=on")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.directory / "log"), "-w", "start")

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                      "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @contextlib.contextmanager
    def admin(self) -> Iterator:
        """A cursor on an autocommit psycopg2 connection to the `postgres` database."""
        import psycopg2

        connection = psycopg2.connect(dbname="postgres", user="postgres", host="127.0.0.1",
                                      port=self.port)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                yield cursor
        finally:
            connection.close()

    def create_database(self, name: str) -> str:
        with self.admin() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cursor.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


# -- Redis -------------------------------------------------------------------------------------

class RedisServer:
    """A private redis-server on a Unix socket, configured as Ovation's owned Redis."""

    def __init__(self, directory: Path, core: int | None = None) -> None:
        self.directory = directory
        self.core = core
        self.process: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        return self.directory / "redis.sock"

    def start(self) -> None:
        from appliance.supervision import owned_redis

        owned_redis.prepare_directory(self.directory)
        pin = ["taskset", "-c", str(self.core)] if self.core is not None else []
        self.process = subprocess.Popen([*pin, *owned_redis.redis_command(self.directory)],
                                        stdin=subprocess.DEVNULL)
        owned_redis.wait_for_socket(self.socket, self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def redis_version() -> str:
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    for part in out.split():
        if part.startswith("v="):
            return part[2:]
    return out.strip()
