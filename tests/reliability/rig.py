"""The appliance as real processes, with handles to kill and restart each part of it.

Two `platformctl serve web` processes (two hosts: two ports, one Redis, one SQL database), the
flusher, the listener and the notifier; a private redis-server with AOF (the command Ovation
uses when it owns Redis); PostgreSQL (tests.conftest.PostgresServer) or a SQLite file; an SMTP
server and a webhook receiver for the notifications (tests/reliability/receivers.py).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import redis

from appliance.notify.subscriptions import add_webhook
from appliance.services.sites import add_site
from appliance.settings import Settings
from appliance.storage.database import open_database
from appliance.storage.migrations import migrate
from appliance.storage.site_store import get_site, update_site
from appliance.supervision import owned_redis
from tests.conftest import PostgresServer, free_port, start_process, stop_process
from tests.reliability.clients import ORIGIN, SITE
from tests.reliability.receivers import Receivers

__all__ = ["ORIGIN", "OWNER", "SITE", "WORKERS", "Rig"]

OWNER = "owner@blog.example"  # gets a new_comment e-mail for every comment
WORKERS = ("web0", "web1", "flusher", "listener", "notifier")


class Rig:
    def __init__(self, directory: Path, backend: str,
                 settings: dict[str, object] | None = None) -> None:
        self.directory = directory
        self.backend = backend
        self.overrides = settings or {}  # of the settings below (the soak's short retention)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.redis_dir = directory / "redis"
        self.redis_dir.mkdir(exist_ok=True)
        self.redis_process: subprocess.Popen | None = None
        self.postgres: PostgresServer | None = None
        self.processes: dict[str, subprocess.Popen] = {}
        self.ports = {"web0": free_port(), "web1": free_port()}
        self.settings: Settings | None = None
        self.receivers = Receivers(directory)
        self.webhook_id = ""  # the site's webhook, as Ovation's delivery queue names it

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.receivers.start()
        self.start_redis()
        if self.backend == "postgresql":
            self.postgres = PostgresServer(Path("/tmp") / f"ovation-rel-pg-{os.getpid()}")
            self.postgres.init()
            self.postgres.start()
            database_url = self.postgres.create_database()
        else:
            database_url = f"sqlite:///{self.directory / 'ovation.db'}"
        self.settings = Settings(**{**dict(
            database_url=database_url, redis_url=f"unix://{self.redis_dir / 'redis.sock'}",
            data_dir=self.directory / "data", secret_key="reliability-secret",
            flush_interval_s=0.5, flush_retry_max_s=1.0, live_coalesce_ms=100,
            rate_interactions_per_min=0, rate_interactions_per_visitor_per_min=0,
            rate_reads_per_min=0, rate_admin_per_min=0,
            comment_rate_limit=10000, comment_rate_window_s=1,
            # Edits and deletes of any comment posted during a soak (unless the soak's
            # --short-retention makes the window shorter).
            comment_edit_window_s=7200,
            # One notification per comment and channel, so "every acknowledged comment was
            # notified" is an exact check: no digests (window 0, a cap never reached), retries
            # within a second, and a lease (4 x the timeout) short enough that deliveries of a
            # killed notifier are made again within the run.
            smtp_host="127.0.0.1", smtp_port=self.receivers.smtp_port, smtp_security="none",
            notify_digest_window_s=0, notify_email_cap_per_hour=100000,
            notify_retry_base_s=0.2, notify_retry_max_s=1.0, notify_max_attempts=50,
            notify_timeout_s=1.25, notify_webhook_allow_private=True), **self.overrides})
        database = open_database(database_url)
        migrate(database)
        add_site(database, SITE, [ORIGIN])
        update_site(database, dataclasses.replace(get_site(database, SITE), owner_email=OWNER))
        # Every event, so that a comment notified as anything but new_comment shows.
        self.webhook_id = str(add_webhook(database, SITE, self.receivers.webhook_url).id)
        database.close()
        for name in WORKERS:
            self.start_worker(name)
        for name in ("web0", "web1"):
            self.wait_web(name)

    def stop(self) -> None:
        for name in WORKERS:
            process = self.processes.get(name)
            if process is not None:
                stop_process(process)
        if self.redis_process is not None:
            stop_process(self.redis_process, 30)
        if self.postgres is not None:
            try:
                self.postgres.stop()
            except subprocess.CalledProcessError:
                pass  # already stopped by a fault
            shutil.rmtree(self.postgres.directory, ignore_errors=True)
        self.receivers.stop()

    # -- workers ----------------------------------------------------------------------------

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start_worker(self, name: str) -> None:
        assert self.settings is not None
        log = self.directory / f"{name}.log"
        if name.startswith("web"):
            settings = self.settings.model_copy(update={"bind": f"127.0.0.1:{self.ports[name]}"})
            self.processes[name] = start_process(settings, "serve", "web", log=log)
        else:
            self.processes[name] = start_process(self.settings, "serve", name, log=log)

    def wait_web(self, name: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url(name) + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{name} did not answer within {timeout_s} s")

    def kill_worker(self, name: str) -> None:
        """SIGKILL the process group (Hypercorn and its worker): a crash, no clean-up at all."""
        process = self.processes[name]
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()

    def terminate_flusher(self) -> int:
        """SIGTERM: the flusher finishes its flush and flushes once more (the final flush)."""
        return stop_process(self.processes["flusher"], 60)

    # -- Redis and PostgreSQL ------------------------------------------------------------------

    def start_redis(self) -> None:
        socket_path = self.redis_dir / "redis.sock"
        socket_path.unlink(missing_ok=True)
        self.redis_process = subprocess.Popen(owned_redis.redis_command(self.redis_dir),
                                              start_new_session=True)
        owned_redis.wait_for_socket(socket_path, self.redis_process, 30)

    def redis_client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.redis_dir / "redis.sock"),
                           decode_responses=True)

    def stop_redis(self) -> None:
        """SIGTERM: Redis fsyncs its AOF before exiting, so a restart replays everything."""
        assert self.redis_process is not None
        stop_process(self.redis_process, 30)

    def rss_mb(self) -> dict[str, float]:
        """Resident memory of every process, children (Hypercorn workers) included."""
        processes = dict(self.processes)
        if self.redis_process is not None:
            processes["redis"] = self.redis_process
        rss = {}
        for name, process in processes.items():
            pids = [process.pid, *_descendants(process.pid)]
            rss[name] = sum(_rss_kb(pid) for pid in pids) / 1024
        return rss


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
