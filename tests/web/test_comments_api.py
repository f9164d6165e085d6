"""The comment routes through the real app (HTTP and the live WebSocket), on real Redis and SQL.

The listener runs in process (`build_listener(...).run_once()`), so a test sees a comment go
from the 202 answer to SQL, to the thread, to the totals and to the live pages. The service's
own rules (depth, edit window, notifications, crash safety) are tested in
tests/appliance/test_comments.py; here is the HTTP contract, and bad input for every field.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import re
import zlib

import pytest

from appliance import events
from appliance.services.moderation import moderate
from appliance.services.sites import add_site
from appliance.services.visitors import visitor_hash
from appliance.storage import comment_store
from appliance.storage.site_store import get_site, update_site
from appliance.workers.listener import build_listener
from tests.web.conftest import API, ORIGIN, OTHER_VISITOR, SITE, VISITOR, assert_error
from web.schemas import CommentAccepted

COMMENTS = f"{API}/comments"
PAGE = "/post"
ID = re.compile(r"^[0-9a-f]{32}$")
JSON = {"Content-Type": "application/json"}
LIVE_TIMEOUT_S = 3.0


# -- helpers -----------------------------------------------------------------------------------

def comment_url(comment_id: str, site: str = SITE) -> str:
    return f"/api/v1/sites/{site}/comments/{comment_id}"


def address_of(visitor: str) -> tuple[str, int]:
    """Each test reader posts from a network of its own: the rate limit is per IP too."""
    crc = zlib.crc32(visitor.encode())
    return f"2001:db8:{crc >> 16:x}:{crc & 0xFFFF:x}::1", 40000


async def post_comment(client, body: str = "Hello", visitor: str = VISITOR, path: str = PAGE,
                       **fields) -> dict:
    response = await client.post(COMMENTS, scope_base={"client": address_of(visitor)}, json={
        "path": path, "body": body, "visitor": visitor, **fields})
    assert response.status_code == 202, await response.get_data(as_text=True)
    return await response.get_json()


async def thread_of(client, path: str = PAGE, **query) -> dict:
    response = await client.get(COMMENTS, query_string={"path": path, **query})
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json()


def queued(redis_client) -> int:
    return redis_client.xlen(events.SUBMISSION_STREAM)


def run_listener(redis_client, database, settings) -> int:
    """Store everything queued, as the listener process would; how many events it handled."""
    listener = build_listener(redis_client, database, settings.comment_max_depth)
    handled = 0
    while count := listener.run_once():
        handled += count
    return handled


def set_site(database, **changes) -> None:
    """Change the site before the app's first (cached) lookup of it."""
    update_site(database, dataclasses.replace(get_site(database, SITE), **changes))


async def frame(ws, timeout: float = LIVE_TIMEOUT_S) -> dict:
    return json.loads(await asyncio.wait_for(ws.receive(), timeout))


async def request(ws, message: dict) -> dict:
    await ws.send(json.dumps(message))
    return await frame(ws)


async def no_frame_within(ws, seconds: float) -> None:
    with pytest.raises(TimeoutError):
        extra = await asyncio.wait_for(ws.receive(), seconds)
        pytest.fail(f"unexpected frame {extra}")


def live_socket(client):
    return client.websocket(f"{API}/live", headers={"Origin": ORIGIN})


# -- posting -----------------------------------------------------------------------------------

async def test_a_comment_is_accepted_with_an_edit_token_then_stored_and_shown(
        client, redis_client, database, settings):
    response = await client.post(COMMENTS, headers={"Origin": ORIGIN}, json={
        "path": "https://blog.example/post/?utm_source=x", "visitor": VISITOR,
        "body": "Nice **post**, see [this](https://x.example/a)",
        "author_name": "Ann", "author_email": "ann@example.org",
        "author_website": "https://ann.example/"})
    assert response.status_code == 202
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    accepted = await response.get_json()
    assert set(accepted) == {"id", "path", "status", "edit_token", "html", "created_at",
                             "editable_until"}
    # The route encodes the answer itself (no quart-schema validation): it must still be
    # exactly what /openapi.json documents.
    assert response.mimetype == "application/json"
    assert CommentAccepted.model_validate(accepted).model_dump() == accepted
    assert ID.match(accepted["id"]) and accepted["path"] == PAGE
    assert accepted["status"] == "approved" and len(accepted["edit_token"]) >= 24
    assert accepted["html"] == ('<p>Nice <strong>post</strong>, see <a href="https://x.example/a"'
                                ' rel="nofollow ugc noopener">this</a></p>')
    created = dt.datetime.fromisoformat(accepted["created_at"].rstrip("Z"))
    until = dt.datetime.fromisoformat(accepted["editable_until"].rstrip("Z"))
    assert until - created == dt.timedelta(seconds=settings.comment_edit_window_s)

    assert queued(redis_client) == 1
    assert comment_store.get_comment(database, accepted["id"]) is None  # not stored yet
    assert (await thread_of(client))["comments"] == []
    assert run_listener(redis_client, database, settings) == 1

    thread = await thread_of(client, visitor=VISITOR)
    assert thread["path"] == PAGE and thread["total"] == 1 and thread["next_offset"] is None
    [shown] = thread["comments"]
    expected = {
        "id": accepted["id"], "parent_id": None, "depth": 0, "author_name": "Ann",
        "author_website": "https://ann.example/", "avatar_seed": shown["avatar_seed"],
        "html": accepted["html"], "status": "approved", "votes_up": 0, "votes_down": 0,
        "created_at": accepted["created_at"], "edited_at": None, "mine": True}
    assert {key: shown.get(key) for key in expected} == expected
    private = {"author_email", "visitor_hash", "ip_hash", "edit_token_hash", "body_markdown"}
    assert not private & set(shown), shown
    assert "ann@example.org" not in json.dumps(thread)
    assert len(shown["avatar_seed"]) == 16 and "ann" not in shown["avatar_seed"]
    assert (await thread_of(client, visitor=OTHER_VISITOR))["comments"][0]["mine"] is False
    stored = comment_store.get_comment(database, accepted["id"])
    assert stored.author_email == "ann@example.org" and stored.body_html == accepted["html"]


async def test_a_reply_is_nested_under_its_parent(client, redis_client, database, settings):
    parent = await post_comment(client, "Question?")
    reply = await post_comment(client, "Answer.", visitor=OTHER_VISITOR, parent_id=parent["id"])
    run_listener(redis_client, database, settings)
    comments = (await thread_of(client))["comments"]
    assert [(c["id"], c["parent_id"], c["depth"]) for c in comments] == [
        (parent["id"], None, 0), (reply["id"], parent["id"], 1)]


