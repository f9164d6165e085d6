"""Plugin reaction types in the widget, in real Chromium: the bundled emoji reactions (choice)
and star rating (score), and the example third-party bookmark plugin installed with pip, all
rendered from the site configuration and updated live in a second reader's window."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import redis
from playwright.async_api import expect

from appliance.services.sites import add_site
from appliance.settings import Settings
from appliance.storage import site_store
from appliance.storage.database import open_database
from appliance.storage.migrations import migrate
from tests.browser.conftest import (
    SITE,
    Ovation,
    StaticSite,
    axe_source,
    open_page,
    widget_page,
)
from tests.conftest import free_port, start_process, stop_process


@pytest.fixture(scope="module")
def ovation(redis_server, tmp_path_factory, bookmark_plugin_dir) -> Iterator[Ovation]:
    """web + flusher with the example plugin on their path; the site shows every kind."""
    directory = tmp_path_factory.mktemp("ovation-plugins")
    flush = redis.Redis(unix_socket_path=str(redis_server))
    flush.flushall()
    flush.close()
    port = free_port()
    settings = Settings(
        database_url=f"sqlite:///{directory / 'ovation.db'}", redis_url=f"unix://{redis_server}",
        data_dir=directory / "data", secret_key="browser-test-secret", bind=f"127.0.0.1:{port}",
        flush_interval_s=1.0, live_coalesce_ms=100)
    url = f"http://127.0.0.1:{port}"
    (directory / "static").mkdir()
    server = Ovation(settings=settings, url=url, log_dir=directory,
                     site=StaticSite(directory / "static", url),
                     extra_env={"PYTHONPATH": str(bookmark_plugin_dir)})
    database = open_database(settings.effective_database_url)
    migrate(database)
    site = add_site(database, SITE, [server.site.url])
    site_store.update_site(database, dataclasses.replace(
        site, reactions=("like", "emoji", "stars", "bookmark"),
        reaction_options={"emoji": {"choices": ["heart", "tada", "laugh"]}}))
    database.close()
    server.others = [start_process(settings, "serve", "flusher",
                                   log=directory / "flusher.log")]
    server.start_web()
    yield server
    server.stop_web()
    for process in server.others:
        stop_process(process)
    server.site.close()


@pytest.fixture(scope="module")
def static_site(ovation) -> StaticSite:
    return ovation.site


async def test_emoji_stars_and_a_pip_installed_plugin_work_live(ovation, static_site,
                                                                  new_context):
    url = widget_page(static_site, "plugins", "/posts/plugins/")
    reader = await open_page(await new_context(), url)
    other = await open_page(await new_context(), url)
    widget, other_widget = reader.locator("ovation-widget"), other.locator("ovation-widget")

    # Emoji reactions: the site's three, one pick per reader, changeable, live elsewhere.
    emoji = widget.locator("[data-reaction=emoji] button")
    await expect(emoji).to_have_count(3)
    heart, tada = emoji.nth(0), emoji.nth(1)
    await expect(heart).to_have_attribute("data-choice", "heart")
    await heart.click()
    await expect(heart).to_have_attribute("aria-pressed", "true")
    await expect(heart.locator(".n")).to_have_text("1")
    other_heart = other_widget.locator("[data-choice=heart]")
    await expect(other_heart.locator(".n")).to_have_text("1")  # pushed, no reload
    await expect(other_heart).to_have_attribute("aria-pressed", "false")
    await tada.click()
    await expect(heart).to_have_attribute("aria-pressed", "false")
    await expect(heart.locator(".n")).to_have_text("0")
    await expect(tada.locator(".n")).to_have_text("1")
    await expect(other_widget.locator("[data-choice=tada] .n")).to_have_text("1")
    await expect(other_heart.locator(".n")).to_have_text("0")

    # Stars: rate 4, another reader rates 2: the average and the count show everywhere.
    stars = widget.locator("[data-reaction=stars]")
    await stars.get_by_role("button", name="4 of 5 stars").click()
    await expect(stars.get_by_role("button", name="4 of 5 stars")).to_have_attribute(
        "aria-pressed", "true")
    await expect(stars.locator(".n")).to_have_text("4")
    await expect(stars.locator(".you")).to_have_text("1 rating")
    await other_widget.locator("[data-reaction=stars]").get_by_role(
        "button", name="2 of 5 stars").click()
    await expect(stars.locator(".n")).to_have_text("3")
    await expect(stars.locator(".you")).to_have_text("2 ratings")
    await expect(stars.locator("button.on")).to_have_count(4)  # my own rating stays lit

    # The bookmark plugin from its own pip-installed package: an SVG icon, a toggle.
    bookmark = widget.locator("button[data-reaction=bookmark]")
    await expect(bookmark.locator("img")).to_have_count(1)
    await bookmark.click()
    await expect(bookmark).to_have_attribute("aria-pressed", "true")
    await expect(other_widget.locator("button[data-reaction=bookmark] .n")).to_have_text("1")

    await reader.add_script_tag(content=axe_source())  # the new controls are accessible
    result = await reader.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    serious = [(v["id"], [n["target"] for n in v["nodes"]]) for v in result["violations"]
               if v["impact"] in ("serious", "critical")]
    assert serious == []

    # A reload shows the reader's own state from the server.
    await reader.reload()
    widget = reader.locator("ovation-widget")
    await expect(widget.locator("[data-choice=tada]")).to_have_attribute("aria-pressed", "true")
    await expect(widget.locator("[data-reaction=stars]").get_by_role(
        "button", name="4 of 5 stars")).to_have_attribute("aria-pressed", "true")
    await expect(widget.locator("button[data-reaction=bookmark]")).to_have_attribute(
        "aria-pressed", "true")
    # Picking the same emoji again takes it back.
    await widget.locator("[data-choice=tada]").click()
    await expect(widget.locator("[data-choice=tada] .n")).to_have_text("0")
    totals = ovation.totals("/posts/plugins/")["totals"]
    assert totals == {"like": 0, "emoji.heart": 0, "emoji.tada": 0, "emoji.laugh": 0,
                      "stars.sum": 6, "stars.count": 2, "bookmark": 1}


async def test_a_rejected_plugin_interaction_shows_the_plugins_message(ovation, static_site,
                                                                       new_context):
    page = await open_page(await new_context(),
                           widget_page(static_site, "about", "/about/"))
    widget = page.locator("ovation-widget")
    await widget.locator("button[data-reaction=bookmark]").click()
    await expect(widget.locator("button[data-reaction=bookmark]")).to_have_attribute(
        "aria-pressed", "false")  # rolled back
    await expect(widget.locator(".note")).to_have_text("Only posts can be bookmarked.")
