"""Double opt-in, unsubscribe and the browser push, through the web app and a real SMTP server.

The web app runs in process (Quart's test client) on the private Redis and SQL; the notifier
runs in process too; e-mails go to aiosmtpd on loopback and their links are followed.
"""

from __future__ import annotations

import asyncio
import json
import re
from urllib.parse import urlsplit

import pytest

from appliance.events import LiveEvent
from appliance.notify.links import make_token
from appliance.services.moderation import moderate
from appliance.services.visitors import visitor_hash
from appliance.workers.listener import handle_publish
from tests.notify.conftest import (
    ORIGIN,
    SITE,
    SQLITE_ONLY,
    cid,
    make_notifier,
    pump,
    store_comment,
)
from tests.web.conftest import assert_error
from web.app import create_app

ANN = "ann@example.org"
ANN_VISITOR, BOB_VISITOR = "visitor-ann-1", "visitor-bob-1"


@pytest.fixture
async def web(notify_settings, database, registry, blog):
    settings = notify_settings()
    quart_app = create_app(settings, registry)
    quart_app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = 0.01
    async with quart_app.test_app() as test_app:
        yield settings, test_app.test_client()


def link_in(message, action: str) -> str:
    """The path and query of the e-mail's link for `action` (to follow with the test client)."""
    text = message.get_body(("plain",)).get_content()
    url = re.search(rf"http://127\.0\.0\.1:8700(/notifications/{action}\?token=\S+)", text)
    assert url, text
    return url.group(1)


def ann_and_bob(redis_client, database, settings, reply_n: int = 2,
                ann_email: str = ANN) -> None:
    """Ann comments (asking for replies if she gives an e-mail); Bob replies."""
    key = settings.hashing_key()
    store_comment(redis_client, database, cid(1), author="Ann", email=ann_email,
                  notify_replies=bool(ann_email), visitor=visitor_hash(key, SITE, ANN_VISITOR))
    store_comment(redis_client, database, cid(reply_n), author="Bob", parent=cid(1),
                  body=f"Bob's reply {reply_n}", visitor=visitor_hash(key, SITE, BOB_VISITOR))


