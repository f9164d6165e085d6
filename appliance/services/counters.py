"""The rules for high-frequency interactions (views, likes, applause, plugin types).

A web worker records an interaction with one Lua script on Redis and answers with the live
totals; it never writes counters to SQL (the flusher does) and keeps nothing unflushed in memory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import peewee as pw
from redis import exceptions as redis_errors

from appliance.errors import InvalidInput, ServiceUnavailable, UnknownPage, UnknownReaction
from appliance.paths import normalise_path
from appliance.plugin_api import Kind, ReactionType
from appliance.plugin_registry import ReactionRegistry
from appliance.services.visitors import visitor_hash
from appliance.settings import Settings
from appliance.storage import counter_store as keys
from appliance.storage.counter_sql import read_page_totals
from appliance.storage.counter_store import CounterScripts
from appliance.storage.site_store import SiteRecord, page_exists

log = logging.getLogger("ovation.counters")
ACTIONS = ("add", "remove")


@dataclass(frozen=True)
class PageTotals:
    path: str
    totals: dict[str, int]
    visitor: dict[str, Any] | None  # the visitor's own state, when a visitor was given
    stale: bool = False  # SQL could not be read: totals hold only what is not yet flushed


@dataclass(frozen=True)
class InteractionOutcome:
    page: PageTotals
    applied: int  # what this interaction changed the total by (0 when deduplicated or capped)


class LiveScheduler(Protocol):
    """Where the service asks for a coalesced live push of a page's totals."""

    def schedule(self, site: str, path: str) -> None: ...


SqlRun = Callable[..., Awaitable[Any]]


