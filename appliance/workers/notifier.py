"""The notifier: turns notification events into deliveries and delivers them, with retries.

One loop does both jobs: it consumes the notification stream (consumer group `notifier`;
an event is acknowledged once its deliveries are safely in the Redis queue) and delivers what
the queue says is due, several at a time, over e-mail, webhooks and the browser. Several
notifiers may run: the consumer group shares the events, and leases share the deliveries.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
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
from appliance.workers.stream_consumer import StreamConsumer

log = logging.getLogger("ovation.notifier")
IDLE_WAIT_MS = 200  # how long the loop waits for new events when nothing is due
HOUSEKEEPING_S = 3600  # how often the loop forgets deliveries finished long ago


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
                                       events.NOTIFIER_GROUP, self.router.handlers())
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
        """Deliver what is due, then take in new events (waiting up to `block_ms` for them
        when nothing was due). Returns deliveries attempted plus events consumed."""
        attempted = self.deliver_due()
        consumed = self.consumer.run_once(block_ms=None if attempted else block_ms)
        return attempted + consumed

    def deliver_due(self) -> int:
        due = self.queue.claim(self.settings.notify_concurrency)
        if due:
            list(self.pool.map(self.deliver, due))
        return len(due)

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
                    next_housekeeping = time.monotonic() + HOUSEKEEPING_S
                self.run_once(block_ms=IDLE_WAIT_MS)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.warning("Redis unreachable (%s); retrying in 1 s", exc)
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

    database = database or open_database(settings.effective_database_url)
    return Notifier(client, database, settings)
