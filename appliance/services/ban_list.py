"""Each web worker's copy of the sites' bans, so that a comment is checked without SQL.

Bans live in SQL and change rarely: `moderation.ban_author`, `bans.lift_*` and the salt
housekeeping (`ip_salts.keep_salts`). Every change, once committed, replaces the site's ban
version in Redis (`comment_cache.bans_changed`), and a worker keeps the version it loaded
its copy under. The submission script compares that version with the site's in the round
trip that queues the comment and queues nothing on a mismatch: the worker then reloads the
bans and checks the comment again. So a ban or an unban holds for the next comment on every
worker of every host, with no cache lifetime to wait out.

A missing version (Redis flushed, or replaced by an empty one) matches no copy, so it never
lifts a ban: the next worker to load sets a fresh random one, *before* it reads SQL, so that
a change committed during its read replaces that version and is seen on the next comment.
Versions are random, not counted: a Redis that lost the key must not hand out a version that
some worker holds with an older copy.

One case is bounded rather than exact: with Redis's AOF written every second, a Redis crash
can lose the version a ban wrote in its last second, leaving an older version that workers
hold. A copy older than MAX_AGE_S is therefore loaded again anyway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import peewee as pw

from appliance.storage import comment_cache as cache
from appliance.storage import comment_store

MAX_AGE_S = 30.0
UNCHECKED = "*"  # a version for the submission script: do not check (see CommentService)
SqlRun = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class SiteBans:
    """A site's bans as loaded under `version`: visitor hashes, and network hashes (under
    whatever salt each was made with)."""

    version: str
    visitors: frozenset[str]
    networks: frozenset[str]
    loaded_at: float  # the worker's monotonic clock, when the load began

    def matches(self, visitor: str, networks: Iterable[str]) -> bool:
        """Whether a comment by `visitor` from a network with these hashes (one per retained
        salt) is banned: exactly what `comment_store.is_banned` answers from SQL."""
        return visitor in self.visitors or any(
            network in self.networks for network in networks if network
        )


class BanCache:
    """The sites' bans of one web worker (one event loop)."""

    def __init__(
        self,
        redis: Any,
        database: pw.Database,
        run_sql: SqlRun,
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._database = database
        self._run_sql = run_sql
        self._max_age_s = max_age_s
        self._clock = clock
        self._copies: dict[str, SiteBans] = {}
        self._loading: dict[str, asyncio.Future[SiteBans]] = {}

    async def get(self, site: str) -> SiteBans:
        """The copy at hand (the submission script will tell if it is outdated), or a new one
        if there is none or it is older than MAX_AGE_S; concurrent requests share one load."""
        copy = self._copies.get(site)
        if copy is not None and self._clock() - copy.loaded_at < self._max_age_s:
            return copy
        loading = self._loading.get(site)
        if loading is None:
            loading = self._loading[site] = asyncio.ensure_future(self.load(site))
            loading.add_done_callback(lambda done: self._loaded(site, done))
        # Shielded: a request that goes away must not cancel the load the others await.
        return await asyncio.shield(loading)

    async def load(self, site: str) -> SiteBans:
        """A new copy, read from SQL after the version it is labelled with. Not shared: a
        request that found its copy outdated needs a read that began after it found out."""
        started = self._clock()
        key = cache.bans_version_key(site)
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(key, cache.new_bans_version(), nx=True)  # only where the version is missing
        pipe.get(key)
        _, version = await pipe.execute()
        rows = await self._run_sql(comment_store.site_bans, self._database, site)
        copy = SiteBans(
            version,
            frozenset(value for kind, value in rows if kind == "visitor"),
            frozenset(value for kind, value in rows if kind == "ip"),
            started,
        )
        held = self._copies.get(site)
        if held is None or held.loaded_at <= started:  # a slower, older load never wins
            self._copies[site] = copy
        return copy

    async def confirm(self, site: str, copy: SiteBans) -> SiteBans:
        """`copy` if it is still current, else a new one: checked before a comment is refused,
        so that a ban lifted moments ago refuses nobody."""
        if await self._redis.get(cache.bans_version_key(site)) == copy.version:
            return copy
        return await self.load(site)

    def _loaded(self, site: str, done: asyncio.Future[SiteBans]) -> None:
        if self._loading.get(site) is done:
            del self._loading[site]
        if not done.cancelled():
            done.exception()  # retrieved: every waiter has it raised already
