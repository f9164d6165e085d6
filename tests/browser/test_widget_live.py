"""The widget on a static page of another origin, against real server processes: reactions,
comments, and a second reader's window seeing every change live; reconnection after a server
restart, and polling where WebSockets are blocked."""

from __future__ import annotations

import asyncio
import re

import httpx
from playwright.async_api import expect

from tests.browser.conftest import (
    APPLAUSE_CAP,
    COMMENT_PAGE_SIZE,
    MODERATED_SITE,
    open_page,
    widget_page,
)


async def test_like_and_applause_up_to_the_cap_change_live_in_another_window(
        ovation, static_site, new_context):
    url = widget_page(static_site, "reactions", "/posts/reactions/")
    reader = await open_page(await new_context(), url)
    other = await open_page(await new_context(), url)
    like = reader.locator("ovation-widget button[data-reaction=like]")
    other_like = other.locator("ovation-widget button[data-reaction=like]")
    await expect(other.locator("ovation-widget .rx .n").first).to_have_text("2")

    await like.click()
    await expect(like).to_have_attribute("aria-pressed", "true")
    await expect(like.locator(".n")).to_have_text("1")
    await expect(other_like.locator(".n")).to_have_text("1")  # pushed, no reload
    await expect(other_like).to_have_attribute("aria-pressed", "false")

    # Hold the applause button: claps run on by themselves, "+N" shows the burst, and the
    # running total stops at the cap.
    clap = reader.locator("ovation-widget button[data-reaction=applause]")
    box = await clap.bounding_box()
    await reader.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await reader.mouse.down()
    await expect(clap).to_have_attribute("aria-disabled", "true", timeout=10_000)
    await reader.mouse.up()
    await expect(clap.locator(".burst")).to_have_text(f"+{APPLAUSE_CAP}")
    await expect(clap.locator(".you")).to_have_text(f"you: {APPLAUSE_CAP}/{APPLAUSE_CAP}")
    await expect(other.locator("ovation-widget button[data-reaction=applause] .n")).to_have_text(
        str(APPLAUSE_CAP))
    await clap.focus()
    await reader.keyboard.press("Enter")  # over the cap: nothing is sent, the reader is told why
    await expect(reader.locator("ovation-widget .sr[role=status]")).to_have_text(
        re.compile("all the applause you can give"))

    await like.click()  # unlike
    await expect(like).to_have_attribute("aria-pressed", "false")
    await expect(other_like.locator(".n")).to_have_text("0")
    server = ovation.totals("/posts/reactions/")
    assert server["totals"] == {"view": 2, "like": 0, "applause": APPLAUSE_CAP}


