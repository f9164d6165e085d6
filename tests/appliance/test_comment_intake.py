"""Comment intake: the web renders once and queues in one script, the listener stores what one
read brought in one transaction. Real Redis, real SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

from appliance import events
from appliance.errors import InvalidInput, RateLimited
from appliance.services.comments import CommentInput, CommentService
from appliance.services.sites import add_site
from appliance.services.sql_runner import SqlRunner
from appliance.storage import comment_cache as cache
from appliance.storage import comment_store
from appliance.storage.redis_client import async_redis
from appliance.storage.site_store import get_site
from appliance.workers.listener import build_listener
from appliance.workers.stream_consumer import StreamConsumer

ANN = "visitor-ann-0001"


@pytest.fixture
async def service(settings, database):
    add_site(database, "blog", ["https://blog.example"])
    client = async_redis(settings)
    runner = SqlRunner()
    yield CommentService(client, database, settings, runner.run)
    await client.aclose()
    runner.close()


@pytest.fixture
def listener(settings, database, redis_client):
    return build_listener(redis_client, database, settings.comment_max_depth)


def queued_events(redis_client) -> list[dict]:
    return [json.loads(fields["body"]) for _, fields in
            redis_client.xrange(events.SUBMISSION_STREAM)]


def submit(service, site, body: str, visitor: str, number: int = 1, **fields):
    return service.submit(site, CommentInput(path="/post", body=body, visitor=visitor, **fields),
                          f"203.0.113.{number}")


async def test_the_queued_comment_carries_the_html_the_author_was_answered(
        service, database, listener, redis_client):
    site = get_site(database, "blog")
    accepted = await submit(service, site, "Some **bold** words", ANN)
    [event] = queued_events(redis_client)
    assert event["body_html"] == accepted.html == "<p>Some <strong>bold</strong> words</p>"
    assert redis_client.hget(cache.token_key(accepted.id), "path") == "/post"
    assert listener.run_once() == 1
    assert comment_store.get_comment(database, accepted.id).body_html == accepted.html


async def test_a_refused_comment_leaves_nothing_behind(service, database, redis_client,
                                                       make_settings, database_url):
    site = get_site(database, "blog")
    await submit(service, site, "once", ANN)
    with pytest.raises(InvalidInput) as duplicate:
        await submit(service, site, "once", ANN)
    assert duplicate.value.code == "duplicate_comment"
    assert len(queued_events(redis_client)) == 1
    strict = CommentService(service._redis, database,
                            make_settings(database_url, comment_rate_limit=2),
                            service._run_sql)
    with pytest.raises(RateLimited):  # the duplicate counted too: this is the third
        await submit(strict, site, "a new one", ANN)
    assert len(queued_events(redis_client)) == 1
    assert len(list(redis_client.scan_iter("ov:dup:blog|/post|*", count=1000))) == 1
    assert len(list(redis_client.scan_iter("ov:ctok:*"))) == 1


async def test_an_event_queued_without_html_is_rendered_by_the_listener(
        database, listener, redis_client, service):
    site = get_site(database, "blog")
    accepted = await submit(service, site, "*queued* by an older web", ANN)
    [(message_id, fields)] = redis_client.xrange(events.SUBMISSION_STREAM)
    body = json.loads(fields["body"])
    del body["body_html"]
    redis_client.xdel(events.SUBMISSION_STREAM, message_id)
    redis_client.xadd(events.SUBMISSION_STREAM, {"kind": "comment", "body": json.dumps(body)})
    assert listener.run_once() == 1
    assert comment_store.get_comment(database, accepted.id).body_html == \
        "<p><em>queued</em> by an older web</p>"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # SQLite's statement trace
async def test_one_read_of_new_comments_is_stored_in_one_transaction(
        service, database, listener, redis_client):
    site = get_site(database, "blog")
    accepted = [await submit(service, site, f"comment {n}", f"visitor-{n:04d}", n)
                for n in range(1, 9)]
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(events.LIVE_CHANNEL)
    statements: list[str] = []
    with database.connection_context():
        database.connection().set_trace_callback(statements.append)
        try:
            assert listener.run_once() == 8
        finally:
            database.connection().set_trace_callback(None)
    commits = [s for s in statements if s.strip().upper().startswith("COMMIT")]
    assert len(commits) == 1
    assert {c.id for c in comment_store.get_comments(database, [a.id for a in accepted])} \
        == {a.id for a in accepted}
    announced = []
    while (message := pubsub.get_message(timeout=0.5)) is not None or not announced:
        if message is not None:
            announced.append(events.LiveEvent.decode(message["data"]))
    assert [(e.kind, e.data["comment"]["id"], e.data["count"]) for e in announced] == [
        ("comment", a.id, 8) for a in accepted]
    assert redis_client.get(cache.count_key("blog", "/post")) == "8"
    assert not redis_client.xpending(events.SUBMISSION_STREAM, events.LISTENER_GROUP)["pending"]
    pubsub.close()


async def test_a_bad_comment_in_a_read_spoils_only_itself(service, database, listener,
                                                          redis_client):
    site = get_site(database, "blog")
    good = [await submit(service, site, f"good {n}", f"visitor-{n:04d}", n) for n in range(3)]
    [*_, (_, fields)] = redis_client.xrange(events.SUBMISSION_STREAM)
    bad = {**json.loads(fields["body"]), "id": "f" * 32, "site": "no-such-site"}
    redis_client.xadd(events.SUBMISSION_STREAM, {"kind": "comment", "body": json.dumps(bad)})
    after = await submit(service, site, "after the bad one", "visitor-0009", 9)
    assert listener.run_once() == 4
    stored = {c.id for c in comment_store.get_comments(database, [*[g.id for g in good],
                                                                  after.id, bad["id"]])}
    assert stored == {*[g.id for g in good], after.id}
    dead = redis_client.xrange(StreamConsumer.dead_letter_stream(events.SUBMISSION_STREAM))
    assert [json.loads(f["body"])["id"] for _, f in dead] == [bad["id"]]
    assert not redis_client.xpending(events.SUBMISSION_STREAM, events.LISTENER_GROUP)["pending"]


async def test_an_edit_read_with_its_comment_is_applied_after_it(service, database, listener,
                                                                 redis_client):
    site = get_site(database, "blog")
    first = await submit(service, site, "first", ANN, 1)
    second = await submit(service, site, "second", "visitor-0002", 2)
    await service.edit(site, first.id, first.edit_token, "first, *edited*")
    third = await submit(service, site, "third", "visitor-0003", 3)
    assert listener.run_once() == 4
    stored = {c.id: c for c in comment_store.get_comments(database,
                                                          [first.id, second.id, third.id])}
    assert stored[first.id].body_html == "<p>first, <em>edited</em></p>"
    assert set(stored) == {first.id, second.id, third.id}


async def test_a_reply_read_with_its_parent_is_placed_under_it(service, database, listener):
    site = get_site(database, "blog")
    parent = await submit(service, site, "parent", ANN, 1)
    reply = await submit(service, site, "reply", "visitor-0002", 2, parent_id=parent.id)
    deeper = await submit(service, site, "deeper", "visitor-0003", 3, parent_id=reply.id)
    top = await submit(service, site, "another top-level one", "visitor-0004", 4)
    assert listener.run_once() == 4
    stored = {c.id: (c.parent_id, c.depth) for c in comment_store.get_comments(
        database, [parent.id, reply.id, deeper.id, top.id])}
    assert stored == {parent.id: (None, 0), reply.id: (parent.id, 1),
                      deeper.id: (reply.id, 2), top.id: (None, 0)}
