"""Regenerate the README's widget screenshots (docs/images/widget-light.png, -dark.png) from
the demo post under `platformctl up`, in real Chromium:

    .venv/bin/python -m tests.browser.screenshots
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import httpx
from playwright.async_api import async_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_FLAGS, platformctl_up
from tests.conftest import REPO, free_port
from tests.notify.conftest import MailRecorder, SmtpServer

IMAGES = REPO / "docs" / "images"
CONVERSATION = [
    ("Ann", "This is the first explanation of *why* applause beats likes that made sense to me."),
    ("Bob", "Agreed. I held the button for a good while: the **+N** bubble is oddly satisfying."),
]


def seed(url: str) -> None:
    api = f"{url}/api/v1/sites/demo"
    for n in range(23):
        httpx.post(f"{api}/interactions", json={"path": "/demo", "reaction": "view",
                                                "visitor": f"visitor-shot-{n}"})
    for n in range(9):
        httpx.post(f"{api}/interactions", json={"path": "/demo", "reaction": "like",
                                                "visitor": f"visitor-shot-{n}"})
        httpx.post(f"{api}/interactions", json={"path": "/demo", "reaction": "applause",
                                                "amount": 5 + n, "visitor": f"visitor-shot-{n}"})
        # The demo site shows the bundled emoji reactions and star rating too.
        httpx.post(f"{api}/interactions", json={
            "path": "/demo", "reaction": "emoji", "visitor": f"visitor-shot-{n}",
            "choice": ("heart", "tada", "laugh", "heart", "thumbs_up")[n % 5]})
        httpx.post(f"{api}/interactions", json={"path": "/demo", "reaction": "stars",
                                                "score": 4 + n % 2, "visitor": f"visitor-shot-{n}"})
    parent = httpx.post(f"{api}/comments", json={
        "path": "/demo", "visitor": "visitor-shot-ann", "author_name": CONVERSATION[0][0],
        "body": CONVERSATION[0][1]}).json()["id"]
    httpx.post(f"{api}/comments", json={
        "path": "/demo", "visitor": "visitor-shot-bob", "author_name": CONVERSATION[1][0],
        "body": CONVERSATION[1][1], "parent_id": parent})


async def shoot(url: str) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                   args=CHROMIUM_FLAGS)
        for scheme in ("light", "dark"):
            context = await browser.new_context(color_scheme=scheme, device_scale_factor=1,
                                                viewport={"width": 760, "height": 1200})
            page = await context.new_page()
            await page.goto(url + "/demo")
            widget = page.locator("ovation-widget")
            await widget.locator("[data-state=live]").or_(
                page.locator("ovation-widget[data-state=live]")).wait_for()
            await widget.locator("li.c").nth(1).wait_for()
            await widget.locator("form.sub").wait_for()  # shown: this server sends e-mail
            await widget.locator("button[data-reaction=like]").click()
            for _ in range(4):
                await widget.locator("button[data-reaction=applause]").click()
            await widget.locator("[data-choice=tada]").click()
            await widget.locator("[data-reaction=stars] [data-score='5']").click()
            await page.wait_for_timeout(1500)  # the "+N" bubble has faded
            await widget.screenshot(path=str(IMAGES / f"widget-{scheme}.png"))
            await context.close()
        await browser.close()


def main() -> None:
    # With e-mail configured (a local SMTP server), as most blogs would run it: the widget
    # then offers the subscription to new posts.
    smtp = SmtpServer(MailRecorder(), free_port())
    smtp.start()
    mail = {"OVATION_SMTP_HOST": "127.0.0.1", "OVATION_SMTP_PORT": str(smtp.port),
            "OVATION_SMTP_SECURITY": "none"}
    try:
        with tempfile.TemporaryDirectory() as directory, \
                platformctl_up(Path(directory) / "data", Path(directory) / "up.log", mail) as url:
            seed(url)
            asyncio.run(asyncio.sleep(1.5))  # the listener stores the comments
            asyncio.run(shoot(url))
    finally:
        smtp.stop()
    print(f"wrote {IMAGES}/widget-light.png and widget-dark.png")


if __name__ == "__main__":
    main()
