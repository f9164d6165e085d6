"""A Redis-stream consumer-group loop shared by the listener and the notifier.

Messages are acknowledged only after their handler returns, so a consumer killed mid-message
leaves it pending; another consumer (or this one restarted) claims it after `claim_idle_ms`.
A message that failed `max_deliveries` times goes to the dead-letter stream `STREAM:dead`.

A consumer may name `outage_errors`: failures of a service its handlers need (the database),
which say nothing about the message. Such a failure stops the read at that message, never
counts towards the dead letters, and raises `Outage` to the loop, which waits a moment. The
next passes retry this consumer's own pending messages from there, at once, instead of 30 s
later.

Every `trim_interval_s` the loop also trims its streams up to the oldest entry some consumer
group still needs (`trim_acknowledged`): an entry every group has read and acknowledged is never
read again, and the streams' `MAXLEN ~ 1000000` cap alone let Redis grow to about 850 MiB before
trimming began.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
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


# Trim a consumer-group stream (KEYS[1]) up to the oldest entry that some group still needs:
# for each group, its oldest pending (delivered, unacknowledged) entry, or else the first
# entry after its last-delivered-id (entries after it are unread). Returns the entries removed.
#
# One script, so nothing moves between reading the groups and trimming: XINFO GROUPS,
# XPENDING and XTRIM see one state. (A group's bound only moves forward anyway: XREADGROUP
# and XACK advance it, XCLAIM/XAUTOCLAIM move pending entries between consumers without
# adding older ones; only XGROUP CREATE or SETID at an old id could move it back, and the
# script sees any group created before it runs.)
#
# A stream with no group is left alone: our groups are created at id 0 (`ensure_group`), so a
# consumer started after the producers must find every entry. Trimming is exact (`MINID id`,
# not `MINID ~ id`): whole listpack nodes go at O(1) each either way, and exact also drops
# the acknowledged entries of the first node kept, so XLEN is the true backlog (`~` would
# leave up to a node's worth, 100 entries); the bytes of those come back when their node
# goes. Only ids below every group's last-delivered-id are removed, so Redis 7 keeps
# computing each group's `lag` (no tombstone lies after a group's last-delivered-id).
#
# Ids compare as two decimal numbers (no leading zeros in stream ids): by length, then as
# strings, since a sequence number may exceed Lua's exact integers.
TRIM_ACKNOWLEDGED_SCRIPT = """
local stream = KEYS[1]
if redis.call('TYPE', stream)['ok'] ~= 'stream' then return 0 end
local groups = redis.call('XINFO', 'GROUPS', stream)
if #groups == 0 then return 0 end
local function below(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local function older(a, b)
  local a_ms, a_seq = string.match(a, '^(%d+)-(%d+)$')
  local b_ms, b_seq = string.match(b, '^(%d+)-(%d+)$')
  if a_ms ~= b_ms then return below(a_ms, b_ms) end
  return below(a_seq, b_seq)
end
local function next_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  if #seq > 12 then return id end  -- keep that one acknowledged entry rather than overflow
  return ms .. '-' .. string.format('%d', tonumber(seq) + 1)
end
local oldest_needed = nil
for _, group in ipairs(groups) do
  local info = {}
  for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
  local needed = next_id(info['last-delivered-id'])
  local pending = redis.call('XPENDING', stream, info['name'])
  if pending[1] > 0 and older(pending[2], needed) then needed = pending[2] end
  if oldest_needed == nil or older(needed, oldest_needed) then oldest_needed = needed end
end
return redis.call('XTRIM', stream, 'MINID', oldest_needed)
"""


def trim_acknowledged(client: redis.Redis, stream: str) -> int:
    """Drop the entries of `stream` that every consumer group has acknowledged; returns how
    many. A stream without a group (or no stream) is left alone. Needs Redis 6.2 (MINID)."""
    return int(client.register_script(TRIM_ACKNOWLEDGED_SCRIPT)(keys=[stream]))


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
                 outage_probe: Callable[[], object] | None = None,
                 trim_interval_s: float = 60.0) -> None:
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
        # `run` trims the streams this often (0: never; the producers' MAXLEN cap remains).
        self.trim_interval_s = trim_interval_s
        self._next_trim_at = 0.0  # monotonic; the first pass trims what piled up while down
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

    def trim_streams(self) -> int:
        """Trim each stream up to the oldest entry some group still needs (the one-shot twin
        of the periodic trim); returns the entries removed."""
        return sum(trim_acknowledged(self.client, stream) for stream in self.streams)

    def trim_if_due(self) -> int:
        """`trim_streams` once per `trim_interval_s`; called by the loops between passes.
        A refused trim (a Redis older than 6.2 has no XTRIM MINID) is logged and the loop
        goes on: the streams' MAXLEN cap still bounds them."""
        if not self.trim_interval_s or time.monotonic() < self._next_trim_at:
            return 0
        self._next_trim_at = time.monotonic() + self.trim_interval_s
        try:
            removed = self.trim_streams()
        except redis.exceptions.ResponseError as exc:
            log.warning("could not trim %s: %s", ", ".join(self.streams), _one_line(exc))
            return 0
        if removed:
            log.debug("trimmed %d acknowledged entries from %s", removed,
                      ", ".join(self.streams))
        return removed

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
                self.trim_if_due()
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