async def test_a_reply_waits_for_confirmation_then_reaches_the_author(
        web, redis_client, database, smtp_server):
    settings, client = web
    notifier = make_notifier(redis_client, database, settings)
    mails = smtp_server.recorder
    ann_and_bob(redis_client, database, settings)
    pump(notifier, lambda: mails.to(ANN))
    [confirmation] = mails.to(ANN)
    assert confirmation["Subject"] == "Confirm that you want replies to your comments from " \
                                      "A <b>blog</b>"
    assert "Bob" not in confirmation.get_body(("plain",)).get_content()  # no content before
    for _ in range(3):
        notifier.run_once(block_ms=20)
    assert len(mails.to(ANN)) == 1  # the reply is held

    confirm = link_in(confirmation, "confirm")
    page = await client.get(confirm)
    assert page.status_code == 200 and '<form method="post">' in await page.get_data(True)
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    done = await client.post(confirm)
    assert done.status_code == 200 and "Confirmed" in await done.get_data(True)

    pump(notifier, lambda: len(mails.to(ANN)) == 2)
    reply = mails.to(ANN)[1]
    assert reply["Subject"] == "Bob replied to your comment on “/p” (A <b>blog</b>)"
    assert reply["X-Ovation-Idempotency-Key"] == f"reply:{cid(2)}"
    assert "Bob's reply 2" in reply.get_body(("plain",)).get_content()
    assert reply["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = reply["List-Unsubscribe"].strip("<>")
    assert unsubscribe.startswith("http://127.0.0.1:8700/notifications/unsubscribe?token=")

    # RFC 8058 one-click: the mail client POSTs to the header's URL.
    parts = urlsplit(unsubscribe)
    gone = await client.post(f"{parts.path}?{parts.query}",
                             form={"List-Unsubscribe": "One-Click"})
    assert gone.status_code == 200 and "Unsubscribed" in await gone.get_data(True)
    store_comment(redis_client, database, cid(3), author="Bob", parent=cid(1), body="more",
                  visitor=visitor_hash(settings.hashing_key(), SITE, BOB_VISITOR))
    for _ in range(5):
        notifier.run_once(block_ms=20)
    assert len(mails.to(ANN)) == 2


async def test_unsubscribing_before_confirming_drops_the_held_reply(
        web, redis_client, database, smtp_server):
    settings, client = web
    notifier = make_notifier(redis_client, database, settings)
    ann_and_bob(redis_client, database, settings)
    pump(notifier, lambda: smtp_server.recorder.to(ANN))
    token = make_token(settings.hashing_key(), "unsubscribe", SITE, ANN, "all")
    assert (await client.post(f"/notifications/unsubscribe?token={token}")).status_code == 200
    [confirmation] = smtp_server.recorder.to(ANN)
    confirm = link_in(confirmation, "confirm")
    assert (await client.post(confirm)).status_code == 200  # clicked later after all
    for _ in range(5):
        notifier.run_once(block_ms=20)
    assert len(smtp_server.recorder.to(ANN)) == 1  # the dropped reply stays dropped


async def test_a_reader_subscribes_to_new_posts_with_double_opt_in(
        web, redis_client, database, smtp_server):
    settings, client = web
    notifier = make_notifier(redis_client, database, settings)
    reader, mails = "Reader@Example.org", smtp_server.recorder
    for _ in range(2):  # asked twice: one confirmation e-mail
        response = await client.post(f"/api/v1/sites/{SITE}/subscriptions",
                                     headers={"Origin": ORIGIN}, json={"email": reader})
        assert response.status_code == 202
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert (await response.get_json())["status"] == "confirmation_sent"
    pump(notifier, lambda: mails.to("reader@example.org"))
    handle_publish(database, redis_client, "1-0", {"site": SITE, "path": "/first",
                                                   "title": "First <i>post</i>"})
    for _ in range(5):
        notifier.run_once(block_ms=20)
    assert len(mails.to("reader@example.org")) == 1  # not confirmed: no post e-mail
    assert (await client.post(link_in(mails.to("reader@example.org")[0],
                                      "confirm"))).status_code == 200
    handle_publish(database, redis_client, "2-0", {"site": SITE, "path": "/second",
                                                   "title": "Second <i>post</i>"})
    pump(notifier, lambda: len(mails.to("reader@example.org")) == 2)
    post = mails.to("reader@example.org")[1]
    assert post["Subject"] == "New post on A <b>blog</b>: “Second <i>post</i>”"
    assert "https://blog.example/second" in post.get_body(("plain",)).get_content()
    assert "Second &lt;i&gt;post&lt;/i&gt;" in post.get_body(("html",)).get_content()
    assert "unsubscribe?token=" in post["List-Unsubscribe"]


@pytest.mark.parametrize("body", [{"email": "not-an-address"}, {"email": "a@b.c\r\nBcc: x@y.z"},
                                  {"email": "x" * 300 + "@example.org"}, {"email": 5},
                                  {"email": "a@example.org", "list": "everything"},
                                  {"email": "a@example.org", "extra": 1}])
async def test_bad_subscription_requests_are_refused(web, redis_client, body):
    _, client = web
    response = await client.post(f"/api/v1/sites/{SITE}/subscriptions",
                                 headers={"Origin": ORIGIN}, json=body)
    await assert_error(response, 400, "invalid_input")
    assert redis_client.xlen("ov:stream:notifications") == 0


async def test_subscription_requests_are_rate_limited_and_origin_checked(web, redis_client):
    _, client = web
    url = f"/api/v1/sites/{SITE}/subscriptions"
    foreign = await client.post(url, headers={"Origin": "https://evil.example"},
                                json={"email": "a@example.org"})
    await assert_error(foreign, 403, "origin_not_allowed")
    statuses = [(await client.post(url, headers={"Origin": ORIGIN},
                                   json={"email": f"r{n}@example.org"})).status_code
                for n in range(11)]
    assert statuses == [202] * 10 + [429]
    assert redis_client.xlen("ov:stream:notifications") == 10


async def test_altered_expired_or_misused_links_are_refused(web):
    settings, client = web
    key = settings.hashing_key()
    good = make_token(key, "confirm", SITE, ANN, "replies")
    old = make_token(key, "confirm", SITE, ANN, "replies", now=1_000_000)
    payload, _, signature = good.partition(".")
    forged = make_token(b"another key", "confirm", SITE, ANN, "replies")
    for url in (f"/notifications/confirm?token={payload}.{signature[:-2]}AA",
                f"/notifications/confirm?token={forged}",
                f"/notifications/confirm?token={old}",
                f"/notifications/unsubscribe?token={good}",  # a confirm link, not this
                "/notifications/confirm?token=", "/notifications/confirm",
                "/notifications/confirm?token=" + "A" * 5000):
        for method in (client.get, client.post):
            await assert_error(await method(url), 400, "invalid_token")


@pytest.mark.parametrize("ann_email", [ANN, ""], ids=["with-email", "without-email"])
async def test_a_reply_reaches_the_authors_open_pages_only(web, redis_client, database,
                                                           ann_email):
    """With or without an e-mail address: a push to open pages mails nobody, so an author
    who gave no address (or did not ask for e-mails) is still told on the page."""
    settings, client = web
    notifier = make_notifier(redis_client, database, settings)
    live = f"/api/v1/sites/{SITE}/live"

    async def frame(ws, timeout: float = 3.0) -> dict:
        return json.loads(await asyncio.wait_for(ws.receive(), timeout))

    async with client.websocket(live, headers={"Origin": ORIGIN}) as ann, \
            client.websocket(live, headers={"Origin": ORIGIN}) as bob:
        for ws, visitor in ((ann, ANN_VISITOR), (bob, BOB_VISITOR)):
            await frame(ws)
            await ws.send(json.dumps({"type": "subscribe", "paths": ["/elsewhere"],
                                      "visitor": visitor}))
            assert (await frame(ws))["type"] == "subscribed"
        await asyncio.to_thread(ann_and_bob, redis_client, database, settings,
                                ann_email=ann_email)
        await asyncio.to_thread(pump, notifier, lambda: any(
            d.channel == "browser" and d.status == "delivered"
            for d in notifier.queue.recent()))
        pushed = await frame(ann)
        assert pushed["type"] == "notification" and pushed["kind"] == "reply"
        assert pushed["idempotency_key"] == f"reply:{cid(2)}"
        assert pushed["comment_id"] == cid(2) and pushed["author_name"] == "Bob"
        assert pushed["message"].startswith("Bob replied to your comment")
        assert "visitor" not in pushed and ANN not in json.dumps(pushed)
        with pytest.raises(TimeoutError):
            extra = await asyncio.wait_for(bob.receive(), 0.5)
            pytest.fail(f"Bob got {extra}")
    if not ann_email:
        assert not [d for d in notifier.queue.recent()
                    if d.kind == "reply" and d.channel == "email"]


def test_a_reply_approved_by_a_moderator_reaches_the_author(redis_client, database, blog,
                                                            smtp_server, notify_settings):
    """A reply held for moderation was never notified: the listener tells the parent's author
    only of replies approved on arrival, and approving one queued nothing (found in the
    `platformctl up` walk-through with --moderation all)."""
    settings = notify_settings()
    notifier = make_notifier(redis_client, database, settings)
    key = settings.hashing_key()
    store_comment(redis_client, database, cid(1), author="Ann", email=ANN, notify_replies=True,
                  visitor=visitor_hash(key, SITE, ANN_VISITOR))
    store_comment(redis_client, database, cid(2), author="Bob", parent=cid(1), status="pending",
                  visitor=visitor_hash(key, SITE, BOB_VISITOR))
    pump(notifier, lambda: len(smtp_server.recorder.messages) == 2)  # the owner's two notices
    assert not [d for d in notifier.queue.recent() if d.kind == "reply"]

    moderate(redis_client, database, [cid(2)], "approved")
    pump(notifier, lambda: smtp_server.recorder.to(ANN))  # asked to confirm: double opt-in
    replies = {d.channel: d for d in notifier.queue.recent() if d.kind == "reply"}
    assert replies["browser"].key == replies["email"].key == f"reply:{cid(2)}"
    assert replies["browser"].status == "delivered" and replies["email"].status == "held"

    moderate(redis_client, database, [cid(2)], "approved")  # again: nothing new
    moderate(redis_client, database, [cid(1)], "approved")  # not a reply: nothing
    for _ in range(3):
        notifier.run_once(block_ms=20)
    assert len([d for d in notifier.queue.recent() if d.kind == "reply"]) == 2
    assert len(smtp_server.recorder.to(ANN)) == 1


def test_targeted_live_events_round_trip(database_url):
    event = LiveEvent("notification", SITE, None, {"kind": "reply"}, visitor="abc")
    assert LiveEvent.decode(event.encode()) == event
    assert "visitor" not in LiveEvent("totals", SITE, "/p", {}).encode()


pytestmark = SQLITE_ONLY
