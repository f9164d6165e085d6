"""The delivery queue: one record per notification, channel and recipient, kept in Redis.

A delivery waits in the sorted set `DUE`, scored by the time it is due. A notifier *claims* due
deliveries by moving their score to the end of a lease (`lease_s`): one killed mid-delivery
leaves its claims to expire, after which any notifier delivers them again (at least once;
receivers dedupe by the idempotency key). A failed attempt is rescheduled with exponential
backoff and jitter; after `max_attempts` (or a permanent failure) the delivery goes to the
dead-letter stream, from which `retry` brings it back. Everything is in Redis (AOF), so
pending retries survive restarts of every process.

E-mails are also smoothed per recipient and site: at most one per `digest_window_s` and
`email_cap_per_hour` per hour; what arrives in between is collected into one digest delivery.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from appliance import events
from appliance.errors import Conflict, OvationError
from appliance.notify import keys

HOLD_TTL_S = 30 * 86400  # a reply waits this long for its recipient to confirm
STREAM_ID = re.compile(r"^\d+-\d+$")
DELIVERY_ID = re.compile(r"^[0-9a-f]{24}$")
FINISHED = ("delivered", "dropped")

# Create a delivery unless it exists (a redelivered event changes nothing), due or held.
_ADD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
if ARGV[2] == '' then
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
else
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
end
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('HINCRBY', KEYS[4], 'enqueued:' .. ARGV[4], 1)
return 1
"""

# Create an e-mail delivery: sent now if the recipient's window and hourly cap allow, else
# collected into the recipient's open digest (created, due when they allow, if none is open).
_ADD_EMAIL = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists', ''} end
local id, now, window, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local prefix = ARGV[6]
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
redis.call('ZADD', KEYS[3], now, id)
redis.call('HINCRBY', KEYS[4], 'enqueued:email', 1)
local open = redis.call('HGET', KEYS[5], 'open_digest')
if open and redis.call('HGET', prefix .. 'd:' .. open, 'status') == 'queued' then
  redis.call('RPUSH', prefix .. 'items:' .. open, id)
  redis.call('HSET', KEYS[1], 'status', 'digested', 'digest', open)
  redis.call('HINCRBY', KEYS[4], 'digested', 1)
  return {'digested', open}
end
local at = math.max(now, tonumber(redis.call('HGET', KEYS[5], 'last_due') or '0') + window)
local bucket = math.floor(at / 3600)
for _ = 1, 48 do
  if tonumber(redis.call('GET', KEYS[5] .. ':' .. bucket) or '0') < cap then break end
  bucket = bucket + 1
  at = math.max(at, bucket * 3600)
end
local capkey = KEYS[5] .. ':' .. bucket
redis.call('INCR', capkey)
redis.call('EXPIRE', capkey, math.floor(bucket * 3600 + 3600 - now) + 60)
redis.call('HSET', KEYS[5], 'last_due', at)
redis.call('EXPIRE', KEYS[5], math.floor(at - now + window) + 3600)
if at <= now then
  redis.call('ZADD', KEYS[2], now, id)
  return {'queued', id}
end
local digest = ARGV[5]
redis.call('HSET', prefix .. 'd:' .. digest, 'id', digest, 'key', 'digest:' .. digest,
  'channel', 'email', 'target', redis.call('HGET', KEYS[1], 'target'),
  'site', redis.call('HGET', KEYS[1], 'site'), 'kind', 'digest', 'list_name', 'digest',
  'payload', '{}', 'status', 'queued', 'attempts', 0, 'created_at', now, 'next_at', at,
  'rcpt', KEYS[5])
