"""Comments end to end inside the appliance: submit (web rules) -> stream -> listener -> SQL,
caches, live events and notifications. Real Redis, real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading

import pytest

from appliance import events
from appliance.errors import Conflict, Forbidden, InvalidInput, RateLimited, UnknownComment
from appliance.services import publishing
from appliance.services.comments import CommentInput, CommentService
from appliance.services.moderation import moderate
from appliance.services.sites import add_site
from appliance.services.sql_runner import SqlRunner
from appliance.storage import comment_cache, comment_store
from appliance.storage.models import Comment, Page, ProcessedEvent
from appliance.storage.redis_client import async_redis, sync_redis
from appliance.storage.site_store import get_site, update_site
from appliance.workers.listener import build_listener

ANN = "visitor-ann-0001"
BOB = "visitor-bob-0002"


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


def next_live_event(pubsub, timeout_s: float = 3.0) -> events.LiveEvent:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)  # None for the ignored subscribe reply
        if message is not None:
            return events.LiveEvent.decode(message["data"])
    raise AssertionError("no live event arrived")


def site_with(database, **changes):
    update_site(database, dataclasses.replace(get_site(database, "blog"), **changes))
    return get_site(database, "blog")


def post(service, site, body="Hello", visitor=ANN, ip=None, **fields):
    """Submit as `visitor`, from an address of its own unless `ip` is given."""
    ip = ip or f"203.0.113.{sum(visitor.encode()) % 250 + 1}"
    return service.submit(site, CommentInput(path="/post", body=body, visitor=visitor, **fields),
                          ip)


async def test_a_comment_is_queued_stored_counted_and_announced(service, database, listener,
                                                                redis_client):
    site = get_site(database, "blog")
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(events.LIVE_CHANNEL)
    accepted = await post(service, site, body="Nice **post**", author_name="Ann",
                          author_email="ann@example.org", author_website="https://ann.example")
    assert accepted.status == "approved" and len(accepted.edit_token) >= 24
    assert accepted.html == "<p>Nice <strong>post</strong></p>"
    assert listener.run_once() == 1
    stored = comment_store.get_comment(database, accepted.id)
    assert stored.body_html == accepted.html and stored.author_email == "ann@example.org"
    assert stored.ip_hash and "203.0.113" not in stored.ip_hash
    thread = await service.thread(site, "/post/", visitor_id=ANN)
    assert thread["total"] == 1 and thread["comments"][0]["mine"] is True
    assert "author_email" not in thread["comments"][0]
    assert "visitor_hash" not in thread["comments"][0]
    assert (await service.counts("blog", ["/post"])) == {"/post": 1}
    event = next_live_event(pubsub)
    assert (event.kind, event.path, event.data["count"]) == ("comment", "/post", 1)
    assert event.data["comment"]["id"] == accepted.id
    pubsub.close()


async def test_replies_nest_up_to_the_maximum_depth(service, database, listener, settings):
    site = get_site(database, "blog")
    parent = None
    ids = []
    for level in range(settings.comment_max_depth + 2):
        accepted = await post(service, site, body=f"level {level}", parent_id=parent,
                              visitor=f"visitor-level-{level}")
        listener.run_once()
        ids.append(accepted.id)
        parent = accepted.id
    depths = [comment_store.get_comment(database, cid).depth for cid in ids]
    deepest = settings.comment_max_depth - 1
    assert depths == [0, 1, 2, 3, deepest, deepest][: len(ids)]
    thread = await service.thread(site, "/post")
    assert [c["id"] for c in thread["comments"]] == ids  # depth-first order


async def test_a_reply_to_an_unknown_parent_is_refused(service, database):
    site = get_site(database, "blog")
    with pytest.raises(InvalidInput) as error:
        await post(service, site, parent_id="0" * 32)
    assert error.value.code == "unknown_parent"


@pytest.mark.parametrize(("mode", "body", "first", "second"), [
    ("open", "plain", "approved", "approved"),
    ("all", "plain", "pending", "pending"),
    ("first_time", "plain", "pending", "approved"),
    ("links", "see https://x.example", "pending", "pending"),
    ("links", "no link here", "approved", "approved"),
])
async def test_moderation_modes(service, database, listener, redis_client, mode, body, first,
                                second):
    site = site_with(database, moderation=mode)
    one = await post(service, site, body=body)
    listener.run_once()
    assert one.status == first
    if first == "pending":
        assert (await service.thread(site, "/post"))["comments"] == []  # others don't see it
        mine = await service.thread(site, "/post", visitor_id=ANN)
        assert [c["id"] for c in mine["comments"]] == [one.id]
        assert mine["comments"][0]["status"] == "pending"
        moderate(redis_client, database, [one.id], "approved")
    visible = await service.thread(site, "/post")
    assert [c["id"] for c in visible["comments"]] == [one.id] and visible["total"] == 1
    two = await post(service, site, body=body + " again")
    assert two.status == second


async def test_moderators_reject_and_mark_spam(service, database, listener, redis_client):
    site = get_site(database, "blog")
    good = await post(service, site, body="good")
    bad = await post(service, site, body="buy pills", visitor=BOB)
    listener.run_once()
    moderate(redis_client, database, [bad.id], "spam")
    thread = await service.thread(site, "/post")
    assert [c["id"] for c in thread["comments"]] == [good.id] and thread["total"] == 1
    assert await service.counts("blog", ["/post"]) == {"/post": 1}
    with pytest.raises(UnknownComment):
        moderate(redis_client, database, ["f" * 32], "approved")
    with pytest.raises(InvalidInput):
        moderate(redis_client, database, [good.id], "burnt")


@pytest.mark.parametrize("status", ["spam", "rejected", "pending"])
async def test_replies_keep_their_place_when_a_moderator_hides_what_they_answer(
        service, database, listener, redis_client, status):
    # Found trying it through `platformctl up`: a reply to a comment later marked as spam
    # vanished from the thread while the page's count still had it.
    site = get_site(database, "blog")
    root = await post(service, site, body="root words", author_name="Ann")
    listener.run_once()
    middle = await post(service, site, body="middle words", visitor=BOB, author_name="Bob",
                        parent_id=root.id)
    listener.run_once()
    leaf = await post(service, site, body="leaf words", visitor="visitor-cat-0003",
                      parent_id=middle.id)
    listener.run_once()
    moderate(redis_client, database, [root.id, middle.id], status)

    thread = await service.thread(site, "/post")
    assert [(c["id"], c["status"], c["html"]) for c in thread["comments"]] == [
        (root.id, "deleted", ""), (middle.id, "deleted", ""),
        (leaf.id, "approved", "<p>leaf words</p>")]
    for placeholder in thread["comments"][:2]:
        assert (placeholder["author_name"], placeholder["author_website"],
                placeholder["avatar_seed"]) == ("", "", "")
    assert thread["total"] == 1 == (await service.counts("blog", ["/post"]))["/post"]
    if status == "pending":  # its author still sees their own comment, as pending
        own = await service.thread(site, "/post", visitor_id=BOB)
        shown = {c["id"]: (c["status"], c["html"], c["mine"]) for c in own["comments"]}
        assert shown[middle.id] == ("pending", "<p>middle words</p>", True)
        assert shown[root.id] == ("deleted", "", False)
    with database.connection_context():
        kept = {c.id: c.status for c in comment_store.get_comments(database, [root.id,
                                                                              middle.id])}
    assert kept == {root.id: status, middle.id: status}  # only shown as placeholders


@pytest.mark.parametrize("status", ["spam", "rejected"])
async def test_an_author_deleting_what_a_moderator_hid_leaves_it_hidden(
        service, database, listener, redis_client, status):
    # Found trying it through `platformctl up`: the author's delete made a spam comment
    # "deleted", so it came back into the thread as a placeholder and left the spam list.
    site = get_site(database, "blog")
    bad = await post(service, site, body="buy pills", visitor=BOB)
    listener.run_once()
    moderate(redis_client, database, [bad.id], status)
    await service.delete(site, bad.id, bad.edit_token)
    assert listener.run_once() == 1
    assert (await service.thread(site, "/post"))["comments"] == []
    stored = comment_store.get_comment(database, bad.id)
    assert (stored.status, stored.body_markdown, stored.body_html) == (status, "", "")


async def test_the_author_edits_and_deletes_with_the_token(service, database, listener):
    site = get_site(database, "blog")
    parent = await post(service, site, body="first version")
    listener.run_once()
    reply = await post(service, site, body="a reply", visitor=BOB, parent_id=parent.id)
    listener.run_once()
    with pytest.raises(Forbidden) as wrong:
        await service.edit(site, parent.id, "not-the-token", "hacked")
    assert wrong.value.code == "invalid_edit_token"
    html = await service.edit(site, parent.id, parent.edit_token, "second *version*")
    assert html == "<p>second <em>version</em></p>"
    listener.run_once()
    stored = comment_store.get_comment(database, parent.id)
    assert stored.body_html == html and stored.edited_at is not None
    await service.delete(site, parent.id, parent.edit_token)
    listener.run_once()
    thread = await service.thread(site, "/post")
    assert [(c["id"], c["status"], c["html"]) for c in thread["comments"]] == [
        (parent.id, "deleted", ""), (reply.id, "approved", "<p>a reply</p>")]
    assert thread["total"] == 1


async def test_the_edit_window_closes(make_settings, database_url, database):
    settings = make_settings(database_url, comment_edit_window_s=0)
    add_site(database, "blog", [])
    client = async_redis(settings)
    runner = SqlRunner()
    service = CommentService(client, database, settings, runner.run)
    site = get_site(database, "blog")
    accepted = await post(service, site)
    build_listener(sync_redis(settings), database).run_once()
    await asyncio.sleep(1.2)
    with pytest.raises(Forbidden) as closed:
        await service.edit(site, accepted.id, accepted.edit_token, "late")
    assert closed.value.code == "edit_window_closed"
    await client.aclose()
    runner.close()


async def test_honeypot_duplicates_rate_limits_and_bans(service, database, listener, settings,
                                                        redis_client):
    site = get_site(database, "blog")
    trapped = await post(service, site, honeypot="http://spam.example")
    assert trapped.status == "pending"
    assert listener.run_once() == 0  # nothing was queued
    await post(service, site, body="same words")
    with pytest.raises(InvalidInput) as duplicate:
        await post(service, site, body="same words")
    assert duplicate.value.code == "duplicate_comment"
    for n in range(settings.comment_rate_limit - 2):  # the refused duplicate counted too
        await post(service, site, body=f"comment {n}")
    with pytest.raises(RateLimited) as limited:
        await post(service, site, body="one too many")
    assert 0 < limited.value.retry_after_s <= settings.comment_rate_window_s
    # The same network under another visitor id is limited too (per IP, not only per visitor).
    with pytest.raises(RateLimited):
        await post(service, site, body="sock puppet", visitor=BOB,
                   ip=f"203.0.113.{sum(ANN.encode()) % 250 + 1}")
    listener.run_once()
    stored = comment_store.list_comments(database, "blog")
    comment_store.add_ban(database, "blog", "visitor", stored[0].visitor_hash, "spam")
    # As every writer of bans does (moderation.ban_author): the web workers' copies of the
    # site's bans are outdated. Without it they would see this ban within ban_list.MAX_AGE_S.
    comment_cache.bans_changed(redis_client, "blog")
    with pytest.raises(Forbidden) as banned:
        await post(service, site, body="after the ban", visitor=ANN, ip="198.51.100.7")
    assert banned.value.code == "banned"


@pytest.mark.parametrize(("field", "value"), [
    ("body", ""), ("body", "   "), ("body", "x" * 10001), ("body", "![](https://x/y.png)"),
    ("author_email", "not-an-email"), ("author_email", "a@b"), ("author_email", "a b@c.de"),
    ("author_website", "javascript:alert(1)"), ("author_website", "ftp://x.example"),
    ("author_website", "https://x.example/\"onmouseover=alert(1)"),
])
async def test_bad_fields_are_refused_and_nothing_is_queued(service, database, listener,
                                                            field, value):
    site = get_site(database, "blog")
    fields = {"body": "hello", field: value}
    with pytest.raises(InvalidInput):
        await service.submit(site, CommentInput(path="/post", visitor=ANN, **fields), None)
    assert listener.run_once() == 0


async def test_notifications_are_enqueued_for_owner_and_replies(service, database, listener,
                                                                redis_client):
    site = site_with(database, owner_email="owner@blog.example")
    parent = await post(service, site, body="question", author_email="ann@example.org",
                        notify_replies=True)
    listener.run_once()
    await post(service, site, body="answer", visitor=BOB, parent_id=parent.id)
    listener.run_once()
    queued = [(fields["kind"], json.loads(fields["body"]))
              for _, fields in redis_client.xrange(events.NOTIFICATION_STREAM)]
    kinds = [(kind, body["to"]) for kind, body in queued]
    assert kinds == [("new_comment", "owner@blog.example"), ("new_comment", "owner@blog.example"),
                     ("reply", "ann@example.org")]
    assert all(body["idempotency_key"] for _, body in queued)


async def test_listener_down_while_comments_arrive_stores_each_exactly_once(
        service, database, settings, redis_client):
    site = get_site(database, "blog")
    accepted = [await post(service, site, body=f"comment {n}", visitor=f"visitor-many-{n:03d}",
                           ip=f"192.0.2.{n}") for n in range(12)]
    listener = build_listener(redis_client, database, settings.comment_max_depth)
    while listener.run_once():
        pass
    with database.connection_context():
        stored = sorted(row.id for row in Comment.select(Comment.id))
    assert stored == sorted(a.id for a in accepted)


async def test_listener_killed_after_commit_before_ack_stores_no_duplicate(
        service, database, settings, redis_client):
    site = get_site(database, "blog")
    accepted = await post(service, site, body="only once")
    crashing = build_listener(redis_client, database, settings.comment_max_depth)
    original = crashing.handlers["comment"]

    def commit_then_die(event_id, body):
        original(event_id, body)  # SQL committed...
        raise SystemExit("killed before XACK")  # ...and the process dies before acknowledging

    crashing.handlers["comment"] = commit_then_die
    with pytest.raises(SystemExit):
        crashing.run_once()
    restarted = build_listener(redis_client, database, settings.comment_max_depth)
    restarted.claim_idle_ms = 0  # the dead consumer's message is claimed at once
    assert restarted.run_once() == 1
    with database.connection_context():
        assert Comment.select().where(Comment.id == accepted.id).count() == 1
    assert (await service.thread(site, "/post"))["total"] == 1
    assert not redis_client.xpending(events.SUBMISSION_STREAM, events.LISTENER_GROUP)["pending"]


async def test_listener_stopped_while_comments_and_publications_arrive_stores_each_once(
        service, database, settings, redis_client):
    site = get_site(database, "blog")
    running = build_listener(redis_client, database, settings.comment_max_depth)
    running.block_ms = 50
    thread = threading.Thread(target=running.run)
    thread.start()
    accepted = [await post(service, site, body="before the stop")]
    published = [publishing.publish(redis_client, database, "blog", "/before", "Before")]
    while True:  # until the running listener took both (bounded by the test's timeout)
        with database.connection_context():
            if Comment.select().count() == 1 and ProcessedEvent.select().count() == 1:
                break
        await asyncio.sleep(0.05)
    running.stop_event.set()
    thread.join()

    # Stopped: comments and publications arrive, interleaved, on both streams.
    for n in range(8):
        accepted.append(await post(service, site, body=f"comment {n}",
                                   visitor=f"visitor-down-{n:03d}", ip=f"192.0.2.{n + 1}"))
        published.append(publishing.publish(redis_client, database, "blog", f"/posts/{n}",
                                            f"Post {n}"))

    restarted = build_listener(redis_client, database, settings.comment_max_depth)
    while restarted.run_once():
        pass
    with database.connection_context():
        stored = sorted(row.id for row in Comment.select(Comment.id))
        pages = {page.path: page.title for page in Page.select() if page.title}
        processed = ProcessedEvent.select().count()
    assert stored == sorted(a.id for a in accepted)  # each once: the id is the primary key
    assert pages == {p.path: p.title for p in published} and processed == len(published)
    kinds = [fields["kind"] for _id, fields in redis_client.xrange(events.NOTIFICATION_STREAM)]
    assert kinds.count("new_post") == len(published)
    for stream in (events.SUBMISSION_STREAM, events.PUBLISH_STREAM):
        assert not redis_client.xpending(stream, events.LISTENER_GROUP)["pending"]


async def test_listener_killed_after_a_publication_commit_before_ack_applies_it_once(
        database, settings, redis_client):
    add_site(database, "news", [])
    publication = publishing.publish(redis_client, database, "news", "/launch", "Launch")
    crashing = build_listener(redis_client, database, settings.comment_max_depth)
    original = crashing.handlers["publish"]

    def commit_then_die(event_id, body):
        original(event_id, body)  # SQL committed and announced...
        raise SystemExit("killed before XACK")  # ...and the process dies before acknowledging

    crashing.handlers["publish"] = commit_then_die
    with pytest.raises(SystemExit):
        crashing.run_once()
    restarted = build_listener(redis_client, database, settings.comment_max_depth)
    restarted.claim_idle_ms = 0  # the dead consumer's message is claimed at once
    assert restarted.run_once() == 1
    with database.connection_context():
        assert [(p.path, p.title) for p in Page.select()] == [("/launch", "Launch")]
        assert ProcessedEvent.select().where(
            ProcessedEvent.event_id == publication.event_id).count() == 1
    notified = [fields["kind"] for _id, fields in
                redis_client.xrange(events.NOTIFICATION_STREAM)]
    assert notified == ["new_post"]  # announced before the crash: not again
    assert not redis_client.xpending(events.PUBLISH_STREAM, events.LISTENER_GROUP)["pending"]


async def test_votes_count_once_per_visitor_flush_to_sql_and_rank_top(
        settings, database, registry, redis_client):
    from appliance.jobs.flush import flush_once
    from appliance.services.counters import CounterService

    add_site(database, "blog", [])
    client = async_redis(settings)
    sql = SqlRunner()
    counters = CounterService(client, database, registry, settings, sql.run)
    service = CommentService(client, database, settings, sql.run, votes=counters)
    site = get_site(database, "blog")
    first = await post(service, site, body="first")
    second = await post(service, site, body="second", visitor=BOB)
    build_listener(redis_client, database).run_once()

    assert (await service.vote(site, second.id, "up", ANN))["up"] == 1
    assert (await service.vote(site, second.id, "up", ANN))["up"] == 1  # once per visitor
    assert (await service.vote(site, second.id, "up", BOB))["up"] == 2
    switched = await service.vote(site, first.id, "down", ANN)
    assert (switched["up"], switched["down"]) == (0, 1)
    flush_once(redis_client, database)  # some votes reach SQL...
    switched = await service.vote(site, first.id, "up", ANN)  # ...and change after the flush
    assert (switched["up"], switched["down"]) == (1, 0)
    withdrawn = await service.vote(site, second.id, "none", BOB)
    assert withdrawn["up"] == 1

    top = await service.thread(site, "/post", sort="top", visitor_id=ANN)
    assert [(c["id"], c["votes_up"], c["votes_down"], c["my_vote"]) for c in top["comments"]] \
        == [(first.id, 1, 0, "up"), (second.id, 1, 0, "up")]
    flush_once(redis_client, database)
    stored = {c.id: (c.votes_up, c.votes_down) for c in comment_store.get_comments(
        database, [first.id, second.id])}
    assert stored == {first.id: (1, 0), second.id: (1, 0)}
    for key in redis_client.scan_iter("ov:{c}:sql:*"):
        redis_client.delete(key)  # cold caches are seeded from the comment rows
    again = await service.thread(site, "/post")
    assert [(c["votes_up"], c["votes_down"]) for c in again["comments"]] == [(1, 0), (1, 0)]
    with pytest.raises(UnknownComment):
        await service.vote(site, "0" * 32, "up", ANN)
    with pytest.raises(InvalidInput):
        await service.vote(site, first.id, "sideways", ANN)
    await client.aclose()
    sql.close()


# -- a deleted comment readers never saw stays unseen; a deleted comment stays deleted -------

@pytest.mark.parametrize("deleted_by", ["author", "moderator"])
async def test_a_pending_comment_deleted_never_shows_as_a_placeholder(
        service, database, listener, redis_client, deleted_by):
    # Found by an audit: deleting a pending comment showed everyone a "[deleted]" placeholder
    # of a comment nobody but its author had ever seen.
    site = site_with(database, moderation="first_time")
    shown = await post(service, site, body="shown", visitor=BOB)
    listener.run_once()
    moderate(redis_client, database, [shown.id], "approved")
    waiting = await post(service, site, body="wait for me")
    assert waiting.status == "pending"
    listener.run_once()
    if deleted_by == "author":
        await service.delete(site, waiting.id, waiting.edit_token)
        assert listener.run_once() == 1
    else:
        moderate(redis_client, database, [waiting.id], "deleted")
    for reader in (None, ANN, BOB):  # nobody sees it, not even its author
        thread = await service.thread(site, "/post", visitor_id=reader)
        assert [(c["id"], c["status"]) for c in thread["comments"]] == [(shown.id, "approved")]
        assert thread["total"] == 1
    assert await service.counts("blog", ["/post"]) == {"/post": 1}
    stored = comment_store.get_comment(database, waiting.id)
    assert (stored.status, stored.body_html, stored.deleted_while_hidden) == ("deleted", "", True)
    with pytest.raises(InvalidInput) as refused:  # nobody can reply to what nobody sees
        await post(service, site, body="a reply", visitor=BOB, parent_id=waiting.id)
    assert refused.value.code == "unknown_parent"


async def test_a_pending_comment_deleted_under_shown_replies_keeps_their_place(
        service, database, listener, redis_client):
    site = get_site(database, "blog")
    root = await post(service, site, body="root words")
    listener.run_once()
    reply = await post(service, site, body="a reply", visitor=BOB, parent_id=root.id)
    listener.run_once()
    moderate(redis_client, database, [root.id], "pending")  # a moderator takes it back
    await service.delete(site, root.id, root.edit_token)  # and its author deletes it
    listener.run_once()
    for reader in (None, ANN):
        thread = await service.thread(site, "/post", visitor_id=reader)
        assert [(c["id"], c["status"], c["html"]) for c in thread["comments"]] == [
            (root.id, "deleted", ""), (reply.id, "approved", "<p>a reply</p>")]
        assert thread["total"] == 1
    # An approved comment deleted stays a placeholder for everyone, as before.
    await service.delete(site, reply.id, reply.edit_token)
    listener.run_once()
    thread = await service.thread(site, "/post")
    assert [(c["id"], c["status"]) for c in thread["comments"]] == [
        (root.id, "deleted"), (reply.id, "deleted")]
    assert thread["total"] == 0


async def test_erasing_a_visitor_shows_none_of_their_hidden_comments(
        service, database, listener, redis_client, settings):
    from appliance.services.privacy import erase_visitor

    site = get_site(database, "blog")
    approved = await post(service, site, body="approved words")
    spam = await post(service, site, body="spam words")
    pending = await post(service, site, body="pending words")
    other = await post(service, site, body="someone else", visitor=BOB)
    listener.run_once()
    moderate(redis_client, database, [spam.id], "spam")
    moderate(redis_client, database, [pending.id], "pending")
    erase_visitor(redis_client, database, settings.hashing_key(), "blog", ANN)

    thread = await service.thread(site, "/post")
    assert [(c["id"], c["status"]) for c in thread["comments"]] == [
        (approved.id, "deleted"), (other.id, "approved")]
    assert thread["total"] == 1 == (await service.counts("blog", ["/post"]))["/post"]
    stored = {c.id: (c.status, c.body_markdown, c.visitor_hash) for c in
              comment_store.get_comments(database, [approved.id, spam.id, pending.id])}
    assert stored == {approved.id: ("deleted", "", ""), spam.id: ("spam", "", ""),
                      pending.id: ("deleted", "", "")}
    listed = [c.id for c in comment_store.list_comments(database, "blog", "spam")]
    assert listed == [spam.id]  # still in the moderators' spam list


@pytest.mark.parametrize("how", ["author", "moderator", "hidden_then_author"])
async def test_a_deleted_comment_cannot_be_edited(service, database, listener, redis_client,
                                                  how):
    # Found by an audit: within the window, a PATCH after a delete restored text into a
    # comment its author deleted, or one a moderator hid and its author then deleted.
    from appliance.workers.comment_handlers import handle_edit

    site = get_site(database, "blog")
    accepted = await post(service, site, body="original words")
    listener.run_once()
    if how == "author":
        await service.delete(site, accepted.id, accepted.edit_token)
        with pytest.raises(Conflict) as early:  # refused before the listener applied it
            await service.edit(site, accepted.id, accepted.edit_token, "back again")
        assert (early.value.code, early.value.status) == ("comment_deleted", 409)
    elif how == "moderator":
        moderate(redis_client, database, [accepted.id], "deleted")
    else:
        moderate(redis_client, database, [accepted.id], "spam")
        await service.delete(site, accepted.id, accepted.edit_token)
    listener.run_once()
    with pytest.raises(Conflict) as refused:
        await service.edit(site, accepted.id, accepted.edit_token, "back again")
    assert refused.value.code == "comment_deleted"
    assert listener.run_once() == 0  # nothing was queued
    # An edit the web queued before it learnt of the delete is not applied by the listener.
    handle_edit(redis_client, database, {"id": accepted.id, "body_markdown": "back again",
                                         "body_html": "<p>back again</p>",
                                         "edited_at": "2099-01-01T00:00:00"})
    stored = comment_store.get_comment(database, accepted.id)
    assert (stored.body_markdown, stored.body_html, stored.edited_at) == ("", "", None)
    assert (await service.thread(site, "/post"))["total"] == 0


async def test_an_edit_queued_before_the_delete_is_applied_then_erased(service, database,
                                                                       listener):
    site = get_site(database, "blog")
    accepted = await post(service, site, body="original words")
    await service.edit(site, accepted.id, accepted.edit_token, "edited words")
    await service.delete(site, accepted.id, accepted.edit_token)
    while listener.run_once():
        pass
    stored = comment_store.get_comment(database, accepted.id)
    assert (stored.status, stored.body_markdown, stored.body_html) == ("deleted", "", "")
    # Deleting again is accepted and changes nothing.
    await service.delete(site, accepted.id, accepted.edit_token)
    assert listener.run_once() == 1
    assert comment_store.get_comment(database, accepted.id).status == "deleted"
