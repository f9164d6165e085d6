"""Ovation's own pages and scripts: the embeddable widget and counter scripts, the demo blog
(a post with the widget, an index with counts, a landing page), the API docs (served locally,
no CDN) and static files."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from html import escape
from pathlib import Path

import rjsmin
import swagger_ui_bundle
from quart import Blueprint, Response, abort, request, send_from_directory

pages = Blueprint("pages", __name__)
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
SWAGGER_DIR = Path(swagger_ui_bundle.swagger_ui_path)
SWAGGER_FILES = {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
                 "favicon-32x32.png", "favicon-16x16.png"}
# Embedding sites fetch the scripts on every page view: let browsers and proxies keep them an
# hour, then revalidate cheaply with the ETag (a 304 without a body).
SCRIPT_CACHE_CONTROL = "public, max-age=3600, stale-while-revalidate=86400"
CSS_PLACEHOLDER = '"__OVATION_CSS__"'
# widget.js's words: a table in a template literal, a line a key, then a cell per language of
# `L` (English first), " ~ " between them (tests/browser/test_widget_assets.py checks it).
TEXT_TABLE = re.compile(r"(const TEXT = `)(.*?)(`;)", re.S)
LANGUAGE_CODES = re.compile(r"const L = \{((?: *\w+: \{\},?)+) *\};")
CELL = " ~ "

DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ovation API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" href="/docs/assets/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/static/docs-init.js"></script>
</body></html>"""


# -- the widget and counter scripts ----------------------------------------------------------

@dataclass(frozen=True)
class Script:
    body: bytes
    gzipped: bytes
    etag: str


def compact_js(source: str) -> str:
    """Comments and whitespace out (rjsmin keeps names and semantics): the size budget in
    tests/browser/test_widget_assets.py is measured on this output."""
    return rjsmin.jsmin(source) + "\n"


def compact_css(source: str) -> str:
    """Comments and needless spaces out: around punctuation, after a declaration's colon (never
    before one: ".c :focus" differs from ".c:focus") and before a block's end."""
    css = re.sub(r"\s+", " ", re.sub(r"/\*.*?\*/", "", source, flags=re.S))
    css = re.sub(r"\s*([{};,>])\s*", r"\1", css)
    css = re.sub(r"([{;(][\w-]+):\s+", r"\1:", css)  # "color: red", "(prefers-color-scheme: dark)"
    return css.replace(";}", "}").strip()


def template_text(literal: str) -> str:
    """A template literal's text: the escapes the TEXT table may use (\\`, \\\\, \\$) undone."""
    if "\\" in re.sub(r"\\[`\\$]", "", literal) or "${" in literal:
        raise RuntimeError("widget.js's TEXT table has an escape or ${} the server cannot read")
    return re.sub(r"\\([`\\$])", r"\1", literal)


@cache
def widget_languages() -> tuple[str, dict[str, dict[str, str]]]:
    """widget.js's source with its TEXT table cut to the English column, and the other
    columns by language code ({key: cell}, empty cells left out).

    A widget on an English page (most of them) needs no other language, and the other columns
    were about 1.2 KB of the script's 12 KB budget (gzipped): the widget fetches
    /widget.LANG.json when its page is in another language."""
    source = (STATIC_DIR / "widget.js").read_text()
    table, codes = TEXT_TABLE.search(source), LANGUAGE_CODES.search(source)
    if table is None or codes is None:
        raise RuntimeError("widget.js lost its TEXT table or its language codes (L)")
    languages = re.findall(r"(\w+):", codes[1])
    if languages[0] != "en":
        raise RuntimeError("widget.js's first language (L and the TEXT table) must be English")
    english: list[str] = []
    others: dict[str, dict[str, str]] = {code: {} for code in languages[1:]}
    for line in table[2].split("\n"):
        key, *cells = line.split(CELL)
        if len(cells) != len(languages):
            raise RuntimeError(f"widget.js's TEXT line {key!r} has {len(cells)} cells, "
                               f"not {len(languages)}")
        if cells[0]:
            english.append(key + CELL + cells[0])
        for code, cell in zip(languages[1:], cells[1:], strict=True):
            if cell:
                others[code][key] = template_text(cell)
    cut = source[:table.start(2)] + "\n".join(english) + source[table.end(2):]
    return cut, others


def build_widget_js() -> str:
    """widget.js as served: widget.css inlined, so that the widget needs a single request,
    and its words in English only (the other languages are build_widget_words')."""
    source = widget_languages()[0]
    css = compact_css((STATIC_DIR / "widget.css").read_text())
    if CSS_PLACEHOLDER not in source:
        raise RuntimeError("widget.js lost its CSS placeholder")
    return compact_js(source).replace(CSS_PLACEHOLDER, json.dumps(css, ensure_ascii=False))