async def test_a_reply_may_follow_its_parent_before_the_listener_stores_it(
        client, redis_client, database, settings):
    parent = await post_comment(client, "Fresh")
    reply = await post_comment(client, "Quick reply", visitor=OTHER_VISITOR,
                               parent_id=parent["id"])
    run_listener(redis_client, database, settings)
    assert comment_store.get_comment(database, reply["id"]).parent_id == parent["id"]


async def test_a_reply_to_another_page_is_refused(client, redis_client, database, settings):
    parent = await post_comment(client, "On the post", path="/elsewhere")
    run_listener(redis_client, database, settings)
    response = await client.post(COMMENTS, json={"path": PAGE, "body": "Reply",
                                                 "visitor": OTHER_VISITOR,
                                                 "parent_id": parent["id"]})
    error = await assert_error(response, 400, "unknown_parent")
    assert error["details"] == {"field": "parent_id"}
    assert queued(redis_client) == 1


async def test_the_same_comment_twice_is_a_409(client, redis_client):
    await post_comment(client, "Same words")
    response = await client.post(COMMENTS, json={"path": PAGE + "/", "body": "  Same words ",
                                                 "visitor": VISITOR})
    await assert_error(response, 409, "duplicate_comment")
    assert queued(redis_client) == 1
    await post_comment(client, "Same words", visitor=OTHER_VISITOR)  # another reader may
    await post_comment(client, "Same words", path="/other")  # and so may the same on another page


async def test_the_honeypot_answers_202_and_stores_nothing(client, redis_client, database,
                                                           settings):
    response = await client.post(COMMENTS, json={"path": PAGE, "body": "Buy pills",
                                                 "visitor": VISITOR,
                                                 "hp": "https://spam.example"})
    assert response.status_code == 202
    trapped = await response.get_json()
    assert trapped["status"] == "pending" and trapped["html"] == "" and ID.match(trapped["id"])
    assert queued(redis_client) == 0
    assert run_listener(redis_client, database, settings) == 0
    assert (await thread_of(client, visitor=VISITOR))["comments"] == []
    # The trapped comment has no edit token on record either.
    response = await client.delete(comment_url(trapped["id"]),
                                   json={"edit_token": trapped["edit_token"]})
    await assert_error(response, 404, "unknown_comment")


async def test_posting_is_rate_limited_per_visitor_with_retry_after(client, redis_client,
                                                                    settings):
    for n in range(settings.comment_rate_limit):
        await post_comment(client, f"comment {n}")
    response = await client.post(COMMENTS, json={"path": PAGE, "body": "one too many",
                                                 "visitor": VISITOR})
    error = await assert_error(response, 429, "rate_limited")
    retry = int(response.headers["Retry-After"])
    assert 0 < retry <= settings.comment_rate_window_s
    assert error["details"] == {"retry_after_s": retry}
    assert queued(redis_client) == settings.comment_rate_limit
    await post_comment(client, "another reader", visitor=OTHER_VISITOR)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_ipv6_clients_are_limited_per_slash_64(client, redis_client, settings):
    async def post_from(address: str, visitor: str, body: str):
        return await client.post(COMMENTS, scope_base={"client": (address, 40000)}, json={
            "path": PAGE, "body": body, "visitor": visitor})

    for n in range(settings.comment_rate_limit):  # one household, a new visitor id each time
        response = await post_from(f"2001:db8:1:2::{n + 1:x}", f"visitor-house-{n}", f"hi {n}")
        assert response.status_code == 202
    response = await post_from("2001:db8:1:2:ffff::9", "visitor-house-new", "sock puppet")
    await assert_error(response, 429, "rate_limited")
    response = await post_from("2001:db8:1:3::1", "visitor-neighbour", "next door")
    assert response.status_code == 202  # another /64
    response = await post_from("192.0.2.7", "visitor-ipv4-one", "over IPv4")
    assert response.status_code == 202
    assert queued(redis_client) == settings.comment_rate_limit + 2


async def test_a_banned_visitor_is_refused(client, redis_client, database, settings):
    comment_store.add_ban(database, SITE, "visitor",
                          visitor_hash(settings.hashing_key(), SITE, VISITOR), "spam")
    response = await client.post(COMMENTS, json={"path": PAGE, "body": "Hi",
                                                 "visitor": VISITOR})
    await assert_error(response, 403, "banned")
    assert queued(redis_client) == 0
    await post_comment(client, "Hi", visitor=OTHER_VISITOR)


async def test_a_published_only_site_refuses_comments_on_other_pages(client, database,
                                                                     redis_client):
    add_site(database, "strict", [], accept_unpublished_pages=False)
    response = await client.post("/api/v1/sites/strict/comments", json={
        "path": "/draft", "body": "Hi", "visitor": VISITOR})
    await assert_error(response, 404, "unknown_page")
    assert queued(redis_client) == 0


@pytest.mark.parametrize("body", [
    "see https://x.example", "see www.x.example", "[x](/relative)", "<https://x.example>",
    "mail me: <ann@example.org>", "[x][ref]\n\n[ref]: //x.example/spam",
])
async def test_the_links_mode_holds_every_link_form_for_moderation(client, database, body):
    set_site(database, moderation="links")
    assert (await post_comment(client, body))["status"] == "pending"
    assert (await post_comment(client, "no link, just words", visitor=OTHER_VISITOR)
            )["status"] == "approved"


# -- reading -----------------------------------------------------------------------------------

async def test_threads_sort_and_paginate_top_level_comments(client, redis_client, database,
                                                            settings):
    roots = [(await post_comment(client, f"root {n}", visitor=f"visitor-root-{n}"))["id"]
             for n in range(5)]
    reply = (await post_comment(client, "reply to root 0", visitor=OTHER_VISITOR,
                                parent_id=roots[0]))["id"]
    run_listener(redis_client, database, settings)

    async def ids(**query) -> tuple[list[str], int | None, int]:
        thread = await thread_of(client, **query)
        return [c["id"] for c in thread["comments"]], thread["next_offset"], thread["total"]

    assert await ids() == ([roots[0], reply, *roots[1:]], None, 6)
    assert await ids(sort="oldest", limit=2) == ([roots[0], reply, roots[1]], 2, 6)
    assert await ids(limit="2", offset="2") == (roots[2:4], 4, 6)
    assert await ids(limit=2, offset=4) == (roots[4:], None, 6)
    assert await ids(offset=5) == ([], None, 6)
    assert await ids(offset=1_000_000) == ([], None, 6)
    assert await ids(sort="newest", limit=3) == (roots[:1:-1], 3, 6)
    assert await ids(sort="newest", limit=3, offset=3) == ([roots[1], roots[0], reply], None, 6)
    assert (await ids(sort="top"))[0][:2] == [roots[0], reply]  # no votes yet: oldest first
    assert (await thread_of(client, path="/post/index.html"))["path"] == PAGE
    assert (await thread_of(client, path="/never/seen")) == {
        "path": "/never/seen", "total": 0, "comments": [], "next_offset": None}


