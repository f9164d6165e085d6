"""A Redis-stream consumer-group loop shared by the listener and the notifier.

Messages are acknowledged only after their handler returns, so a consumer killed mid-message
leaves it pending; another consumer (or this one restarted) claims it after `claim_idle_ms`.
A message that failed `max_deliveries` times goes to the dead-letter stream `STREAM:dead`.

A consumer may name `outage_errors`: failures of a service its handlers need (the database),
which say nothing about the message. Such a failure stops the read at that message, never
counts towards the dead letters, and raises `Outage` to the loop, which waits a moment. The
next passes retry this consumer's own pending messages from there, at once, instead of 30 s
later.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import peewee as pw
import redis
from playhouse.pool import MaxConnectionsExceeded

log = logging.getLogger("ovation.consumer")
Handler = Callable[[str, dict[str, Any]], None]  # (message id, event body)


# Failures of a service, not of a message: the message waits for the service, however long.
# (Counted as the message's failures, five outages sent it to the dead letters, and each one
# left it idle for 30 s before the next try.)
SERVICE_OUTAGES: tuple[type[Exception], ...] = (
    pw.OperationalError, pw.InterfaceError, MaxConnectionsExceeded,
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class Outage(Exception):
    """A handler failed because a service it needs is down; its message stays pending."""


@dataclass
class ConsumerStats:
    handled: int = 0
    failed: int = 0
    dead: int = 0


class StreamConsumer:
    def __init__(self, client: redis.Redis, streams: str | list[str], group: str,
                 handlers: dict[str, Handler], consumer: str | None = None,
                 block_ms: int = 1000, claim_idle_ms: int = 30000, max_deliveries: int = 5,
                 batch: int = 50, outage_errors: tuple[type[Exception], ...] = (),
                 outage_probe: Callable[[], object] | None = None) -> None:
        self.client = client
        self.streams = [streams] if isinstance(streams, str) else list(streams)
        self.group = group
        self.handlers = handlers
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        self.batch = batch
        self.outage_errors = outage_errors
        # After an outage, asked before any message is touched again: a message re-read
        # while the service is still down would look busy to the other consumers, which
        # then never claim it (a consumer whose database is gone for good held it forever).
        self.outage_probe = outage_probe
        # Per stream, after an outage: retry this consumer's pending messages after this id.
        self.retry_after: dict[str, str] = {}
        self.stats = ConsumerStats()
        self.stop_event = threading.Event()

    @staticmethod
    def dead_letter_stream(stream: str) -> str:
        return f"{stream}:dead"

    def ensure_group(self) -> None:
        for stream in self.streams:
            try:
                self.client.xgroup_create(stream, self.group, id="0", mkstream=True)
            except redis.exceptions.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def run_once(self, block_ms: int | None = None) -> int:
        """Handle what is waiting (stale claimed messages first); return how many were handled."""
        self.ensure_group()
        if self.retry_after and self.outage_probe is not None:
            try:
                self.outage_probe()
            except self.outage_errors as exc:
                raise Outage(f"{', '.join(self.streams)} waits: {_one_line(exc)}") from exc
        handled = 0
        for stream in self.streams:
            handled += self._retry_own_pending(stream)
            _, claimed, _ = self.client.xautoclaim(stream, self.group, self.consumer,
                                                   min_idle_time=self.claim_idle_ms,
                                                   count=self.batch)
            handled += self._handle_many(stream, claimed)
        reply = self.client.xreadgroup(self.group, self.consumer,
                                       dict.fromkeys(self.streams, ">"),
                                       count=self.batch, block=block_ms)
        for stream, messages in reply or []:
            handled += self._handle_many(stream, messages)
        return handled

    def _retry_own_pending(self, stream: str) -> int:
        """After an outage: the messages this consumer read and left pending, from the one the
        outage stopped at, one read's worth per pass, each once."""
        after = self.retry_after.get(stream)
        if after is None:
            return 0
        reply = self.client.xreadgroup(self.group, self.consumer, {stream: after},
                                       count=self.batch)
        messages = reply[0][1] if reply else []
        if not messages:
            del self.retry_after[stream]
            return 0
        self.retry_after[stream] = messages[-1][0]
        return self._handle_many(stream, messages)

    def _handle_many(self, stream: str, messages: list) -> int:
        """Handle one read's messages in order; a subclass may handle runs of them together."""
        return sum(self._handle(stream, message_id, fields) for message_id, fields in messages)

    def run(self) -> None:
        """Loop until `stop_event` is set (by SIGTERM/SIGINT when installed)."""
        log.info("consuming %s as %s/%s", ", ".join(self.streams), self.group, self.consumer)
        while not self.stop_event.is_set():
            try:
                self.run_once(block_ms=self.block_ms)
            except redis.exceptions.ConnectionError as exc:
                log.warning("Redis unreachable (%s); retrying in 1 s", exc)
                self.stop_event.wait(1.0)
            except Outage as exc:
                log.warning("%s; retrying in 1 s", exc)
                self.stop_event.wait(1.0)
        log.info("stopped consuming %s", ", ".join(self.streams))

    def install_signal_handlers(self) -> None:
        def stop(signum, _frame) -> None:
            if self.stop_event.is_set():
                os._exit(1)
            log.info("signal %d: stopping after the current message", signum)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def _handle(self, stream: str, message_id: str, fields: dict[str, str]) -> int:
        if fields is None:  # deleted while pending
            self.client.xack(stream, self.group, message_id)
            return 0
        kind = fields.get("kind", "")
        try:
            body = json.loads(fields.get("body", "{}"))
            handler = self.handlers.get(kind)
            if handler is None:
                raise LookupError(f"no handler for event kind {kind!r}")
            handler(message_id, body)
        except self.outage_errors as exc:  # () by default: catches nothing
            # Left pending, and retried from here (not counted: the message is not at fault).
            self.retry_after[stream] = _just_before(message_id)
            raise Outage(f"{stream} {message_id} ({kind}) waits: {_one_line(exc)}") from exc
        except Exception as exc:
            self.stats.failed += 1
            deliveries = self._deliveries(stream, message_id)
            log.warning("%s %s (%s) failed, delivery %d of %d: %s", stream, message_id,
                        kind, deliveries, self.max_deliveries, exc)
            if deliveries >= self.max_deliveries or isinstance(exc, (LookupError, ValueError)):
                self._dead_letter(stream, message_id, fields, exc)
            return 0
        self.client.xack(stream, self.group, message_id)
        self.stats.handled += 1
        return 1

    def _deliveries(self, stream: str, message_id: str) -> int:
        info = self.client.xpending_range(stream, self.group, min=message_id,
                                          max=message_id, count=1)
        return int(info[0]["times_delivered"]) if info else 1

    def _dead_letter(self, stream: str, message_id: str, fields: dict[str, str],
                     exc: Exception) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.dead_letter_stream(stream), {**fields, "original_id": message_id,
                                            "error": f"{type(exc).__name__}: {exc}"[:1000]},
                  maxlen=100000, approximate=True)
        pipe.xack(stream, self.group, message_id)
        pipe.execute()
        self.stats.dead += 1


def database_probe(database: pw.Database) -> Callable[[], object]:
    """An `outage_probe` for consumers whose handlers need `database`."""
    def probe() -> None:
        with database.connection_context():
            database.execute_sql("SELECT 1")
    return probe


def _just_before(message_id: str) -> str:
    """The greatest stream id below `message_id` (XREADGROUP returns the ids after the one
    given)."""
    millis, _, sequence = message_id.partition("-")
    if int(sequence or 0) > 0:
        return f"{millis}-{int(sequence) - 1}"
    return f"{int(millis) - 1}-18446744073709551615" if int(millis) > 0 else "0-0"


def _one_line(error: BaseException) -> str:
    """An exception as one short line (psycopg2's messages span several)."""
    return " ".join(str(error).split())[:300] or type(error).__name__


def publish_event(client: redis.Redis, stream: str, kind: str, body: dict[str, Any],
                  maxlen: int = 1_000_000) -> str:
    """Append an event to a durable stream; returns its id."""
    return client.xadd(stream, {"kind": kind, "body": json.dumps(body)}, maxlen=maxlen,
                       approximate=True)
