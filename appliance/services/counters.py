"""The rules for high-frequency interactions (views, likes, applause, plugin types).

A web worker records an interaction with one Lua script on Redis and answers with the live
totals; it never writes counters to SQL (the flusher does) and keeps nothing unflushed in memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import peewee as pw
from redis import exceptions as redis_errors

from appliance.errors import (
    InvalidInput,
    ReactionRejected,
    ReactionUnavailable,
    ServiceUnavailable,
    UnknownPage,
    UnknownReaction,
)
from appliance.paths import normalise_path
from appliance.plugin_api import Interaction, Kind, Milestone, Rejected
from appliance.plugin_registry import ReactionRegistry
from appliance.services import site_reactions
from appliance.services.rate_limits import Charge
from appliance.services.site_reactions import SiteReaction, SiteReactions
from appliance.services.visitors import visitor_hash
from appliance.settings import Settings
from appliance.storage import counter_store as keys
from appliance.storage.counter_sql import read_page_totals
from appliance.storage.counter_store import CounterScripts
from appliance.storage.script_batcher import ScriptBatcher
from appliance.storage.site_store import SiteRecord, page_exists

log = logging.getLogger("ovation.counters")
ACTIONS = ("add", "remove")
NORMALISED_PATHS = 4096  # raw paths whose normal form a worker keeps at hand
NORMALISED_PATH_LENGTH = 512  # the longest raw path kept


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


class SiteLookup(Protocol):
    async def get(self, name: str) -> SiteRecord: ...


class LiveScheduler(Protocol):
    """Where the service asks for a coalesced live push of a page's totals."""

    def schedule(self, site: str, path: str) -> None: ...


SqlRun = Callable[..., Awaitable[Any]]