redis.call('RPUSH', prefix .. 'items:' .. digest, id)
redis.call('ZADD', KEYS[2], at, digest)
redis.call('ZADD', KEYS[3], now, digest)
redis.call('HSET', KEYS[5], 'open_digest', digest)
redis.call('HSET', KEYS[1], 'status', 'digested', 'digest', digest)
redis.call('HINCRBY', KEYS[4], 'digested', 1)
redis.call('HINCRBY', KEYS[4], 'enqueued:email', 1)
return {'digested', digest}
"""

# Take up to N due deliveries for a lease; a digest being sent stops collecting.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local claimed = {}
for _, id in ipairs(ids) do
  local rec = ARGV[4] .. 'd:' .. id
  local status = redis.call('HGET', rec, 'status')
  if (not status) or status == 'delivered' or status == 'dead' or status == 'dropped' then
    redis.call('ZREM', KEYS[1], id)
  else
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    redis.call('HSET', rec, 'status', 'sending', 'lease_until', ARGV[2])
    redis.call('HINCRBY', rec, 'attempts', 1)
    local rcpt = redis.call('HGET', rec, 'rcpt')
    if rcpt and redis.call('HGET', rcpt, 'open_digest') == id then
      redis.call('HDEL', rcpt, 'open_digest')
    end
    table.insert(claimed, id)
  end
end
return claimed
"""

# Move a delivery to the dead letters, once.
_DEAD = """
if redis.call('HGET', KEYS[1], 'status') == 'dead' then return '' end
local entry = redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100000, '*', 'delivery', ARGV[1],
  'channel', ARGV[2], 'kind', ARGV[3], 'site', ARGV[4], 'idempotency_key', ARGV[5],
  'attempts', ARGV[6], 'error', ARGV[7])
redis.call('HSET', KEYS[1], 'status', 'dead', 'last_error', ARGV[7], 'dead_entry', entry,
  'updated_at', ARGV[8])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[4], 'dead:' .. ARGV[2], 1)
return entry
"""


def delivery_id(key: str, channel: str, target: str) -> str:
    """Deterministic: the same notification for the same recipient is one delivery."""
    return hashlib.sha256(f"{key}\0{channel}\0{target}".encode()).hexdigest()[:24]


@dataclass
class Delivery:
    """One notification for one recipient over one channel."""

    key: str  # the idempotency key receivers see
    channel: str  # email | webhook | browser
    target: str  # e-mail address | webhook id | visitor hash
    site: str
    kind: str  # new_comment | pending_comment | reply | new_post | confirm | digest
    payload: dict[str, Any] = field(default_factory=dict)
    list_name: str = ""  # e-mail: owner | replies | posts | confirm | digest
    id: str = ""
    status: str = "queued"
    attempts: int = 0
    created_at: float = 0.0
    next_at: float = 0.0
    last_error: str = ""
    digest: str = ""
    items: list[Delivery] = field(default_factory=list)  # a digest's notifications

    def __post_init__(self) -> None:
        if not self.id:
            self.id = delivery_id(self.key, self.channel, self.target)

    def fields(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "channel": self.channel, "target": self.target,
                "site": self.site, "kind": self.kind, "list_name": self.list_name,
                "payload": json.dumps(self.payload, separators=(",", ":")),
                "status": self.status, "attempts": self.attempts,
                "created_at": self.created_at, "next_at": self.next_at}

    @classmethod
    def from_fields(cls, raw: dict[str, str]) -> Delivery:
        return cls(key=raw.get("key", ""), channel=raw.get("channel", ""),
                   target=raw.get("target", ""), site=raw.get("site", ""),
                   kind=raw.get("kind", ""), payload=json.loads(raw.get("payload") or "{}"),
                   list_name=raw.get("list_name", ""), id=raw["id"],
                   status=raw.get("status", ""), attempts=int(raw.get("attempts", 0)),
                   created_at=float(raw.get("created_at", 0)),
                   next_at=float(raw.get("next_at", 0)), last_error=raw.get("last_error", ""),
                   digest=raw.get("digest", ""))


@dataclass(frozen=True)
class DeadLetter:
    """An entry of the dead-letter stream: a delivery, or a notification event nobody could
    turn into deliveries (bad or unknown event)."""

    entry_id: str
    delivery: str
    channel: str
    kind: str
    site: str
    attempts: str
    error: str