def build_widget_words(code: str) -> str:
    """/widget.CODE.json: one language's column of widget.js's TEXT table."""
    return json.dumps(widget_languages()[1][code], ensure_ascii=False,
                      separators=(",", ":"), sort_keys=True) + "\n"


def build_counter_js() -> str:
    return compact_js((STATIC_DIR / "counter.js").read_text())


@cache
def served_script(name: str) -> Script:
    """widget.js, counter.js or widget.LANG.json, as sent (KeyError for another name)."""
    words = re.fullmatch(r"widget\.(\w+)\.json", name)
    text = (build_widget_words(words[1]) if words else
            {"widget.js": build_widget_js, "counter.js": build_counter_js}[name]())
    body = text.encode()
    return Script(body=body, gzipped=gzip.compress(body, 9, mtime=0),
                  etag=hashlib.sha256(body).hexdigest()[:20])


def script_response(name: str, content_type: str = "text/javascript; charset=utf-8") -> Response:
    script = served_script(name)
    gzipped = "gzip" in request.headers.get("Accept-Encoding", "")
    etag = script.etag + ("-gz" if gzipped else "")  # each encoding is its own representation
    headers = {"Cache-Control": SCRIPT_CACHE_CONTROL, "ETag": f'"{etag}"',
               "Vary": "Accept-Encoding",
               # Any site may load the script; what it may do is checked per site by the API.
               "Access-Control-Allow-Origin": "*",
               "Cross-Origin-Resource-Policy": "cross-origin"}
    if request.if_none_match.contains_weak(etag):
        return Response(b"", status=304, headers=headers)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return Response(script.gzipped if gzipped else script.body,
                    content_type=content_type, headers=headers)


@pages.get("/widget.js")
async def widget_script() -> Response:
    """The embeddable widget (`<ovation-widget>`), its CSS inlined."""
    return script_response("widget.js")


@pages.get("/widget.<code>.json")
async def widget_words(code: str) -> Response:
    """The widget's words in one more language (`de`, `fr`), fetched by a widget on a page in
    that language: /widget.js carries English only."""
    if code not in widget_languages()[1]:
        abort(404)
    return script_response(f"widget.{code}.json", "application/json")


@pages.get("/counter.js")
async def counter_script() -> Response:
    """The counter script for index pages: every post's counts in one batch request."""
    return script_response("counter.js")


# -- the demo blog ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DemoPost:
    path: str
    title: str
    date: str
    summary: str
    paragraphs: tuple[str, ...]


DEMO_POSTS = (
    DemoPost("/demo", "What a clap is worth", "2026-11-24",
             "Likes say yes or no. Applause says how much. Why this blog counts both, live.", (
                 "Every blog wants to know whether a post landed. A view counter says that "
                 "someone arrived; it does not say whether they stayed, nodded or laughed out "
                 "loud. A like is a single bit: yes, or nothing at all.",
                 "Applause is different. Hold the button and keep clapping: each reader may "
                 "give up to a fixed number of claps to a post, so a post that moved a few "
                 "people a lot stands apart from one that many people skimmed.",
                 "The counters below change while you watch. Open this page in a second window "
                 "and clap in one of them: the other follows within a fraction of a second, "
                 "because every open copy of the page listens on a WebSocket.",
                 "Comments work the same way. Write one below, in Markdown if you like. It shows "
                 "at once as yours, and everyone else reading sees a quiet \u201cnew comment\u201d "
                 "button instead of a page that jumps under their eyes.",
             )),
    DemoPost("/demo/write-behind", "Counting a million claps with one Redis round trip",
             "2026-11-18",
             "How the write-behind counters keep every click cheap and no click lost.", (
                 "A clap costs one pipelined round trip to Redis. Every few seconds a flusher "
                 "moves the pending counts to SQL in one bulk upsert, with its batch id in the "
                 "same transaction, so a crash replays the batch instead of counting it twice.",
             )),
    DemoPost("/demo/no-cookies", "No cookies, no third parties", "2026-11-09",
             "The widget keeps an anonymous id in your browser's storage, and talks only to "
             "this blog's own Ovation server.", (
                 "No cookie is set and no third-party script is loaded. Visitors are stored only "
                 "as keyed hashes, and addresses never at all.",
             )),
)

SITE_HEADER = """<header class="site"><a class="brand" href="/demo/blog">Field Notes</a>
<nav aria-label="Site"><a href="/demo/blog">All posts</a> <a href="/">About this demo</a></nav>
</header>"""