class CounterService:
    """Records interactions and reads live totals. One per web worker."""

    def __init__(self, redis, database: pw.Database, registry: ReactionRegistry,
                 settings: Settings, run_sql: SqlRun, live: LiveScheduler | None = None,
                 sites: SiteLookup | None = None, batcher: ScriptBatcher | None = None) -> None:
        self._redis = redis
        self._database = database
        self._registry = registry
        self._settings = settings
        self._run_sql = run_sql
        self._live = live
        self._sites = sites
        self._scripts = CounterScripts.register(redis)
        self._batcher = batcher
        self._hash_key = settings.hashing_key()
        self._ttl = settings.totals_cache_ttl_s
        self._known_pages: dict[tuple[str, str], float] = {}
        self._normalised: dict[str, str] = {}  # raw path -> normalised (valid ones only)
        self._layouts: dict[str, tuple[SiteRecord, SiteReactions]] = {}
        self._hook_tasks: set[asyncio.Task] = set()

    @property
    def registry(self) -> ReactionRegistry:
        return self._registry

    def layout(self, site: SiteRecord) -> SiteReactions:
        """The site's reaction types and totals keys (recomputed when the site changes)."""
        hit = self._layouts.get(site.name)
        if hit is None or hit[0] != site:
            if len(self._layouts) > 10000:
                self._layouts.clear()
            hit = (site, site_reactions.layout(self._registry, site))
            self._layouts[site.name] = hit
        return hit[1]

    def normalise(self, raw_path: str) -> str:
        # Readers of one page send the same raw path again and again: normalise it once.
        # Only short paths are kept (real pages'), so the memory it takes stays small.
        path = self._normalised.get(raw_path) if isinstance(raw_path, str) else None
        if path is None:
            path = normalise_path(raw_path, self._settings.max_path_length)
            if len(raw_path) <= NORMALISED_PATH_LENGTH:
                if len(self._normalised) >= NORMALISED_PATHS:
                    self._normalised.clear()
                self._normalised[raw_path] = path
        return path

    async def record(self, site: SiteRecord, raw_path: str, reaction_name: str, action: str,
                     amount: int, visitor_id: str, choice: str | None = None,
                     score: int | None = None, limit: Charge | None = None
                     ) -> InteractionOutcome:
        """Record one interaction. `limit`, the request's rate-limit charge, is run in the
        interaction's own script (one Redis round trip), or alone before a database read."""
        path = self.normalise(raw_path)
        layout = self.layout(site)
        reaction = layout.get(reaction_name)
        value = self._check_action(reaction, action, amount, choice, score)
        if reaction.type.validate is not None:  # most types have no hook: build nothing
            self._validate_with_plugin(reaction, Interaction(
                site.name, path, reaction.name, action, amount, choice, score))
        visitor = visitor_hash(self._hash_key, site.name, visitor_id)
        if not site.accept_unpublished_pages and not self._known_page(site.name, path):
            if limit is not None:  # the limits also guard the database from a flood of paths
                await limit.run()
                limit = None
            await self._require_published(site.name, path)
        result = await self._call(
            self._scripts.interact,
            keys.PREFIX, self._ttl, site.name, layout.fields_csv, layout.types_csv, visitor,
            path, reaction.name, reaction.kind.value, action, value, reaction.cap or 0,
            reaction.type.window_s, self._settings.live_coalesce_ms,
            *keys.live_stats_args(time.time()),
            *(limit.script_args() if limit is not None else ()),
        )
        if limit is not None and result[0] in ("rate_limited", b"rate_limited"):
            raise limit.refused(result[1])
        applied, publish_due, page_result = int(result[0]), int(result[2]), result[3:]
        if publish_due and self._live is not None:
            self._live.schedule(site.name, path)
        if not page_result[0]:
            # The interaction is recorded already: a database outage must not turn it into an
            # error (the client would retry and count it twice), only into partial totals.
            try:
                await self._seed(site.name, [path])
            except ServiceUnavailable as exc:
                log.warning("totals of %s%s are partial: %s", site.name, path, exc.message)
                page = self._parse_page(layout, path, page_result, True)
                return InteractionOutcome(PageTotals(page.path, page.totals, page.visitor,
                                                     stale=True), applied)
            outcome = InteractionOutcome((await self.totals(site, [path], visitor_id))[0],
                                         applied)
        else:
            outcome = InteractionOutcome(self._parse_page(layout, path, page_result, True),
                                         applied)
        if applied > 0 and reaction.type.milestones and reaction.type.on_milestone:
            self._check_milestones(site.name, reaction, outcome)
        return outcome

    async def totals(self, site: SiteRecord, raw_paths: list[str],
                     visitor_id: str | None = None) -> list[PageTotals]:
        """Live totals (SQL + pending + in flight) of each path, in the order given."""
        layout = self.layout(site)
        paths = [self.normalise(raw) for raw in raw_paths]
        visitor = visitor_hash(self._hash_key, site.name, visitor_id) if visitor_id else ""
        unique = list(dict.fromkeys(paths))
        result = await self._call(self._scripts.totals, keys.PREFIX, self._ttl, site.name,
                                  layout.fields_csv, layout.types_csv, visitor, *unique)
        parsed = self._parse_many(layout, unique, result, bool(visitor))
        missing = [path for path, (cached, _) in parsed.items() if not cached]
        if missing:
            await self._seed(site.name, missing)
            result = await self._call(self._scripts.totals, keys.PREFIX, self._ttl, site.name,
                                      layout.fields_csv, layout.types_csv, visitor, *missing)
            parsed.update(self._parse_many(layout, missing, result, bool(visitor)))
        return [parsed[path][1] for path in paths]

    async def publish_totals_many(self, pages: list[tuple[str, str]]) -> list[dict[str, int]]:
        """Release the pages' live throttles and return the totals to push, in one step."""
        layouts = {site: await self._layout_by_name(site) for site in {s for s, _ in pages}}
        args = [item for site, path in pages for item in (site, path, layouts[site].fields_csv)]
        result = await self._call(self._scripts.publish_totals, keys.PREFIX, self._ttl, *args)
        out, offset = [], 0
        for site, path in pages:
            width = 1 + len(layouts[site].fields)
            out.append(self._parse_page(layouts[site], path, result[offset:offset + width],
                                        False).totals)
            offset += width
        return out

    async def _layout_by_name(self, site: str) -> SiteReactions:
        """A site's layout when only its name is known (live pushes): the one this worker used
        last, or the site looked up, or, if neither can be had, the default types."""
        hit = self._layouts.get(site)
        if hit is not None:
            return hit[1]
        if self._sites is not None:
            try:
                return self.layout(await self._sites.get(site))
            except Exception as exc:  # a push must go out even if the lookup fails
                log.warning("layout of site %s unavailable (%s); pushing default types", site,
                            exc)
        return site_reactions.layout(self._registry, SiteRecord(name=site))

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
                                  "up,down", "", "", *targets)
        missing = [target for index, target in enumerate(targets) if not result[index * 3]]
        if missing:
            await self._seed(site, missing)
            result = await self._call(self._scripts.totals, keys.PREFIX, self._ttl, site,
                                      "up,down", "", "", *targets)
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

    def _check_action(self, reaction: SiteReaction, action: str, amount: int,
                      choice: str | None, score: int | None) -> str:
        """Check the request against the type's kind; return the value the script takes."""
        if action not in ACTIONS:
            raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}.",
                               details={"field": "action"})
        kind, name = reaction.kind, reaction.name
        if kind is not Kind.CHOICE and choice is not None:
            raise InvalidInput(f"{name} is a {kind} type: only choice types take a choice.",
                               details={"field": "choice"})
        if kind is not Kind.SCORE and score is not None:
            raise InvalidInput(f"{name} is a {kind} type: only score types take a score.",
                               details={"field": "score"})
        if kind is Kind.COUNTER:
            if action != "add":
                raise UnknownReaction(f"{name} can only be added, not removed.",
                                      details={"field": "action"})
            if not 1 <= amount <= reaction.type.max_amount:
                raise InvalidInput(f"amount for {name} must be between 1 and "
                                   f"{reaction.type.max_amount}.", details={"field": "amount"})
            return str(amount)
        if amount != 1:
            raise InvalidInput(f"amount for {name} must be 1.", details={"field": "amount"})
        if kind is Kind.CHOICE and action == "add":
            keys_shown = [option.key for option in reaction.choices]
            if choice not in keys_shown:
                raise InvalidInput(f"{name} takes a choice of {', '.join(keys_shown)}.",
                                   details={"field": "choice"})
            return choice
        if kind is Kind.SCORE and action == "add":
            low, high = reaction.type.score_min, reaction.type.score_max
            if score is None or not low <= score <= high:
                raise InvalidInput(f"{name} takes a score from {low} to {high}.",
                                   details={"field": "score"})
            return str(score)
        return ""

    def _validate_with_plugin(self, reaction: SiteReaction, interaction: Interaction) -> None:
        hook = reaction.type.validate
        if hook is None:
            return
        try:
            hook(interaction)
        except Rejected as exc:
            raise ReactionRejected(str(exc) or f"{reaction.name} refused this.",
                                   details={"field": "reaction"}) from None
        except Exception as exc:  # isolated: this type fails, every other one works
            self._plugin_failed(reaction.name, "validate", exc)
            raise ReactionUnavailable(f"The {reaction.name} reaction is unavailable right now.",
                                      details={"field": "reaction"}) from None

    def _check_milestones(self, site: str, reaction: SiteReaction,
                          outcome: InteractionOutcome) -> None:
        total = reaction.total(outcome.page.totals)
        before = total - outcome.applied
        crossed = [m for m in reaction.type.milestones if before < m <= total]
        hook = reaction.type.on_milestone
        for milestone in crossed:
            event = Milestone(site, outcome.page.path, reaction.name, milestone, total)
            task = asyncio.get_running_loop().create_task(
                self._run_milestone_hook(reaction.name, hook, event))
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_tasks.discard)

    async def _run_milestone_hook(self, name: str, hook, event: Milestone) -> None:
        # In a thread: a hook that blocks must not stall the worker's other requests.
        try:
            await asyncio.to_thread(hook, event)
        except Exception as exc:
            self._plugin_failed(name, "on_milestone", exc)

    def _plugin_failed(self, name: str, hook: str, exc: BaseException) -> None:
        log.error("reaction plugin %s: %s raised %s", name, hook, exc, exc_info=exc)
        message = f"{hook}: {type(exc).__name__}: {exc}"[:500]
        task = asyncio.get_running_loop().create_task(self._count_plugin_error(name, message))
        self._hook_tasks.add(task)
        task.add_done_callback(self._hook_tasks.discard)

    async def _count_plugin_error(self, name: str, message: str) -> None:
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.hincrby(keys.PLUGIN_ERRORS, name, 1)
            pipe.hset(keys.PLUGIN_LAST_ERROR, name, f"{time.time():.0f} {message}")
            await pipe.execute()
        except (redis_errors.RedisError, OSError) as exc:
            log.warning("could not count the plugin error of %s: %s", name, exc)

    def _known_page(self, site: str, path: str) -> bool:
        """The page was found published within the last minute."""
        return self._known_pages.get((site, path), 0) > time.monotonic()

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
            if self._batcher is not None:
                return await self._batcher.call(script, [], list(args))
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

    def _parse_many(self, layout: SiteReactions, paths: list[str], result: list,
                    with_visitor: bool) -> dict[str, tuple[bool, PageTotals]]:
        width = 1 + len(layout.fields) + (len(layout.reactions) if with_visitor else 0)
        parsed = {}
        for index, path in enumerate(paths):
            chunk = result[index * width:(index + 1) * width]
            parsed[path] = (bool(chunk[0]), self._parse_page(layout, path, chunk, with_visitor))
        return parsed

    def _parse_page(self, layout: SiteReactions, path: str, chunk: list,
                    with_visitor: bool) -> PageTotals:
        totals = {field: int(chunk[1 + i]) for i, field in enumerate(layout.fields)}
        visitor = None
        if with_visitor:
            visitor = {}
            states = chunk[1 + len(layout.fields):]
            for reaction, raw in zip(layout.reactions, states, strict=True):
                state = visitor_state(reaction, raw)
                if state is not _NO_STATE:
                    visitor[reaction.name] = state
        return PageTotals(path, totals, visitor)


_NO_STATE = object()


def visitor_state(reaction: SiteReaction, raw: str | bytes) -> Any:
    """A visitor's state of one type, as the API shows it (see the table in `plugin_api`)."""
    if isinstance(raw, bytes):
        raw = raw.decode()
    if reaction.kind is Kind.TOGGLE:
        return bool(raw)
    if reaction.kind is Kind.CHOICE:
        return raw or None
    if reaction.kind is Kind.SCORE:
        return int(raw) if raw else None
    if reaction.cap:
        return int(raw or 0)
    return _NO_STATE