@dataclass
class QueuePolicy:
    max_attempts: int = 8
    retry_base_s: float = 30.0
    retry_max_s: float = 3600.0
    digest_window_s: int = 300
    email_cap_per_hour: int = 20
    keep_s: int = 7 * 86400
    lease_s: float = 60.0

    @classmethod
    def from_settings(cls, settings) -> QueuePolicy:
        return cls(max_attempts=settings.notify_max_attempts,
                   retry_base_s=settings.notify_retry_base_s,
                   retry_max_s=settings.notify_retry_max_s,
                   digest_window_s=settings.notify_digest_window_s,
                   email_cap_per_hour=settings.notify_email_cap_per_hour,
                   keep_s=settings.notify_keep_s,
                   # an SMTP exchange is several network operations, each with this timeout
                   lease_s=max(5.0, 4 * settings.notify_timeout_s))


class DeliveryQueue:
    def __init__(self, client: redis.Redis, policy: QueuePolicy | None = None,
                 clock: Callable[[], float] = time.time,
                 jitter: Callable[[], float] = random.random) -> None:
        self.client = client
        self.policy = policy or QueuePolicy()
        self.clock = clock
        self.jitter = jitter
        self._add = client.register_script(_ADD)
        self._add_email = client.register_script(_ADD_EMAIL)
        self._claim = client.register_script(_CLAIM)
        self._dead = client.register_script(_DEAD)

    # -- adding ----------------------------------------------------------------------------

    def add(self, delivery: Delivery, hold_key: str | None = None) -> bool:
        """Queue a delivery now (or hold it in `hold_key` until released); False if it exists."""
        now = self.clock()
        delivery.created_at = delivery.next_at = now
        if hold_key:
            delivery.status = "held"
        flat = [item for pair in delivery.fields().items() for item in pair]
        return bool(self._add(
            keys=[keys.delivery(delivery.id), hold_key or keys.DUE, keys.ALL, keys.STATS],
            args=[delivery.id, "" if hold_key else now, now, delivery.channel, HOLD_TTL_S,
                  *flat]))

    def add_email(self, delivery: Delivery) -> str:
        """Queue an e-mail within the recipient's window and cap: 'queued' (to be sent now),
        'digested' (collected into a digest) or 'exists' (a redelivered event)."""
        now = self.clock()
        delivery.created_at = delivery.next_at = now
        flat = [item for pair in delivery.fields().items() for item in pair]
        outcome, _ = self._add_email(
            keys=[keys.delivery(delivery.id), keys.DUE, keys.ALL, keys.STATS,
                  keys.recipient(delivery.site, delivery.target)],
            args=[delivery.id, now, self.policy.digest_window_s,
                  self.policy.email_cap_per_hour, secrets.token_hex(12), keys.PREFIX, *flat])
        return outcome

    # -- delivering ------------------------------------------------------------------------

    def claim(self, limit: int) -> list[Delivery]:
        """Lease up to `limit` due deliveries (with a digest's items loaded)."""
        now = self.clock()
        ids = self._claim(keys=[keys.DUE], args=[now, now + self.policy.lease_s, limit,
                                                 keys.PREFIX])
        return [delivery for delivery in (self.get(delivery_id) for delivery_id in ids)
                if delivery is not None]

    def get(self, delivery_id: str) -> Delivery | None:
        raw = self.client.hgetall(keys.delivery(delivery_id))
        if not raw:
            return None
        delivery = Delivery.from_fields(raw)
        if delivery.kind == "digest":
            pipe = self.client.pipeline(transaction=False)
            for item_id in self.client.lrange(keys.items(delivery_id), 0, -1):
                pipe.hgetall(keys.delivery(item_id))
            delivery.items = [Delivery.from_fields(item) for item in pipe.execute() if item]
        return delivery

    def complete(self, delivery: Delivery, status: str = "delivered") -> None:
        """The delivery is done: sent, or dropped on purpose (e.g. the recipient left)."""
        now = self.clock()
        keep = self.policy.keep_s
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(keys.delivery(delivery.id), mapping={
            "status": status, "updated_at": now, "delivered_at": now, "last_error": ""})
        pipe.zrem(keys.DUE, delivery.id)
        pipe.expire(keys.delivery(delivery.id), keep)
        for item in delivery.items:
            pipe.expire(keys.delivery(item.id), keep)
        if delivery.items:
            pipe.expire(keys.items(delivery.id), keep)
        pipe.hincrby(keys.STATS, f"{status}:{delivery.channel}", 1)
        pipe.execute()

    def fail(self, delivery: Delivery, error: str, permanent: bool = False) -> str:
        """Record a failed attempt: 'retrying' with backoff, or 'dead' after the last one."""
        error = error[:1000]
        now = self.clock()
        self.client.hincrby(keys.STATS, f"failed:{delivery.channel}", 1)
        if permanent or delivery.attempts >= self.policy.max_attempts:
            self.dead_letter(delivery, error)
            return "dead"
        next_at = now + self.backoff(delivery.attempts)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(keys.delivery(delivery.id), mapping={
            "status": "retrying", "last_error": error, "next_at": next_at, "updated_at": now})
        pipe.zadd(keys.DUE, {delivery.id: next_at})
        pipe.execute()
        return "retrying"

    def dead_letter(self, delivery: Delivery, error: str) -> None:
        self._dead(keys=[keys.delivery(delivery.id), keys.DUE, keys.DEAD_LETTERS, keys.STATS],
                   args=[delivery.id, delivery.channel, delivery.kind, delivery.site,
                         delivery.key, delivery.attempts, error, self.clock()])

    def backoff(self, attempts: int) -> float:
        """Exponential, capped, with "equal jitter": between half and all of the step."""
        step = min(self.policy.retry_max_s,
                   self.policy.retry_base_s * 2 ** min(max(attempts - 1, 0), 40))
        return step / 2 + self.jitter() * step / 2

    # -- opt-in ----------------------------------------------------------------------------

    def release_held(self, hold_key: str) -> int:
        """Queue every delivery held in `hold_key` (the recipient confirmed)."""
        released = 0
        for held_id in self.client.smembers(hold_key):
            pipe = self.client.pipeline(transaction=True)
            pipe.hget(keys.delivery(held_id), "status")
            status = pipe.execute()[0]
            if status != "held":
                continue
            now = self.clock()
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(keys.delivery(held_id), mapping={"status": "queued", "next_at": now})
            pipe.persist(keys.delivery(held_id))
            pipe.zadd(keys.DUE, {held_id: now})
            pipe.srem(hold_key, held_id)
            pipe.execute()
            released += 1
        return released

    def drop_held(self, hold_key: str) -> int:
        """Forget the deliveries held in `hold_key` (the recipient unsubscribed)."""
        dropped = 0
        for held_id in self.client.smembers(hold_key):
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(keys.delivery(held_id), "status", "dropped")
            pipe.expire(keys.delivery(held_id), self.policy.keep_s)
            pipe.execute()
            dropped += 1
        self.client.delete(hold_key)
        return dropped

    # -- operations (the CLI) --------------------------------------------------------------

    def recent(self, limit: int = 50, statuses: tuple[str, ...] | None = None,
               scan: int = 5000) -> list[Delivery]:
        """Newest deliveries first, optionally only those in `statuses`."""
        found: list[Delivery] = []
        ids = self.client.zrevrange(keys.ALL, 0, scan - 1)
        pipe = self.client.pipeline(transaction=False)
        for delivery_id in ids:
            pipe.hgetall(keys.delivery(delivery_id))
        for raw in pipe.execute():
            if not raw or (statuses and raw.get("status") not in statuses):
                continue
            found.append(Delivery.from_fields(raw))
            if len(found) >= limit:
                break
        return found

    def dead_letters(self, limit: int = 50) -> list[DeadLetter]:
        letters = []
        for entry_id, entry in self.client.xrevrange(keys.DEAD_LETTERS, count=limit):
            letters.append(DeadLetter(
                entry_id=entry_id, delivery=entry.get("delivery", ""),
                channel=entry.get("channel", "-"), kind=entry.get("kind", ""),
                site=entry.get("site", "") or _event_site(entry),
                attempts=entry.get("attempts", ""), error=entry.get("error", "")))
        return letters

    def retry(self, identifier: str) -> str:
        """Bring back a dead letter (by its stream entry id or its delivery id), or make a
        delivery waiting for its next attempt due now. Returns what was done."""
        if STREAM_ID.match(identifier):
            entries = self.client.xrange(keys.DEAD_LETTERS, identifier, identifier)
            if not entries:
                raise _unknown(identifier)
            entry = entries[0][1]
            if entry.get("delivery"):
                outcome = self._requeue(entry["delivery"])
            else:  # an event the notifier could not expand: put it back on the stream
                self.client.xadd(events.NOTIFICATION_STREAM,
                                 {"kind": entry.get("kind", ""), "body": entry.get("body", "{}")})
                outcome = "event requeued"
            self.client.xdel(keys.DEAD_LETTERS, identifier)
            return outcome
        if not DELIVERY_ID.match(identifier):
            raise _unknown(identifier)
        return self._requeue(identifier)

    def retry_all_dead(self) -> int:
        count = 0
        while True:
            batch = self.client.xrange(keys.DEAD_LETTERS, count=500)
            if not batch:
                return count
            for entry_id, _ in batch:
                try:
                    self.retry(entry_id)
                except OvationError:  # its delivery expired or was purged: drop the entry
                    self.client.xdel(keys.DEAD_LETTERS, entry_id)
                    continue
                count += 1

    def _requeue(self, delivery_id: str) -> str:
        raw = self.client.hgetall(keys.delivery(delivery_id))
        if not raw:
            raise _unknown(delivery_id)
        status = raw.get("status")
        if status in ("delivered", "dropped", "digested", "held", "sending"):
            raise Conflict(f"Notification {delivery_id} is {status}: nothing to retry.")
        now = self.clock()
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(keys.delivery(delivery_id), mapping={
            "status": "queued", "attempts": 0, "next_at": now, "updated_at": now})
        pipe.zadd(keys.DUE, {delivery_id: now})
        if raw.get("dead_entry"):
            pipe.xdel(keys.DEAD_LETTERS, raw["dead_entry"])
            pipe.hdel(keys.delivery(delivery_id), "dead_entry")
        pipe.execute()
        return "requeued"

    def purge(self, older_than_s: float = 0, dead: bool = False) -> int:
        """Forget finished deliveries created more than `older_than_s` ago (and, with `dead`,
        the dead letters). Waiting and held deliveries are kept."""
        cutoff = self.clock() - older_than_s
        removable = FINISHED + (("dead",) if dead else ())
        removed = 0
        ids = self.client.zrangebyscore(keys.ALL, "-inf", cutoff)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            pipe = self.client.pipeline(transaction=False)
            for delivery_id in chunk:
                pipe.hmget(keys.delivery(delivery_id), "status", "digest")
            records = pipe.execute()
            pipe = self.client.pipeline(transaction=False)
            for _status, digest in records:
                pipe.hget(keys.delivery(digest or "-"), "status")
            digest_statuses = pipe.execute()
            pipe = self.client.pipeline(transaction=True)
            for delivery_id, (status, _), digest_status in zip(chunk, records, digest_statuses,
                                                               strict=True):
                # A notification collected into a digest goes with its digest: the digest's
                # e-mail is made from these records (purged while it waited, they left it
                # without their comments).
                subject = digest_status if status == "digested" else status
                if subject is None or subject in removable:
                    pipe.delete(keys.delivery(delivery_id), keys.items(delivery_id))
                    pipe.zrem(keys.ALL, delivery_id)
                    pipe.zrem(keys.DUE, delivery_id)
                    removed += status is not None
            pipe.execute()
        if dead:
            self.client.delete(keys.DEAD_LETTERS)
        return removed

    def figures(self) -> dict[str, float]:
        """Counters and queue lengths for /metrics and the CLI."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(keys.STATS)
        pipe.zcard(keys.DUE)
        pipe.xlen(keys.DEAD_LETTERS)
        stats, due, dead = pipe.execute()
        return {**{name: float(value) for name, value in stats.items()},
                "queued": float(due), "dead_letters": float(dead)}


def _event_site(entry: dict[str, str]) -> str:
    try:
        return str(json.loads(entry.get("body", "{}")).get("site", ""))
    except (ValueError, AttributeError):
        return ""


def _unknown(identifier: str) -> OvationError:
    return OvationError(f"No notification or dead letter has the id {identifier!r}.",
                        code="unknown_notification", status=404)