async def test_the_page_size_setting_is_the_default_limit(make_settings, database_url,
                                                          database, registry, redis_client):
    from web.app import create_app

    settings = make_settings(database_url, comment_page_size=2)
    add_site(database, SITE, [ORIGIN])
    app = create_app(settings, registry)
    app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = 0.01
    async with app.test_app() as test_app:
        client = test_app.test_client()
        for n in range(3):
            await post_comment(client, f"root {n}", visitor=f"visitor-root-{n}")
        run_listener(redis_client, database, settings)
        thread = await thread_of(client)
        assert len(thread["comments"]) == 2 and thread["next_offset"] == 2
        assert len((await thread_of(client, limit=3))["comments"]) == 3


async def test_pending_comments_are_shown_only_to_their_author(client, redis_client, database,
                                                               settings):
    set_site(database, moderation="all")
    pending = await post_comment(client, "Wait for me")
    assert pending["status"] == "pending"
    run_listener(redis_client, database, settings)
    assert await thread_of(client) == {"path": PAGE, "total": 0, "comments": [],
                                       "next_offset": None}
    assert (await thread_of(client, visitor=OTHER_VISITOR))["comments"] == []
    mine = await thread_of(client, visitor=VISITOR)
    assert [(c["id"], c["status"], c["mine"]) for c in mine["comments"]] == [
        (pending["id"], "pending", True)]
    assert mine["total"] == 0
    totals = await (await client.get(f"{API}/totals", query_string={"path": PAGE})).get_json()
    assert totals["comments"] == 0
    moderate(redis_client, database, [pending["id"]], "approved")
    shown = await thread_of(client, visitor=OTHER_VISITOR)
    assert [(c["id"], c["status"]) for c in shown["comments"]] == [(pending["id"], "approved")]


async def test_totals_routes_count_approved_comments(client, redis_client, database, settings):
    await post_comment(client, "one")
    await post_comment(client, "two", visitor=OTHER_VISITOR)
    await post_comment(client, "elsewhere", path="/other")
    assert (await (await client.get(f"{API}/totals?path=/post")).get_json())["comments"] == 0
    run_listener(redis_client, database, settings)
    one = await (await client.get(f"{API}/totals", query_string={"path": "/post/"})).get_json()
    assert one["comments"] == 2
    response = await client.post(f"{API}/totals/batch",
                                 json={"paths": ["/post", "/other", "/none", "/post"]})
    pages = (await response.get_json())["pages"]
    assert [(page["path"], page["comments"]) for page in pages] == [
        ("/post", 2), ("/other", 1), ("/none", 0), ("/post", 2)]


# -- editing and deleting ----------------------------------------------------------------------

async def test_the_author_edits_then_deletes_with_the_edit_token(client, redis_client, database,
                                                                 settings):
    accepted = await post_comment(client, "First version", author_name="Ann")
    reply = await post_comment(client, "A reply", visitor=OTHER_VISITOR,
                               parent_id=accepted["id"])
    run_listener(redis_client, database, settings)
    response = await client.patch(comment_url(accepted["id"]), headers={"Origin": ORIGIN},
                                  json={"edit_token": accepted["edit_token"],
                                        "body": "Second *version*"})
    assert response.status_code == 202
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert await response.get_json() == {"id": accepted["id"], "status": "edited",
                                         "html": "<p>Second <em>version</em></p>"}
    run_listener(redis_client, database, settings)
    edited = (await thread_of(client))["comments"][0]
    assert edited["html"] == "<p>Second <em>version</em></p>" and edited["edited_at"]

    response = await client.delete(comment_url(accepted["id"]),
                                   json={"edit_token": accepted["edit_token"]})
    assert response.status_code == 202
    assert await response.get_json() == {"id": accepted["id"], "status": "deleted", "html": ""}
    run_listener(redis_client, database, settings)
    thread = await thread_of(client, visitor=VISITOR)
    assert [(c["id"], c["status"], c["html"], c["author_name"]) for c in thread["comments"]] == [
        (accepted["id"], "deleted", "", ""), (reply["id"], "approved", "<p>A reply</p>", "")]
    assert thread["total"] == 1
    assert comment_store.get_comment(database, accepted["id"]).body_markdown == ""


async def test_a_deleted_comment_cannot_be_edited_with_its_token(client, redis_client, database,
                                                                 settings):
    # Found by an audit: a PATCH within the window after the DELETE restored the text.
    accepted = await post_comment(client, "Regrettable words")
    run_listener(redis_client, database, settings)
    response = await client.delete(comment_url(accepted["id"]),
                                   json={"edit_token": accepted["edit_token"]})
    assert response.status_code == 202
    edit = {"edit_token": accepted["edit_token"], "body": "Regrettable words"}
    error = await assert_error(await client.patch(comment_url(accepted["id"]), json=edit), 409,
                               "comment_deleted")
    assert "deleted" in error["message"]
    run_listener(redis_client, database, settings)
    await assert_error(await client.patch(comment_url(accepted["id"]), json=edit), 409,
                       "comment_deleted")
    assert queued(redis_client) == 2  # the comment and its delete, no edit
    stored = comment_store.get_comment(database, accepted["id"])
    assert (stored.status, stored.body_markdown) == ("deleted", "")


async def test_an_edit_is_possible_before_the_listener_stored_the_comment(
        client, redis_client, database, settings):
    accepted = await post_comment(client, "Typo")
    response = await client.patch(comment_url(accepted["id"]),
                                  json={"edit_token": accepted["edit_token"], "body": "Fixed"})
    assert response.status_code == 202
    run_listener(redis_client, database, settings)
    assert comment_store.get_comment(database, accepted["id"]).body_html == "<p>Fixed</p>"