def _page(title: str, body: str, lang: str = "en") -> str:
    return (f'<!doctype html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{escape(title)}</title>\n<link rel="icon" href="data:,">\n'
            '<link rel="stylesheet" href="/static/demo.css">\n</head>\n'
            f"<body>\n{body}\n</body>\n</html>\n")


def _post_html(post: DemoPost) -> str:
    paragraphs = "\n".join(f"<p>{escape(text)}</p>" for text in post.paragraphs)
    return _page(f"{post.title} \u2013 Field Notes", f"""{SITE_HEADER}
<main>
<article>
<p class="meta"><time datetime="{post.date}">{post.date}</time> \u00b7 Ovation demo</p>
<h1>{escape(post.title)}</h1>
<p class="lede">{escape(post.summary)}</p>
{paragraphs}
</article>
<section class="reactions" aria-label="Reactions and comments">
<ovation-widget></ovation-widget>
</section>
</main>
<script src="/widget.js" data-site="demo" async></script>""")


COUNTS = " \u00b7 ".join(
    f'<span aria-hidden="true">{icon}</span> '
    f'<span data-ovation-count="{name}">\u2013</span> {label}'
    for icon, name, label in (("\U0001f441", "view", "views"), ("\u2764", "like", "likes"),
                              ("\U0001f44f", "applause", "claps"), ("\U0001f4ac", "comments",
                                                                      "comments")))


def _index_html() -> str:
    items = "\n".join(f"""<li data-ovation-path="{escape(post.path)}">
<h2><a href="{escape(post.path)}">{escape(post.title)}</a></h2>
<p class="meta"><time datetime="{post.date}">{post.date}</time></p>
<p>{escape(post.summary)}</p>
<p class="counts">{COUNTS}</p>
</li>""" for post in DEMO_POSTS)
    return _page("Field Notes \u2013 all posts", f"""{SITE_HEADER}
<main>
<h1>All posts</h1>
<ol class="posts">
{items}
</ol>
</main>
<script src="/counter.js" data-site="demo" async></script>""")


LANDING = _page("Ovation demo", """<main>
<p class="meta">Ovation demo</p>
<h1>Views, likes, applause and comments, live</h1>
<p>This server runs Ovation. Its <code>demo</code> site is a small sample blog:</p>
<ul>
<li><a href="/demo">A blog post with the widget</a>: it records your view; like it, clap for
it (hold the button), comment, and open it in a second window to see both change live.</li>
<li><a href="/demo/blog">The blog's index page</a>: every post's counts, in one request.</li>
</ul>
<p>Embed it in your own pages with one script tag (see <code>docs/embedding.md</code>):</p>
<pre><code>&lt;script src=&quot;ORIGIN/widget.js&quot; data-site=&quot;demo&quot;
        async&gt;&lt;/script&gt;
&lt;ovation-widget&gt;&lt;/ovation-widget&gt;</code></pre>
<p class="links"><a href="/docs">API docs</a> \u00b7 <a href="/openapi.json">OpenAPI</a> \u00b7
<a href="/metrics">metrics</a></p>
</main>""")


def html_response(html: str) -> Response:
    return Response(html, content_type="text/html; charset=utf-8")


@pages.get("/")
async def landing_page() -> Response:
    """A small landing page linking to the demo post and the demo index."""
    origin = escape(f"{request.scheme}://{request.host}")
    return html_response(LANDING.replace("ORIGIN", origin))


@pages.get("/demo")
@pages.get("/demo/<slug>")
async def demo_post(slug: str | None = None) -> Response:
    """A post of the demo blog with the widget."""
    path = "/demo" if slug is None else f"/demo/{slug}"
    post = next((post for post in DEMO_POSTS if post.path == path), None)
    if post is None:
        abort(404)
    return html_response(_post_html(post))


@pages.get("/demo/blog")
async def demo_index() -> Response:
    """The demo blog's index: every post with its counts (counter.js, one batch request)."""
    return html_response(_index_html())


@pages.get("/docs")
async def api_docs() -> Response:
    """Swagger UI for /openapi.json, with its assets served from the installed package."""
    return Response(DOCS_PAGE, content_type="text/html; charset=utf-8")


@pages.get("/docs/assets/<name>")
async def api_docs_asset(name: str):
    if name not in SWAGGER_FILES:
        abort(404)
    return await send_from_directory(SWAGGER_DIR, name)


@pages.get("/static/<path:name>")
async def static_file(name: str):
    return await send_from_directory(STATIC_DIR, name)