async def test_comment_reply_vote_edit_and_delete_are_seen_live(ovation, static_site, new_context):
    url = widget_page(static_site, "comments", "/posts/comments/")
    ann = await open_page(await new_context(), url)
    bob = await open_page(await new_context(), url)
    ann_widget, bob_widget = ann.locator("ovation-widget"), bob.locator("ovation-widget")
    await expect(ann_widget.locator("h2")).to_have_text("0 comments")

    await ann_widget.get_by_label("Your comment").fill(
        "Hello from **Ann** <script>alert(1)</script>")
    await ann_widget.get_by_label("Name (optional)").fill("Ann <b>Example</b>")
    await ann_widget.get_by_label("E-mail (optional, never shown)").fill("ann@example.org")
    # This server sends no e-mail, so the reply opt-in is not offered (test_widget_page.py).
    await ann_widget.get_by_role("button", name="Post comment").click()
    await expect(ann_widget.locator(".msg").first).to_have_text(
        "Thank you! Your comment is posted.")
    mine = ann_widget.locator("li.c").first
    comment_id = await mine.get_attribute("data-id")
    await expect(mine).to_contain_text("yours")
    await expect(mine.locator(".body strong")).to_have_text("Ann")  # Markdown, rendered
    await expect(mine.locator(".body")).to_contain_text("<script>alert(1)</script>")  # as text
    await expect(ann_widget.get_by_label("Your comment")).to_have_value("")

    # Bob is told, and the thread waits for him to ask (no jumping page).
    fresh = bob_widget.locator("button.new")
    await expect(fresh).to_have_text("Show 1 new comment")
    await expect(bob_widget.locator("li.c")).to_have_count(0)
    await expect(bob_widget.locator(".sr[role=status]")).to_have_text("1 new comment")
    await fresh.click()
    theirs = bob_widget.locator(f'li[data-id="{comment_id}"]')
    await expect(theirs.locator(".who")).to_have_text("Ann Example")  # plain text, tags gone
    await expect(theirs).not_to_contain_text("yours")
    await expect(bob_widget.locator("h2")).to_have_text("1 comment")
    await expect(fresh).to_be_hidden()

    await theirs.get_by_role("button", name="Helpful 0", exact=True).click()
    await expect(theirs.get_by_role("button", name="Helpful 1", exact=True)).to_have_attribute(
        "aria-pressed", "true")
    await expect(mine.locator("[data-vote=up]")).to_have_text("▲ Helpful 1")  # live votes

    await theirs.get_by_role("button", name="Reply").click()
    reply_form = theirs.locator("form")
    await expect(reply_form.get_by_label("Your reply to Ann Example")).to_be_focused()
    await reply_form.get_by_label("Your reply to Ann Example").fill("A reply from Bob")
    await reply_form.get_by_role("button", name="Post comment").click()
    bob_reply = bob_widget.locator("li.c").nth(1)
    await expect(bob_reply).to_contain_text("A reply from Bob")
    await expect(bob_reply).to_have_attribute("style", re.compile(r"--depth:\s*1"))
    await expect(ann_widget.locator("button.new")).to_have_text("Show 1 new comment")
    # Ann asked for replies: the notifier's browser channel tells her open page too.
    await expect(ann_widget.locator(".note")).to_contain_text("replied to your comment")
    await ann_widget.locator("button.new").click()
    ann_reply = ann_widget.locator("li.c").nth(1)  # placed right under its parent
    await expect(ann_reply).to_contain_text("A reply from Bob")
    await expect(ann_reply).to_be_focused()
    await expect(ann_widget.locator("h2")).to_have_text("2 comments")

    await mine.get_by_role("button", name="Edit").click()
    editor = mine.get_by_label("Edit")
    await expect(editor).to_have_value("Hello from **Ann** <script>alert(1)</script>")
    await editor.fill("Edited by _Ann_")
    await mine.get_by_role("button", name="Save").click()
    await expect(mine.locator(".body em")).to_have_text("Ann")
    await expect(theirs.locator(".body")).to_have_text("Edited by Ann")  # live
    await expect(theirs).to_contain_text("edited")

    delete = mine.get_by_role("button", name="Delete")
    await delete.click()
    await mine.get_by_role("button", name="Really delete?").click()
    await expect(mine.locator(".body")).to_have_text("This comment was deleted.")
    await expect(theirs.locator(".body")).to_have_text("This comment was deleted.")  # live
    await expect(theirs.locator(".who")).to_have_text("")
    await expect(bob_reply).to_contain_text("A reply from Bob")  # replies keep their place
    await expect(bob_widget.locator("h2")).to_have_text("1 comment")

    thread = httpx.get(ovation.api("/comments"), params={"path": "/posts/comments/"}).json()
    assert [c["status"] for c in thread["comments"]] == ["deleted", "approved"]


async def test_pending_comments_errors_and_load_more(ovation, static_site, new_context):
    url = widget_page(static_site, "moderated", "/posts/held/", f'site="{MODERATED_SITE}"')
    context = await new_context()
    page = await open_page(context, url)
    widget = page.locator("ovation-widget")
    await widget.get_by_role("button", name="Post comment").click()
    await expect(widget.locator(".msg").first).to_have_text("Your comment is empty or too long.")
    await expect(widget.get_by_label("Your comment")).to_be_focused()

    await widget.get_by_label("Your comment").fill("Please approve me")
    await widget.get_by_role("button", name="Post comment").click()
    await expect(widget.locator(".msg").first).to_have_text(
        "Thank you! Your comment appears once a moderator approves it.")
    await expect(widget.locator("li.c .pend")).to_have_text(
        "Awaiting moderation: only you can see it")
    await widget.get_by_label("Your comment").fill("Please approve me")
    await widget.get_by_role("button", name="Post comment").click()
    await expect(widget.locator(".msg").first).to_have_text("You posted this comment already.")

    # Once the listener has stored it, the server knows the visitor's own pending comment, so
    # a reload marks it again. (The listener can lag a moment behind the 202 on a busy machine.)
    visitor = await page.evaluate("localStorage.getItem('ovation.visitor')")
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            thread = await http.get(f"{ovation.url}/api/v1/sites/{MODERATED_SITE}/comments",
                                    params={"path": "/posts/held/", "visitor": visitor})
            if thread.json()["comments"]:
                break
            await asyncio.sleep(0.1)
    await page.reload()
    await expect(page.locator("ovation-widget li.c .pend")).to_be_visible()
    stranger = await open_page(await new_context(), url)
    await expect(stranger.locator("ovation-widget h2")).to_have_text("0 comments")
    await expect(stranger.locator("ovation-widget li.c")).to_have_count(0)

    # Load more: a thread longer than one page.
    long_thread = COMMENT_PAGE_SIZE + 2
    async with httpx.AsyncClient() as http:
        for n in range(long_thread):
            response = await http.post(ovation.api("/comments"), json={
                "path": "/posts/long/", "body": f"Comment number {n}",
                "visitor": f"visitor-{n:04d}"})
            assert response.status_code == 202, response.text
        for _ in range(100):  # the listener stores them moments later
            totals = await http.get(ovation.api("/totals"), params={"path": "/posts/long/"})
            if totals.json()["comments"] == long_thread:
                break
            await asyncio.sleep(0.1)
    page = await open_page(context, widget_page(static_site, "long", "/posts/long/"))
    widget = page.locator("ovation-widget")
    await expect(widget.locator("h2")).to_have_text(f"{long_thread} comments")
    await expect(widget.locator("li.c")).to_have_count(COMMENT_PAGE_SIZE)
    await widget.get_by_role("button", name="Load more comments").click()
    await expect(widget.locator("li.c")).to_have_count(long_thread)
    await expect(widget.get_by_role("button", name="Load more comments")).to_be_hidden()
    await widget.get_by_label("Sort").select_option("newest")
    await expect(widget.locator("li.c").first).to_contain_text(
        f"Comment number {long_thread - 1}")