async def test_a_wrong_edit_token_is_refused_and_changes_nothing(client, redis_client, database,
                                                                 settings):
    accepted = await post_comment(client, "Mine")
    run_listener(redis_client, database, settings)
    other = await post_comment(client, "Theirs", visitor=OTHER_VISITOR)
    for method, payload in (("PATCH", {"edit_token": "not-the-token", "body": "Hacked"}),
                            ("DELETE", {"edit_token": "not-the-token"}),
                            ("PATCH", {"edit_token": other["edit_token"], "body": "Hacked"}),
                            ("DELETE", {"edit_token": other["edit_token"]})):
        response = await client.open(comment_url(accepted["id"]), method=method, json=payload)
        await assert_error(response, 403, "invalid_edit_token")
    assert queued(redis_client) == 2
    run_listener(redis_client, database, settings)
    assert comment_store.get_comment(database, accepted["id"]).body_html == "<p>Mine</p>"


async def test_unknown_comment_ids_are_a_404(client, redis_client, database, settings):
    add_site(database, "other", [])
    accepted = await post_comment(client, "On blog")
    run_listener(redis_client, database, settings)
    for url in (comment_url("0" * 32), comment_url(accepted["id"], site="other"),
                comment_url("nope"), comment_url(accepted["id"].upper()),
                comment_url(accepted["id"] + "0")):
        response = await client.patch(url, json={"edit_token": accepted["edit_token"],
                                                 "body": "x"})
        await assert_error(response, 404, "unknown_comment")
        response = await client.delete(url, json={"edit_token": accepted["edit_token"]})
        await assert_error(response, 404, "unknown_comment")
    assert queued(redis_client) == 1


