"""What notifications say: one-line summaries, and e-mail subjects, plain text and HTML.

Everything a reader wrote (names, comment text, titles) is untrusted: header values lose
every control and line-separator character, HTML gets every value escaped (no live markup,
ever), and only http(s) links become links.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

# C0/C1 controls, DEL, Unicode line/paragraph separators, and bidi overrides (spoofing).
_UNSAFE_INLINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_BLOCK = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
TEXT_EXCERPT = 2000
LIST_TITLES = {"replies": "replies to your comments", "posts": "new posts"}


def one_line(value: Any, limit: int = 200) -> str:
    """Untrusted text made safe for a header or a title: one line, bounded."""
    text = " ".join(_UNSAFE_INLINE.sub(" ", str(value or "")).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def block_text(value: Any, limit: int = TEXT_EXCERPT) -> str:
    """Untrusted multi-line text: keeps newlines and tabs, drops other controls."""
    text = _UNSAFE_BLOCK.sub("", str(value or "").replace("\r\n", "\n").replace("\r", "\n"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe_link(url: Any) -> str:
    url = str(url or "")
    return url if url.startswith(("https://", "http://")) and not _UNSAFE_INLINE.search(url) \
        else ""


def site_name(payload: dict[str, Any]) -> str:
    return one_line(payload.get("site_title") or payload.get("site"), 80)


def page_name(payload: dict[str, Any]) -> str:
    return one_line(payload.get("page_title") or payload.get("title") or payload.get("path"),
                    120)


def summary(kind: str, payload: dict[str, Any]) -> str:
    """One line saying what happened (subject lines, chat messages, browser toasts)."""
    author = one_line(payload.get("author_name"), 60) or "Someone"
    site, page = site_name(payload), page_name(payload)
    if kind == "new_comment":
        return f"{author} commented on “{page}” ({site})"
    if kind == "pending_comment":
        return f"A comment by {author} on “{page}” awaits moderation ({site})"
    if kind == "reply":
        return f"{author} replied to your comment on “{page}” ({site})"
    if kind == "new_post":
        return f"New post on {site}: “{page}”"
    if kind == "confirm":
        return f"Confirm that you want {LIST_TITLES.get(payload.get('list_name'), 'e-mails')} " \
               f"from {site}"
    return f"{one_line(kind, 40)} on {site}"


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class Section:
    """One notification inside an e-mail (a digest has several)."""

    kind: str
    payload: dict[str, Any]
    unsubscribe: str = ""


def render_email(kind: str, sections: list[Section], confirm_link: str = "",
                 unsubscribe_link: str = "") -> EmailContent:
    """The subject, text and HTML of one e-mail: a single notification, a digest, or a
    confirmation request."""
    if kind == "confirm":
        return _confirmation(sections[0].payload, confirm_link)
    if len(sections) == 1:
        subject = summary(sections[0].kind, sections[0].payload)
    else:
        subject = f"{len(sections)} new notifications from {site_name(sections[0].payload)}"
    text_parts, html_parts = [], []
    for section in sections:
        text_parts.append(_section_text(section))
        html_parts.append(_section_html(section))
    footer_text = ("You get this e-mail because you asked for it"
                   + (f". Unsubscribe: {unsubscribe_link}" if unsubscribe_link else
                      " as this site's owner."))
    footer_html = ("You get this e-mail because you asked for it. "
                   + (f'<a href="{_attr(unsubscribe_link)}">Unsubscribe</a>.'
                      if unsubscribe_link else "You are this site's owner."))
    text = "\n\n----\n\n".join(text_parts) + "\n\n-- \n" + footer_text + "\n"
    body = "\n<hr>\n".join(html_parts)
    return EmailContent(one_line(subject, 200), text, _page(subject, body, footer_html))


def _section_text(section: Section) -> str:
    payload = section.payload
    lines = [summary(section.kind, payload) + "."]
    text = block_text(payload.get("text"))
    if text:
        lines += ["", *("> " + line for line in text.split("\n"))]
    link = safe_link(payload.get("comment_url") or payload.get("page_url"))
    if link:
        lines += ["", f"Read it: {link}"]
    if section.kind == "pending_comment" and payload.get("comment_id"):
        lines += ["", "Approve it with: platformctl comments approve "
                  + one_line(payload["comment_id"], 40)]
    if section.unsubscribe:
        lines += ["", f"Stop these e-mails: {section.unsubscribe}"]
    return "\n".join(lines)


def _section_html(section: Section) -> str:
    payload = section.payload
    parts = [f"<p><strong>{_esc(summary(section.kind, payload))}.</strong></p>"]
    text = block_text(payload.get("text"))
    if text:
        parts.append('<blockquote style="white-space:pre-wrap;margin:0 0 1em;'
                     f'padding-left:1em;border-left:3px solid #ccc">{_esc(text)}</blockquote>')
    link = safe_link(payload.get("comment_url") or payload.get("page_url"))
    if link:
        parts.append(f'<p><a href="{_attr(link)}">Read it</a></p>')
    if section.kind == "pending_comment" and payload.get("comment_id"):
        parts.append("<p>Approve it with: <code>platformctl comments approve "
                     f"{_esc(one_line(payload['comment_id'], 40))}</code></p>")
    if section.unsubscribe:
        parts.append(f'<p style="font-size:small"><a href="{_attr(section.unsubscribe)}">'
                     "Stop these e-mails</a></p>")
    return "\n".join(parts)


def _confirmation(payload: dict[str, Any], link: str) -> EmailContent:
    subject = summary("confirm", payload)
    wanted = LIST_TITLES.get(payload.get("list_name"), "e-mails")
    site = site_name(payload)
    text = (f"Someone, probably you, asked to receive {wanted} from {site} at this address.\n\n"
            f"To confirm, open this link:\n{link}\n\n"
            "If it was not you, ignore this e-mail: nothing will be sent without a "
            "confirmation.\n")
    body = (f"<p>Someone, probably you, asked to receive {_esc(wanted)} from {_esc(site)} at "
            "this address.</p>\n"
            f'<p><a href="{_attr(link)}">Confirm</a></p>\n'
            "<p>If it was not you, ignore this e-mail: nothing will be sent without a "
            "confirmation.</p>")
    return EmailContent(one_line(subject, 200), text, _page(subject, body, ""))


def _esc(value: str) -> str:
    return html.escape(value, quote=True)


def _attr(url: str) -> str:
    return html.escape(safe_link(url), quote=True)


def _page(title: str, body: str, footer: str) -> str:
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{_esc(one_line(title))}</title></head>\n"
            '<body style="font-family:sans-serif;line-height:1.4;max-width:40em">\n'
            f"{body}\n"
            + (f'<p style="font-size:small;color:#666">{footer}</p>\n' if footer else "")
            + "</body></html>\n")