async def test_the_widget_reconnects_after_a_server_restart(ovation, static_site, new_context):
    url = widget_page(static_site, "restart", "/posts/restart/")
    reader = await open_page(await new_context(), url)
    other = await open_page(await new_context(), url)
    await asyncio.to_thread(ovation.stop_web)
    await expect(reader.locator("ovation-widget")).to_have_attribute(
        "data-state", re.compile("retry|poll"))
    await asyncio.to_thread(ovation.start_web)
    for page in (reader, other):
        await expect(page.locator("ovation-widget")).to_have_attribute(
            "data-state", "live", timeout=20_000)
    await other.locator("ovation-widget button[data-reaction=like]").click()
    await expect(reader.locator("ovation-widget button[data-reaction=like] .n")).to_have_text("1")
    await other.locator("ovation-widget").get_by_label("Your comment").fill("Back again")
    await other.locator("ovation-widget").get_by_role("button", name="Post comment").click()
    await expect(reader.locator("ovation-widget button.new")).to_have_text("Show 1 new comment")


async def test_polling_takes_over_where_websockets_are_blocked(ovation, static_site, new_context):
    url = widget_page(static_site, "blocked", "/posts/blocked/")
    blocked = await new_context()

    async def refuse(socket) -> None:  # like a proxy that accepts and drops every socket
        await socket.close()

    await blocked.route_web_socket(re.compile(".*"), refuse)
    reader = await blocked.new_page()
    await reader.goto(url)
    widget = reader.locator("ovation-widget")
    await expect(widget).to_have_attribute("data-state", "poll", timeout=10_000)
    await expect(widget.locator(".foot")).to_have_text("Updating every few seconds")
    other = await open_page(await new_context(), url)
    await other.locator("ovation-widget button[data-reaction=like]").click()
    await other.locator("ovation-widget").get_by_label("Your comment").fill("Seen by polling")
    await other.locator("ovation-widget").get_by_role("button", name="Post comment").click()
    await expect(widget.locator("button[data-reaction=like] .n")).to_have_text("1", timeout=10_000)
    await expect(widget.locator("button.new")).to_have_text("Show 1 new comment", timeout=10_000)


async def test_a_refused_subscription_is_retried_on_a_new_socket(ovation, static_site, new_context):
    """The server answers `subscribe` with an error frame while Redis restarts; that socket
    follows nothing, so the widget must connect again rather than wait on it for good."""
    url = widget_page(static_site, "refused", "/posts/refused/")
    context = await new_context()
    sockets = 0

    async def refuse_the_first_subscription(socket) -> None:
        nonlocal sockets
        sockets += 1
        if sockets > 1:
            socket.connect_to_server()  # the real server from now on
            return

        def answer(message) -> None:  # what web/routes/live.py sends when Redis is down
            socket.send('{"type": "error", "code": "service_unavailable", '
                        '"message": "Redis is not reachable.", "id": null}')

        socket.on_message(answer)

    await context.route_web_socket(re.compile(".*/live$"), refuse_the_first_subscription)
    reader = await context.new_page()
    await reader.goto(url)
    widget = reader.locator("ovation-widget")
    await expect(widget).to_have_attribute("data-state", "live", timeout=20_000)
    assert sockets >= 2
    other = await open_page(await new_context(), url)
    await other.locator("ovation-widget button[data-reaction=like]").click()
    await expect(widget.locator("button[data-reaction=like] .n")).to_have_text("1")