async def test_cors_preflight_allows_patch_and_delete_from_an_allowed_origin(client):
    accepted = await post_comment(client, "Preflight me")
    for method in ("PATCH", "DELETE"):
        response = await client.options(comment_url(accepted["id"]), headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type"})
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        allowed = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
        assert {method, "OPTIONS"} <= allowed
        assert response.headers["Access-Control-Allow-Headers"].lower() == "content-type"
        assert "Origin" in response.headers["Vary"]
    response = await client.options(COMMENTS, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    response = await client.options(comment_url(accepted["id"]), headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "DELETE"})
    assert "Access-Control-Allow-Origin" not in response.headers
    response = await client.delete(comment_url(accepted["id"]),
                                   headers={"Origin": "https://evil.example"},
                                   json={"edit_token": accepted["edit_token"]})
    await assert_error(response, 403, "origin_not_allowed")


async def test_openapi_documents_the_comment_routes(client):
    spec = await (await client.get("/openapi.json")).get_json()
    routes = spec["paths"]
    assert set(routes["/api/v1/sites/{site}/comments"]) >= {"get", "post"}
    assert set(routes["/api/v1/sites/{site}/comments/{comment_id}"]) >= {"patch", "delete"}
    patch = routes["/api/v1/sites/{site}/comments/{comment_id}"]["patch"]
    assert {"202", "400", "403", "404", "409", "429"} <= set(patch["responses"])
    post = routes["/api/v1/sites/{site}/comments"]["post"]
    assert {"202", "400", "403", "404", "409", "429"} <= set(post["responses"])


# -- the live socket ---------------------------------------------------------------------------

async def test_a_comment_over_the_socket_is_accepted(client, redis_client, database, settings):
    async with live_socket(client) as ws:
        assert (await frame(ws))["type"] == "hello"
        answer = await request(ws, {"type": "comment", "id": "c1", "path": "/post/",
                                    "body": "Over the *socket*", "visitor": VISITOR,
                                    "author_name": "Ann"})
        assert answer["type"] == "comment_accepted" and answer["id"] == "c1", answer
        comment = answer["comment"]
        assert comment["status"] == "approved" and comment["path"] == PAGE
        assert comment["html"] == "<p>Over the <em>socket</em></p>"
        assert ID.match(comment["id"]) and len(comment["edit_token"]) >= 24
        again = await request(ws, {"type": "comment", "id": "c2", "path": PAGE,
                                   "body": "Over the *socket*", "visitor": VISITOR})
        assert (again["type"], again["code"], again["id"]) == ("error", "duplicate_comment",
                                                               "c2")
        bad = await request(ws, {"type": "comment", "path": PAGE, "body": "x",
                                 "visitor": VISITOR, "status": "approved"})
        assert (bad["type"], bad["code"]) == ("error", "invalid_input")
        honeypot = await request(ws, {"type": "comment", "path": PAGE, "body": "spam",
                                      "visitor": OTHER_VISITOR, "hp": "x"})
        assert honeypot["type"] == "comment_accepted"
        assert await request(ws, {"type": "ping"}) == {"type": "pong"}
    assert queued(redis_client) == 1
    run_listener(redis_client, database, settings)
    assert [c["id"] for c in (await thread_of(client))["comments"]] == [comment["id"]]
    # The edit token from the socket works over HTTP.
    response = await client.delete(comment_url(comment["id"]),
                                   json={"edit_token": comment["edit_token"]})
    assert response.status_code == 202


async def test_live_comment_events_reach_only_subscribers_of_the_page(
        client, redis_client, database, settings):
    async with live_socket(client) as watcher, live_socket(client) as elsewhere:
        await frame(watcher)
        await frame(elsewhere)
        await request(watcher, {"type": "subscribe", "paths": [PAGE]})
        await request(elsewhere, {"type": "subscribe", "paths": ["/other"]})

        accepted = await post_comment(client, "Live **one**", author_name="Ann",
                                      author_email="ann@example.org")
        await no_frame_within(watcher, 0.2)  # queued, not yet stored: nothing to announce
        run_listener(redis_client, database, settings)
        pushed = await frame(watcher)
        assert (pushed["type"], pushed["path"], pushed["count"]) == ("comment", PAGE, 1)
        shown = pushed["comment"]
        assert shown["id"] == accepted["id"] and shown["html"] == accepted["html"]
        assert shown["author_name"] == "Ann" and shown["mine"] is False
        assert "visitor_hash" not in shown and "author_email" not in shown
        assert "ann@example.org" not in json.dumps(pushed)

        await client.patch(comment_url(accepted["id"]),
                           json={"edit_token": accepted["edit_token"], "body": "Live two"})
        run_listener(redis_client, database, settings)
        edited = await frame(watcher)
        assert edited["type"] == "comment_edited" and edited["path"] == PAGE
        assert (edited["id"], edited["html"], edited["count"]) == (accepted["id"],
                                                                   "<p>Live two</p>", 1)
        assert edited["edited_at"]

        await client.delete(comment_url(accepted["id"]),
                            json={"edit_token": accepted["edit_token"]})
        run_listener(redis_client, database, settings)
        assert await frame(watcher) == {"type": "comment_deleted", "path": PAGE,
                                        "id": accepted["id"], "count": 0}

        spam = await post_comment(client, "Buy now", visitor=OTHER_VISITOR)
        run_listener(redis_client, database, settings)
        assert (await frame(watcher))["type"] == "comment"
        moderate(redis_client, database, [spam["id"]], "spam")
        assert await frame(watcher) == {"type": "comment_removed", "path": PAGE,
                                        "id": spam["id"], "count": 0}

        await no_frame_within(elsewhere, 0.3)


async def test_a_pending_comment_is_not_announced(client, redis_client, database, settings):
    set_site(database, moderation="all")
    async with live_socket(client) as watcher:
        await frame(watcher)
        await request(watcher, {"type": "subscribe", "paths": [PAGE]})
        await post_comment(client, "Hold me")
        run_listener(redis_client, database, settings)
        await no_frame_within(watcher, 0.5)


# -- bad input ---------------------------------------------------------------------------------

def raw(data: bytes | str, **headers) -> dict:
    return {"data": data, "headers": {**JSON, **headers}}


GOOD_POST = {"path": PAGE, "body": "Hello", "visitor": VISITOR}
GOOD_EDIT = {"edit_token": "{token}", "body": "Edited"}
GOOD_DELETE = {"edit_token": "{token}"}
ONE = comment_url("{id}")


def post_body(**changes) -> dict:
    """The good new comment with `changes`; a change to None removes the field."""
    payload = {**GOOD_POST, **changes}
    return {"json": {key: value for key, value in payload.items() if value is not None}}


def edit_body(**changes) -> dict:
    payload = {**GOOD_EDIT, **changes}
    return {"json": {key: value for key, value in payload.items() if value is not None}}


def delete_body(**changes) -> dict:
    payload = {**GOOD_DELETE, **changes}
    return {"json": {key: value for key, value in payload.items() if value is not None}}


def case(id_: str, method: str, url: str, kwargs: dict, status: int, code: str):
    return pytest.param(method, url, kwargs, status, code, id=id_)


NULL_FIELD = '{{"path": "/post", "body": "Hello", "visitor": "visitor-aaaa", "{}": null}}'
LONG_RAW = "/" + "a" * 4096
NOT_ALLOWED = {"Origin": "https://evil.example"}

POST_CASES = [
    case("post no body", "POST", COMMENTS, {}, 400, "invalid_input"),
    case("post empty body", "POST", COMMENTS, raw(b""), 400, "invalid_json"),
    case("post not JSON", "POST", COMMENTS, raw("body=hi&path=/post"), 400, "invalid_json"),
    case("post truncated JSON", "POST", COMMENTS, raw('{"path": "/post", '), 400,
         "invalid_json"),
    case("post non-UTF-8", "POST", COMMENTS, raw(b'{"body": "\xff\xfe"}'), 400, "invalid_json"),
    case("post deeply nested", "POST", COMMENTS, raw("[" * 20000 + "]" * 20000), 400,
         "invalid_json"),
    case("post JSON array", "POST", COMMENTS, {"json": [GOOD_POST]}, 400, "invalid_input"),
    case("post JSON null", "POST", COMMENTS, raw("null"), 400, "invalid_input"),
    case("post JSON string", "POST", COMMENTS, {"json": "Hello"}, 400, "invalid_input"),
    case("post empty object", "POST", COMMENTS, {"json": {}}, 400, "invalid_input"),
    case("post form", "POST", COMMENTS, {"form": GOOD_POST}, 400, "invalid_input"),
    case("post JSON not declared", "POST", COMMENTS,
         {"data": json.dumps(GOOD_POST), "headers": {"Content-Type": "text/plain"}}, 400,
         "invalid_input"),
    case("post unknown field status", "POST", COMMENTS, post_body(status="approved"), 400,
         "invalid_input"),
    case("post unknown field id", "POST", COMMENTS, post_body(id="f" * 32), 400,
         "invalid_input"),
    case("post unknown field type", "POST", COMMENTS, post_body(type="comment"), 400,
         "invalid_input"),
    case("post over 64 KiB", "POST", COMMENTS, post_body(body="a" * 70_000), 413,
         "payload_too_large"),
    # path
    case("path missing", "POST", COMMENTS, post_body(path=None), 400, "invalid_input"),
    case("path empty", "POST", COMMENTS, post_body(path=""), 400, "invalid_input"),
    case("path blank", "POST", COMMENTS, post_body(path="   "), 400, "invalid_path"),
    case("path a number", "POST", COMMENTS, post_body(path=1), 400, "invalid_input"),
    case("path a list", "POST", COMMENTS, post_body(path=["/post"]), 400, "invalid_input"),
    case("path null", "POST", COMMENTS, raw(NULL_FIELD.format("path")), 400, "invalid_input"),
    case("path over 4096 raw", "POST", COMMENTS, post_body(path=LONG_RAW), 400,
         "invalid_input"),
    case("path too long normalised", "POST", COMMENTS, post_body(path="/" + "a" * 2000), 400,
         "invalid_path"),
    case("path NUL", "POST", COMMENTS, post_body(path="/a\x00b"), 400, "invalid_path"),
    case("path encoded newline", "POST", COMMENTS, post_body(path="/a%0Ab"), 400,
         "invalid_path"),
    case("path bad percent", "POST", COMMENTS, post_body(path="/%ff"), 400, "invalid_path"),
    # body
    case("body missing", "POST", COMMENTS, post_body(body=None), 400, "invalid_input"),
    case("body empty", "POST", COMMENTS, post_body(body=""), 400, "invalid_input"),
    case("body blank", "POST", COMMENTS, post_body(body="  \n\t "), 400, "invalid_input"),
    case("body a number", "POST", COMMENTS, post_body(body=42), 400, "invalid_input"),
    case("body true", "POST", COMMENTS, post_body(body=True), 400, "invalid_input"),
    case("body a list", "POST", COMMENTS, post_body(body=["Hello"]), 400, "invalid_input"),
    case("body an object", "POST", COMMENTS, post_body(body={"md": "Hello"}), 400,
         "invalid_input"),
    case("body null", "POST", COMMENTS, raw(NULL_FIELD.format("body").replace(
        '"body": "Hello", ', "")), 400, "invalid_input"),
    case("body over the maximum length", "POST", COMMENTS, post_body(body="a" * 10_001), 400,
         "invalid_input"),
    case("body only an image", "POST", COMMENTS, post_body(body="![](https://x.example/a.png)"),
         400, "invalid_input"),
    case("body only an empty link", "POST", COMMENTS, post_body(body="[](https://x.example)"),
         400, "invalid_input"),
    case("body lone surrogate", "POST", COMMENTS,
         raw('{"path": "/post", "body": "\\ud800", "visitor": "visitor-aaaa"}'), 400,
         "invalid_input"),
    # visitor
    case("visitor missing", "POST", COMMENTS, post_body(visitor=None), 400, "invalid_input"),
    case("visitor too short", "POST", COMMENTS, post_body(visitor="short"), 400,
         "invalid_input"),
    case("visitor too long", "POST", COMMENTS, post_body(visitor="v" * 65), 400,
         "invalid_input"),
    case("visitor bad chars", "POST", COMMENTS, post_body(visitor="visitor aaaa"), 400,
         "invalid_input"),
    case("visitor a number", "POST", COMMENTS, post_body(visitor=12345678), 400,
         "invalid_input"),
    case("visitor null", "POST", COMMENTS, raw(NULL_FIELD.format("visitor").replace(
        '"visitor": "visitor-aaaa", ', "")), 400, "invalid_input"),
    # author_name
    case("name a number", "POST", COMMENTS, post_body(author_name=7), 400, "invalid_input"),
    case("name a list", "POST", COMMENTS, post_body(author_name=["Ann"]), 400,
         "invalid_input"),
    case("name null", "POST", COMMENTS, raw(NULL_FIELD.format("author_name")), 400,
         "invalid_input"),
    case("name too long", "POST", COMMENTS, post_body(author_name="A" * 201), 400,
         "invalid_input"),
    # author_email
    case("email a number", "POST", COMMENTS, post_body(author_email=1), 400, "invalid_input"),
    case("email null", "POST", COMMENTS, raw(NULL_FIELD.format("author_email")), 400,
         "invalid_input"),
    case("email too long", "POST", COMMENTS,
         post_body(author_email="a" * 64 + "@" + "b" * 186 + ".org"), 400, "invalid_input"),
    case("email no at", "POST", COMMENTS, post_body(author_email="not-an-email"), 400,
         "invalid_input"),
    case("email no dot", "POST", COMMENTS, post_body(author_email="a@b"), 400,
         "invalid_input"),
    case("email with space", "POST", COMMENTS, post_body(author_email="a b@c.example"), 400,
         "invalid_input"),
    case("email with angle brackets", "POST", COMMENTS,
         post_body(author_email="<a@b.example>"), 400, "invalid_input"),
    case("email with quote", "POST", COMMENTS, post_body(author_email='a"@b.example'), 400,
         "invalid_input"),
    case("email two at", "POST", COMMENTS, post_body(author_email="a@b@c.example"), 400,
         "invalid_input"),
    case("email with NUL", "POST", COMMENTS, post_body(author_email="a\x00@b.example"), 400,
         "invalid_input"),
    # author_website
    case("website a number", "POST", COMMENTS, post_body(author_website=1), 400,
         "invalid_input"),
    case("website null", "POST", COMMENTS, raw(NULL_FIELD.format("author_website")), 400,
         "invalid_input"),
    case("website too long", "POST", COMMENTS,
         post_body(author_website="https://x.example/" + "a" * 490), 400, "invalid_input"),
    case("website javascript", "POST", COMMENTS, post_body(author_website="javascript:alert(1)"),
         400, "invalid_input"),
    case("website ftp", "POST", COMMENTS, post_body(author_website="ftp://x.example"), 400,
         "invalid_input"),
    case("website no host", "POST", COMMENTS, post_body(author_website="https:///a"), 400,
         "invalid_input"),
    case("website no scheme", "POST", COMMENTS, post_body(author_website="x.example"), 400,
         "invalid_input"),
    case("website scheme-relative", "POST", COMMENTS, post_body(author_website="//x.example"),
         400, "invalid_input"),
    case("website with space", "POST", COMMENTS,
         post_body(author_website="https://x.example/a b"), 400, "invalid_input"),
    case("website with quote", "POST", COMMENTS,
         post_body(author_website="https://x.example/\"a"), 400, "invalid_input"),
    case("website with NUL", "POST", COMMENTS,
         post_body(author_website="https://x.example/\x00"), 400, "invalid_input"),
    case("website unparsable", "POST", COMMENTS, post_body(author_website="http://[::1"), 400,
         "invalid_input"),
    # parent_id
    case("parent a number", "POST", COMMENTS, post_body(parent_id=1), 400, "invalid_input"),
    case("parent empty", "POST", COMMENTS, post_body(parent_id=""), 400, "invalid_input"),
    case("parent too short", "POST", COMMENTS, post_body(parent_id="a" * 31), 400,
         "invalid_input"),
    case("parent too long", "POST", COMMENTS, post_body(parent_id="a" * 33), 400,
         "invalid_input"),
    case("parent upper case", "POST", COMMENTS, post_body(parent_id="A" * 32), 400,
         "invalid_input"),
    case("parent not hex", "POST", COMMENTS, post_body(parent_id="g" * 32), 400,
         "invalid_input"),
    case("parent with NUL", "POST", COMMENTS, post_body(parent_id="\x00" * 32), 400,
         "invalid_input"),
    case("parent a list", "POST", COMMENTS, post_body(parent_id=["a" * 32]), 400,
         "invalid_input"),
    case("parent unknown", "POST", COMMENTS, post_body(parent_id="0" * 32), 400,
         "unknown_parent"),
    # notify_replies and hp
    case("notify a string", "POST", COMMENTS, post_body(notify_replies="true"), 400,
         "invalid_input"),
    case("notify a number", "POST", COMMENTS, post_body(notify_replies=1), 400,
         "invalid_input"),
    case("notify null", "POST", COMMENTS, raw(NULL_FIELD.format("notify_replies")), 400,
         "invalid_input"),
    case("hp a number", "POST", COMMENTS, post_body(hp=1), 400, "invalid_input"),
    case("hp null", "POST", COMMENTS, raw(NULL_FIELD.format("hp")), 400, "invalid_input"),
    case("hp too long", "POST", COMMENTS, post_body(hp="x" * 1001), 400, "invalid_input"),
    # site and origin
    case("post unknown site", "POST", "/api/v1/sites/nope/comments", post_body(), 404,
         "unknown_site"),
    case("post origin not allowed", "POST", COMMENTS,
         {**post_body(), "headers": NOT_ALLOWED}, 403, "origin_not_allowed"),
]

THREAD_CASES = [
    case("thread no path", "GET", COMMENTS, {}, 400, "invalid_input"),
    case("thread empty path", "GET", f"{COMMENTS}?path=", {}, 400, "invalid_input"),
    case("thread path twice", "GET", f"{COMMENTS}?path=/a&path=/b", {}, 400, "invalid_input"),
    case("thread unknown parameter", "GET", f"{COMMENTS}?path=/post&page=2", {}, 400,
         "invalid_input"),
    case("thread path NUL", "GET", f"{COMMENTS}?path=/a%00b", {}, 400, "invalid_path"),
    case("thread path bad percent", "GET", f"{COMMENTS}?path=/%25ff", {}, 400, "invalid_path"),
    case("thread path over 4096 raw", "GET", f"{COMMENTS}?path={LONG_RAW}", {}, 400,
         "invalid_input"),
    case("thread path too long normalised", "GET", f"{COMMENTS}?path=/{'a' * 2000}", {}, 400,
         "invalid_path"),
    case("sort unknown", "GET", f"{COMMENTS}?path=/post&sort=random", {}, 400,
         "invalid_input"),
    case("sort upper case", "GET", f"{COMMENTS}?path=/post&sort=OLDEST", {}, 400,
         "invalid_input"),
    case("sort empty", "GET", f"{COMMENTS}?path=/post&sort=", {}, 400, "invalid_input"),
    case("sort twice", "GET", f"{COMMENTS}?path=/post&sort=oldest&sort=newest", {}, 400,
         "invalid_input"),
    case("limit 0", "GET", f"{COMMENTS}?path=/post&limit=0", {}, 400, "invalid_input"),
    case("limit 501", "GET", f"{COMMENTS}?path=/post&limit=501", {}, 400, "invalid_input"),
    case("limit negative", "GET", f"{COMMENTS}?path=/post&limit=-1", {}, 400,
         "invalid_input"),
    case("limit not a number", "GET", f"{COMMENTS}?path=/post&limit=ten", {}, 400,
         "invalid_input"),
    case("limit a fraction", "GET", f"{COMMENTS}?path=/post&limit=1.5", {}, 400,
         "invalid_input"),
    case("limit empty", "GET", f"{COMMENTS}?path=/post&limit=", {}, 400, "invalid_input"),
    case("limit huge", "GET", f"{COMMENTS}?path=/post&limit={10**30}", {}, 400,
         "invalid_input"),
    case("offset negative", "GET", f"{COMMENTS}?path=/post&offset=-1", {}, 400,
         "invalid_input"),
    case("offset too large", "GET", f"{COMMENTS}?path=/post&offset=1000001", {}, 400,
         "invalid_input"),
    case("offset not a number", "GET", f"{COMMENTS}?path=/post&offset=x", {}, 400,
         "invalid_input"),
    case("visitor empty", "GET", f"{COMMENTS}?path=/post&visitor=", {}, 400, "invalid_input"),
    case("thread visitor too short", "GET", f"{COMMENTS}?path=/post&visitor=short", {}, 400,
         "invalid_input"),
    case("thread visitor bad chars", "GET", f"{COMMENTS}?path=/post&visitor=visitor%20aaaa",
         {}, 400, "invalid_input"),
    case("thread unknown site", "GET", "/api/v1/sites/nope/comments?path=/post", {}, 404,
         "unknown_site"),
    case("thread origin not allowed", "GET", f"{COMMENTS}?path=/post",
         {"headers": NOT_ALLOWED}, 403, "origin_not_allowed"),
]

EDIT_CASES = [
    case("edit no body", "PATCH", ONE, {}, 400, "invalid_input"),
    case("edit empty body", "PATCH", ONE, raw(b""), 400, "invalid_json"),
    case("edit not JSON", "PATCH", ONE, raw("body=x"), 400, "invalid_json"),
    case("edit non-UTF-8", "PATCH", ONE, raw(b'{"body": "\xff"}'), 400, "invalid_json"),
    case("edit JSON array", "PATCH", ONE, {"json": [GOOD_EDIT]}, 400, "invalid_input"),
    case("edit JSON null", "PATCH", ONE, raw("null"), 400, "invalid_input"),
    case("edit empty object", "PATCH", ONE, {"json": {}}, 400, "invalid_input"),
    case("edit unknown field", "PATCH", ONE, edit_body(author_name="Mallory"), 400,
         "invalid_input"),
    case("edit unknown field status", "PATCH", ONE, edit_body(status="approved"), 400,
         "invalid_input"),
    case("edit over 64 KiB", "PATCH", ONE, edit_body(body="a" * 70_000), 413,
         "payload_too_large"),
    case("edit token missing", "PATCH", ONE, edit_body(edit_token=None), 400, "invalid_input"),
    case("edit token empty", "PATCH", ONE, edit_body(edit_token=""), 400, "invalid_input"),
    case("edit token a number", "PATCH", ONE, edit_body(edit_token=1), 400, "invalid_input"),
    case("edit token a list", "PATCH", ONE, edit_body(edit_token=["{token}"]), 400,
         "invalid_input"),
    case("edit token too long", "PATCH", ONE, edit_body(edit_token="t" * 101), 400,
         "invalid_input"),
    case("edit token wrong", "PATCH", ONE, edit_body(edit_token="wrong"), 403,
         "invalid_edit_token"),
    case("edit body missing", "PATCH", ONE, edit_body(body=None), 400, "invalid_input"),
    case("edit body empty", "PATCH", ONE, edit_body(body=""), 400, "invalid_input"),
    case("edit body blank", "PATCH", ONE, edit_body(body=" \n "), 400, "invalid_input"),
    case("edit body a number", "PATCH", ONE, edit_body(body=1), 400, "invalid_input"),
    case("edit body too long", "PATCH", ONE, edit_body(body="a" * 10_001), 400,
         "invalid_input"),
    case("edit body only an image", "PATCH", ONE, edit_body(body="![](https://x.example/a.png)"),
         400, "invalid_input"),
    case("edit unknown id", "PATCH", comment_url("0" * 32), edit_body(), 404,
         "unknown_comment"),
    case("edit malformed id", "PATCH", comment_url("nope"), edit_body(), 404,
         "unknown_comment"),
    case("edit id with NUL", "PATCH", comment_url("%00" * 32), edit_body(), 404,
         "unknown_comment"),
    case("edit id too long", "PATCH", comment_url("{id}0"), edit_body(), 404,
         "unknown_comment"),
    case("edit unknown site", "PATCH", comment_url("{id}", "nope"), edit_body(), 404,
         "unknown_site"),
    case("edit origin not allowed", "PATCH", ONE, {**edit_body(), "headers": NOT_ALLOWED}, 403,
         "origin_not_allowed"),
]

DELETE_CASES = [
    case("delete no body", "DELETE", ONE, {}, 400, "invalid_input"),
    case("delete empty body", "DELETE", ONE, raw(b""), 400, "invalid_json"),
    case("delete not JSON", "DELETE", ONE, raw("edit_token=x"), 400, "invalid_json"),
    case("delete JSON array", "DELETE", ONE, {"json": ["{token}"]}, 400, "invalid_input"),
    case("delete empty object", "DELETE", ONE, {"json": {}}, 400, "invalid_input"),
    case("delete unknown field", "DELETE", ONE, delete_body(body="x"), 400, "invalid_input"),
    case("delete token empty", "DELETE", ONE, delete_body(edit_token=""), 400,
         "invalid_input"),
    case("delete token a number", "DELETE", ONE, delete_body(edit_token=1), 400,
         "invalid_input"),
    case("delete token null", "DELETE", ONE, raw('{"edit_token": null}'), 400,
         "invalid_input"),
    case("delete token too long", "DELETE", ONE, delete_body(edit_token="t" * 101), 400,
         "invalid_input"),
    case("delete token wrong", "DELETE", ONE, delete_body(edit_token="wrong"), 403,
         "invalid_edit_token"),
    case("delete unknown id", "DELETE", comment_url("f" * 32), delete_body(), 404,
         "unknown_comment"),
    case("delete malformed id", "DELETE", comment_url("%2e%2e"), delete_body(), 404,
         "unknown_comment"),
    case("delete id upper case", "DELETE", comment_url("{ID}"), delete_body(), 404,
         "unknown_comment"),
    case("delete unknown site", "DELETE", comment_url("{id}", "nope"), delete_body(), 404,
         "unknown_site"),
    case("delete origin not allowed", "DELETE", ONE, {**delete_body(), "headers": NOT_ALLOWED},
         403, "origin_not_allowed"),
]

METHOD_CASES = [
    case("PUT comments", "PUT", COMMENTS, post_body(), 405, "method_not_allowed"),
    case("DELETE comments", "DELETE", COMMENTS, delete_body(), 405, "method_not_allowed"),
    case("PATCH comments", "PATCH", COMMENTS, edit_body(), 405, "method_not_allowed"),
    case("GET one comment", "GET", ONE, {}, 405, "method_not_allowed"),
    case("POST one comment", "POST", ONE, post_body(), 405, "method_not_allowed"),
    case("PUT one comment", "PUT", ONE, edit_body(), 405, "method_not_allowed"),
    case("under one comment", "GET", f"{ONE}/replies", {}, 404, "not_found"),
]


def fill(value, comment: dict):
    """`{id}`, `{ID}` and `{token}` in a case's URL or body: the existing comment's."""
    if isinstance(value, str):
        return (value.replace("{id}", comment["id"]).replace("{ID}", comment["id"].upper())
                .replace("{token}", comment["edit_token"]))
    if isinstance(value, dict):
        return {key: fill(item, comment) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, comment) for item in value]
    return value


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # SQL refuses nothing
@pytest.mark.parametrize(("method", "url", "kwargs", "status", "code"), [
    *POST_CASES, *THREAD_CASES, *EDIT_CASES, *DELETE_CASES, *METHOD_CASES])
