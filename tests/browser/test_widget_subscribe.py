"""A reader subscribes to new posts from the widget (issue 4's double opt-in), by keyboard, in
real Chromium: Ovation's web, listener, flusher and notifier processes with SMTP pointing at a
real SMTP server (aiosmtpd) on loopback. Without SMTP the form is not offered at all."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.async_api import expect

from appliance.notify.subscriptions import subscription_status
from appliance.storage.database import open_database
from tests.browser.conftest import (
    SITE,
    Ovation,
    axe_source,
    open_page,
    serve_ovation,
    widget_page,
)
from tests.browser.test_widget_page import DEEP_FOCUS, tab_to
from tests.conftest import free_port
from tests.notify.conftest import MailRecorder, SmtpServer

READER = "reader@example.org"


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(MailRecorder(), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ovation(redis_server, tmp_path_factory, smtp) -> Iterator[Ovation]:
    """The browser tests' servers, sending e-mail through the test SMTP server."""
    yield from serve_ovation(redis_server, tmp_path_factory, smtp_host="127.0.0.1",
                             smtp_port=smtp.port, smtp_security="none",
                             smtp_from="Blog <news@blog.example>", notify_retry_base_s=0.2)


async def mails_to(smtp: SmtpServer, address: str, count: int = 1) -> list:
    """The messages to `address`, once `count` have arrived (the notifier sends them)."""
    for _ in range(150):
        if len(smtp.recorder.to(address)) >= count:
            return smtp.recorder.to(address)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no e-mail to {address}: {smtp.recorder.envelopes}")


def status_of(ovation: Ovation, address: str) -> str | None:
    database = open_database(ovation.settings.effective_database_url)
    try:
        return subscription_status(database, SITE, address, "posts")
    finally:
        database.close()


async def test_a_reader_subscribes_by_keyboard_and_confirms_by_e_mail(
        ovation, static_site, new_context, smtp):
    url = widget_page(static_site, "subscribe", "/posts/subscribe/")
    page = await open_page(await new_context(), url)
    widget = page.locator("ovation-widget")
    form = widget.locator("form.sub")
    await expect(form).to_be_visible()
    # With SMTP, the comment form offers replies by e-mail too (hidden where none is sent).
    await expect(widget.get_by_text("E-mail me replies")).to_be_visible()
    field = widget.get_by_label("E-mail address", exact=True)
    message = form.locator(".msg")
    assert await message.get_attribute("aria-live") == "polite"  # a live region

    # Keyboard only: Tab to the field, type a wrong address, Enter submits the form.
    await tab_to(page, "the subscription's e-mail field", "e => e.id === 'ov-s'")
    await page.keyboard.type("not-an-address")
    await page.keyboard.press("Enter")
    await expect(message).to_have_text("That e-mail address does not look right.")
    await expect(message).to_have_class(re.compile(r"\bbad\b"))
    assert status_of(ovation, "not-an-address") is None

    await page.keyboard.press("Control+A")
    await page.keyboard.type(READER.upper())
    await tab_to(page, "Subscribe to new posts", "e => e.textContent === "
                 "'Subscribe to new posts'")
    await page.keyboard.press("Enter")
    await expect(message).to_have_text(
        "If the address can receive e-mail, a confirmation link is on its way.")
    await expect(message).not_to_have_class(re.compile(r"\bbad\b"))
    await expect(field).to_have_value("")
    await expect(widget.get_by_role("button", name="Subscribe to new posts")).to_be_enabled()
    # The button keeps the keyboard focus through the request, so the reader is not lost.
    assert await page.evaluate(f"() => ({DEEP_FOCUS})().textContent") == \
        "Subscribe to new posts"

    # Double opt-in: stored pending, a confirmation e-mail sent, nothing else until its link.
    [confirmation] = await mails_to(smtp, READER)
    assert status_of(ovation, READER) == "pending"
    text = confirmation.get_body(("plain",)).get_content()
    link = re.search(rf"{re.escape(ovation.url)}/notifications/confirm\?token=\S+", text)
    assert link, text
    response = httpx.post(link[0], timeout=10)
    assert response.status_code == 200, response.text
    assert status_of(ovation, READER) == "confirmed"


async def test_the_form_speaks_the_page_language_and_passes_an_accessibility_scan(
        ovation, static_site, new_context):
    url = static_site.page("abonnieren", '<ovation-widget path="/posts/de/"></ovation-widget>',
                           lang="de")
    axe = axe_source()
    for scheme in ("light", "dark"):
        page = await open_page(await new_context(color_scheme=scheme), url)
        widget = page.locator("ovation-widget")
        await widget.get_by_label("E-Mail-Adresse", exact=True).fill("kein@")
        await widget.get_by_role("button", name="Neue Beiträge abonnieren").click()
        await expect(widget.locator("form.sub .msg")).to_have_text(
            "Diese E-Mail-Adresse sieht nicht richtig aus.")  # shown in red: contrast checked
        await page.add_script_tag(content=axe)
        result = await page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
        serious = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]])
                   for v in result["violations"] if v["impact"] in ("serious", "critical")]
        assert serious == [], (scheme, serious)
