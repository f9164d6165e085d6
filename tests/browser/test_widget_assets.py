"""The scripts as served: size budgets, caching headers, and the demo pages' HTML (no browser)."""

from __future__ import annotations

import gzip
import re
from html import escape

import pytest

from appliance.plugin_registry import ReactionRegistry
from tests.conftest import BUILTIN_FACTORIES
from web.app import create_app
from web.routes.pages import DEMO_POSTS, served_script

WIDGET_BUDGET_BYTES = 13 * 1024  # gzipped, CSS included (12 KB before choice and score kinds)
COUNTER_BUDGET_BYTES = 1536


@pytest.fixture
def client(make_settings, sqlite_url):
    settings = make_settings(sqlite_url)
    app = create_app(settings, ReactionRegistry.from_factories(BUILTIN_FACTORIES, settings))
    return app.test_client()  # no lifespan: these routes need neither Redis nor SQL


def test_size_budgets():
    widget, counter = served_script("widget.js"), served_script("counter.js")
    assert len(gzip.compress(widget.body, 9)) <= WIDGET_BUDGET_BYTES
    assert len(widget.gzipped) <= WIDGET_BUDGET_BYTES
    assert len(counter.gzipped) <= COUNTER_BUDGET_BYTES
    assert b"__OVATION_CSS__" not in widget.body and b":host" in widget.body  # CSS inlined


def test_the_scripts_make_no_third_party_requests():
    for name in ("widget.js", "counter.js"):
        source = served_script(name).body.decode()
        assert not re.search(r"https?://(?!…)", source), name  # only the hint text's "https://…"
        assert "document.cookie" not in source and "eval(" not in source


@pytest.mark.parametrize("name", ["widget.js", "counter.js"])
async def test_scripts_are_cached_and_revalidated(client, name):
    plain = await client.get(f"/{name}")
    assert plain.status_code == 200
    assert plain.mimetype == "text/javascript"
    assert "Content-Encoding" not in plain.headers
    assert plain.headers["Cache-Control"].startswith("public, max-age=")
    assert plain.headers["Access-Control-Allow-Origin"] == "*"
    etag = plain.headers["ETag"]
    body = await plain.get_data()
    assert body == served_script(name).body

    again = await client.get(f"/{name}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert await again.get_data() == b""

    zipped = await client.get(f"/{name}", headers={"Accept-Encoding": "gzip, br"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["ETag"] != etag  # another representation
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert gzip.decompress(await zipped.get_data()) == body
    stale = await client.get(f"/{name}", headers={"If-None-Match": '"old"'})
    assert stale.status_code == 200


async def test_demo_pages(client):
    landing = await client.get("/")
    html = await landing.get_data(as_text=True)
    assert landing.status_code == 200 and "Ovation demo" in html
    assert 'href="/demo"' in html and 'href="/demo/blog"' in html
    assert "&quot;http://localhost/widget.js&quot;" in html  # the snippet names this server

    for post in DEMO_POSTS:
        page = await client.get(post.path)
        html = await page.get_data(as_text=True)
        assert page.status_code == 200, post.path
        assert "<ovation-widget>" in html
        assert '<script src="/widget.js" data-site="demo" async>' in html
        assert f"<h1>{escape(post.title)}</h1>" in html

    index = await (await client.get("/demo/blog")).get_data(as_text=True)
    assert '<script src="/counter.js" data-site="demo" async>' in index
    for post in DEMO_POSTS:
        assert f'data-ovation-path="{post.path}"' in index
    assert index.count('data-ovation-count="like"') == len(DEMO_POSTS)
    assert not re.search(r"(src|href)=\"https?://", index)

    missing = await client.get("/demo/no-such-post")
    assert missing.status_code == 404
    assert (await missing.get_json())["error"]["code"] == "not_found"
