"""Thread reads from a web worker's prepared thread (appliance/services/thread_view.py): the
answer keeps the documented shape without being validated per request, and no change (a new
comment, an edit, moderation, a vote) is missed by a worker that prepared the thread before.
Real app, real Redis and SQL; the listener runs in process."""

from __future__ import annotations

import json

import pytest

from appliance.services.moderation import moderate
from appliance.storage import comment_cache as cache
from appliance.storage import comment_store
from appliance.storage.comment_store import get_comment
from appliance.workers.listener import build_listener
from tests.web.conftest import API, ORIGIN, OTHER_VISITOR, SITE, VISITOR
from tests.web.test_comments_api import COMMENTS, PAGE, post_comment, set_site, thread_of
from web.app import create_app
from web.schemas import ThreadResponse

THIRD_VISITOR = "visitor-cccc"


def store_queued(client, redis_client, settings) -> None:
    """Run the listener as its process would, on the web worker's own database handle."""
    database = client.app.extensions["ovation"].database
    listener = build_listener(redis_client, database, settings.comment_max_depth)
    while listener.run_once():
        pass


async def vote(client, comment_id: str, choice: str, visitor: str) -> None:
    response = await client.post(f"{COMMENTS}/{comment_id}/vote",
                                 json={"vote": choice, "visitor": visitor})
    assert response.status_code == 200, await response.get_data(as_text=True)


async def thread_text(client, **query) -> str:
    response = await client.get(COMMENTS, query_string={"path": PAGE, **query})
    assert response.status_code == 200
    assert response.content_type == "application/json"
    return await response.get_data(as_text=True)


async def test_the_answer_has_exactly_the_documented_shape(client, redis_client, database,
                                                           settings):
    set_site(database, moderation="first_time")
    first = await post_comment(client, "The *first*", visitor=VISITOR)  # pending: first time
    store_queued(client, redis_client, settings)
    moderate(redis_client, client.app.extensions["ovation"].database, [first["id"]],
             "approved")
    reply = await post_comment(client, "A reply", visitor=VISITOR, parent_id=first["id"])
    gone = await post_comment(client, "Soon gone", visitor=VISITOR)
    waiting = await post_comment(client, "Still pending", visitor=OTHER_VISITOR)
    store_queued(client, redis_client, settings)
    moderate(redis_client, client.app.extensions["ovation"].database, [gone["id"]], "deleted")
    await vote(client, first["id"], "up", OTHER_VISITOR)
    await vote(client, reply["id"], "down", VISITOR)
    for visitor in (None, VISITOR, OTHER_VISITOR, THIRD_VISITOR):
        for sort in ("oldest", "newest", "top"):
            query = {"sort": sort, **({"visitor": visitor} if visitor else {})}
            text = await thread_text(client, **query)
            # Whatever pydantic would have made of it, field for field and in order.
            assert json.loads(text) == ThreadResponse.model_validate_json(text).model_dump()
            assert list(json.loads(text)) == list(ThreadResponse.model_fields)
    mine = await thread_of(client, visitor=OTHER_VISITOR)
    shown = {c["id"]: c for c in mine["comments"]}
    assert shown[waiting["id"]]["status"] == "pending" and shown[waiting["id"]]["mine"] is True
    assert shown[first["id"]]["my_vote"] == "up" and shown[first["id"]]["votes_up"] == 1
    assert shown[gone["id"]]["status"] == "deleted" and shown[gone["id"]]["html"] == ""
    anonymous = await thread_of(client)
    assert waiting["id"] not in {c["id"] for c in anonymous["comments"]}
    assert all(c["mine"] is False and c["my_vote"] is None for c in anonymous["comments"])
    assert anonymous["total"] == 2  # first and its reply; pending and deleted not counted


async def test_a_vote_shows_in_the_next_read_of_every_worker(client, redis_client, settings,
                                                             database, registry):
    older = await post_comment(client, "older", visitor=VISITOR)
    newer = await post_comment(client, "newer", visitor=OTHER_VISITOR)
    store_queued(client, redis_client, settings)
    other_app = create_app(settings, registry)  # a second web worker
    other_app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = 0.01
    async with other_app.test_app() as test_app:
        other = test_app.test_client()
        for reader in (client, other):  # both prepare the thread
            top = await thread_of(reader, sort="top")
            assert [c["id"] for c in top["comments"]] == [older["id"], newer["id"]]
        await vote(client, newer["id"], "up", THIRD_VISITOR)
        for reader in (client, other):
            top = await thread_of(reader, sort="top", visitor=THIRD_VISITOR)
            assert [(c["id"], c["votes_up"], c["my_vote"]) for c in top["comments"]] == [
                (newer["id"], 1, "up"), (older["id"], 0, None)]
            assert [c["my_vote"] for c in (await thread_of(reader, sort="top"))["comments"]] \
                == [None, None]
        await vote(other, newer["id"], "none", THIRD_VISITOR)  # withdrawn on the other one
        for reader in (client, other):
            top = await thread_of(reader, sort="top", visitor=THIRD_VISITOR)
            assert [(c["id"], c["votes_up"], c["my_vote"]) for c in top["comments"]] == [
                (older["id"], 0, None), (newer["id"], 0, None)]


