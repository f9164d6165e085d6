"""The flusher process: `flush_once` every `flush_interval_s`, with backoff while SQL is down,
and the feed poll (`appliance.jobs.feeds`) every `feed_poll_interval_s`."""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import signal
import threading
import time

import peewee as pw
import redis
from apscheduler.schedulers.background import BackgroundScheduler

from appliance.jobs.feeds import FeedPoller
from appliance.jobs.flush import durability_wait, flush_once, pending_counters, record_failure
from appliance.services.ip_salts import SaltPolicy, keep_salts

log = logging.getLogger("ovation.flusher")
FIRST_FEED_POLL_DELAY_S = 10.0  # after start-up: a restart loop must not hammer the feeds
SALT_HOUSEKEEPING_S = 3600.0  # expired salts of IP hashes are deleted within the hour


def salt_housekeeping(database: pw.Database, policy: SaltPolicy,
                      client: redis.Redis | None = None) -> None:
    """Delete expired salts of the IP hashes even when no request rotates them (and tell the
    web workers, through `client`, of the IP bans that lapsed with them)."""
    try:
        deleted = keep_salts(database, policy, client=client)
    except Exception as exc:  # SQL down: the next run (or a web worker's rotation) does it
        log.warning("salts of the IP hashes not kept: %s: %s", type(exc).__name__, exc)
        return
    if deleted:
        log.info("deleted %d expired salts of the IP hashes", deleted)


class FlushLoop:
    """One tick per interval; after a failure, ticks are skipped until the backoff has passed."""

    def __init__(self, client: redis.Redis, database: pw.Database, interval_s: float,
                 retry_max_s: float) -> None:
        self.client = client
        self.database = database
        self.interval_s = interval_s
        self.retry_max_s = retry_max_s
        self.failures = 0
        self.next_attempt = 0.0
        self.durability_wait_s: float | None = None  # asked of Redis on the first tick
        self._lock = threading.Lock()

    def tick(self) -> None:
        if time.monotonic() < self.next_attempt:
            return
        with self._lock:
            try:
                if self.durability_wait_s is None:
                    self.durability_wait_s = durability_wait(self.client)
                report = flush_once(self.client, self.database,
                                    durability_wait_s=self.durability_wait_s)
            except Exception as exc:  # SQL or Redis down: keep the batch, retry later
                self.failures += 1
                delay = min(self.interval_s * 2 ** self.failures, self.retry_max_s)
                delay *= random.uniform(0.5, 1.0)  # jitter: flushers of many hosts spread out
                self.next_attempt = time.monotonic() + delay
                log.warning("flush failed (%s: %s); retrying in %.1f s",
                            type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc)
                            else "", delay)
                record_failure(self.client, f"{type(exc).__name__}: {exc}")
                try:
                    self.database.close()  # a fresh connection on the next try
                except Exception:
                    pass
                return
            if self.failures:
                log.info("flush recovered after %d failed attempts", self.failures)
            self.failures = 0
            self.next_attempt = 0.0
            if report.batch_id:
                log.info("flushed batch %s: %d counters, %d interactions, %.1f ms%s%s",
                         report.batch_id, report.counters, report.interactions,
                         report.duration_s * 1000,
                         f" (after {report.waited_s:.1f} s for Redis' append-only file)"
                         if report.waited_s else "", " (resumed)" if report.resumed else "")

    def final_flush(self) -> None:
        """On shutdown: flush what is pending so a stop loses nothing (best effort)."""
        self.next_attempt = 0.0
        self.tick()
        try:
            left = pending_counters(self.client)
        except redis.exceptions.RedisError:
            return
        if left:
            log.warning("%d counters are still pending in Redis; the next flusher flushes them",
                        left)


def run_flusher(client: redis.Redis, database: pw.Database, interval_s: float,
                retry_max_s: float, feed_poll_interval_s: float | None = None,
                max_path_length: int = 1024, salt_policy: SaltPolicy | None = None) -> None:
    """Run until SIGTERM/SIGINT (warm: finish the running flush, flush once more, exit).

    A second signal exits at once; nothing is lost either way, as the batch stays in Redis.
    The signal handler only raises a flag that the main thread watches: a signal can arrive
    before the scheduler runs (during the first flush), and stopping a scheduler that is not
    running raises, which once left the flusher running, deaf to SIGTERM.
    With `feed_poll_interval_s`, the sites' feeds are polled too (the first poll shortly after
    start-up), in the scheduler's thread pool, so a slow feed never delays a flush. With
    `salt_policy`, expired salts of the IP hashes are deleted at start and every hour.
    """
    loop = FlushLoop(client, database, interval_s, retry_max_s)
    scheduler = BackgroundScheduler()
    scheduler.add_job(loop.tick, "interval", seconds=interval_s, id="flush",
                      max_instances=1, coalesce=True)
    feeds = None
    if feed_poll_interval_s:
        feeds = FeedPoller(client, database, max_path_length)
        first_poll = dt.datetime.now(dt.UTC) + dt.timedelta(
            seconds=min(FIRST_FEED_POLL_DELAY_S, feed_poll_interval_s))
        scheduler.add_job(feeds.tick, "interval", seconds=feed_poll_interval_s, id="feeds",
                          max_instances=1, coalesce=True, next_run_time=first_poll)
    if salt_policy is not None:
        scheduler.add_job(salt_housekeeping, "interval", args=(database, salt_policy, client),
                          seconds=SALT_HOUSEKEEPING_S, id="salts", max_instances=1,
                          coalesce=True, next_run_time=dt.datetime.now(dt.UTC))
    stop_requested = threading.Event()
    signals = {"count": 0}

    def stop(signum, _frame) -> None:
        signals["count"] += 1
        if signals["count"] > 1:
            log.warning("second signal: exiting now")
            os._exit(1)
        log.info("signal %d: stopping after the running flush", signum)
        if feeds is not None:
            feeds.stop_event.set()  # a running poll stops after its current feed
        stop_requested.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("flusher started: every %.1f s%s", interval_s,
             f"; feeds every {feed_poll_interval_s:g} s" if feeds is not None else "")
    loop.tick()  # a crashed predecessor's batch is finished before the first interval
    if not stop_requested.is_set():
        scheduler.start()
        while not stop_requested.wait(1.0):
            pass
        # A flush still running holds the loop's lock, so the final flush waits for it.
        scheduler.shutdown(wait=False)
    loop.final_flush()
    log.info("flusher stopped")