async def test_bad_input_is_refused_with_a_stable_code_and_queues_nothing(
        client, redis_client, database, settings, method, url, kwargs, status, code):
    existing = await post_comment(client, "The original", visitor=OTHER_VISITOR)
    response = await client.open(fill(url, existing), method=method, **fill(kwargs, existing))
    await assert_error(response, status, code)
    assert queued(redis_client) == 1  # only the original
    assert len(list(redis_client.scan_iter("ov:ctok:*"))) == 1
    assert run_listener(redis_client, database, settings) == 1
    stored = comment_store.list_comments(database, SITE)
    assert [(c.id, c.body_html) for c in stored] == [(existing["id"], "<p>The original</p>")]


async def test_validation_errors_name_the_field(client):
    response = await client.post(COMMENTS, **post_body(author_website="ftp://x.example"))
    error = await assert_error(response, 400, "invalid_input")
    assert error["details"] == {"field": "author_website"}
    response = await client.post(COMMENTS, **post_body(body=None, visitor=None))
    error = await assert_error(response, 400, "invalid_input")
    assert sorted(error["details"]["fields"]) == ["body", "visitor"]


async def test_control_characters_never_break_storage(client, redis_client, database, settings):
    """PostgreSQL refuses NUL in text: a comment accepted with 202 must still be storable."""
    accepted = await post_comment(client, "before\x00after", author_name="A\x00nn\x07")
    edited = await post_comment(client, "to edit", visitor=OTHER_VISITOR)
    response = await client.patch(comment_url(edited["id"]), json={
        "edit_token": edited["edit_token"], "body": "edited\x00body"})
    assert response.status_code == 202
    response = await client.patch(comment_url("%00" * 32), json={
        "edit_token": edited["edit_token"], "body": "x"})
    await assert_error(response, 404, "unknown_comment")
    response = await client.get(COMMENTS, query_string={"path": PAGE, "visitor": "\x00" * 12})
    await assert_error(response, 400, "invalid_input")
    assert run_listener(redis_client, database, settings) == 3
    assert redis_client.xlen(events.SUBMISSION_STREAM + ":dead") == 0
    stored = comment_store.get_comment(database, accepted["id"])
    assert "\x00" not in stored.body_markdown and stored.author_name == "Ann"
    assert stored.body_html == accepted["html"] == "<p>before\ufffdafter</p>"
    assert "\x00" not in comment_store.get_comment(database, edited["id"]).body_markdown
