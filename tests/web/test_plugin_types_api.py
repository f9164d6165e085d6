"""Choice and score types over HTTP and the WebSocket, rendered from the site configuration:
no route has type-specific code. Real Redis, real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from appliance.jobs.flush import flush_once
from appliance.plugin_registry import ReactionRegistry
from appliance.services.sites import add_site
from appliance.storage.redis_client import sync_redis
from appliance.storage.site_store import get_site, update_site
from tests.conftest import BUNDLED_FACTORIES
from tests.web.conftest import API, ORIGIN, OTHER_VISITOR, SITE, VISITOR, assert_error


@pytest.fixture
def registry(settings) -> ReactionRegistry:
    return ReactionRegistry.from_factories(BUNDLED_FACTORIES, settings)


@pytest.fixture
def client(app, database):
    site = get_site(database, SITE)
    update_site(database, dataclasses.replace(
        site, reactions=("like", "emoji", "stars"),
        reaction_options={"emoji": {"choices": ["heart", "tada"]}}))
    return app.test_client()


async def interact(client, expected: int = 200, **body) -> dict:
    body = {"path": "/p", "visitor": VISITOR, **body}
    response = await client.post(f"{API}/interactions", json=body)
    assert response.status_code == expected, await response.get_data(as_text=True)
    return await response.get_json()


async def test_the_config_describes_each_kind(client):
    config = await (await client.get(f"{API}/config")).get_json()
    by_name = {reaction["name"]: reaction for reaction in config["reactions"]}
    assert list(by_name) == ["like", "emoji", "stars"]
    assert by_name["emoji"]["kind"] == "choice"
    assert by_name["emoji"]["choices"] == [
        {"key": "heart", "label": "Love", "icon": "❤️"},
        {"key": "tada", "label": "Celebrate", "icon": "🎉"}]
    assert (by_name["stars"]["kind"], by_name["stars"]["score_min"],
            by_name["stars"]["score_max"]) == ("score", 1, 5)
    assert by_name["like"]["choices"] == [] and by_name["like"]["score_min"] is None


async def test_choices_and_scores_over_http(client, settings, database):
    chosen = await interact(client, reaction="emoji", choice="tada")
    assert chosen["applied"] == 1
    assert chosen["totals"] == {"like": 0, "emoji.heart": 0, "emoji.tada": 1,
                                "stars.sum": 0, "stars.count": 0}
    assert chosen["visitor"] == {"like": False, "emoji": "tada", "stars": None}
    await interact(client, reaction="stars", score=4)
    rated = await interact(client, reaction="stars", score=2, visitor=OTHER_VISITOR)
    assert (rated["totals"]["stars.sum"], rated["totals"]["stars.count"]) == (6, 2)
    assert rated["visitor"]["stars"] == 2
    flush_once(sync_redis(settings), database)
    totals = await (await client.get(f"{API}/totals", query_string={
        "path": "/p", "visitor": VISITOR})).get_json()
    assert totals["totals"]["emoji.tada"] == 1 and totals["totals"]["stars.sum"] == 6
    assert totals["visitor"] == {"like": False, "emoji": "tada", "stars": 4}
    batch = await (await client.post(f"{API}/totals/batch", json={"paths": ["/p", "/q"]})
                   ).get_json()
    assert [page["totals"]["stars.count"] for page in batch["pages"]] == [2, 0]


@pytest.mark.parametrize("body, code, field", [
    ({"reaction": "emoji", "choice": "laugh"}, "invalid_input", "choice"),  # not on this site
    ({"reaction": "emoji"}, "invalid_input", "choice"),
    ({"reaction": "stars", "score": 9}, "invalid_input", "score"),
    ({"reaction": "stars", "score": "4"}, "invalid_input", None),  # strict types
    ({"reaction": "like", "choice": "heart"}, "invalid_input", "choice"),
    ({"reaction": "applause"}, "unknown_reaction", "reaction"),  # installed, not shown here
    ({"reaction": "emoji", "choice": "x" * 25}, "invalid_input", None),
])
async def test_bad_choices_and_scores_are_refused_and_change_nothing(client, body, code, field):
    response = await client.post(f"{API}/interactions", json={"path": "/p", "visitor": VISITOR,
                                                               **body})
    error = await assert_error(response, 400, code)
    if field:
        assert error["details"]["field"] == field
    totals = await (await client.get(f"{API}/totals", query_string={"path": "/p"})).get_json()
    assert set(totals["totals"].values()) == {0}


async def test_choices_over_the_websocket_and_pushed_to_subscribers(client):
    async with client.websocket(f"{API}/live", headers={"Origin": ORIGIN}) as reader, \
            client.websocket(f"{API}/live", headers={"Origin": ORIGIN}) as other:
        hello = json.loads(await reader.receive())
        assert hello["reactions"] == ["like", "emoji", "stars"]
        await other.receive()
        await other.send(json.dumps({"type": "subscribe", "paths": ["/p"]}))
        assert json.loads(await other.receive())["type"] == "subscribed"
        await reader.send(json.dumps({"type": "interact", "path": "/p", "reaction": "emoji",
                                      "choice": "heart", "visitor": VISITOR}))
        result = json.loads(await reader.receive())
        assert result["type"] == "result" and result["totals"]["emoji.heart"] == 1
        pushed = json.loads(await asyncio.wait_for(other.receive(), 3))
        assert pushed["type"] == "totals" and pushed["totals"]["emoji.heart"] == 1


async def test_openapi_documents_choice_score_and_kinds(client):
    spec = await (await client.get("/openapi.json")).get_json()
    operation = spec["paths"]["/api/v1/sites/{site}/interactions"]["post"]
    request = operation["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"choice", "score"} <= set(request)
    kinds = spec["components"]["schemas"]["ReactionTypeModel"]["properties"]["kind"]
    assert kinds["enum"] == ["counter", "toggle", "choice", "score"]


async def test_a_failing_plugin_is_reported_for_its_type_only(settings, database):
    from appliance.plugin_api import Kind, ReactionType
    from web.app import create_app

    def broken(_interaction):
        raise ZeroDivisionError("division by zero")

    def flaky(_context):
        return ReactionType(name="flaky", label="Flaky", icon="!", kind=Kind.TOGGLE,
                            validate=broken)

    registry = ReactionRegistry.from_factories({**BUNDLED_FACTORIES, "flaky": flaky}, settings)
    site = add_site(database, SITE, [ORIGIN])
    update_site(database, dataclasses.replace(site, reactions=("like", "flaky")))
    app = create_app(settings, registry)
    app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = 0.01
    async with app.test_app() as test_app:
        client = test_app.test_client()
        response = await client.post(f"{API}/interactions", json={
            "path": "/p", "reaction": "flaky", "visitor": VISITOR})
        await assert_error(response, 503, "reaction_unavailable")
        assert (await interact(client, reaction="like"))["totals"] == {"like": 1, "flaky": 0}
        await asyncio.sleep(0.1)
        metrics = await (await client.get("/metrics")).get_data(as_text=True)
        assert 'ovation_plugin_errors_total{reaction="flaky"} 1.0' in metrics
