"""Client addresses as keyed hashes with a rotating salt: what lets Ovation ban and rate-limit
a network without keeping anything that leads back to it for long.

A hash is HMAC(secret key, salt, site, network). The secret key alone would not do: there are
only 2^32 IPv4 addresses, so whoever holds the key could try them all. A random salt per
rotation slot (`ip_salt_rotation_h`) is shared by every process through SQL and deleted after
`ip_salt_retention_days`; from then on the hashes made with it match nothing, not even for
the key's holder. Comments store the hash under the current salt; a ban check compares the
client's hashes under every retained salt, so an IP ban lasts until its salt is deleted.

Rotation is done by whoever needs a salt and finds none current (the insert is race-safe),
so web workers never wait for another process; the flusher also runs `keep_salts` every
hour, so expired salts are deleted on time even when nobody posts or calls.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import peewee as pw

from appliance.errors import ServiceUnavailable
from appliance.settings import Settings
from appliance.storage import comment_cache, comment_store, salt_store
from appliance.storage.salt_store import StoredSalt

log = logging.getLogger("ovation.gateway")
REFRESH_S = 60.0  # how stale a process's copy may get (it also refreshes at each rotation)
RETRY_S = 5.0  # after a failed refresh: keep the copy, try again this much later
RECENT_HASHES = 4096  # client networks whose current hash a process keeps at hand
SqlRun = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class SaltPolicy:
    rotation_s: int
    retention_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> SaltPolicy:
        return cls(settings.ip_salt_rotation_h * 3600, settings.ip_salt_retention_days * 86400)


def network_of(ip: str) -> str:
    """The network an address stands for: IPv6 clients are grouped by /64 (one household)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(address)


def ip_hash(key: bytes, salt: str, site: str, ip: str | None) -> str:
    """The keyed, salted hash of the client's network at one site ("" without an address)."""
    if not ip:
        return ""
    message = f"ip\0{salt}\0{site}\0{network_of(ip)}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def keep_salts(database: pw.Database, policy: SaltPolicy, now_s: float | None = None,
               client: Any = None) -> int:
    """Housekeeping (the flusher, hourly): delete expired salts (and the IP bans made under
    them), make the current one if missing. Returns how many salts were deleted. With a Redis
    `client`, the sites whose IP bans went get a new ban version, so the web workers drop
    them from their copies (they could match nothing any more: their salt is gone)."""
    now_s = time.time() if now_s is None else now_s
    cutoff = dt.datetime.fromtimestamp(now_s - policy.retention_s, dt.UTC).replace(tzinfo=None)
    lapsing = (comment_store.sites_with_ip_bans_until(database, cutoff)
               if client is not None else [])
    deleted = salt_store.delete_expired(database, now_s, policy.retention_s)
    for site in lapsing:
        comment_cache.bans_changed(client, site)
    salt_store.salts_in_use(database, now_s, policy.rotation_s, policy.retention_s)
    return deleted


class IpSalts:
    """One process's copy of the retained salts, so hashing an address costs no SQL per
    request: read again every REFRESH_S and at each rotation (wall-clock slots, the same on
    every host), and filtered by age at every use, so a salt is never used past retention."""

    def __init__(self, database: pw.Database, key: bytes, policy: SaltPolicy, run_sql: SqlRun,
                 clock: Callable[[], float] = time.time) -> None:
        self._database = database
        self._key = key
        self._policy = policy
        self._run_sql = run_sql
        self._clock = clock
        self._salts: list[StoredSalt] = []  # newest first
        self._next_refresh = float("-inf")
        self._lock = asyncio.Lock()
        # Recent hashes under the current salt: every request is rate-limited by its network's
        # hash, and a client sends many. Memory only, bounded, and emptied when the salt
        # changes, so it never outlives the salt its hashes were made with.
        self._recent: dict[tuple[str, str, str], str] = {}
        self._recent_salt = ""

    async def current_hash(self, site: str, ip: str | None) -> str:
        """The hash under the current salt: what a comment stores."""
        salt = (await self._retained())[0].salt
        if salt != self._recent_salt or len(self._recent) >= RECENT_HASHES:
            self._recent.clear()
            self._recent_salt = salt
        key = (site, ip or "", salt)
        hashed = self._recent.get(key)
        if hashed is None:
            hashed = self._recent[key] = ip_hash(self._key, salt, site, ip)
        return hashed

    async def all_hashes(self, site: str, ip: str | None) -> list[str]:
        """The hashes under every retained salt, current first: what a ban check compares."""
        if not ip:
            return []
        return [ip_hash(self._key, stored.salt, site, ip) for stored in await self._retained()]

    async def rate_key(self, site: str, ip: str | None) -> str:
        """The current hash, for rate-limit keys (they live a minute or an hour in Redis).

        If this process has never reached the database, the key alone is used until it does:
        refusing every request instead would take the site down with its database, and the
        limits must still hold across workers."""
        try:
            return await self.current_hash(site, ip)
        except ServiceUnavailable:
            return ip_hash(self._key, "", site, ip)

    async def _retained(self) -> list[StoredSalt]:
        now = self._clock()
        if now >= self._next_refresh:
            async with self._lock:
                if now >= self._next_refresh:  # unless a concurrent request just refreshed
                    await self._refresh(now)
        cutoff = now - self._policy.retention_s
        salts = [stored for stored in self._salts if stored.starts_at_s > cutoff]
        if not salts:
            raise ServiceUnavailable("The database is not reachable: no salt for IP hashes.")
        return salts

    async def _refresh(self, now: float) -> None:
        policy = self._policy
        try:
            self._salts = await self._run_sql(salt_store.salts_in_use, self._database, now,
                                              policy.rotation_s, policy.retention_s)
        except ServiceUnavailable as exc:
            # Keep hashing with the copy (bans and limits keep working); retry soon.
            log.warning("salts of the IP hashes not refreshed: %s", exc)
            self._next_refresh = now + RETRY_S
            return
        next_slot = salt_store.slot_start(now, policy.rotation_s) + policy.rotation_s
        self._next_refresh = min(now + REFRESH_S, next_slot)
