"""Real headless Chromium (Debian's, driven by Playwright's async API) against a real Ovation:
`platformctl serve web`, `serve listener` and `serve flusher` processes on the private Redis
and a SQLite file, and a static blog served from another origin on loopback that embeds the
widget with one script tag, as a reader's browser would see it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import http.server
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

import httpx
import pytest
import redis
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from appliance.services.sites import add_site
from appliance.settings import Settings
from appliance.storage import site_store
from appliance.storage.database import open_database
from appliance.storage.migrations import migrate
from tests.conftest import REPO, free_port, start_process, stop_process, wait_http

# CI machines are shared and slow at times: expectations wait up to 15 s (not Playwright's 5)
# before they fail, which costs nothing when the widget is as quick as it should be.
expect.set_options(timeout=15_000)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
SITE = "blog"
MODERATED_SITE = "moderated"
APPLAUSE_CAP = 12
COMMENT_PAGE_SIZE = 5  # top-level comments per page: "load more" after five


@dataclass
class Ovation:
    """The running server processes, and a way to restart the web one mid-test."""

    settings: Settings
    url: str
    log_dir: Path
    site: StaticSite
    web: Popen | None = None
    others: list[Popen] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. PYTHONPATH for a plugin

    def start_web(self) -> None:
        self.web = start_process(self.settings, "serve", "web", log=self.log_dir / "web.log",
                                 extra_env=self.extra_env)
        wait_http(self.url + "/readyz")

    def stop_web(self) -> None:
        if self.web is not None:
            stop_process(self.web)
            self.web = None

    def api(self, route: str) -> str:
        return f"{self.url}/api/v1/sites/{SITE}{route}"

    def totals(self, path: str, visitor: str | None = None) -> dict:
        params = {"path": path, **({"visitor": visitor} if visitor else {})}
        response = httpx.get(self.api("/totals"), params=params, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()


class StaticSite:
    """Another origin on loopback: plain HTML files, as a static blog host would serve them."""

    def __init__(self, root: Path, ovation_url: str) -> None:
        self.root = root
        self.ovation_url = ovation_url
        handler = functools.partial(QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def page(self, name: str, body: str, *, head: str = "", lang: str = "en",
             script: str = "widget.js") -> str:
        """Write `name`.html with `body` and the Ovation script tag; return its URL."""
        tag = (f'<script src="{self.ovation_url}/{script}" data-site="{SITE}" async></script>'
               if script else "")
        (self.root / f"{name}.html").write_text(
            f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
            f'<link rel="icon" href="data:,"><title>{name}</title>{head}</head>'
            f"<body>{body}{tag}</body></html>")
        return f"{self.url}/{name}.html"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def ovation(redis_server, tmp_path_factory) -> Iterator[Ovation]:
    """web + listener + flusher + notifier; the site allows the static blog's origin."""
    yield from serve_ovation(redis_server, tmp_path_factory)


def serve_ovation(redis_server, tmp_path_factory, **more_settings) -> Iterator[Ovation]:
    """The `ovation` fixture's servers, with `more_settings` (e.g. SMTP) for a module that
    needs them; e-mail links point at the web server."""
    directory = tmp_path_factory.mktemp("ovation-browser")
    flush = redis.Redis(unix_socket_path=str(redis_server))
    flush.flushall()  # totals cached by earlier tests for a site also named "blog"
    flush.close()
    port = free_port()
    settings = Settings(
        database_url=f"sqlite:///{directory / 'ovation.db'}", redis_url=f"unix://{redis_server}",
        data_dir=directory / "data", secret_key="browser-test-secret", bind=f"127.0.0.1:{port}",
        public_url=f"http://127.0.0.1:{port}", flush_interval_s=1.0, live_coalesce_ms=100,
        applause_cap=APPLAUSE_CAP, comment_rate_limit=1000, comment_page_size=COMMENT_PAGE_SIZE,
        **more_settings)
    url = f"http://127.0.0.1:{port}"
    (directory / "static").mkdir()
    server = Ovation(settings=settings, url=url, log_dir=directory,
                     site=StaticSite(directory / "static", url))
    database = open_database(settings.effective_database_url)
    migrate(database)
    add_site(database, SITE, [server.site.url], title="A static blog")
    # A second site that holds every comment for a moderator (the widget's `site` attribute).
    moderated = add_site(database, MODERATED_SITE, [server.site.url])
    site_store.update_site(database, dataclasses.replace(moderated, moderation="all"))
    database.close()
    server.others = [start_process(settings, "serve", name, log=directory / f"{name}.log")
                     for name in ("listener", "flusher", "notifier")]
    server.start_web()
    yield server
    server.stop_web()
    for process in server.others:
        stop_process(process)
    server.site.close()


@pytest.fixture(scope="module")
def static_site(ovation) -> StaticSite:
    return ovation.site


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: run ./install.sh --test (Debian package chromium)")
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                    args=CHROMIUM_FLAGS)
        yield instance
        await instance.close()


@pytest.fixture
async def new_context(browser) -> AsyncIterator:
    """Open fresh browser contexts (separate visitors); every one is closed after the test.
    Page errors fail the test: the widget must never throw."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    async def make(**options) -> BrowserContext:
        context = await browser.new_context(**options)
        context.on("page", lambda page: page.on("pageerror", lambda e: errors.append(str(e))))
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        await context.close()
    assert not errors, errors


async def open_page(context: BrowserContext, url: str) -> Page:
    """Open `url` and wait until its widget is live (subscribed over the WebSocket)."""
    page = await context.new_page()
    await page.goto(url)
    await page.locator("ovation-widget[data-state=live]").wait_for(timeout=10_000)
    return page


def widget_page(static_site: StaticSite, name: str, path: str, attributes: str = "") -> str:
    """A static page of the other origin with the widget for `path`."""
    return static_site.page(name, f"<main><h1>{name}</h1>"
                                  f'<ovation-widget path="{path}" {attributes}></ovation-widget>'
                                  "</main>")


def axe_source() -> str:
    if not AXE.exists():
        pytest.fail("axe-core is missing: run ./install.sh --test (npm ci in tests/browser)")
    return AXE.read_text()



@contextlib.contextmanager
def platformctl_up(data_dir: Path, log: Path,
                   extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """`platformctl up` with a private data dir, as a new user would run it; yields its URL."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("OVATION_")}
    env.update(extra_env or {})
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "up", "--data-dir", str(data_dir), "--port", str(port)],
            cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/readyz", timeout_s=40)
        yield url
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(60) == 0, log.read_text()
