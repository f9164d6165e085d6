"""Choice and score reaction types (and plugin hooks) through the same machinery as the
built-ins: rules in Redis, the write-behind flush to SQLite and PostgreSQL, live totals."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import threading

import pytest

from appliance.errors import InvalidInput, ReactionRejected, ReactionUnavailable, UnknownReaction
from appliance.jobs.flush import flush_once
from appliance.plugin_api import Choice, Kind, ReactionType, Rejected
from appliance.plugin_registry import ReactionRegistry
from appliance.services.counters import CounterService
from appliance.services.sites import add_site
from appliance.services.sql_runner import SqlRunner
from appliance.storage import counter_store as keys
from appliance.storage.models import Counter, Page
from appliance.storage.redis_client import async_redis, sync_redis
from appliance.storage.site_store import get_site, update_site
from tests.conftest import BUNDLED_FACTORIES

A, B, C = "visitor-aaaa", "visitor-bbbb", "visitor-cccc"


def sql_totals(database, path: str) -> dict[str, int]:
    with database.connection_context():
        query = (Counter.select(Counter.reaction, Counter.total).join(Page)
                 .where(Page.path == path).tuples())
        return {reaction: total for reaction, total in query if total}


@pytest.fixture
async def make_service(settings, database):
    made = []

    def build(factories=None, reactions=("view", "like", "emoji", "stars"), choices=None,
              **site_fields):
        registry = ReactionRegistry.from_factories(factories or BUNDLED_FACTORIES, settings)
        if get_site(database, "blog") is None:
            add_site(database, "blog", ["https://blog.example"])
        site = get_site(database, "blog")
        options = {"emoji": {"choices": list(choices)}} if choices else {}
        site = dataclasses.replace(site, reactions=tuple(reactions), reaction_options=options,
                                   **site_fields)
        update_site(database, site)
        client, runner = async_redis(settings), SqlRunner()
        made.append((client, runner))
        return CounterService(client, database, registry, settings, runner.run), site

    yield build
    for client, runner in made:
        await client.aclose()
        runner.close()


async def test_a_choice_is_one_per_visitor_and_changeable(make_service, database, settings):
    service, site = make_service(choices=["heart", "tada", "laugh"])
    first = await service.record(site, "/p", "emoji", "add", 1, A, choice="heart")
    assert first.applied == 1
    assert first.page.totals["emoji.heart"] == 1 and first.page.visitor["emoji"] == "heart"
    again = await service.record(site, "/p", "emoji", "add", 1, A, choice="heart")
    assert again.applied == 0 and again.page.totals["emoji.heart"] == 1
    changed = await service.record(site, "/p", "emoji", "add", 1, A, choice="tada")
    assert changed.applied == 0  # still one choice made on the page
    assert (changed.page.totals["emoji.heart"], changed.page.totals["emoji.tada"]) == (0, 1)
    await service.record(site, "/p", "emoji", "add", 1, B, choice="tada")
    await service.record(site, "/p", "emoji", "add", 1, C, choice="laugh")
    removed = await service.record(site, "/p", "emoji", "remove", 1, C)
    assert removed.applied == -1 and removed.page.visitor["emoji"] is None
    assert {k: v for k, v in removed.page.totals.items() if k.startswith("emoji.")} == {
        "emoji.heart": 0, "emoji.tada": 2, "emoji.laugh": 0}
    flush_once(sync_redis(settings), database)
    assert sql_totals(database, "/p") == {"emoji.tada": 2}
    (page,) = await service.totals(site, ["/p"], A)
    assert page.totals["emoji.tada"] == 2 and page.visitor["emoji"] == "tada"


async def test_a_choice_must_be_one_the_site_shows(make_service):
    service, site = make_service(choices=["heart", "tada"])
    with pytest.raises(InvalidInput, match="heart, tada") as refused:
        await service.record(site, "/p", "emoji", "add", 1, A, choice="laugh")
    assert refused.value.details == {"field": "choice"}
    with pytest.raises(InvalidInput):
        await service.record(site, "/p", "emoji", "add", 1, A)  # no choice at all
    with pytest.raises(InvalidInput, match="only choice types"):
        await service.record(site, "/p", "like", "add", 1, A, choice="heart")
    with pytest.raises(InvalidInput, match="only score types"):
        await service.record(site, "/p", "emoji", "add", 1, A, choice="heart", score=3)


async def test_a_score_counts_sum_and_count_and_can_change(make_service, database, settings):
    service, site = make_service()
    await service.record(site, "/p", "stars", "add", 1, A, score=4)
    await service.record(site, "/p", "stars", "add", 1, B, score=5)
    changed = await service.record(site, "/p", "stars", "add", 1, A, score=2)
    assert changed.applied == 0
    assert (changed.page.totals["stars.sum"], changed.page.totals["stars.count"]) == (7, 2)
    assert changed.page.visitor["stars"] == 2
    flush_once(sync_redis(settings), database)
    assert sql_totals(database, "/p") == {"stars.sum": 7, "stars.count": 2}
    withdrawn = await service.record(site, "/p", "stars", "remove", 1, B)
    assert withdrawn.applied == -1 and withdrawn.page.visitor["stars"] is None
    assert (withdrawn.page.totals["stars.sum"], withdrawn.page.totals["stars.count"]) == (2, 1)
    flush_once(sync_redis(settings), database)
    assert sql_totals(database, "/p") == {"stars.sum": 2, "stars.count": 1}
    for bad in (0, 6):
        with pytest.raises(InvalidInput, match="from 1 to 5"):
            await service.record(site, "/p", "stars", "add", 1, C, score=bad)


async def test_a_site_shows_only_its_types_in_its_order(make_service):
    service, site = make_service(reactions=("stars", "like"))
    layout = service.layout(site)
    assert [r.name for r in layout] == ["stars", "like"]
    assert layout.fields == ("stars.sum", "stars.count", "like")
    with pytest.raises(UnknownReaction, match="this site shows: stars, like"):
        await service.record(site, "/p", "applause", "add", 1, A)
    (page,) = await service.totals(site, ["/p"], A)
    assert page.totals == {"stars.sum": 0, "stars.count": 0, "like": 0}
    assert page.visitor == {"stars": None, "like": False}


async def test_sites_that_have_not_chosen_show_the_types_on_by_default(make_service, database):
    service, site = make_service()
    site = dataclasses.replace(site, reactions=None)
    assert [r.name for r in service.layout(site)] == ["view", "like", "applause"]


async def test_live_pushes_carry_each_sites_own_fields(make_service, database, settings):
    service, blog = make_service(reactions=("like", "emoji"), choices=["heart"])
    add_site(database, "other", [])
    other = get_site(database, "other")  # the defaults
    await service.record(blog, "/p", "emoji", "add", 1, A, choice="heart")
    await service.record(other, "/p", "applause", "add", 3, A)
    pushed = await service.publish_totals_many([("blog", "/p"), ("other", "/p")])
    assert pushed == [{"like": 0, "emoji.heart": 1}, {"view": 0, "like": 0, "applause": 3}]


async def test_long_type_and_choice_names_flush_on_both_databases(make_service, database,
                                                                   settings):
    long_name = "a_very_long_reaction_type_name_x"  # 32 characters, the most allowed

    def poll(_context):
        return ReactionType(name=long_name, label="Poll", icon="?", kind=Kind.CHOICE,
                            choices=(Choice("an_option_key_of_24_char", "Yes", "y"),))

    service, site = make_service({**BUNDLED_FACTORIES, "poll": poll}, reactions=(long_name,))
    await service.record(site, "/p", long_name, "add", 1, A, choice="an_option_key_of_24_char")
    flush_once(sync_redis(settings), database)
    assert sql_totals(database, "/p") == {f"{long_name}.an_option_key_of_24_char": 1}


async def test_flush_is_exact_for_choices_and_scores_under_concurrency(
        make_service, database, settings):
    """Many visitors change their choice and score concurrently while flushes run; SQL ends
    equal to what their last acknowledged states imply."""
    service, site = make_service(choices=["heart", "tada", "laugh", "wow"])
    rng = random.Random(7)
    visitors = [f"visitor-{n:04d}" for n in range(40)]
    final_choice: dict[str, str | None] = {}
    final_score: dict[str, int | None] = {}

    async def reader(visitor: str) -> None:
        for _ in range(12):
            if rng.random() < 0.5:
                if rng.random() < 0.2:
                    await service.record(site, "/hot", "emoji", "remove", 1, visitor)
                    final_choice[visitor] = None
                else:
                    key = rng.choice(["heart", "tada", "laugh", "wow"])
                    await service.record(site, "/hot", "emoji", "add", 1, visitor, choice=key)
                    final_choice[visitor] = key
            elif rng.random() < 0.2:
                await service.record(site, "/hot", "stars", "remove", 1, visitor)
                final_score[visitor] = None
            else:
                score = rng.randint(1, 5)
                await service.record(site, "/hot", "stars", "add", 1, visitor, score=score)
                final_score[visitor] = score

    stop = threading.Event()

    def flusher() -> None:
        client = sync_redis(settings)
        while not stop.is_set():
            flush_once(client, database)

    thread = threading.Thread(target=flusher)
    thread.start()
    try:
        await asyncio.gather(*(reader(visitor) for visitor in visitors))
    finally:
        stop.set()
        thread.join()
    flush_once(sync_redis(settings), database)
    expected: dict[str, int] = {}
    for key in final_choice.values():
        if key:
            expected[f"emoji.{key}"] = expected.get(f"emoji.{key}", 0) + 1
    scores = [score for score in final_score.values() if score]
    if scores:
        expected["stars.sum"], expected["stars.count"] = sum(scores), len(scores)
    assert sql_totals(database, "/hot") == expected
    (page,) = await service.totals(site, ["/hot"])
    assert {k: v for k, v in page.totals.items() if v and k != "view" and k != "like"} == expected


# -- hooks and isolation ------------------------------------------------------------------------

def with_hooks(**hooks):
    def bookmark(_context):
        return ReactionType(name="bookmark", label="Bookmark", icon="🔖", kind=Kind.TOGGLE,
                            **hooks)
    return {**BUNDLED_FACTORIES, "bookmark": bookmark}


async def test_a_validate_hook_can_refuse_with_its_own_message(make_service):
    def only_posts(interaction):
        if not interaction.path.startswith("/posts/"):
            raise Rejected("Bookmarks are for posts only.")

    service, site = make_service(with_hooks(validate=only_posts), reactions=("bookmark",))
    with pytest.raises(ReactionRejected, match="Bookmarks are for posts only."):
        await service.record(site, "/about", "bookmark", "add", 1, A)
    assert (await service.record(site, "/posts/a", "bookmark", "add", 1, A)).applied == 1


async def test_a_hook_that_raises_fails_only_its_own_type(make_service, redis_client):
    def broken(_interaction):
        raise KeyError("oops")

    service, site = make_service(with_hooks(validate=broken), reactions=("bookmark", "like"))
    with pytest.raises(ReactionUnavailable, match="bookmark reaction is unavailable"):
        await service.record(site, "/p", "bookmark", "add", 1, A)
    assert (await service.record(site, "/p", "like", "add", 1, A)).applied == 1
    await asyncio.sleep(0.1)  # the error is counted in the background
    assert redis_client.hget(keys.PLUGIN_ERRORS, "bookmark") == "1"
    assert "KeyError" in redis_client.hget(keys.PLUGIN_LAST_ERROR, "bookmark")
    (page,) = await service.totals(site, ["/p"])
    assert page.totals == {"bookmark": 0, "like": 1}


async def test_milestone_hooks_fire_once_per_crossing_and_are_isolated(make_service,
                                                                         redis_client):
    reached = []
    fired = threading.Event()

    def note(milestone):
        reached.append((milestone.path, milestone.milestone, milestone.total))
        if milestone.milestone == 3:
            fired.set()
            raise RuntimeError("the hook fails after noting")

    service, site = make_service(with_hooks(milestones=(2, 3), on_milestone=note),
                                 reactions=("bookmark",))
    for visitor in (A, B, C):
        await service.record(site, "/p", "bookmark", "add", 1, visitor)
    await service.record(site, "/p", "bookmark", "add", 1, C)  # no change, no milestone
    for _ in range(50):
        if fired.is_set() and redis_client.hget(keys.PLUGIN_ERRORS, "bookmark"):
            break
        await asyncio.sleep(0.05)
    assert sorted(reached) == [("/p", 2, 2), ("/p", 3, 3)]
    assert redis_client.hget(keys.PLUGIN_ERRORS, "bookmark") == "1"


# -- loading: isolation, duplicates, allowlist ----------------------------------------------------

def test_a_plugin_that_fails_to_load_is_isolated_and_reported(settings):
    def broken(_context):
        raise RuntimeError("boom")

    def not_a_type(_context):
        return {"name": "nope"}

    registry = ReactionRegistry.from_factories(
        {**BUNDLED_FACTORIES, "broken": broken, "wrong": not_a_type}, settings)
    assert registry.names() == ["view", "like", "applause", "emoji", "stars"]
    failed = {info.entry_point: info.error for info in registry.failed()}
    assert failed == {"broken": "RuntimeError: boom",
                      "wrong": "TypeError: returned dict, not a ReactionType"}


def test_the_allowlist_loads_only_the_plugins_it_names(make_settings, database_url):
    settings = make_settings(database_url, plugins="like, stars")
    registry = ReactionRegistry.from_factories(BUNDLED_FACTORIES, settings)
    assert registry.names() == ["like", "stars"]
    status = {info.entry_point: info.status for info in registry.plugins}
    assert status == {"view": "disabled", "like": "loaded", "applause": "disabled",
                      "emoji": "disabled", "stars": "loaded"}


def test_an_allowlist_naming_a_missing_plugin_stops_start_up(make_settings, database_url):
    from appliance.errors import PluginError

    settings = make_settings(database_url, plugins="like,polls")
    with pytest.raises(PluginError, match="names polls, which no installed package registers"):
        ReactionRegistry.from_factories(BUNDLED_FACTORIES, settings)


def test_bundled_plugins_come_through_the_entry_point_group(settings):
    registry = ReactionRegistry.discover(settings)
    assert {"emoji", "stars"} <= set(registry.names())
    assert registry.get("emoji").kind is Kind.CHOICE and registry.get("stars").kind is Kind.SCORE
    packages = {info.entry_point: info.package for info in registry.plugins}
    assert packages["emoji"] == packages["view"] == "ovation"


@pytest.mark.parametrize("declaration, message", [
    ({"kind": Kind.CHOICE}, "needs 1 to 24 choices"),
    ({"kind": Kind.CHOICE, "choices": (Choice("a", "A", "a"), Choice("a", "B", "b"))},
     "unique"),
    ({"kind": Kind.CHOICE, "choices": (Choice("a", "A", "a"),), "default_choices": ("b",)},
     "unknown keys b"),
    ({"kind": Kind.TOGGLE, "choices": (Choice("a", "A", "a"),)}, "only a choice type"),
    ({"kind": Kind.SCORE, "score_min": 5, "score_max": 5}, "score_min < score_max"),
    ({"kind": Kind.COUNTER, "milestones": (0,)}, "milestones must be positive"),
    ({"kind": "poll"}, "kind must be one of"),
])
def test_bad_declarations_are_refused(declaration, message):
    with pytest.raises(ValueError, match=message):
        ReactionType(name="x", label="x", icon="x", **declaration)


@pytest.mark.parametrize("key", ["", "Heart", "a|b", "a,b", "x" * 25, "a.b"])
def test_choice_keys_are_validated(key):
    with pytest.raises(ValueError):
        Choice(key, "x", "x")
