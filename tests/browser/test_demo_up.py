"""`platformctl up` serves the demo blog: a post with the live widget, and an index with counts."""

from __future__ import annotations

from playwright.async_api import expect

from tests.browser.conftest import open_page, platformctl_up


async def test_platformctl_up_serves_the_demo_post_and_index(tmp_path, new_context):
    with platformctl_up(tmp_path / "data", tmp_path / "up.log") as url:
        context = await new_context()
        landing = await context.new_page()
        await landing.goto(url + "/")
        await landing.get_by_role("link", name="A blog post with the widget").click()
        await landing.wait_for_url(url + "/demo")

        post = await open_page(context, url + "/demo")
        widget = post.locator("ovation-widget")
        await widget.locator("button[data-reaction=like]").click()
        await expect(widget.locator("button[data-reaction=like]")).to_have_attribute(
            "aria-pressed", "true")
        await widget.get_by_label("Your comment").fill("Lovely demo")
        await widget.get_by_role("button", name="Post comment").click()
        await expect(widget.locator("h2")).to_have_text("1 comment")

        index = await context.new_page()
        batches = []
        index.on("request", lambda r: "/totals/batch" in r.url and batches.append(r.url))
        await index.goto(url + "/demo/blog")
        first = index.locator('li[data-ovation-path="/demo"]')
        await expect(first.locator('[data-ovation-count="like"]')).to_have_text("1")
        await expect(first.locator('[data-ovation-count="view"]')).to_have_text("1")
        await expect(first.locator('[data-ovation-count="comments"]')).to_have_text("1")
        await expect(index.locator('[data-ovation-count="applause"]').nth(2)).to_have_text("0")
        assert len(batches) == 1
