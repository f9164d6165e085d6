"""Comment Markdown to safe HTML: CommonMark rendered once at store time, then sanitised.

markdown-it-py renders with raw HTML disabled; nh3 (Ammonia) then keeps an allowlist of tags
and attributes, drops every event handler, allows only http, https and mailto links, and gives
every link `rel="nofollow ugc noopener"`. The widget inserts the result as HTML; everything
else (names, websites) it inserts as text.
"""

from __future__ import annotations

import html
import re

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "p", "br", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a",
    "h3", "h4", "h5", "h6", "hr",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "code": {"class"}}
URL_SCHEMES = {"http", "https", "mailto"}
_LINK = re.compile(r"https?://|www\.|\]\(", re.IGNORECASE)

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
# Headings h1/h2 would compete with the host page's own: render them one level down at most.
_markdown.disable(["html_block", "html_inline"])


# Built once: `nh3.clean(html, tags=..., ...)` turns these options into Ammonia's own on every
# call, which cost about twice the sanitising itself. The same options, the same sanitiser.
_cleaner = nh3.Cleaner(tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                       url_schemes=URL_SCHEMES, link_rel="nofollow ugc noopener",
                       strip_comments=True)


# `clean_text`'s sanitiser (every tag stripped), built once for the same reason: with the
# options given per call it cost a comment about as much as sanitising its body.
_text_cleaner = nh3.Cleaner(tags=set(), attributes={})


def _clean(html: str) -> str:
    return _cleaner.clean(html)


def render_markdown(text: str) -> str:
    """Safe HTML for a comment body."""
    rendered = _markdown.render(text)
    rendered = re.sub(r"<(/?)h[12]>", r"<\1h3>", rendered)
    return _clean(rendered).strip()


def has_links(text: str, rendered: str | None = None) -> bool:
    """Whether a body contains a link (for the 'pre-moderate comments with links' mode);
    `rendered`: its `render_markdown`, if the caller has it already."""
    # The rendered HTML also catches what the pattern misses: e-mail autolinks, relative and
    # scheme-relative links, reference-style links.
    if _LINK.search(text):
        return True
    return "<a " in (render_markdown(text) if rendered is None else rendered)


def clean_text(value: str) -> str:
    """Plain text for names: tags stripped, and no angle brackets or control characters left,
    so the value is inert whether a client inserts it as text (it should) or as HTML."""
    stripped = html.unescape(_text_cleaner.clean(value))
    return re.sub(r"[\x00-\x1f\x7f<>]", "", stripped).strip()