class CounterService:
    """Records interactions and reads live totals. One per web worker."""

    def __init__(self, redis, database: pw.Database, registry: ReactionRegistry,
                 settings: Settings, run_sql: SqlRun, live: LiveScheduler | None = None) -> None:
        self._redis = redis
        self._database = database
        self._registry = registry
        self._settings = settings
        self._run_sql = run_sql
        self._live = live
        self._scripts = CounterScripts.register(redis)
        self._hash_key = settings.hashing_key()
        self._types_csv = ",".join(registry.names())
        self._ttl = settings.totals_cache_ttl_s
        self._known_pages: dict[tuple[str, str], float] = {}

    @property
    def registry(self) -> ReactionRegistry:
        return self._registry

    def normalise(self, raw_path: str) -> str:
        return normalise_path(raw_path, self._settings.max_path_length)

    async def record(self, site: SiteRecord, raw_path: str, reaction_name: str, action: str,
                     amount: int, visitor_id: str) -> InteractionOutcome:
        path = self.normalise(raw_path)
        reaction = self._registry.get(reaction_name)
        self._check_action(reaction, action, amount)
        visitor = visitor_hash(self._hash_key, site.name, visitor_id)
        if not site.accept_unpublished_pages:
            await self._require_published(site.name, path)
        cap = self._cap(site, reaction)
        result = await self._call(
            self._scripts.interact,
            keys.PREFIX, self._ttl, site.name, self._types_csv, visitor, path, reaction.name,
            reaction.kind.value, action, amount, cap or 0, reaction.window_s,
            self._settings.live_coalesce_ms, *keys.live_stats_args(time.time()),
        )
        applied, publish_due, page_result = int(result[0]), int(result[1]), result[2:]
        if publish_due and self._live is not None:
            self._live.schedule(site.name, path)
        if not page_result[0]:
            # The interaction is recorded already: a database outage must not turn it into an
            # error (the client would retry and count it twice), only into partial totals.
            try:
                await self._seed(site.name, [path])
            except ServiceUnavailable as exc:
                log.warning("totals of %s%s are partial: %s", site.name, path, exc.message)
                page = self._parse_page(path, page_result, True)
                return InteractionOutcome(PageTotals(page.path, page.totals, page.visitor,
                                                     stale=True), applied)
            return InteractionOutcome((await self.totals(site, [path], visitor_id))[0], applied)
        return InteractionOutcome(self._parse_page(path, page_result, True), applied)

    async def totals(self, site: SiteRecord, raw_paths: list[str],
                     visitor_id: str | None = None) -> list[PageTotals]:
        """Live totals (SQL + pending + in flight) of each path, in the order given."""
        paths = [self.normalise(raw) for raw in raw_paths]
        visitor = visitor_hash(self._hash_key, site.name, visitor_id) if visitor_id else ""
        unique = list(dict.fromkeys(paths))
        result = await self._call(self._scripts.totals, keys.PREFIX, self._ttl, site.name,
                                  self._types_csv, visitor, *unique)
        parsed = self._parse_many(unique, result, bool(visitor))
        missing = [path for path, (cached, _) in parsed.items() if not cached]
        if missing:
            await self._seed(site.name, missing)
            result = await self._call(self._scripts.totals, keys.PREFIX, self._ttl, site.name,
                                      self._types_csv, visitor, *missing)
            parsed.update(self._parse_many(missing, result, bool(visitor)))
        return [parsed[path][1] for path in paths]

    async def publish_totals_many(self, pages: list[tuple[str, str]]) -> list[dict[str, int]]:
        """Release the pages' live throttles and return the totals to push, in one step."""
        args = [item for page in pages for item in page]
        result = await self._call(self._scripts.publish_totals, keys.PREFIX, self._ttl,
                                  self._types_csv, *args)
        width = 1 + len(self._registry.names())
        return [self._parse_page(path, result[index * width:(index + 1) * width], False).totals
                for index, (_site, path) in enumerate(pages)]

    # -- comment votes -----------------------------------------------------------------------

    async def vote(self, site: SiteRecord, comment_id: str, choice: str, visitor_id: str
                   ) -> dict[str, Any]:
        """Record a visitor's vote on a comment (up, down, or none to withdraw it): one per
        visitor, changeable, counted through the same write-behind path as page interactions."""
        if choice not in ("up", "down", "none"):
            raise InvalidInput("vote must be up, down or none.", details={"field": "vote"})
        visitor = visitor_hash(self._hash_key, site.name, visitor_id)
        target = keys.comment_target(comment_id)
        result = await self._call(self._scripts.vote, keys.PREFIX, self._ttl, site.name,
                                  visitor, target, choice)
        if not result[0]:
            await self._seed(site.name, [target])
            return {**(await self.vote_totals(site.name, [comment_id]))[comment_id],
                    "mine": choice}
        return {"up": int(result[1]), "down": int(result[2]), "mine": choice}

    async def vote_totals(self, site: str, comment_ids: list[str], visitor: str = ""
                          ) -> dict[str, dict[str, Any]]:
        """Live vote totals of comments, and `visitor`'s (a visitor hash) own vote."""
        if not comment_ids:
            return {}
        targets = [keys.comment_target(comment_id) for comment_id in comment_ids]
        result = await self._call(self._scripts.totals, keys.PREFIX, self._ttl, site,
                                  "up,down", "", *targets)
        missing = [target for index, target in enumerate(targets) if not result[index * 3]]
        if missing:
            await self._seed(site, missing)
            result = await self._call(self._scripts.totals, keys.PREFIX, self._ttl, site,
                                      "up,down", "", *targets)
        mine = [None] * len(targets)
        if visitor:
            pipe = self._redis.pipeline(transaction=False)
            for target in targets:
                pipe.hget(f"{keys.PREFIX}vs:{site}|{target}", f"vote|{visitor}")
            mine = await pipe.execute()
        return {comment_id: {"up": int(result[index * 3 + 1]),
                             "down": int(result[index * 3 + 2]), "mine": mine[index]}
                for index, comment_id in enumerate(comment_ids)}

    # -- rules -----------------------------------------------------------------------------

    def _check_action(self, reaction: ReactionType, action: str, amount: int) -> None:
        if action not in ACTIONS:
            raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}.",
                               details={"field": "action"})
        if reaction.kind is Kind.COUNTER:
            if action != "add":
                raise UnknownReaction(f"{reaction.name} can only be added, not removed.",
                                      details={"field": "action"})
            if not 1 <= amount <= reaction.max_amount:
                raise InvalidInput(f"amount for {reaction.name} must be between 1 and "
                                   f"{reaction.max_amount}.", details={"field": "amount"})
        elif amount != 1:
            raise InvalidInput(f"amount for {reaction.name} must be 1.",
                               details={"field": "amount"})

    def _cap(self, site: SiteRecord, reaction: ReactionType) -> int | None:
        override = site.reaction_options.get(reaction.name, {}).get("per_visitor_cap")
        return int(override) if override else reaction.per_visitor_cap

    async def _require_published(self, site: str, path: str) -> None:
        key = (site, path)
        now = time.monotonic()
        if self._known_pages.get(key, 0) > now:
            return
        if not await self._run_sql(page_exists, self._database, site, path):
            raise UnknownPage(f"Site {site!r} counts only published pages, and {path} is not one.")
        if len(self._known_pages) > 50000:
            self._known_pages.clear()
        self._known_pages[key] = now + 60

    # -- Redis plumbing --------------------------------------------------------------------

    async def _call(self, script, *args: Any):
        try:
            return await script(keys=[], args=list(args))
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            raise ServiceUnavailable(f"Redis is not reachable: {exc}") from exc

    async def _seed(self, site: str, paths: list[str]) -> None:
        """Cache the SQL totals of `paths`, consistent with the batch in flight (SEED_SCRIPT)."""
        for _ in range(10):
            generation, raw_id = await self._redis.mget(keys.FLUSH_GENERATION, keys.INFLIGHT_ID)
            inflight_id = raw_id or ""
            sql_totals, applied = await self._run_sql(read_page_totals, self._database, site,
                                                       paths, inflight_id)
            retry = []
            for path in paths:
                pairs = [item for reaction, total in sql_totals[path].items()
                         for item in (reaction, total)]
                ok = await self._call(self._scripts.seed, keys.PREFIX,
                                      keys.page_member(site, path), site, path, inflight_id,
                                      "1" if applied else "0", self._settings.totals_cache_ttl_s,
                                      generation or "0", *pairs)
                if not ok:
                    retry.append(path)
            if not retry:
                return
            paths = retry
        raise ServiceUnavailable("Totals could not be read while flushes kept moving; retry.")

    def _parse_many(self, paths: list[str], result: list, with_visitor: bool
                    ) -> dict[str, tuple[bool, PageTotals]]:
        width = 1 + len(self._registry.names()) * (2 if with_visitor else 1)
        parsed = {}
        for index, path in enumerate(paths):
            chunk = result[index * width:(index + 1) * width]
            parsed[path] = (bool(chunk[0]), self._parse_page(path, chunk, with_visitor))
        return parsed

    def _parse_page(self, path: str, chunk: list, with_visitor: bool) -> PageTotals:
        names = self._registry.names()
        totals = {name: int(chunk[1 + i]) for i, name in enumerate(names)}
        visitor = None
        if with_visitor:
            visitor = {}
            for i, reaction in enumerate(self._registry):
                value = int(chunk[1 + len(names) + i])
                if reaction.kind is Kind.TOGGLE:
                    visitor[reaction.name] = bool(value)
                elif reaction.per_visitor_cap:
                    visitor[reaction.name] = value
        return PageTotals(path, totals, visitor)
