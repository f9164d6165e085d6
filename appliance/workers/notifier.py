"""The notifier: turns notification events into deliveries and delivers them, with retries.

One loop does both jobs: it consumes the notification stream (consumer group `notifier`;
an event is acknowledged once its deliveries are safely in the Redis queue) and delivers what
the queue says is due, several at a time, over e-mail, webhooks and the browser. Several
notifiers may run: the consumer group shares the events, and leases share the deliveries.

The deliveries run in threads while the loop's own thread routes new events, and a thread
that is done takes the next due delivery at once: both jobs mostly wait (for SMTP, HTTP,
Redis, SQL), so neither waits for the other, and one slow receiver holds up one thread only.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Protocol

import peewee as pw
import redis

from appliance import events
from appliance.notify import subscriptions as subs
from appliance.notify.browser_channel import BrowserChannel
from appliance.notify.email_channel import EmailChannel
from appliance.notify.outcomes import DeliveryFailed, NothingToDeliver
from appliance.notify.queue import Delivery, DeliveryQueue, QueuePolicy
from appliance.notify.routing import Router
from appliance.notify.webhook_channel import WebhookChannel
from appliance.settings import Settings
from appliance.workers.stream_consumer import (
    SERVICE_OUTAGES,
    Outage,
    StreamConsumer,
    database_probe,
)

log = logging.getLogger("ovation.notifier")
IDLE_WAIT_MS = 200  # how long the loop waits for new events when nothing is due
# A pass attempts at most this many deliveries per thread before it reads events again.
DELIVERY_ROUNDS_PER_PASS = 4
# How often the loop forgets deliveries finished long ago: hourly, or every notify_keep_s if
# that is shorter, so a finished delivery is listed at most twice notify_keep_s.
HOUSEKEEPING_S = 3600
OUTAGES = SERVICE_OUTAGES  # an event waits for the database, however long it is down


class Channel(Protocol):
    def send(self, delivery: Delivery) -> None: ...


class Notifier:
    def __init__(self, client: redis.Redis, database: pw.Database, settings: Settings,
                 channels: dict[str, Channel] | None = None) -> None:
        self.client = client
        self.database = database
        self.settings = settings
        self.queue = DeliveryQueue(client, QueuePolicy.from_settings(settings))
        email_enabled = bool(settings.smtp_host)
        self.router = Router(database, self.queue, email_enabled)
        self.consumer = StreamConsumer(client, events.NOTIFICATION_STREAM,
                                       events.NOTIFIER_GROUP, self.router.handlers(),
                                       outage_errors=OUTAGES,
                                       outage_probe=database_probe(database),
                                       trim_interval_s=settings.stream_trim_interval_s)
        self.stop_event = self.consumer.stop_event
        self.channels = channels if channels is not None else self._default_channels()
        self.pool = ThreadPoolExecutor(settings.notify_concurrency,
                                       thread_name_prefix="deliver")

    def _default_channels(self) -> dict[str, Channel]:
        settings, database = self.settings, self.database
        channels: dict[str, Channel] = {
            "browser": BrowserChannel(self.client),
            "webhook": WebhookChannel(lambda webhook_id: subs.get_webhook(database, webhook_id),
                                      settings.notify_timeout_s,
                                      settings.notify_webhook_allow_private),
        }
        if settings.smtp_host:
            channels["email"] = EmailChannel(
                settings, settings.hashing_key(),
                lambda site, address, list_name: subs.subscription_status(
                    database, site, address, list_name) == "confirmed")
        return channels

    # -- one pass --------------------------------------------------------------------------

    def run_once(self, block_ms: int | None = None) -> int:
        """One pass: start the deliveries that are due, take in new events while they go out
        (waiting up to `block_ms` for events when nothing was due), then keep every thread
        busy while deliveries are due, up to a pass's share, and wait for the last ones.
        Returns deliveries attempted plus events consumed."""
        in_flight = self._start(self.settings.notify_concurrency)
        try:
            consumed = self.consumer.run_once(block_ms=None if in_flight else block_ms)
        finally:
            attempted = self._finish(in_flight, self.settings.notify_concurrency
                                     * DELIVERY_ROUNDS_PER_PASS)
        return attempted + consumed

    def deliver_due(self) -> int:
        """Attempt the deliveries due now, one per thread at most; returns how many."""
        return self._finish(self._start(self.settings.notify_concurrency), 0)

    def _start(self, slots: int) -> set[Future]:
        """Claim up to `slots` due deliveries (each leased from now) and start them."""
        if slots <= 0:
            return set()
        return {self.pool.submit(self.deliver, delivery)
                for delivery in self.queue.claim(slots)}

    def _finish(self, in_flight: set[Future], budget: int) -> int:
        """Wait for `in_flight`, giving each freed thread the next due delivery while fewer
        than `budget` were attempted in all. Returns the number attempted; raises the first
        error (Redis down) once every thread is done."""
        attempted, errors = len(in_flight), []
        while in_flight:
            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            errors += [future.exception() for future in done if future.exception()]
            if not errors and attempted < budget:
                more = self._start(min(len(done), budget - attempted))
                attempted += len(more)
                in_flight |= more
        if errors:
            raise errors[0]
        return attempted

    def deliver(self, delivery: Delivery) -> str:
        """One attempt at one delivery; returns its new status."""
        if delivery.attempts > self.settings.notify_max_attempts:
            # Claimed this often without an outcome: notifiers died during it every time.
            self.queue.dead_letter(delivery, "the notifier stopped during every attempt")
            return "dead"
        channel = self.channels.get(delivery.channel)
        try:
            if channel is None:
                raise DeliveryFailed(f"the {delivery.channel} channel is not configured "
                                     "(for e-mail: set OVATION_SMTP_HOST)", permanent=True)
            channel.send(delivery)
        except NothingToDeliver as exc:
            log.info("dropped %s %s: %s", delivery.channel, delivery.id, exc)
            self.queue.complete(delivery, "dropped")
            return "dropped"
        except DeliveryFailed as exc:
            return self._failed(delivery, str(exc), exc.permanent)
        except (pw.OperationalError, pw.InterfaceError) as exc:
            # The database is down (a webhook's record, a subscription): an outage, retried
            # like a network failure, not a bug with a traceback.
            return self._failed(delivery, f"the database is not reachable: {exc}".strip(), False)
        except Exception as exc:  # a bug or an unexpected library error: retried, logged
            log.exception("delivery %s failed unexpectedly", delivery.id)
            return self._failed(delivery, f"{type(exc).__name__}: {exc}", False)
        self.queue.complete(delivery)
        log.info("delivered %s %s (%s) to %s", delivery.channel, delivery.id, delivery.kind,
                 _shown_target(delivery))
        return "delivered"

    def _failed(self, delivery: Delivery, error: str, permanent: bool) -> str:
        status = self.queue.fail(delivery, error, permanent)
        log.warning("%s delivery %s (%s) to %s failed, attempt %d of %d, now %s: %s",
                    delivery.channel, delivery.id, delivery.kind, _shown_target(delivery),
                    delivery.attempts, self.settings.notify_max_attempts, status, error)
        return status

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        """Loop until `stop_event` is set (by SIGTERM/SIGINT when installed)."""
        log.info("notifier running: e-mail %s, webhooks, browser",
                 "on" if "email" in self.channels else "off (no OVATION_SMTP_HOST)")
        next_housekeeping = time.monotonic()
        while not self.stop_event.is_set():
            try:
                if time.monotonic() >= next_housekeeping:
                    self.housekeeping()
                    next_housekeeping = time.monotonic() + min(
                        HOUSEKEEPING_S, self.settings.notify_keep_s)
                self.consumer.trim_if_due()  # the notification stream's acknowledged entries
                self.run_once(block_ms=IDLE_WAIT_MS)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.warning("Redis unreachable (%s); retrying in 1 s", exc)
                self.stop_event.wait(1.0)
            except Outage as exc:  # the database: events wait, deliveries go on
                log.warning("%s; retrying in 1 s", exc)
                self.stop_event.wait(1.0)
        self.close()
        log.info("notifier stopped")

    def housekeeping(self) -> int:
        """Forget deliveries finished more than notify_keep_s ago. Their records expire then,
        but their ids stayed in the queue's listing (a sorted set) for good, and Redis grew
        by about 120 bytes per notification ever made (found by the reliability soak)."""
        removed = self.queue.purge(older_than_s=self.settings.notify_keep_s)
        if removed:
            log.info("forgot %d deliveries finished more than %d s ago", removed,
                     self.settings.notify_keep_s)
        return removed

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        webhook = self.channels.get("webhook")
        if isinstance(webhook, WebhookChannel):
            webhook.close()

    def install_signal_handlers(self) -> None:
        def stop(signum, _frame) -> None:
            if self.stop_event.is_set():
                os._exit(1)
            log.info("signal %d: stopping after the current deliveries", signum)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)


def _shown_target(delivery: Delivery) -> str:
    if delivery.channel == "email":
        local, _, domain = delivery.target.partition("@")
        return f"{local[:2]}…@{domain}"  # logs need not hold whole addresses
    if delivery.channel == "webhook":
        return f"webhook {delivery.target}"
    return "visitor " + delivery.target[:8]


def build_notifier(client: redis.Redis, settings: Settings,
                   database: pw.Database | None = None) -> Notifier:
    from appliance.storage.database import open_database

    # Pooled on PostgreSQL, one connection per delivery thread and one for the loop's routing:
    # unpooled, every SQL read (a webhook's record, each event's routing) was a new TCP
    # connection and authentication.
    database = database or open_database(settings.effective_database_url, pooled=True,
                                         pool_size=settings.notify_concurrency + 1)
    return Notifier(client, database, settings)