async def test_votes_cast_before_the_voters_set_existed_are_found(client, redis_client,
                                                                 settings):
    accepted = await post_comment(client, "vote on me", visitor=VISITOR)
    store_queued(client, redis_client, settings)
    await vote(client, accepted["id"], "down", OTHER_VISITOR)
    redis_client.delete(cache.voters_key(SITE, PAGE))  # expired, or votes of an older version
    [shown] = (await thread_of(client, visitor=OTHER_VISITOR))["comments"]
    assert (shown["votes_down"], shown["my_vote"]) == (1, "down")
    rebuilt = redis_client.smembers(cache.voters_key(SITE, PAGE))
    assert cache.VOTERS_SENTINEL in rebuilt and len(rebuilt) == 2
    await vote(client, accepted["id"], "up", THIRD_VISITOR)  # joins the rebuilt set
    assert len(redis_client.smembers(cache.voters_key(SITE, PAGE))) == 3
    [shown] = (await thread_of(client, visitor=THIRD_VISITOR))["comments"]
    assert (shown["votes_up"], shown["my_vote"]) == (1, "up")
    [shown] = (await thread_of(client, visitor=VISITOR))["comments"]
    assert (shown["mine"], shown["my_vote"]) == (True, None)


async def test_new_edited_and_moderated_comments_show_in_the_next_read(
        client, redis_client, settings):
    first = await post_comment(client, "first version")
    store_queued(client, redis_client, settings)
    assert [c["html"] for c in (await thread_of(client))["comments"]] == [
        "<p>first version</p>"]
    response = await client.patch(f"{COMMENTS}/{first['id']}", json={
        "edit_token": first["edit_token"], "body": "second *version*"})
    assert response.status_code == 202
    second = await post_comment(client, "another", visitor=OTHER_VISITOR)
    store_queued(client, redis_client, settings)
    thread = await thread_of(client)
    assert [c["html"] for c in thread["comments"]] == ["<p>second <em>version</em></p>",
                                                       "<p>another</p>"]
    moderate(redis_client, client.app.extensions["ovation"].database, [second["id"]],
             "rejected")
    assert [c["id"] for c in (await thread_of(client))["comments"]] == [first["id"]]


async def test_a_comment_stored_while_a_reader_builds_the_thread_shows_next(
        client, redis_client, settings, monkeypatch):
    """Found by the reads benchmark: a reader built the thread from SQL, the listener stored a
    comment and dropped the cached thread, then the reader cached its older thread, which
    every reader was served for an hour."""
    first = await post_comment(client, "first")
    store_queued(client, redis_client, settings)
    second = await post_comment(client, "second", visitor=OTHER_VISITOR)  # queued only
    read_from_sql = comment_store.thread

    def read_then_listener_stores(*args):
        stored = read_from_sql(*args)
        store_queued(client, redis_client, settings)  # commits, drops the cached thread
        return stored

    monkeypatch.setattr(comment_store, "thread", read_then_listener_stores)
    assert [c["id"] for c in (await thread_of(client))["comments"]] == [first["id"]]
    monkeypatch.setattr(comment_store, "thread", read_from_sql)
    assert [c["id"] for c in (await thread_of(client))["comments"]] == [first["id"],
                                                                        second["id"]]


async def test_a_thread_cached_by_an_older_version_is_read_and_rebuilt(client, redis_client,
                                                                       settings):
    accepted = await post_comment(client, "stored")
    store_queued(client, redis_client, settings)
    stored = get_comment(client.app.extensions["ovation"].database, accepted["id"])
    # The format before build ids: the JSON list alone.
    redis_client.set(cache.thread_key(SITE, PAGE), json.dumps([stored.as_cache_entry()]))
    assert [c["id"] for c in (await thread_of(client))["comments"]] == [accepted["id"]]
    build_id, entries = cache.decode_thread(redis_client.get(cache.thread_key(SITE, PAGE)))
    assert len(build_id) == cache.BUILD_ID_LENGTH and [e["id"] for e in entries] == [
        accepted["id"]]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_openapi_still_declares_the_thread_answer(client):
    spec = await (await client.get("/openapi.json")).get_json()
    read = spec["paths"]["/api/v1/sites/{site}/comments"]["get"]
    assert {"200", "400", "403", "404", "503"} <= set(read["responses"])
    schema = read["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["title"] == "ThreadResponse"
    assert list(schema["properties"]) == sorted(ThreadResponse.model_fields)
    assert schema["properties"]["comments"]["items"]["$ref"].endswith("/CommentModel")
    parameters = {p["name"]: p for p in read["parameters"] if p["in"] == "query"}
    assert set(parameters) == {"path", "sort", "limit", "offset", "visitor"}
    assert parameters["path"]["required"] is True


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_thread_route_keeps_its_cors_and_origin_rules(client):
    response = await client.get(COMMENTS, query_string={"path": PAGE},
                                headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    refused = await client.get(f"{API}/comments", query_string={"path": PAGE},
                               headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
