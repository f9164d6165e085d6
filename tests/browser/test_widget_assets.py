"""The scripts as served: size budgets, caching headers, and the demo pages' HTML (no browser)."""

from __future__ import annotations

import gzip
import json
import re
from html import escape

import pytest

from appliance.plugin_registry import ReactionRegistry
from tests.conftest import BUILTIN_FACTORIES
from web.app import create_app
from web.routes.pages import DEMO_POSTS, STATIC_DIR, compact_css, served_script, template_text

# Issue 5's budgets, gzipped: the widget with its CSS inlined at most 12 KB, choice and score
# reaction kinds included; the counter script at most 1.5 KB.
WIDGET_BUDGET_BYTES = 12 * 1024
COUNTER_BUDGET_BYTES = 1536
WIDGET_SOURCE = (STATIC_DIR / "widget.js").read_text()
LANGUAGES = 3  # the columns of the widget's TEXT table: English, German, French


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


def text_table() -> dict[str, list[str]]:
    """The widget's TEXT table: a line a key, then a cell per language."""
    block = re.search(r"const TEXT = `(.*?)`;", WIDGET_SOURCE, re.S)
    assert block, "widget.js lost its TEXT table"
    rows = [line.split(" ~ ") for line in block[1].split("\n")]
    assert all(len(row) == 1 + LANGUAGES for row in rows), [r for r in rows if len(r) != 4]
    keys = [row[0] for row in rows]
    assert len(keys) == len(set(keys)), "a key is in the table twice"
    return {row[0]: row[1:] for row in rows}


def test_every_text_the_widget_asks_for_is_in_its_table():
    table = text_table()
    used = set(re.findall(r"\b(?:T|this\.t)\(\"(\w+)\"\s*[,)]", WIDGET_SOURCE))
    # Keys chosen at run time: connection states, sort orders, vote directions, post outcomes.
    used |= {"live", "retry", "poll", "oldest", "newest", "top", "up", "down", "held", "thanks"}
    assert len(used) > 40 and used - set(table) == set()
    for key, cells in table.items():
        if not key.startswith("rx_"):  # rx_*: a plugin's own label stands in for English
            assert cells[0], key
        plural = ["|" in cell for cell in cells if cell]
        assert all(plural) or not any(plural), key  # every language has both forms, or none
    # Every error code the server may answer with has its message (banned and unknown_site
    # share origin_not_allowed's; invalid_input's are by field, author_email's as email's;
    # many: the subscription limits, per hour and per day).
    for code in ("rate_limited", "duplicate_comment", "edit_window_closed", "comment_deleted",
                 "invalid_edit_token", "unknown_parent", "service_unavailable", "network",
                 "origin_not_allowed", "body", "email", "many", "other"):
        assert all(table["e_" + code]), code


def test_the_script_carries_english_and_each_other_language_is_its_own_file():
    """A page in English (most pages) loads no other language's words; a page in German or
    French fetches /widget.de.json or /widget.fr.json (tests/browser/test_widget_page.py)."""
    table, widget = text_table(), served_script("widget.js").body.decode()
    served = re.search(r"const TEXT=`(.*?)`;", widget, re.S)
    assert served, "the served widget.js lost its TEXT table"
    assert served[1].split("\n") == [f"{key} ~ {cells[0]}" for key, cells in table.items()
                                     if cells[0]]
    for code, column in (("de", 1), ("fr", 2)):
        words = json.loads(served_script(f"widget.{code}.json").body)
        assert words == {key: template_text(cells[column]) for key, cells in table.items()
                         if cells[column]}, code
    assert "Kommentar senden" not in widget and "Publier" not in widget
    assert json.loads(served_script("widget.de.json").body)["hint"].endswith("`Code`.")


def test_template_text_reads_only_the_escapes_it_knows():
    assert template_text(r"\`code\` and \\ and \$") == "`code` and \\ and $"
    for bad in (r"a\nb", "${x}"):
        with pytest.raises(RuntimeError):
            template_text(bad)


async def test_the_language_files_are_served_and_cached(client):
    for code in ("de", "fr"):
        plain = await client.get(f"/widget.{code}.json")
        assert plain.status_code == 200 and plain.mimetype == "application/json"
        assert plain.headers["Access-Control-Allow-Origin"] == "*"  # read by pages elsewhere
        assert plain.headers["Cache-Control"].startswith("public, max-age=")
        body = await plain.get_data()
        assert body == served_script(f"widget.{code}.json").body
        again = await client.get(f"/widget.{code}.json",
                                 headers={"If-None-Match": plain.headers["ETag"]})
        assert again.status_code == 304
        zipped = await client.get(f"/widget.{code}.json", headers={"Accept-Encoding": "gzip"})
        assert gzip.decompress(await zipped.get_data()) == body
    for missing in ("en", "xx", "de.json"):  # English is in the script itself
        response = await client.get(f"/widget.{missing}.json")
        assert response.status_code == 404
        assert (await response.get_json())["error"]["code"] == "not_found"


def test_compact_css_keeps_meaning():
    css = compact_css("/* c */ .c :focus { color: red; }\n@media (prefers-color-scheme: dark) {"
                      " :host(:not([theme=light])) .ov { --bg: var(--x, #000); } }")
    assert css == (".c :focus{color:red}@media (prefers-color-scheme:dark){"
                   ":host(:not([theme=light])) .ov{--bg:var(--x,#000)}}")


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
